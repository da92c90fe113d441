#include "results/scale_findings.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "results/findings.h"
#include "results/learning_curves.h"
#include "results/result_columns.h"
#include "results/result_plot.h"

namespace difffit {
namespace {

// The methods the scale grid compares, in the order the table shows them.
const std::vector<std::pair<std::string, std::string>> kMethods = {
    {"full", "full"}, {"difffit", "DiffFit"}, {"bitfit", "BitFit"}, {"lora-r8", "LoRA-R8"}};

std::vector<ResultRow> scale_rows(const std::vector<ResultRow>& rows) {
  std::vector<ResultRow> out;
  for (const ResultRow& row : rows)
    if (text_value(row, "grid") == "scale") out.push_back(row);
  return out;
}

std::vector<ResultRow> cell(const std::vector<ResultRow>& rows, const std::string& size, const std::string& task,
                            const std::string& method) {
  std::vector<ResultRow> out;
  for (const ResultRow& row : rows) {
    if (text_value(row, "size") == size && text_value(row, "dataset") == task && method_of(row) == method)
      out.push_back(row);
  }
  return out;
}

// Sizes by their models' parameter count (the full fine-tuning rows' total).
std::vector<std::pair<std::string, double>> sizes_by_params(const std::vector<ResultRow>& rows) {
  std::vector<std::pair<std::string, double>> sizes;
  for (const std::string& size : distinct_values(rows, "size")) {
    std::vector<ResultRow> of_size, full;
    for (const ResultRow& row : rows) {
      if (text_value(row, "size") != size) continue;
      of_size.push_back(row);
      if (method_of(row) == "full") full.push_back(row);
    }
    sizes.emplace_back(size, summarize(full.empty() ? of_size : full, "total_params").mean);  // LoRA adds some
  }
  std::stable_sort(sizes.begin(), sizes.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return sizes;
}

// A task's source model at a size: full fine-tuning's total there (tasks differ in classes,
// so in the label table), else the size's.
double task_params(const std::vector<ResultRow>& rows, const std::string& size, const std::string& task,
                   double size_params) {
  const Summary s = summarize(cell(rows, size, task, "full"), "total_params");
  return s.n > 0 ? s.mean : size_params;
}

std::string mean_and_std(const Summary& s, int decimals) {
  if (s.n == 0) return "–";
  return fixed_number(s.mean, decimals) + (s.n > 1 ? " ± " + fixed_number(s.std, decimals) : "") + " (" + std::to_string(s.n) + ")";
}

enum class GapChange { Shrinks, Grows, Same, Unjudged };

// Smallest against largest size: shrinks or grows when the change exceeds the larger of the
// two gaps' seed spreads; a cell of one run has no spread to judge by.
GapChange gap_change(const ScaleGap& small, const ScaleGap& large) {
  if (small.difffit_runs < 2 || small.full_runs < 2 || large.difffit_runs < 2 || large.full_runs < 2)
    return GapChange::Unjudged;
  const double change = large.gap - small.gap, spread = std::max(small.spread, large.spread);
  if (change < -spread) return GapChange::Shrinks;
  if (change > spread) return GapChange::Grows;
  return GapChange::Same;
}

// The gap is in FID; the ratio can move the other way when full fine-tuning itself moves a lot
// (a smaller gap to a much better full fine-tuning is a larger ratio), and the reader is told.
std::string verdict(const ScaleGap& small, const ScaleGap& large) {
  const bool ratio_grows = large.ratio > small.ratio;
  switch (gap_change(small, large)) {
    case GapChange::Shrinks:
      return ratio_grows ? "**shrinks**, though DiffFit / full grows: full fine-tuning gained more from the larger model"
                         : "**shrinks**";
    case GapChange::Grows: return ratio_grows ? "**grows**" : "**grows**, though DiffFit / full shrinks";
    case GapChange::Same: return "no change beyond the seed spread";
    case GapChange::Unjudged: break;
  }
  return "one run in a cell: no spread to judge by";
}

std::map<std::string, std::vector<ScaleGap>> gaps_by_task(const std::vector<ScaleGap>& gaps,
                                                          std::vector<std::string>* order) {
  std::map<std::string, std::vector<ScaleGap>> by_task;
  for (const ScaleGap& g : gaps) {
    if (!by_task.count(g.task)) order->push_back(g.task);
    by_task[g.task].push_back(g);
  }
  return by_task;
}

}  // namespace

std::vector<ScaleGap> scale_gaps(const std::vector<ResultRow>& all) {
  const std::vector<ResultRow> rows = scale_rows(all);
  std::vector<ScaleGap> out;
  for (const std::string& task : distinct_values(rows, "dataset")) {
    for (const auto& [size, params] : sizes_by_params(rows)) {
      const Summary d = summarize(cell(rows, size, task, "difffit"), "fid");
      const Summary f = summarize(cell(rows, size, task, "full"), "fid");
      if (d.n == 0 || f.n == 0) continue;
      ScaleGap g;
      g.task = task, g.size = size, g.params = task_params(rows, size, task, params);
      g.gap = d.mean - f.mean;
      g.spread = std::sqrt(d.std * d.std + f.std * f.std);
      g.ratio = f.mean > 0 ? d.mean / f.mean : std::nan("");
      g.difffit_runs = d.n, g.full_runs = f.n;
      out.push_back(g);
    }
  }
  return out;
}

std::string scale_markdown(const std::vector<ResultRow>& all, const std::string& chart) {
  const std::vector<ResultRow> rows = scale_rows(all);
  if (rows.empty()) return "";
  std::ostringstream out;
  out << "## The scale question: DiffFit's gap to full fine-tuning against model size\n\n"
      << "The paper's parity with full fine-tuning is measured at 675M parameters; here the same methods fine-tune "
         "source models of one family at several sizes, at one budget. FID (mean ± seed std (runs)); the gap is "
         "DiffFit's FID minus full fine-tuning's, its spread sqrt(std_DiffFit² + std_full²).\n\n"
      << "| task | size | parameters |";
  for (const auto& [key, name] : kMethods) out << " " << name << " |";
  out << " DiffFit − full | DiffFit / full |\n|---|---|---|";
  for (size_t i = 0; i < kMethods.size(); ++i) out << "---|";
  out << "---|---|\n";
  const std::vector<ScaleGap> gaps = scale_gaps(all);
  const auto sizes = sizes_by_params(rows);
  for (const std::string& task : distinct_values(rows, "dataset")) {
    for (const auto& [size, params] : sizes) {
      out << "| " << markdown_escape(task) << " | " << markdown_escape(size) << " | " << fixed_number(task_params(rows, size, task, params), 0) << " |";
      for (const auto& [key, name] : kMethods) out << " " << mean_and_std(summarize(cell(rows, size, task, key), "fid"), 1) << " |";
      const auto g = std::find_if(gaps.begin(), gaps.end(),
                                  [&](const ScaleGap& x) { return x.task == task && x.size == size; });
      if (g == gaps.end()) {
        out << " – | – |\n";
      } else {
        out << " " << fixed_number(g->gap, 1) << " ± " << fixed_number(g->spread, 1) << " | " << fixed_number(g->ratio, 2) << " |\n";
      }
    }
  }
  out << "\n";
  if (!chart.empty()) out << "![DiffFit's FID gap to full fine-tuning against model size](" << chart << ")\n\n";
  std::vector<std::string> order;
  const auto by_task = gaps_by_task(gaps, &order);
  for (const std::string& task : order) {
    const std::vector<ScaleGap>& g = by_task.at(task);
    out << "- **" << markdown_escape(task) << "**: ";
    if (g.size() < 2) {
      out << "measured at " << markdown_escape(g.front().size) << " only (gap " << fixed_number(g.front().gap, 1) << ").\n";
      continue;
    }
    out << "the gap goes from " << fixed_number(g.front().gap, 1) << " ± " << fixed_number(g.front().spread, 1) << " at "
        << markdown_escape(g.front().size) << " to " << fixed_number(g.back().gap, 1) << " ± " << fixed_number(g.back().spread, 1) << " at "
        << markdown_escape(g.back().size) << " (DiffFit / full " << fixed_number(g.front().ratio, 2) << " to " << fixed_number(g.back().ratio, 2)
        << "): " << verdict(g.front(), g.back()) << ".\n";
  }
  return out.str();
}

std::string scale_line(const std::vector<ResultRow>& rows) {
  std::vector<std::string> order;
  const auto by_task = gaps_by_task(scale_gaps(rows), &order);
  std::map<GapChange, int> count;
  double small_ratio = 0, large_ratio = 0;
  int ratio_fell = 0;  // the gap in FID and the ratio can disagree: both are said
  std::string small_size, large_size;
  for (const std::string& task : order) {
    const std::vector<ScaleGap>& g = by_task.at(task);
    if (g.size() < 2) continue;
    ++count[gap_change(g.front(), g.back())];
    small_ratio += g.front().ratio, large_ratio += g.back().ratio;
    if (g.back().ratio < g.front().ratio) ++ratio_fell;
    small_size = g.front().size, large_size = g.back().size;
  }
  const int unjudged = count[GapChange::Unjudged];
  const int tasks = count[GapChange::Shrinks] + count[GapChange::Grows] + count[GapChange::Same] + unjudged;
  if (tasks == 0) return "";
  std::ostringstream out;
  out << "Scale: from the " << small_size << " to the " << large_size << " source model, DiffFit's FID went from "
      << fixed_number(small_ratio / tasks, 1) << "x to " << fixed_number(large_ratio / tasks, 1)
      << "x full fine-tuning's (mean over " << tasks << " task" << (tasks == 1 ? "" : "s") << "); the gap in FID shrank on "
      << count[GapChange::Shrinks] << ", grew on " << count[GapChange::Grows]
      << (unjudged ? ", " : " and ") << "did not change beyond the seed spread on " << count[GapChange::Same];
  if (unjudged) out << " and could not be judged on " << unjudged << " (a cell of one run)";
  out << "; as a multiple of full fine-tuning's FID, DiffFit's fell on " << ratio_fell << " of " << tasks << ".";
  return out.str();
}

std::string scale_gap_svg(const std::vector<ResultRow>& rows) {
  std::vector<std::string> order;
  const auto by_task = gaps_by_task(scale_gaps(rows), &order);
  if (order.empty()) return "";
  std::vector<LineSeries> series;
  for (const std::string& task : order) {
    LineSeries line;
    line.name = task;
    for (const ScaleGap& g : by_task.at(task)) {
      line.x.push_back(g.params / 1e6);
      line.y.push_back(g.gap);
      line.low.push_back(g.gap - g.spread);
      line.high.push_back(g.gap + g.spread);
    }
    series.push_back(std::move(line));
  }
  LinePlotOptions options;
  options.title = "DiffFit's FID gap to full fine-tuning against source model size (band: seed spread)";
  options.x_label = "source model parameters (millions)";
  options.y_label = "FID(DiffFit) − FID(full)";
  return line_plot_svg(series, options);
}

}  // namespace difffit
