// difffit results: the paper's tables (Markdown, LaTeX, CSV), SVG charts, loss curves and
// a CSV export, from a sweep's results file (results/results_store.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "orchestrator/sweep_report.h"
#include "results/findings.h"
#include "results/learning_curves.h"
#include "results/loss_curve.h"
#include "results/paper_table.h"
#include "results/result_columns.h"
#include "results/result_plot.h"
#include "results/result_table.h"
#include "results/results_store.h"
#include "results/scale_findings.h"

namespace difffit {
namespace {

const char* const kUsage =
    "usage: difffit results <table|plot|export|show|report|findings> [options]  (difffit results <name> --help)\n"
    "  table   RESULTS.h5 -> a pivot table (rows x columns of a value) as Markdown, LaTeX or CSV\n"
    "  plot    RESULTS.h5 -> an SVG grouped bar chart of the same pivot;\n"
    "          plot --loss RUN_DIR... -> an SVG of the runs' loss curves\n"
    "          plot --curve RESULTS.h5 -> an SVG of the learning curves (mean and band over seeds)\n"
    "  export  RESULTS.h5 --csv OUT.csv: every row and column\n"
    "  show    RESULTS.h5: every row, compactly\n"
    "  report  SWEEP_DIR -> one self-contained HTML page (tables, charts, samples, findings, run status)\n"
    "  findings RESULTS.h5 -> the paper's claims next to the measured numbers (Markdown; --line: one sentence)\n";

// --grid --where: which rows; shared by every subcommand that reads a results file.
void add_selection_options(po::options_description& options) {
  options.add_options()
      ("grid", po::value<std::string>()->default_value(""), "only rows of this grid of the sweep")
      ("where", po::value<std::vector<std::string>>()->composing(), "only rows whose text column K equals V (K=V, repeatable)");
}

// --rows --cols --value ...: the pivot table.
void add_table_options(po::options_description& options) {
  add_selection_options(options);
  const TableSpec d;
  options.add_options()
      ("rows", po::value<std::string>()->default_value(d.row_key), "text column: one table row per value")
      ("cols", po::value<std::string>()->default_value(d.col_key), "text column: one table column per value")
      ("value", po::value<std::string>()->default_value(d.value), "numeric column in the cells")
      ("extra", po::value<std::vector<std::string>>()->composing(),
       "numeric columns shown once per row, comma-separated (e.g. trainable_params,trainable_pct; A/B% = 100 A/B)")
      ("higher-is-better", "mark the largest value of a column as best (default: the smallest)")
      ("decimals", po::value<int>()->default_value(d.decimals), "digits after the decimal point")
      ("no-mean", "leave out the mean column")
      ("label", po::value<std::string>()->default_value(""),
       "name of the value in titles (default: the rows' metric column for fid, e.g. \"FID (mini-CNN)\")");
}

std::vector<std::string> split_list(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const std::string& item : items) {
    std::stringstream in(item);
    for (std::string part; std::getline(in, part, ',');)
      if (!part.empty()) out.push_back(part);
  }
  return out;
}

TableSpec table_spec_from(const po::variables_map& vm) {
  TableSpec spec;
  spec.grid = vm["grid"].as<std::string>();
  if (vm.count("where")) {
    for (const std::string& w : vm["where"].as<std::vector<std::string>>()) {
      const size_t eq = w.find('=');
      if (eq == std::string::npos || eq == 0) throw_usage("results: --where expects COLUMN=VALUE, got '" + w + "'");
      spec.where.emplace_back(w.substr(0, eq), w.substr(eq + 1));
    }
  }
  if (!vm.count("rows")) return spec;  // selection only (show)
  spec.row_key = vm["rows"].as<std::string>();
  spec.col_key = vm["cols"].as<std::string>();
  spec.value = vm["value"].as<std::string>();
  if (vm.count("extra")) spec.extra = split_list(vm["extra"].as<std::vector<std::string>>());
  spec.lower_is_better = !vm.count("higher-is-better");
  spec.decimals = vm["decimals"].as<int>();
  spec.mean_column = !vm.count("no-mean");
  spec.value_label = vm["label"].as<std::string>();
  return spec;
}

po::positional_options_description inputs_positional() {
  po::positional_options_description p;
  p.add("input", -1);
  return p;
}

std::vector<std::string> inputs(const po::variables_map& vm) {
  return vm.count("input") ? vm["input"].as<std::vector<std::string>>() : std::vector<std::string>{};
}

std::string one_input(const po::variables_map& vm, const std::string& command) {
  const std::vector<std::string> in = inputs(vm);
  if (in.size() != 1) throw_usage("results " + command + ": give exactly one results file (see --help)");
  return in[0];
}

// Writes to --output atomically, or to stdout.
void emit(const po::variables_map& vm, const std::string& text) {
  if (vm.count("output")) write_file_atomically(vm["output"].as<std::string>(), text);
  else std::cout << text << std::flush;
}

int table_command(int argc, char** argv) {
  po::options_description options("results table options");
  options.add_options()("input", po::value<std::vector<std::string>>(), "RESULTS.h5 (positional)");
  add_table_options(options);
  options.add_options()
      ("format", po::value<std::string>()->default_value("md"), "md | latex | csv")
      ("paper", "show the paper's FID beside these (rows \"<method> (paper)\" where the datasets match, "
       "else the paper's table after this one; not with --format csv then)")
      ("paper-file", po::value<std::string>()->default_value("experiments/paper-table1.csv"),
       "the paper's table (relative to the working directory)")
      ("output,o", po::value<std::string>(), "write here instead of stdout");
  po::variables_map vm;
  const auto positional = inputs_positional();
  if (!parse_command_line("results table",
                          "A pivot table of a sweep's results, e.g. Table 1: methods x datasets of FID.\n"
                          "  difffit results table RESULTS.h5 [--grid G] [--where K=V] [--rows method] "
                          "[--cols dataset] [--value fid] [--extra trainable_params] [--format md|latex|csv]",
                          argc, argv, options, vm, &positional))
    return 0;
  const TableFormat format = parse_table_format(vm["format"].as<std::string>());
  const PivotTable table = build_pivot_table(read_results_h5(one_input(vm, "table")), table_spec_from(vm));
  emit(vm, vm.count("paper") ? render_with_paper(table, read_paper_table(vm["paper-file"].as<std::string>()), format)
                             : render_table(table, format));
  return 0;
}

int plot_command(int argc, char** argv) {
  po::options_description options("results plot options");
  options.add_options()("input", po::value<std::vector<std::string>>(), "RESULTS.h5, or run folders with --loss");
  add_table_options(options);
  options.add_options()
      ("output,o", po::value<std::string>()->required(), "the SVG file to write")
      ("title", po::value<std::string>(), "chart title (default: from the data)")
      ("loss", "plot the loss curves (loss.csv) of the run folders given instead of a results file")
      ("curve", "plot the learning curves of the selected runs (the results file's /curves): --value against step, "
       "one line per --rows value, the mean over the runs that share it and a band from their min to max")
      ("column", po::value<std::string>()->default_value("loss"), "with --loss: loss | mse | vb")
      ("smooth", po::value<int>()->default_value(1), "with --loss: moving average over this many logged steps")
      ("log-y", "with --loss or --curve: logarithmic y axis");
  po::variables_map vm;
  const auto positional = inputs_positional();
  if (!parse_command_line("results plot",
                          "An SVG chart: a grouped bar chart of the pivot table (groups = --cols, bars = --rows), or\n"
                          "with --loss the loss curves of runs.\n"
                          "  difffit results plot RESULTS.h5 [selection as for table] --output chart.svg\n"
                          "  difffit results plot --loss RUN_DIR [RUN_DIR...] --output loss.svg\n"
                          "  difffit results plot --loss RESULTS.h5 [selection] --output loss.svg\n"
                          "  difffit results plot --curve RESULTS.h5 --where dataset=new-classes [--value fid] "
                          "--output curve.svg",
                          argc, argv, options, vm, &positional))
    return 0;
  const std::string output = vm["output"].as<std::string>();
  if (vm.count("curve") && vm.count("loss")) throw_usage("results plot: --curve or --loss, not both");
  if (vm.count("curve")) {
    const std::string path = one_input(vm, "plot --curve");
    const TableSpec spec = table_spec_from(vm);
    const std::vector<ResultRow> curves = select_rows(read_results_curves(path), spec);
    if (curves.empty()) throw_data(path + ": no learning-curve points (runs with eval.every) in the selection");
    LinePlotOptions plot;
    plot.y_label = spec.value;
    plot.title = vm.count("title") ? vm["title"].as<std::string>() : "Learning curves: " + spec.value;
    plot.log_y = vm.count("log-y") > 0;
    write_svg(output, line_plot_svg(curve_series(curves, spec.row_key, spec.value), plot));
  } else if (vm.count("loss")) {
    const std::vector<std::string> dirs = inputs(vm);
    if (dirs.empty()) throw_usage("results plot --loss: give run folders, or a results file and a selection");
    std::vector<LineSeries> series;
    const std::string column = vm["column"].as<std::string>();
    const int smooth = vm["smooth"].as<int>();
    if (dirs.size() == 1 && std::filesystem::is_regular_file(dirs[0])) {
      // A results file: the runs it selects, each named by its --rows and --cols labels.
      const TableSpec spec = table_spec_from(vm);
      series = read_loss_curves(select_rows(read_results_h5(dirs[0]), spec), spec.row_key, spec.col_key, column, smooth);
    } else {
      for (const std::string& dir : dirs) series.push_back(read_loss_curve(dir, column, smooth));
    }
    LinePlotOptions plot;
    plot.y_label = column;
    plot.title = vm.count("title") ? vm["title"].as<std::string>() : "Training " + column;
    if (smooth > 1 && !vm.count("title")) plot.title += " (moving average of " + std::to_string(smooth) + ")";
    plot.log_y = vm.count("log-y") > 0;
    write_svg(output, line_plot_svg(series, plot));
  } else {
    PivotTable table = build_pivot_table(read_results_h5(one_input(vm, "plot")), table_spec_from(vm));
    if (vm.count("title")) table.title = vm["title"].as<std::string>();
    write_svg(output, bar_chart_svg(table));
  }
  std::cerr << "[results] wrote " << output << "\n";
  return 0;
}

int export_command(int argc, char** argv) {
  po::options_description options("results export options");
  options.add_options()
      ("input", po::value<std::vector<std::string>>(), "RESULTS.h5 (positional)")
      ("csv", po::value<std::string>()->required(), "the CSV file to write ('-' = stdout)");
  add_selection_options(options);
  po::variables_map vm;
  const auto positional = inputs_positional();
  if (!parse_command_line("results export", "Every row and column of a results file as CSV.\n"
                          "  difffit results export RESULTS.h5 --csv out.csv",
                          argc, argv, options, vm, &positional))
    return 0;
  const std::vector<ResultRow> rows = select_rows(read_results_h5(one_input(vm, "export")), table_spec_from(vm));
  const std::string csv = vm["csv"].as<std::string>();
  if (csv == "-") std::cout << results_csv(rows) << std::flush;
  else write_results_csv(csv, rows);
  return 0;
}

int show_command(int argc, char** argv) {
  po::options_description options("results show options");
  options.add_options()
      ("input", po::value<std::vector<std::string>>(), "RESULTS.h5 (positional)")
      ("columns", po::value<std::vector<std::string>>()->composing(), "only these columns, comma-separated")
      ("width", po::value<int>()->default_value(24), "clip values to this many characters");
  add_selection_options(options);
  po::variables_map vm;
  const auto positional = inputs_positional();
  if (!parse_command_line("results show", "Every row of a results file, one line each.\n"
                          "  difffit results show RESULTS.h5 [--grid G] [--columns a,b,...]",
                          argc, argv, options, vm, &positional))
    return 0;
  const std::string path = one_input(vm, "show");
  std::map<std::string, std::string> attributes;
  const std::vector<ResultRow> all = read_results_h5(path, &attributes);
  const std::vector<ResultRow> rows = select_rows(all, table_spec_from(vm));
  std::cout << path << ": " << rows.size() << " of " << all.size() << " rows";
  for (const auto& [key, value] : attributes) std::cout << "; " << key << " = " << value;
  std::cout << "\n";
  std::vector<std::string> columns = text_columns(all);
  const std::vector<std::string> numeric = numeric_columns(all);
  columns.insert(columns.end(), numeric.begin(), numeric.end());
  if (vm.count("columns")) {
    const std::vector<std::string> wanted = split_list(vm["columns"].as<std::vector<std::string>>());
    for (const std::string& c : wanted)
      if (std::find(columns.begin(), columns.end(), c) == columns.end())
        throw_usage("results show: unknown column '" + c + "'; " + path + " has " + describe_columns(all));
    columns = wanted;
  }
  const size_t width = static_cast<size_t>(std::max(vm["width"].as<int>(), 4));
  std::cout << render_listing(rows, columns, width);
  return 0;
}

int findings_command(int argc, char** argv) {
  po::options_description options("results findings options");
  options.add_options()("input", po::value<std::vector<std::string>>(), "RESULTS.h5 (positional)");
  add_selection_options(options);
  options.add_options()
      ("line", "print one sentence (DiffFit against full fine-tuning and BitFit; with a scale grid, one more on "
               "DiffFit's gap against model size) instead of the page")
      ("output,o", po::value<std::string>(), "write here instead of stdout");
  po::variables_map vm;
  const auto positional = inputs_positional();
  if (!parse_command_line("results findings",
                          "The DiffFit paper's claims next to a sweep's numbers, with the seed spread and a verdict.\n"
                          "  difffit results findings RESULTS.h5 [--grid G] [--line] [-o findings.md]",
                          argc, argv, options, vm, &positional))
    return 0;
  const std::string path = one_input(vm, "findings");
  const TableSpec selection = table_spec_from(vm);
  std::map<std::string, std::string> attributes;
  const std::vector<ResultRow> rows = select_rows(read_results_h5(path, &attributes), selection);
  std::vector<ResultRow> curves = read_results_curves(path);
  if (!curves.empty()) curves = select_rows(curves, selection);
  if (vm.count("line")) {
    for (const std::string& line : {findings_line(rows), scale_line(rows)})
      if (!line.empty()) std::cout << line << "\n";
    return 0;
  }
  // A scale grid's chart goes beside the page, which links it.
  std::string chart;
  if (vm.count("output") && !scale_gaps(rows).empty()) {
    chart = "scale-gap.svg";
    write_svg((std::filesystem::path(vm["output"].as<std::string>()).parent_path() / chart).string(), scale_gap_svg(rows));
  }
  emit(vm, findings_markdown(rows, curves, attributes, chart));
  return 0;
}

int report_command(int argc, char** argv) {
  po::options_description options("results report options");
  options.add_options()
      ("input", po::value<std::vector<std::string>>(), "SWEEP_DIR: the sweep's state folder, OUTPUT_DIR/SWEEP (positional)")
      ("output,o", po::value<std::string>(), "the page to write (default SWEEP_DIR/report.html)");
  po::variables_map vm;
  const auto positional = inputs_positional();
  if (!parse_command_line("results report",
                          "One self-contained HTML page of a sweep: tables, charts, sample grids, findings, run status.\n"
                          "  difffit results report runs/mini-study [-o report.html]",
                          argc, argv, options, vm, &positional))
    return 0;
  const std::string dir = one_input(vm, "report");
  const std::string page = vm.count("output") ? vm["output"].as<std::string>() : dir + "/report.html";
  write_file_atomically(page, html_report(load_sweep_report(dir, page)));
  std::cout << page << "\n";
  return 0;
}

}  // namespace

int run_results_command(int argc, char** argv) {
  return run_subcommand("results", kUsage, argc, argv,
                        {{"table", table_command}, {"plot", plot_command}, {"export", export_command},
                         {"show", show_command}, {"findings", findings_command},
                         {"report", report_command}});
}

}  // namespace difffit
