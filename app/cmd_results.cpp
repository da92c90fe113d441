// difffit results: the paper's tables (Markdown, LaTeX, CSV), SVG charts, loss and learning
// curves, a listing, a CSV export, the findings and the HTML report of a sweep's results
// file (results/). Each subcommand turns its flags into a request for results/.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "app/cli_options.h"
#include "app/commands.h"
#include "app/results_flags.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/run_folder.h"
#include "orchestrator/sweep_report.h"
#include "results/paper_table.h"
#include "results/result_plot.h"
#include "results/result_table.h"
#include "results/results_store.h"
#include "results/results_views.h"

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

std::vector<std::string> inputs(const po::variables_map& vm) {
  return vm.count("input") ? vm["input"].as<std::vector<std::string>>() : std::vector<std::string>{};
}

// --output / --csv may not replace what the command reads: the results file, the paper's
// table, a run folder's loss log (plot --loss), a sweep's state. Checked before any work.
void check_results_outputs(const po::variables_map& vm) {
  std::vector<std::string> read = inputs(vm);
  for (const std::string& input : inputs(vm))
    if (std::filesystem::is_directory(input)) read.push_back(RunFolder{input}.loss());
  if (vm.count("paper-file")) read.push_back(vm["paper-file"].as<std::string>());
  for (const char* flag : {"output", "csv"})
    if (vm.count(flag) && vm[flag].as<std::string>() != "-")
      check_output_path(vm[flag].as<std::string>(), std::string("--") + flag, read);
}

// Parses `results NAME`, whose positional arguments are its inputs (`input_help`), and checks
// its outputs; false on --help.
bool parse_results_command(const std::string& name, const std::string& summary, po::options_description& options,
                           int argc, char** argv, po::variables_map& vm,
                           const std::string& input_help = "RESULTS.h5 (positional)") {
  options.add_options()("input", po::value<std::vector<std::string>>(), input_help.c_str());
  po::positional_options_description positional;
  positional.add("input", -1);
  if (!parse_command_line("results " + name, summary, argc, argv, options, vm, &positional)) return false;
  check_results_outputs(vm);
  return true;
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
  add_table_options(options);
  options.add_options()
      ("format", po::value<std::string>()->default_value("md"), "md | latex | csv")
      ("paper", "show the paper's FID beside these (rows \"<method> (paper)\" where the datasets match, "
       "else the paper's table after this one; not with --format csv then)")
      ("paper-file", po::value<std::string>()->default_value("experiments/paper-table1.csv"),
       "the paper's table (relative to the working directory)")
      ("output,o", po::value<std::string>(), "write here instead of stdout");
  po::variables_map vm;
  if (!parse_results_command("table",
                             "A pivot table of a sweep's results, e.g. Table 1: methods x datasets of FID.\n"
                             "  difffit results table RESULTS.h5 [--grid G] [--where K=V] [--rows method] "
                             "[--cols dataset] [--value fid] [--extra trainable_params] [--format md|latex|csv]",
                             options, argc, argv, vm))
    return 0;
  const TableFormat format = parse_table_format(vm["format"].as<std::string>());
  const PivotTable table = build_pivot_table(read_results_h5(one_input(vm, "table")), table_spec_from(vm));
  emit(vm, vm.count("paper") ? render_with_paper(table, read_paper_table(vm["paper-file"].as<std::string>()), format)
                             : render_table(table, format));
  return 0;
}

int plot_command(int argc, char** argv) {
  po::options_description options("results plot options");
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
  if (!parse_results_command("plot",
                             "An SVG chart: a grouped bar chart of the pivot table (groups = --cols, bars = --rows), or\n"
                             "with --loss the loss curves of runs, or with --curve the learning curves.\n"
                             "  difffit results plot RESULTS.h5 [selection as for table] --output chart.svg\n"
                             "  difffit results plot --loss RUN_DIR [RUN_DIR...] --output loss.svg\n"
                             "  difffit results plot --loss RESULTS.h5 [selection] --output loss.svg\n"
                             "  difffit results plot --curve RESULTS.h5 --where dataset=new-classes [--value fid] "
                             "--output curve.svg",
                             options, argc, argv, vm, "RESULTS.h5, or run folders with --loss"))
    return 0;
  if (vm.count("curve") && vm.count("loss")) throw_usage("results plot: --curve or --loss, not both");
  PlotRequest request;
  request.kind = vm.count("curve") ? PlotKind::Curves : vm.count("loss") ? PlotKind::Loss : PlotKind::Bars;
  request.inputs = inputs(vm);
  request.spec = table_spec_from(vm);
  if (vm.count("title")) request.title = vm["title"].as<std::string>();
  request.loss_column = vm["column"].as<std::string>();
  request.smooth = vm["smooth"].as<int>();
  request.log_y = vm.count("log-y") > 0;
  const std::string output = vm["output"].as<std::string>();
  write_svg(output, plot_svg(request));
  std::cerr << "[results] wrote " << output << "\n";
  return 0;
}

