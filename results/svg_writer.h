// Pieces shared by the SVG charts: escaping, number formatting, axis ticks, colours.
#pragma once

#include <string>
#include <vector>

namespace difffit::svg {

std::string escape(const std::string& text);  // for text content and attribute values
std::string num(double value);                 // a coordinate: at most 2 decimals
// An estimate of the rendered width of `text` at `font_size` px (sans-serif), for layout.
double text_width(const std::string& text, double font_size = 12.0);

// The i-th series colour: the Okabe-Ito palette (readable with colour-blindness), then
// further distinct colours.
const std::string& colour(size_t index);

struct Ticks {
  double lo = 0.0, hi = 1.0;   // axis range, a multiple of step at both ends
  std::vector<double> values;  // lo, lo + step, ..., hi
  double step = 0.2;
};
// About `target` round ticks (1, 2, 5 x 10^k) covering [lo, hi].
Ticks nice_ticks(double lo, double hi, int target = 5);
std::string tick_label(double value, double step);

// "<svg ...>" with a white background and the default font; close with "</svg>\n".
std::string open_document(double width, double height, const std::string& title);
std::string text(double x, double y, const std::string& content, const std::string& anchor = "middle",
                 double size = 12.0, const std::string& extra = "");

}  // namespace difffit::svg
