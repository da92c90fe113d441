#include "results/svg_writer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace difffit::svg {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

std::string num(double value) {
  // A coordinate is on the canvas or near it; a value that is not (a chart of absurd data)
  // is clamped, so no attribute ever says inf, nan or 300 digits.
  if (!std::isfinite(value)) value = std::isnan(value) ? 0.0 : std::copysign(1e6, value);
  value = std::clamp(value, -1e6, 1e6);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", value);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s == "-0" ? "0" : s;
}

double text_width(const std::string& text, double font_size) {
  size_t glyphs = 0;
  for (char c : text) glyphs += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // UTF-8 lead bytes
  return 0.6 * font_size * static_cast<double>(glyphs);
}

const std::string& colour(size_t index) {
  static const std::vector<std::string> palette = {
      "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000",
      "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF", "#9467BD", "#1F3A93", "#A6761D", "#E7298A"};
  return palette[index % palette.size()];
}

Ticks nice_ticks(double lo, double hi, int target) {
  Ticks t;
  if (!std::isfinite(lo) || !std::isfinite(hi) || !std::isfinite(hi - lo)) lo = 0.0, hi = 1.0;
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {  // a single value: centre it
    const double pad = lo == 0.0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  t.step = step;
  t.lo = std::floor(lo / step + 1e-9) * step;
  t.hi = std::ceil(hi / step - 1e-9) * step;
  for (int i = 0; t.lo + i * step <= t.hi + step * 1e-6; ++i) t.values.push_back(t.lo + i * step);
  return t;
}

std::string tick_label(double value, double step) {
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  char buf[48];
  if (std::fabs(value) >= 1e6 || (value != 0.0 && std::fabs(value) < 1e-4))
    std::snprintf(buf, sizeof buf, "%.3g", value);
  else
    std::snprintf(buf, sizeof buf, "%.*f", decimals, std::fabs(value) < step * 1e-6 ? 0.0 : value);
  return buf;
}

std::string open_document(double width, double height, const std::string& title) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         num(width) + "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
         "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n<title>" + escape(title) +
         "</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
}

std::string text(double x, double y, const std::string& content, const std::string& anchor, double size,
                 const std::string& extra) {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\"" +
         (size != 12.0 ? " font-size=\"" + num(size) + "\"" : "") + (extra.empty() ? "" : " " + extra) + ">" +
         escape(content) + "</text>\n";
}

}  // namespace difffit::svg