int export_command(int argc, char** argv) {
  po::options_description options("results export options");
  options.add_options()("csv", po::value<std::string>()->required(), "the CSV file to write ('-' = stdout)");
  add_selection_options(options);
  po::variables_map vm;
  if (!parse_results_command("export", "Every row and column of a results file as CSV.\n"
                             "  difffit results export RESULTS.h5 --csv out.csv",
                             options, argc, argv, vm))
    return 0;
  const std::vector<ResultRow> rows = select_some_rows(read_results_h5(one_input(vm, "export")), table_spec_from(vm));
  const std::string csv = vm["csv"].as<std::string>();
  if (csv == "-") std::cout << results_csv(rows) << std::flush;
  else write_results_csv(csv, rows);
  return 0;
}

int show_command(int argc, char** argv) {
  po::options_description options("results show options");
  options.add_options()
      ("columns", po::value<std::vector<std::string>>()->composing(), "only these columns, comma-separated")
      ("width", po::value<int>()->default_value(24), "clip values to this many characters");
  add_selection_options(options);
  po::variables_map vm;
  if (!parse_results_command("show", "Every row of a results file, one line each.\n"
                             "  difffit results show RESULTS.h5 [--grid G] [--columns a,b,...]",
                             options, argc, argv, vm))
    return 0;
  const ListingRequest request{one_input(vm, "show"), table_spec_from(vm), comma_list(vm, "columns"),
                               static_cast<size_t>(std::max(vm["width"].as<int>(), 4))};
  std::cout << results_listing(request);
  return 0;
}

int findings_command(int argc, char** argv) {
  po::options_description options("results findings options");
  add_selection_options(options);
  options.add_options()
      ("line", "print one sentence (DiffFit against full fine-tuning and BitFit; with a scale grid, one more on "
               "DiffFit's gap against model size) instead of the page")
      ("output,o", po::value<std::string>(), "write here instead of stdout (the page's scale chart, with a scale grid, "
                                             "goes beside it)");
  po::variables_map vm;
  if (!parse_results_command("findings",
                             "The DiffFit paper's claims next to a sweep's numbers, with the seed spread and a verdict.\n"
                             "  difffit results findings RESULTS.h5 [--grid G] [--line] [-o findings.md]",
                             options, argc, argv, vm))
    return 0;
  FindingsRequest request{one_input(vm, "findings"), table_spec_from(vm), vm.count("line") > 0, ""};
  if (vm.count("output")) {
    request.output = vm["output"].as<std::string>();
    if (!request.line) check_output_path(findings_chart_path(request.output), "--output (its chart)", inputs(vm));
  }
  emit(vm, findings_text(request));
  return 0;
}

int report_command(int argc, char** argv) {
  po::options_description options("results report options");
  options.add_options()("output,o", po::value<std::string>(), "the page to write (default SWEEP_DIR/report.html)");
  po::variables_map vm;
  if (!parse_results_command("report",
                             "One self-contained HTML page of a sweep: tables, charts, sample grids, findings, run status.\n"
                             "  difffit results report runs/mini-study [-o report.html]",
                             options, argc, argv, vm, "SWEEP_DIR: the sweep's state folder, OUTPUT_DIR/SWEEP (positional)"))
    return 0;
  const std::string dir = one_input(vm, "report");
  const std::string page = vm.count("output") ? vm["output"].as<std::string>() : dir + "/report.html";
  check_output_path(page, "--output", {dir});
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
