#include "results/findings.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

#include "results/curve_findings.h"
#include "results/result_columns.h"
#include "results/scale_findings.h"

namespace difffit {
namespace {

std::vector<ResultRow> where(const std::vector<ResultRow>& rows, const std::string& column, const std::string& value) {
  std::vector<ResultRow> out;
  for (const ResultRow& row : rows)
    if ((column == "method" ? method_of(row) : text_value(row, column)) == value) out.push_back(row);
  return out;
}

std::string mean_std(const Summary& s, int decimals, double scale = 1.0) {
  if (s.n == 0) return "–";
  std::string out = fixed_number(scale * s.mean, decimals);
  if (s.n > 1 && std::isfinite(s.std)) out += " ± " + fixed_number(scale * s.std, decimals);
  return out;
}

// A method's FID per task (the "dataset" axis; one task when the rows have none), each the
// mean and spread over that task's seeds.
using TaskCells = std::map<std::string, Summary>;

TaskCells task_cells(const std::vector<ResultRow>& rows, const std::string& column) {
  std::map<std::string, std::vector<ResultRow>> by_task;
  for (const ResultRow& row : rows) by_task[text_value(row, "dataset")].push_back(row);
  TaskCells out;
  for (const auto& [task, task_rows] : by_task) {
    const Summary cell = summarize(task_rows, column);
    if (cell.n > 0) out[task] = cell;
  }
  return out;
}

// Over tasks: the mean of the task means, and the seed spread as the root mean square of the
// standard deviations of the tasks with several seeds (with one task: that cell's mean and
// std). n = runs, or 1 when no task has several seeds (so no spread is shown).
Summary over_tasks(const TaskCells& cells) {
  Summary s;
  double squares = 0.0;
  int spread_tasks = 0;
  for (const auto& [task, cell] : cells) {
    s.n += cell.n;
    s.mean += cell.mean / static_cast<double>(cells.size());
    if (cell.n > 1) squares += cell.std * cell.std, ++spread_tasks;
  }
  s.std = spread_tasks ? std::sqrt(squares / spread_tasks) : 0.0;
  if (spread_tasks == 0 && s.n > 0) s.n = 1;
  return s;
}

// Lower FID is better. Task by task, the claimed-better side wins when its gap exceeds the
// larger seed spread of the two cells (one seed: no verdict); the claim agrees when more
// than half the tasks go its way ("better or equal": wins and ties both do), disagrees when
// more than half go the other way.
std::string compare_fid(const TaskCells& claimed_better, const TaskCells& other, bool paper_says_better_or_equal) {
  int wins = 0, losses = 0, ties = 0, shared = 0;
  for (const auto& [task, a] : claimed_better) {
    const auto b = other.find(task);
    if (b == other.end()) continue;
    ++shared;
    if (a.n < 2 || b->second.n < 2) continue;
    const double gap = b->second.mean - a.mean;  // > 0: claimed_better is better
    const double spread = std::max(a.std, b->second.std);
    (std::fabs(gap) <= spread ? ties : gap > 0 ? wins : losses)++;
  }
  if (shared == 0) return "not measured";
  const int judged = wins + losses + ties;
  if (judged == 0) return "one run each: no spread to judge by";
  if (shared == 1) {
    if (ties) return paper_says_better_or_equal ? "agrees (equal within the spread)" : "within the spread";
    return wins ? "agrees" : "**disagrees**";
  }
  const std::string unjudged =
      judged < shared ? "; " + std::to_string(shared - judged) + " with one run each not judged" : "";
  const int paper_way = wins + (paper_says_better_or_equal ? ties : 0);
  const std::string verdict = 2 * paper_way > judged ? "agrees"
                              : 2 * losses > judged  ? "**disagrees**"
                              : 2 * ties > judged    ? "within the spread"
                                                     : "mixed";
  return verdict + " (better on " + std::to_string(wins) + ", worse on " + std::to_string(losses) +
         ", within the spread on " + std::to_string(ties) + " of " + std::to_string(judged) + " task" +
         (judged == 1 ? "" : "s") + unjudged + ")";
}

struct MethodLine {
  std::string method;
  TaskCells fid_by_task;
  Summary fid, accuracy, speed, params, bytes;  // fid, accuracy: over tasks (over_tasks)
  int runs = 0;                                 // with a score
};

MethodLine method_line(const std::vector<ResultRow>& rows, const std::string& method) {
  const std::vector<ResultRow> r = where(rows, "method", method);
  TaskCells fid = task_cells(r, "fid");
  const Summary fid_summary = over_tasks(fid);
  return {method,
          std::move(fid),
          fid_summary,
          over_tasks(task_cells(r, "class_accuracy")),
          summarize(r, "steps_per_second"),
          summarize(r, "trainable_params"),
          summarize(r, "delta_bytes"),
          summarize(r, "fid").n};
}

std::vector<std::string> methods_in(const std::vector<ResultRow>& rows) {
  std::vector<std::string> out;
  for (const ResultRow& row : rows) {
    const std::string m = method_of(row);
    if (!m.empty() && std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

std::string methods_section(const std::vector<ResultRow>& rows) {
  std::ostringstream out;
  const std::vector<std::string> methods = methods_in(rows);
  out << "| method | FID (mean over tasks ± seed std) | class accuracy (%) | steps/s | trainable params | stored bytes | runs |\n"
      << "|---|---|---|---|---|---|---|\n";
  std::map<std::string, MethodLine> lines;
  for (const std::string& m : methods) {
    const MethodLine l = method_line(rows, m);
    lines[m] = l;
    out << "| " << markdown_escape(m) << " | " << mean_std(l.fid, 2) << " | " << mean_std(l.accuracy, 1, 100.0) << " | "
        << mean_std(l.speed, 2) << " | " << (l.params.n ? fixed_number(l.params.mean, 0) : "–") << " | "
        << (l.bytes.n ? fixed_number(l.bytes.mean, 0) : "–") << " | " << l.runs << " |\n";
  }
  out << "\n";
  if (lines.count("difffit") && lines.count("full")) {
    const MethodLine& d = lines["difffit"];
    const MethodLine& f = lines["full"];
    out << "- **Paper: DiffFit matches or beats full fine-tuning on FID.** Measured: DiffFit "
        << mean_std(d.fid, 2) << " vs full " << mean_std(f.fid, 2) << ": " << compare_fid(d.fid_by_task, f.fid_by_task, true)
        << ".\n";
    if (d.params.n && f.params.n && f.params.mean > 0) {
      out << "- **Paper: DiffFit trains about 0.12% of DiT-XL/2's parameters.** Measured on this model: "
          << fixed_number(100.0 * d.params.mean / f.params.mean, 2) << "% (" << fixed_number(d.params.mean, 0) << " of "
          << fixed_number(f.params.mean, 0) << "); stored delta " << fixed_number(d.bytes.mean, 0) << " bytes vs "
          << fixed_number(f.bytes.mean, 0) << " for full fine-tuning.\n";
    }
    if (d.speed.n && f.speed.n && f.speed.mean > 0) {
      const double ratio = d.speed.mean / f.speed.mean;
      out << "- **Paper: DiffFit trains about 2x faster than full fine-tuning.** Measured: "
          << fixed_number(ratio, 2) << "x the steps per second (" << mean_std(d.speed, 2) << " vs "
          << mean_std(f.speed, 2) << "): " << (ratio >= 1.8 ? "agrees" : ratio > 1.05 ? "faster, by less" : "**disagrees**")
          << ".\n";
    }
  }
  if (lines.count("difffit")) {
    for (const std::string& m : methods) {
      if (m == "difffit" || m == "full") continue;
      out << "- **Paper: DiffFit beats " << markdown_escape(m) << ".** Measured: DiffFit " << mean_std(lines["difffit"].fid, 2)
          << " vs " << markdown_escape(m) << " " << mean_std(lines[m].fid, 2) << ": " << compare_fid(lines["difffit"].fid_by_task, lines[m].fid_by_task, false)
          << ".\n";
    }
  }
  return out.str();
}

// One ablation grid: the values of `axis`, and which the paper finds best.
std::string ablation_section(const std::vector<ResultRow>& rows, const std::string& axis, const std::string& best,
                             const std::string& claim) {
  std::vector<std::string> values;
  for (const ResultRow& row : rows) {
    const std::string v = text_value(row, axis);
    if (!v.empty() && std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
  }
  if (values.empty()) return "";
  std::ostringstream out;
  out << "| " << markdown_escape(axis) << " | FID (mean ± seed std) | class accuracy (%) | runs |\n|---|---|---|---|\n";
  std::map<std::string, TaskCells> fid;
  for (const std::string& v : values) {
    const std::vector<ResultRow> r = where(rows, axis, v);
    fid[v] = task_cells(r, "fid");
    const Summary f = over_tasks(fid[v]);
    out << "| " << markdown_escape(v) << " | " << mean_std(f, 2) << " | " << mean_std(over_tasks(task_cells(r, "class_accuracy")), 1, 100.0)
        << " | " << summarize(r, "fid").n << " |\n";
  }
  out << "\n- **Paper: " << claim << ".** Measured: ";
  if (!fid.count(best)) return out.str() + markdown_escape(best) + " was not run.\n";
  if (values.size() == 1) return out.str() + "open: only " + markdown_escape(best) + " has runs yet.\n";
  std::string sep;
  for (const std::string& v : values) {
    if (v == best) continue;
    out << sep << markdown_escape(best) << " vs " << markdown_escape(v) << ": " << compare_fid(fid[best], fid[v], false);
    sep = "; ";
  }
  return out.str() + ".\n";
}

// Mean ± seed std of a column over the rows whose `axis` is `value` (one task: no pooling).
std::string cell_text(const std::vector<ResultRow>& rows, const std::string& axis, const std::string& value,
                      const std::string& column, int decimals, double scale = 1.0) {
  return mean_std(summarize(where(rows, axis, value), column), decimals, scale);
}

// The resolution transfer: grid "transfer" (method x pos_embed x seed, fine-tuned at twice the
// source resolution) and grid "transfer-baselines" (start: scratch-64px, source-32px).
std::string transfer_section(const std::vector<ResultRow>& rows) {
  const std::vector<ResultRow> grid = where(rows, "grid", "transfer");
  if (grid.empty()) return "";
  const std::vector<ResultRow> baselines = where(rows, "grid", "transfer-baselines");
  const std::vector<ResultRow> scratch = where(baselines, "start", "scratch-64px");
  const std::vector<ResultRow> source = where(baselines, "start", "source-32px");
  std::ostringstream out;
  out << "| start | method | FID, pos_embed unaligned | FID, aligned (G_old/G_new) | class accuracy (%), unaligned | "
         "aligned | runs |\n|---|---|---|---|---|---|---|\n";
  const std::vector<std::string> methods = methods_in(grid);
  for (const std::string& m : methods) {
    const std::vector<ResultRow> r = where(grid, "method", m);
    out << "| source model | " << markdown_escape(m) << " | " << cell_text(r, "pos_embed", "unaligned", "fid", 2) << " | "
        << cell_text(r, "pos_embed", "aligned", "fid", 2) << " | "
        << cell_text(r, "pos_embed", "unaligned", "class_accuracy", 1, 100.0) << " | "
        << cell_text(r, "pos_embed", "aligned", "class_accuracy", 1, 100.0) << " | " << summarize(r, "fid").n << " |\n";
  }
  if (!scratch.empty()) {
    out << "| scratch | full | " << mean_std(summarize(scratch, "fid"), 2) << " | – | "
        << mean_std(summarize(scratch, "class_accuracy"), 1, 100.0) << " | – | " << summarize(scratch, "fid").n << " |\n";
  }
  out << "\n";
  if (!source.empty()) {
    out << "The source model itself, sampled at its own 32 px (no training): FID " << mean_std(summarize(source, "fid"), 2)
        << ", class accuracy " << mean_std(summarize(source, "class_accuracy"), 1, 100.0)
        << "% against the 32 px reference (another reference set and feature network than the 64 px scores: "
           "a level to aim for, not a comparable number).\n\n";
  }
  // One task: TaskCells keyed by the (empty) dataset, judged against the seed spread.
  auto fid_cells = [](const std::vector<ResultRow>& r) { return task_cells(r, "fid"); };
  out << "- **Paper: a model pre-trained at the lower resolution, fine-tuned at the higher one, beats training at "
         "the higher resolution from scratch** (ImageNet 512: DiffFit from the 256 px DiT-XL/2 reaches FID 3.02 after "
         "25 epochs; DiT-XL/2 trained at 512 px from scratch, 3.04 after 3M steps: \"30x more training-efficient\"). "
         "Measured at the same budget, pos_embed aligned";
  if (scratch.empty()) {
    out << ": the from-scratch baseline was not run.\n";
  } else {
    out << " (scratch " << mean_std(summarize(scratch, "fid"), 2) << "):";
    std::string sep = " ";
    for (const std::string& m : methods) {
      const std::vector<ResultRow> aligned = where(where(grid, "method", m), "pos_embed", "aligned");
      out << sep << markdown_escape(m) << " " << mean_std(summarize(aligned, "fid"), 2) << ", "
          << compare_fid(fid_cells(aligned), fid_cells(scratch), false);
      sep = "; ";
    }
    out << ".\n";
  }
  out << "- **Paper: aligning the larger grid's positional embedding with the pre-training grid (positions scaled by "
         "G_old/G_new) helps the transfer** (its \"positional encoding trick\", used for the 3.02). Measured, aligned vs "
         "unaligned:";
  std::string sep = " ";
  for (const std::string& m : methods) {
    const std::vector<ResultRow> r = where(grid, "method", m);
    out << sep << markdown_escape(m) << " " << cell_text(r, "pos_embed", "aligned", "fid", 2) << " vs "
        << cell_text(r, "pos_embed", "unaligned", "fid", 2) << ", "
        << compare_fid(fid_cells(where(r, "pos_embed", "aligned")), fid_cells(where(r, "pos_embed", "unaligned")), false);
    sep = "; ";
  }
  out << ".\n";
  return out.str();
}

// Grids with a section of their own, never pooled into the method comparison.
bool in_own_section_grid(const ResultRow& row) {
  const std::string g = text_value(row, "grid");
  return g == "transfer" || g == "transfer-baselines" || g == "scale";
}

// How far the sweep came: runs done of planned, when it finished, its wall time over its jobs.
std::string sweep_paragraph(const std::map<std::string, std::string>& attributes) {
  auto get = [&](const char* key) {
    const auto it = attributes.find(key);
    return it == attributes.end() ? std::string() : it->second;
  };
  const std::string planned = get("runs_planned"), done = get("runs_done");
  if (planned.empty() || done.empty()) return "";
  std::ostringstream out;
  out << "**The sweep" << (get("sweep").empty() ? "" : " " + markdown_escape(get("sweep"))) << "**: " << done << " of " << planned
      << " runs done";
  const std::string finished = get("finished");
  out << (finished.empty() ? "; not finished (results as of " + get("updated") + ")" : "; finished " + finished);
  const double wall = std::atof(get("wall_seconds").c_str());
  if (wall > 0) {
    out << "; wall time " << fixed_number(wall / 3600.0, 1) << " h";
    if (!get("jobs").empty()) out << " over " << get("jobs") << " job" << (get("jobs") == "1" ? "" : "s");
    if (!get("first_started").empty()) out << " since " << get("first_started");
  }
  return out.str() + ".\n\n";
}

// The rows that compare methods: the Table 1 grid, else every row of no grid with a section
// of its own.
std::vector<ResultRow> method_comparison_rows(const std::vector<ResultRow>& rows) {
  std::vector<ResultRow> table = where(rows, "grid", "table1");
  if (table.empty())
    for (const ResultRow& row : rows)
      if (!in_own_section_grid(row)) table.push_back(row);
  return table;
}

}  // namespace

std::string method_of(const ResultRow& row) {
  const std::string label = text_value(row, "method");
  return label.empty() ? text_value(row, "method_name") : label;
}

Summary summarize(const std::vector<ResultRow>& rows, const std::string& column) {
  Summary s;
  double sum = 0.0, sq = 0.0;
  for (const ResultRow& row : rows) {
    const double v = number_value(row, column);
    if (std::isnan(v)) continue;
    ++s.n;
    sum += v;
  }
  if (s.n == 0) return s;
  s.mean = sum / s.n;
  for (const ResultRow& row : rows) {
    const double v = number_value(row, column);
    if (!std::isnan(v)) sq += (v - s.mean) * (v - s.mean);
  }
  s.std = s.n > 1 ? std::sqrt(sq / (s.n - 1)) : 0.0;
  return s;
}

std::string findings_markdown(const std::vector<ResultRow>& rows, const std::vector<ResultRow>& curves,
                              const std::map<std::string, std::string>& attributes, const std::string& scale_chart) {
  std::ostringstream out;
  out << "# Findings: the DiffFit paper's claims against these results\n\n" << sweep_paragraph(attributes)
      << "FID is lower-is-better. A method's FID is the mean over tasks of its per-task mean over seeds; ± is "
         "the seed-to-seed standard deviation within a task (root mean square over tasks). Claims are judged "
         "task by task: a method is better on a task when its gap exceeds the larger seed spread of the two, "
         "and a claim \"agrees\" when more than half of the tasks go its way.\n\n";
  // The method comparison uses the grid that compares methods (Table 1), else every row but
  // the resolution transfer's (it has its own section).
  const std::vector<ResultRow> table = method_comparison_rows(rows);
  if (!table.empty()) out << "## Methods\n\n" << methods_section(table) << "\n";
  const std::string gamma = ablation_section(where(rows, "grid", "gamma-placement"), "blocks", "first-half",
                                             "gamma in the first half of the blocks beats the last half and all blocks");
  if (!gamma.empty()) out << "## Where gamma goes\n\n" << gamma << "\n";
  const std::string lr = ablation_section(where(rows, "grid", "lr-ratio"), "lr_ratio", "10x",
                                          "a 10x learning rate for DiffFit's parameters beats 1x");
  if (!lr.empty()) out << "## Learning-rate ratio\n\n" << lr << "\n";
  const std::string transfer = transfer_section(rows);
  if (!transfer.empty()) out << "## Resolution transfer\n\n" << transfer << "\n";
  const std::string scale = scale_markdown(rows, scale_chart);
  if (!scale.empty()) out << scale << "\n";
  // Table 1's curves: the ablations share its budget.
  std::vector<ResultRow> table_curves = where(curves, "grid", "table1");
  const std::string plateaus = plateau_markdown(table_curves.empty() ? curves : table_curves);
  if (!plateaus.empty()) out << plateaus << "\n";
  return out.str();
}

std::string findings_line(const std::vector<ResultRow>& all) {
  const std::vector<ResultRow> rows = method_comparison_rows(all);
  const MethodLine d = method_line(rows, "difffit"), f = method_line(rows, "full"), b = method_line(rows, "bitfit");
  if (d.fid.n == 0 || f.fid.n == 0) return "";
  // "FID 21.3 with 82% of its samples recognised as their class", or the FID alone.
  auto reached = [](const MethodLine& m, bool long_form) {
    std::string text = "FID " + fixed_number(m.fid.mean, 1);
    if (m.accuracy.n == 0) return text;
    const std::string pct = fixed_number(100 * m.accuracy.mean, 0) + "%";
    return text + (long_form ? " with " + pct + " of its samples recognised as their class" : " (" + pct + ")");
  };
  std::ostringstream out;
  out << "Reading: full fine-tuning reached " << reached(f, true) << "; DiffFit, training "
      << (f.params.mean > 0 ? fixed_number(100.0 * d.params.mean / f.params.mean, 2) : "?") << "% of the parameters at "
      << (f.speed.mean > 0 ? fixed_number(d.speed.mean / f.speed.mean, 2) : "?") << "x the step speed, reached "
      << reached(d, false);
  if (b.fid.n) out << "; BitFit " << reached(b, false);
  const Summary steps = summarize(rows, "steps");
  out << " (lower FID is better";
  if (steps.n) out << "; " << fixed_number(steps.mean, 0) << " steps";
  out << ").";
  return out.str();
}

}  // namespace difffit
