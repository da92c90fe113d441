// The results store (HDF5 round trip, h5py as an independent reader, atomic writes),
// CSV export, pivot tables against values worked out by hand, SVG charts and the
// `difffit results` command.
#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "common/error.h"
#include "results/curve_findings.h"
#include "results/findings.h"
#include "results/learning_curves.h"
#include "results/loss_curve.h"
#include "results/paper_table.h"
#include "results/result_columns.h"
#include "results/result_plot.h"
#include "results/result_table.h"
#include "results/results_store.h"
#include "results/results_views.h"
#include "results/scale_findings.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::run_difffit;
using testing::TempDir;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

ResultRow make_row(std::map<std::string, std::string> text, std::map<std::string, double> numbers) {
  return ResultRow{std::move(text), std::move(numbers)};
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `code` with the test Python; returns its output (the test fails on a non-zero exit).
std::string python(const TempDir& dir, const std::string& code, const std::string& args) {
  std::ofstream(dir.file("check.py")) << code;
  auto r = testing::run_command(testing::test_python() + " " + dir.file("check.py") + " " + args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

// The sweep's Table 1 in miniature: two seeds in one cell, a failed run (NaN), a missing
// cell, another grid that the selection drops.
std::vector<ResultRow> table_rows() {
  auto row = [](const std::string& grid, const std::string& method, const std::string& dataset, double fid,
                double trainable) {
    return make_row({{"grid", grid}, {"method", method}, {"dataset", dataset}, {"metric", "FID (mini-CNN)"},
                     {"name", method + "-" + dataset}},
                    {{"fid", fid}, {"trainable_params", trainable}, {"total_params", 1e6}});
  };
  return {row("t1", "difffit", "food", 10, 2000), row("t1", "difffit", "food", 12, 2000),
          row("t1", "full", "food", 9, 1e6),      row("t1", "difffit", "cars", 20, 2000),
          row("t1", "full", "cars", 25, 1e6),     row("t1", "bitfit", "food", 15, 5000),
          row("t1", "bitfit", "cars", kNaN, 5000), row("t2", "difffit", "food", 1, 2000)};
}

TableSpec table1_spec() {
  TableSpec spec;
  spec.grid = "t1";
  spec.extra = {"trainable_params", "trainable_pct"};
  return spec;
}

std::vector<ResultRow> mixed_rows() {
  return {make_row({{"grid", "g"}, {"name", "Ünïcödé – 日本"}, {"placement", "first:14"}, {"empty", ""}},
                   {{"fid", 12.5}, {"tiny", 1e-300}, {"third", 1.0 / 3.0}}),
          make_row({{"grid", "g"}, {"name", "plain"}}, {{"fid", kNaN}, {"delta_bytes", 2560}, {"third", 0.1}})};
}

ResultRow finding_row(const std::string& grid, const std::string& method, double fid, double speed,
                      const std::string& axis = "", const std::string& label = "") {
  ResultRow row;
  row.text["grid"] = grid;
  row.text["method"] = method;
  if (!axis.empty()) row.text[axis] = label;
  row.numbers["fid"] = fid;
  row.numbers["steps_per_second"] = speed;
  row.numbers["trainable_params"] = method == "full" ? 1000 : 10;
  row.numbers["delta_bytes"] = method == "full" ? 4000 : 40;
  row.numbers["class_accuracy"] = 0.5;
  return row;
}

TEST(Findings, SummariesAndVerdictsFollowTheSpread) {
  // DiffFit 10 +- 1 against full 20 +- 1 (3 seeds): agrees. BitFit 10.5 +- 2: within the spread.
  std::vector<ResultRow> rows;
  for (double d : {-1.0, 0.0, 1.0}) {
    rows.push_back(finding_row("table1", "difffit", 10 + d, 4.0));
    rows.push_back(finding_row("table1", "full", 20 + d, 2.0));
    rows.push_back(finding_row("table1", "bitfit", 10.5 + 2 * d, 4.0));
    rows.push_back(finding_row("gamma-placement", "difffit", 30 + d, 4.0, "blocks", "first-half"));
    rows.push_back(finding_row("gamma-placement", "difffit", 25 + d, 4.0, "blocks", "all"));
  }
  const Summary s = summarize(rows, "fid");
  EXPECT_EQ(s.n, 15);
  const Summary d = summarize(std::vector<ResultRow>(rows.begin(), rows.begin() + 1), "fid");
  EXPECT_EQ(d.n, 1);
  EXPECT_DOUBLE_EQ(d.std, 0.0);
  const std::string page = findings_markdown(rows);
  EXPECT_NE(page.find("DiffFit 10.00 ± 1.00 vs full 20.00 ± 1.00: agrees."), std::string::npos) << page;
  EXPECT_NE(page.find("DiffFit 10.00 ± 1.00 vs bitfit 10.50 ± 2.00: within the spread."), std::string::npos) << page;
  EXPECT_NE(page.find("2.00x the steps per second"), std::string::npos) << page;
  EXPECT_NE(page.find("1.00% (10 of 1000)"), std::string::npos) << page;
  // The paper's placement (first half) is worse here by more than the spread: said plainly.
  EXPECT_NE(page.find("first-half vs all: **disagrees**"), std::string::npos) << page;
  EXPECT_EQ(page.find("Learning-rate ratio"), std::string::npos) << "no lr-ratio grid, no section";
  std::vector<ResultRow> table1;
  for (const ResultRow& row : rows)
    if (row.text.at("grid") == "table1") table1.push_back(row);
  const std::string line = findings_line(table1);
  EXPECT_EQ(line, "Reading: full fine-tuning reached FID 20.0 with 50% of its samples recognised as their class; "
                  "DiffFit, training 1.00% of the parameters at 2.00x the step speed, reached FID 10.0 (50%); "
                  "BitFit FID 10.5 (50%) (lower FID is better).");
  EXPECT_EQ(findings_line(rows), line) << "the ablation grids are not pooled into the reading";
}

TEST(Findings, AnAblationWithOnlyThePapersCellDoneIsOpen) {
  // A sweep under way: the shared 10x runs are done, the 1x and 20x ones not yet.
  std::vector<ResultRow> rows;
  for (double d : {-1.0, 0.0, 1.0}) rows.push_back(finding_row("lr-ratio", "difffit", 10 + d, 4.0, "lr_ratio", "10x"));
  const std::string page = findings_markdown(rows);
  EXPECT_NE(page.find("beats 1x.** Measured: open: only 10x has runs yet.\n"), std::string::npos) << page;
}

TEST(ResultsStore, RoundTripKeepsValuesNaNUnicodeAndMissingColumns) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  write_results_h5(path, mixed_rows(), {{"sweep", "paper"}, {"created", "2024-01-01T00:00:00Z"}});
  std::map<std::string, std::string> attributes;
  const std::vector<ResultRow> rows = read_results_h5(path, &attributes);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(attributes["format"], "difffit-results-1");
  EXPECT_EQ(attributes["sweep"], "paper");
  EXPECT_EQ(rows[0].text.at("name"), "Ünïcödé – 日本");
  EXPECT_EQ(rows[0].text.at("empty"), "");
  EXPECT_EQ(rows[0].text.at("placement"), "first:14");
  EXPECT_EQ(rows[1].text.at("placement"), "");  // missing in the second row
  EXPECT_EQ(rows[0].numbers.at("fid"), 12.5);
  EXPECT_EQ(rows[0].numbers.at("tiny"), 1e-300);
  EXPECT_EQ(rows[0].numbers.at("third"), 1.0 / 3.0);
  EXPECT_TRUE(std::isnan(rows[1].numbers.at("fid")));
  EXPECT_TRUE(std::isnan(rows[0].numbers.at("delta_bytes")));  // missing in the first row
  EXPECT_EQ(rows[1].numbers.at("delta_bytes"), 2560);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(ResultsStore, NoRowsRoundTrip) {
  TempDir dir;
  write_results_h5(dir.file("empty.h5"), {});
  EXPECT_TRUE(read_results_h5(dir.file("empty.h5")).empty());
}

TEST(ResultsStore, H5pyReadsTheColumnsUnderFileLockingOff) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  ::setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
  write_results_h5(path, mixed_rows(), {{"sweep", "paper"}});
  EXPECT_EQ(read_results_h5(path).size(), 2u);
  ::unsetenv("HDF5_USE_FILE_LOCKING");
  const std::string out = python(dir, R"(
import math, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
assert text(f.attrs["format"]) == "difffit-results-1", f.attrs["format"]
assert text(f.attrs["sweep"]) == "paper"
fid = f["runs/fid"][:]
assert fid.dtype == np.float64 and fid.shape == (2,), (fid.dtype, fid.shape)
assert fid[0] == 12.5 and math.isnan(fid[1]), fid
assert f["runs/third"][0] == 1.0 / 3.0
names = list(f["runs/name"].asstr()[:])
assert names == ["Ünïcödé – 日本", "plain"], names
assert h5py.check_string_dtype(f["runs/name"].dtype).encoding == "utf-8"
assert list(f["runs/placement"].asstr()[:]) == ["first:14", ""]
assert math.isnan(f["runs/delta_bytes"][0]) and f["runs/delta_bytes"][1] == 2560
print("h5py-ok", sorted(f["runs"].keys()))
)", "'" + path + "'");
  EXPECT_NE(out.find("h5py-ok"), std::string::npos) << out;
  EXPECT_NE(out.find("'tiny'"), std::string::npos) << out;
}

TEST(ResultsStore, AFailedWriteThrowsAndLeavesThePreviousFileIntact) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  write_results_h5(path, table_rows());
  const std::string before = read_text(path);

  std::filesystem::create_directory(path + ".tmp");  // the temporary file cannot be created
  try {
    write_results_h5(path, mixed_rows());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::IO);
    EXPECT_NE(std::string(e.what()).find(path + ".tmp"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(std::filesystem::is_directory(path + ".tmp"));  // not removed: it was not ours
  std::filesystem::remove(path + ".tmp");

  EXPECT_THROW(write_results_h5(path, {make_row({{"a/b", "x"}}, {})}), Error);  // not a dataset name
  EXPECT_THROW(write_results_h5(path, {make_row({{"fid", "x"}}, {{"fid", 1.0}})}), Error);  // text and numeric
  EXPECT_THROW(write_results_h5(dir.file("no-such-dir/results.h5"), table_rows()), Error);
  EXPECT_EQ(read_text(path), before);
  EXPECT_EQ(read_results_h5(path).size(), table_rows().size());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(ResultsStore, ReadErrorsNameTheFileAndTheDataset) {
  TempDir dir;
  auto message = [](const std::string& path) -> std::string {
    try {
      read_results_h5(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message(dir.file("missing.h5")).find("missing.h5"), std::string::npos);
  std::ofstream(dir.file("text.h5")) << "not hdf5";
  EXPECT_NE(message(dir.file("text.h5")).find("not an HDF5 file"), std::string::npos);
  python(dir, R"(
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/no_format.h5", "w") as f:
    f.create_dataset("runs/fid", data=np.zeros(2))
with h5py.File(d + "/ragged.h5", "w") as f:
    f.attrs["format"] = "difffit-results-1"
    f.create_dataset("runs/a", data=np.zeros(2))
    f.create_dataset("runs/b", data=np.zeros(3))
with h5py.File(d + "/compound.h5", "w") as f:
    f.attrs["format"] = "difffit-results-1"
    f.create_dataset("runs/pair", data=np.zeros(2, dtype=[("x", "f8"), ("y", "i4")]))
with h5py.File(d + "/fixed.h5", "w") as f:
    f.attrs["format"] = np.bytes_("difffit-results-1")
    f.create_dataset("runs/name", data=np.array([b"ab", b"c"], dtype="S2"))
    f.create_dataset("runs/steps", data=np.array([3, 4], dtype=np.int64))
with h5py.File(d + "/huge.h5", "w") as f:
    f.attrs["format"] = "difffit-results-1"
    f.create_dataset("runs/fid", shape=(10**11,), chunks=(1024,), dtype="f8")  # declared, never written
with h5py.File(d + "/wide.h5", "w") as f:
    f.attrs["format"] = "difffit-results-1"
    f.create_dataset("runs/name", shape=(500,), dtype="S2000000000")  # 1 TB declared, never written
)", dir.path().string());
  const std::string wide = message(dir.file("wide.h5"));
  EXPECT_NE(wide.find("wide.h5: dataset /runs/name: 500 strings of 2000000000 bytes, more than this machine's memory"),
            std::string::npos)
      << wide;
  const std::string huge = message(dir.file("huge.h5"));
  EXPECT_NE(huge.find("huge.h5: dataset /runs/fid declares 100000000000 rows"), std::string::npos) << huge;
  EXPECT_NE(message(dir.file("no_format.h5")).find("'format'"), std::string::npos);
  const std::string ragged = message(dir.file("ragged.h5"));
  EXPECT_NE(ragged.find("ragged.h5"), std::string::npos) << ragged;
  EXPECT_NE(ragged.find("/runs/b"), std::string::npos) << ragged;
  EXPECT_NE(message(dir.file("compound.h5")).find("/runs/pair"), std::string::npos);
  // Fixed-length strings and integers (as other writers store them) read as well.
  const std::vector<ResultRow> fixed = read_results_h5(dir.file("fixed.h5"));
  ASSERT_EQ(fixed.size(), 2u);
  EXPECT_EQ(fixed[1].text.at("name"), "c");
  EXPECT_EQ(fixed[1].numbers.at("steps"), 4.0);
}

TEST(Findings, MethodsAreComparedTaskByTaskAgainstTheSeedSpread) {
  // Four tasks of very different difficulty (FID 10 ... 1000): pooled over tasks the spread
  // would swamp every gap; within each task the seeds differ by +-1. DiffFit beats full on
  // three tasks and loses on one; it ties BitFit on every task.
  std::vector<ResultRow> rows;
  const std::vector<std::pair<double, double>> tasks = {{10, 20}, {100, 130}, {1000, 1100}, {50, 40}};
  for (size_t t = 0; t < tasks.size(); ++t) {
    for (double d : {-1.0, 0.0, 1.0}) {
      for (auto [method, fid] : {std::pair<std::string, double>{"difffit", tasks[t].first},
                                 {"full", tasks[t].second}, {"bitfit", tasks[t].first + 0.5}}) {
        ResultRow row = finding_row("table1", method, fid + d, 4.0);
        row.text["dataset"] = "task" + std::to_string(t);
        rows.push_back(row);
      }
    }
  }
  const std::string page = findings_markdown(rows);
  // Mean over tasks of the task means, +- the seed spread (1 in every task).
  EXPECT_NE(page.find("DiffFit 290.00 ± 1.00 vs full 322.50 ± 1.00: agrees (better on 3, worse on 1, within the "
                      "spread on 0 of 4 tasks)."),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("vs bitfit 290.50 ± 1.00: within the spread (better on 0, worse on 0, within the spread on 4 "
                      "of 4 tasks)."),
            std::string::npos)
      << page;
  // Losing on most tasks is said plainly.
  for (ResultRow& row : rows)
    if (row.text["method"] == "full") row.numbers["fid"] -= 50;
  EXPECT_NE(findings_markdown(rows).find("vs full 272.50 ± 1.00: **disagrees** (better on 1, worse on 3, within the "
                                        "spread on 0 of 4 tasks)."),
            std::string::npos)
      << findings_markdown(rows);
}

// The scale grid: task A's gap shrinks from 100 to 25 (far beyond the spread, sqrt(1 + 1)),
// task B's moves by 1 (within it). Worked out by hand.
TEST(Findings, TheScaleGapIsJudgedAgainstTheSeedSpread) {
  std::vector<ResultRow> rows;
  const std::map<std::string, std::map<std::string, std::pair<double, double>>> fid = {  // task -> size -> (full, difffit)
      {"A", {{"small", {20, 120}}, {"large", {15, 40}}}},
      {"B", {{"small", {30, 50}}, {"large", {30, 51}}}}};
  for (const auto& [task, by_size] : fid)
    for (const auto& [size, pair] : by_size)
      for (double d : {-1.0, 0.0, 1.0})
        for (const auto& [method, value] : {std::pair<std::string, double>{"full", pair.first}, {"difffit", pair.second}}) {
          ResultRow row = finding_row("scale", method, value + d, 4.0, "size", size);
          row.text["dataset"] = task;
          // Task B's models have more classes, so a larger label table: each task shows its own count.
          row.numbers["total_params"] = (size == "small" ? 1e6 : 4e6) + (task == "B" ? 500 : 0);
          rows.push_back(row);
        }
  const std::string page = findings_markdown(rows, {}, {}, "scale-gap.svg");
  EXPECT_EQ(page.find("## Methods"), std::string::npos) << "sizes are not pooled into one method table\n" << page;
  EXPECT_NE(page.find("| A | small | 1000000 | 20.0 ± 1.0 (3) | 120.0 ± 1.0 (3) | – | – | 100.0 ± 1.4 | 6.00 |"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("| B | large | 4000500 | 30.0 ± 1.0 (3) | 51.0 ± 1.0 (3) | – | – | 21.0 ± 1.4 | 1.70 |"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("- **A**: the gap goes from 100.0 ± 1.4 at small to 25.0 ± 1.4 at large (DiffFit / full 6.00 "
                      "to 2.67): **shrinks**."),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("- **B**: the gap goes from 20.0 ± 1.4 at small to 21.0 ± 1.4 at large (DiffFit / full 1.67 to "
                      "1.70): no change beyond the seed spread."),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("](scale-gap.svg)"), std::string::npos) << page;
  EXPECT_EQ(scale_line(rows),
            "Scale: from the small to the large source model, DiffFit's FID went from 3.8x to 2.2x full fine-tuning's "
            "(mean over 2 tasks); the gap in FID shrank on 1, grew on 0 and did not change beyond the seed spread on 1; "
            "as a multiple of full fine-tuning's FID, DiffFit's fell on 1 of 2.");
  const std::string svg = scale_gap_svg(rows);
  size_t lines = 0;
  for (size_t at = svg.find("class=\"series\""); at != std::string::npos; at = svg.find("class=\"series\"", at + 1)) ++lines;
  EXPECT_EQ(lines, 2u) << svg;
  EXPECT_NE(svg.find("class=\"band\""), std::string::npos);
  // One size only: the section says so, and there is no sentence to print.
  std::vector<ResultRow> small;
  for (const ResultRow& row : rows)
    if (row.text.at("size") == "small") small.push_back(row);
  EXPECT_NE(findings_markdown(small).find("- **A**: measured at small only (gap 100.0)."), std::string::npos);
  EXPECT_EQ(scale_line(small), "");
  // A cell of one run (B's DiffFit at large, seed 0 only) cannot be judged, and the line says so.
  std::vector<ResultRow> partial;
  for (const ResultRow& row : rows)
    if (!(row.text.at("dataset") == "B" && row.text.at("size") == "large" && row.text.at("method") == "difffit" &&
          row.numbers.at("fid") != 51))
      partial.push_back(row);
  EXPECT_EQ(scale_line(partial),
            "Scale: from the small to the large source model, DiffFit's FID went from 3.8x to 2.2x full fine-tuning's "
            "(mean over 2 tasks); the gap in FID shrank on 1, grew on 0, did not change beyond the seed spread on 0 and "
            "could not be judged on 1 (a cell of one run); as a multiple of full fine-tuning's FID, DiffFit's fell on 1 "
            "of 2.");
  EXPECT_NE(findings_markdown(partial).find("- **B**: the gap goes from 20.0 ± 1.4 at small to 21.0"), std::string::npos);
  // A's full fine-tuning gains much more at large (15 -> 5): the gap still shrinks (100 -> 35)
  // but DiffFit / full grows (6.00 -> 8.00), and the sentence says both.
  for (ResultRow& row : rows)
    if (row.text.at("dataset") == "A" && row.text.at("size") == "large" && row.text.at("method") == "full")
      row.numbers["fid"] -= 10;
  EXPECT_NE(findings_markdown(rows).find("- **A**: the gap goes from 100.0 ± 1.4 at small to 35.0 ± 1.4 at large "
                                         "(DiffFit / full 6.00 to 8.00): **shrinks**, though DiffFit / full grows: full "
                                         "fine-tuning gained more from the larger model."),
            std::string::npos)
      << findings_markdown(rows);
  EXPECT_NE(scale_line(rows).find("the gap in FID shrank on 1, grew on 0 and did not change beyond the seed spread on "
                                  "1; as a multiple of full fine-tuning's FID, DiffFit's fell on 0 of 2."),
            std::string::npos)
      << scale_line(rows);
}

// The views of `difffit results` in process: the findings page writes its scale chart beside
// itself, the line holds the scale sentence, the listing refuses an unknown column before it
// prints anything, and a curve plot of a store without curves names the file.
TEST(ResultsViews, FindingsListingAndPlotsFromOneStore) {
  TempDir dir;
  std::vector<ResultRow> rows;
  for (const std::string size : {"small", "large"})
    for (const std::string method : {"full", "difffit"})
      for (double d : {-1.0, 1.0}) {
        ResultRow row = finding_row("scale", method, (method == "full" ? 20 : size == "small" ? 120 : 40) + d, 4.0,
                                    "size", size);
        row.text["dataset"] = "A";
        row.numbers["total_params"] = size == "small" ? 1e6 : 4e6;
        rows.push_back(row);
      }
  const std::string path = dir.file("results.h5");
  write_results_h5(path, rows, {{"sweep", "s"}});
  FindingsRequest findings{path, {}, false, dir.file("page/findings.md")};
  std::filesystem::create_directories(dir.file("page"));
  EXPECT_NE(findings_text(findings).find("](scale-gap.svg)"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir.file("page/scale-gap.svg")));
  findings.line = true;
  const std::string lines = findings_text(findings);
  // A scale grid alone is not pooled into the method comparison: its line is the scale one.
  EXPECT_EQ(lines.rfind("Scale: from the small to the large source model, DiffFit's FID went from 6.0x to 2.0x", 0), 0u)
      << lines;
  EXPECT_EQ(lines.back(), '\n');

  ListingRequest listing{path, {}, {"method", "fid"}, 24};
  listing.selection.where = {parse_where("size=large")};
  const std::string text = results_listing(listing);
  EXPECT_EQ(text.rfind(path + ": 4 of 8 rows; format = difffit-results-1; sweep = s\n", 0), 0u) << text;
  listing.columns = {"method", "nope"};
  try {
    results_listing(listing);
    ADD_FAILURE() << "an unknown column was listed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown column 'nope'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_where("=x"), Error);

  PlotRequest plot;
  plot.inputs = {path};
  plot.spec.row_key = "method";
  plot.spec.col_key = "size";
  EXPECT_NE(plot_svg(plot).find("class=\"bar\""), std::string::npos);
  plot.kind = PlotKind::Curves;
  try {
    plot_svg(plot);
    ADD_FAILURE() << "a curve plot without curves";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": no learning-curve points"), std::string::npos) << e.what();
  }
  plot.inputs.push_back(path);
  EXPECT_THROW(plot_svg(plot), Error);  // one results file only
}

// The page opens with how far the sweep came, from the results file's attributes.
TEST(Findings, TheSweepsProgressAndWallTimeOpenThePage) {
  std::map<std::string, std::string> attributes = {{"sweep", "mini-scale"}, {"runs_planned", "72"}, {"runs_done", "72"},
                                                   {"jobs", "3"}, {"wall_seconds", "36000"},
                                                   {"first_started", "2026-12-05T01:37:03Z"},
                                                   {"finished", "2026-12-06T10:00:00Z"}};
  EXPECT_NE(findings_markdown({}, {}, attributes)
                .find("**The sweep mini-scale**: 72 of 72 runs done; finished 2026-12-06T10:00:00Z; wall time 10.0 h "
                      "over 3 jobs since 2026-12-05T01:37:03Z."),
            std::string::npos);
  attributes["runs_done"] = "7", attributes["finished"] = "", attributes["updated"] = "2026-12-05T02:11:51Z";
  EXPECT_NE(findings_markdown({}, {}, attributes)
                .find("7 of 72 runs done; not finished (results as of 2026-12-05T02:11:51Z); wall time"),
            std::string::npos);
}

TEST(Findings, TheResolutionTransferIsJudgedAgainstScratchAndPerPosEmbedAlignment) {
  // Seeds differ by +-1. Aligned vs unaligned: DiffFit better (50 vs 60), full a tie (40 vs
  // 40.5), BitFit worse (70 vs 65). Every transfer beats scratch (200).
  std::vector<ResultRow> rows;
  const std::map<std::string, std::pair<double, double>> fid = {
      {"full", {40.5, 40}}, {"bitfit", {65, 70}}, {"difffit", {60, 50}}};
  for (double d : {-1.0, 0.0, 1.0}) {
    for (const char* method : {"full", "bitfit", "difffit"}) {
      rows.push_back(finding_row("transfer", method, fid.at(method).first + d, 3.0, "pos_embed", "unaligned"));
      rows.push_back(finding_row("transfer", method, fid.at(method).second + d, 3.0, "pos_embed", "aligned"));
    }
    ResultRow scratch = finding_row("transfer-baselines", "", 200 + d, 3.0, "start", "scratch-64px");
    ResultRow source = finding_row("transfer-baselines", "", 6 + d, 3.0, "start", "source-32px");
    rows.push_back(scratch);
    rows.push_back(source);
  }
  const std::string page = findings_markdown(rows);
  EXPECT_EQ(page.find("## Methods"), std::string::npos) << "transfer rows are not a method comparison\n" << page;
  EXPECT_NE(page.find("## Resolution transfer"), std::string::npos) << page;
  EXPECT_NE(page.find("| source model | difffit | 60.00 ± 1.00 | 50.00 ± 1.00 | 50.0 ± 0.0 | 50.0 ± 0.0 | 6 |"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("| scratch | full | 200.00 ± 1.00 |"), std::string::npos) << page;
  EXPECT_NE(page.find("sampled at its own 32 px (no training): FID 6.00 ± 1.00"), std::string::npos) << page;
  EXPECT_NE(page.find("(scratch 200.00 ± 1.00): full 40.00 ± 1.00, agrees; bitfit 70.00 ± 1.00, agrees; "
                      "difffit 50.00 ± 1.00, agrees."),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("unaligned: full 40.00 ± 1.00 vs 40.50 ± 1.00, within the spread; bitfit 70.00 ± 1.00 vs "
                      "65.00 ± 1.00, **disagrees**; difffit 50.00 ± 1.00 vs 60.00 ± 1.00, agrees."),
            std::string::npos)
      << page;
}

TEST(ResultsCsv, QuotesFieldsAndWritesRoundTripNumbers) {
  const std::vector<ResultRow> rows = {
      make_row({{"name", "a,b"}, {"method", "say \"hi\""}, {"grid", "g"}, {"note", "two\nlines"}},
               {{"fid", 0.1}, {"third", 1.0 / 3.0}}),
      make_row({{"name", "plain"}, {"grid", "g"}}, {{"fid", kNaN}, {"third", 1e21}})};
  EXPECT_EQ(results_csv(rows),
            "grid,name,method,note,fid,third\n"
            "g,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",0.1,0.3333333333333333\n"
            "g,plain,,,,1e+21\n");
  TempDir dir;
  write_results_csv(dir.file("out.csv"), rows);
  EXPECT_EQ(read_text(dir.file("out.csv")), results_csv(rows));
}

TEST(ResultTable, PivotMatchesValuesWorkedOutByHand) {
  const PivotTable t = build_pivot_table(table_rows(), table1_spec());
  // Rows and columns in order of first appearance, not sorted; grid t2 is left out.
  EXPECT_EQ(t.rows, (std::vector<std::string>{"difffit", "full", "bitfit"}));
  EXPECT_EQ(t.columns, (std::vector<std::string>{"food", "cars"}));
  EXPECT_EQ(t.cells[0][0].n, 2);
  EXPECT_DOUBLE_EQ(t.cells[0][0].mean, 11.0);
  EXPECT_DOUBLE_EQ(t.cells[0][0].std, std::sqrt(2.0));
  EXPECT_EQ(t.cells[2][1].n, 0);  // the failed run leaves the cell empty
  EXPECT_EQ(render_markdown(t),
            "FID (mini-CNN) by method and dataset (grid t1); lower is better, best in bold; mean ± std where a "
            "cell has several runs; Mean only for rows with every dataset.\n\n"
            "| Method | food | cars | Mean | Params (M) | Trainable (%) |\n"
            "|:---|---:|---:|---:|---:|---:|\n"
            "| difffit | 11.00 ± 1.41 | **20.00** | **15.50** | 0.002 | 0.2 |\n"
            "| full | **9.00** | 25.00 | 17.00 | 1.00 | 100.00 |\n"
            "| bitfit | 15.00 | – | – | 0.005 | 0.5 |\n");
  EXPECT_EQ(render_csv(t),
            "method,food,food_std,cars,cars_std,mean,trainable_params,trainable_pct\n"
            "difffit,11,1.4142135623730951,20,,15.5,2000,0.2\n"
            "full,9,,25,,17,1000000,100\n"
            "bitfit,15,,,,,5000,0.5\n");
}

TEST(ResultTable, InfiniteAndHugeValuesStayReadable) {
  // A diverged run's FID (inf) and an absurd one (1e308) from a hand-made results file: no
  // "-nan" spread and no 300-digit cell (the table leaves a non-finite cell empty).
  std::vector<ResultRow> rows = table_rows();
  rows[3].numbers["fid"] = std::numeric_limits<double>::infinity();
  rows[4].numbers["fid"] = 1e308;
  const std::string table = render_markdown(build_pivot_table(rows, table1_spec()));
  EXPECT_NE(table.find("| full | **9.00** | 1e+308 | 5e+307 |"), std::string::npos) << table;
  EXPECT_EQ(table.find("nan"), std::string::npos) << table;
  EXPECT_EQ(fixed_number(-std::numeric_limits<double>::infinity(), 2), "-inf");
  EXPECT_EQ(fixed_number(1234567890123456.0, 2), "1.23e+15");
  EXPECT_EQ(fixed_number(123456789012345.0, 1), "123456789012345.0");

  std::vector<ResultRow> seeds;
  for (double fid : {10.0, std::numeric_limits<double>::infinity()}) seeds.push_back(finding_row("table1", "difffit", fid, 4.0));
  for (double fid : {20.0, 21.0}) seeds.push_back(finding_row("table1", "full", fid, 2.0));
  const std::string page = findings_markdown(seeds);
  EXPECT_EQ(page.find("nan"), std::string::npos) << page;
  EXPECT_NE(page.find("DiffFit inf vs full 20.50 ± 0.71"), std::string::npos) << page;
}

// Strings are stored fixed-length (plain data): every one-byte change of a small store is read
// or refused with an Error, never a crash in libhdf5 (a variable-length string's heap entry,
// damaged, was copied without a bounds check). Bytes that are not UTF-8 read as U+FFFD.
TEST(ResultsStore, DamagedBytesGiveAnErrorOrAReadNeverACrash) {
  TempDir dir;
  const std::string path = dir.file("results.h5"), damaged = dir.file("damaged.h5");
  std::vector<ResultRow> rows = table_rows();
  rows[0].text["method"] = "ful\xff\xfel";
  write_results_h5(path, rows, {{"sweep", "s\xc3"}}, rows);
  std::map<std::string, std::string> attributes;
  const std::vector<ResultRow> back = read_results_h5(path, &attributes);
  EXPECT_EQ(text_value(back[0], "method"), "ful\xEF\xBF\xBD\xEF\xBF\xBDl");
  EXPECT_EQ(attributes["sweep"], "s\xEF\xBF\xBD");
  const std::string bytes = read_text(path);
  int read = 0, refused = 0;
  for (size_t at = 0; at < bytes.size(); at += 3) {
    std::string copy = bytes;
    copy[at] = static_cast<char>(copy[at] ^ 0xFF);
    std::ofstream(damaged, std::ios::binary | std::ios::trunc) << copy;
    try {
      read_results_h5(damaged);
      read_results_curves(damaged);
      ++read;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(read, 0);
}

TEST(ResultTable, OverflowingValuesGiveTheirTrueMeanAndSpreadAndAValidChart) {
  std::vector<ResultRow> rows = table_rows();
  for (ResultRow& r : rows)
    if (text_value(r, "grid") == "t1" && text_value(r, "method") == "difffit" && text_value(r, "dataset") == "food")
      r.numbers["fid"] = r.numbers["fid"] == 10.0 ? 1e308 : -1e308;
  const PivotTable table = build_pivot_table(rows, table1_spec());
  EXPECT_EQ(table.cells[0][0].mean, 0.0);
  EXPECT_NEAR(table.cells[0][0].std / 1e308, std::sqrt(2.0), 1e-12);
  const std::string svg = bar_chart_svg(table);
  for (const char* bad : {"inf", "nan", "99999999"}) EXPECT_EQ(svg.find(bad), std::string::npos) << bad << "\n" << svg;
}

TEST(Findings, ALabelWithAPipeStaysInItsCell) {
  std::vector<ResultRow> rows;
  for (double d : {0.0, 1.0}) {
    rows.push_back(finding_row("table1", "a|b", 10 + d, 4.0));
    rows.push_back(finding_row("table1", "full", 20 + d, 2.0));
  }
  const std::string page = findings_markdown(rows);
  const size_t at = page.find("| a\\|b |");
  ASSERT_NE(at, std::string::npos) << page;
  const std::string line = page.substr(at, page.find('\n', at) - at);
  size_t cells = 0;
  for (size_t i = 0; i < line.size(); ++i) cells += line[i] == '|' && (i == 0 || line[i - 1] != '\\');
  EXPECT_EQ(cells, 8u) << line;  // 7 columns
}

// Markdown's own punctuation in a label shows as typed, and a CR or LF does not split a row.
TEST(ResultTable, MarkdownPunctuationInALabelShowsAsTyped) {
  EXPECT_EQ(markdown_escape("<i>a</i> & [x](y) *b*_c_ `d` #e\\f"),
            "\\<i\\>a\\</i\\> \\& \\[x\\](y) \\*b\\*\\_c\\_ \\`d\\` \\#e\\\\f");
  EXPECT_EQ(markdown_escape("bit\rfit\nx"), "bit fit x");
  std::vector<ResultRow> rows = table_rows();
  for (ResultRow& r : rows)
    if (text_value(r, "method") == "bitfit") r.text["method"] = "bit\rfit <b>";
  const std::string md = render_markdown(build_pivot_table(rows, table1_spec()));
  EXPECT_NE(md.find("\n| bit fit \\<b\\> |"), std::string::npos) << md;
}

// A paper table with the datasets of table_rows() (food) and one it lacks (sun).
std::string write_paper_csv(const TempDir& dir) {
  std::ofstream(dir.file("paper.csv")) << "# source: A. Author, Paper, 2023, Table 1\n# a note\n"
                                          "method,food,sun,params_m\n"
                                          "difffit,7.5,8.5,0.83\n"
                                          "full,10.5,8,673.8\n";
  return dir.file("paper.csv");
}

TEST(PaperTable, RowsFollowOursWithThePaperValuesOfTheSharedColumns) {
  TempDir dir;
  const PaperTable paper = read_paper_table(write_paper_csv(dir));
  EXPECT_EQ(paper.source, "A. Author, Paper, 2023, Table 1");
  ASSERT_EQ(paper.rows.size(), 4u);
  TableSpec spec = table1_spec();
  spec.extra = {"trainable_params"};
  PivotTable t = build_pivot_table(table_rows(), spec);
  const PivotTable p = paper_pivot(paper, t);
  EXPECT_EQ(p.columns, (std::vector<std::string>{"food", "sun"}));
  ASSERT_TRUE(interleave_paper_rows(t, p));
  EXPECT_EQ(t.rows, (std::vector<std::string>{"difffit", "difffit (paper)", "full", "full (paper)", "bitfit"}));
  const std::string md = render_markdown(t);
  // The paper has no "cars": that cell and so the mean are missing; bold stays ours.
  EXPECT_NE(md.find("| difffit (paper) | 7.50 | – | – | 0.83 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| full (paper) | 10.50 | – | – | 673.80 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| full | **9.00** | 25.00 | 17.00 | 1.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("rows \"(paper)\": The paper's FID by method and dataset (A. Author, Paper, 2023, Table 1)"),
            std::string::npos)
      << md;

  // No dataset in common: nothing is interleaved (the command prints the paper's own table).
  std::vector<ResultRow> other = table_rows();
  for (ResultRow& row : other) row.text["dataset"] = "x-" + row.text["dataset"];
  PivotTable unrelated = build_pivot_table(other, spec);
  EXPECT_FALSE(interleave_paper_rows(unrelated, paper_pivot(paper, unrelated)));
  EXPECT_EQ(unrelated.rows.size(), 3u);
}

TEST(PaperTable, BadFilesNameTheFileLineAndField) {
  TempDir dir;
  auto error_of = [&](const std::string& text) {
    std::ofstream(dir.file("bad.csv")) << text;
    try {
      read_paper_table(dir.file("bad.csv"));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("method,food\ndifffit,abc\n").find("bad.csv:2 (food): 'abc' is not a number"),
            std::string::npos);
  EXPECT_NE(error_of("method,food\ndifffit,1,2\n").find("bad.csv:2: 3 fields, the header has 2"), std::string::npos);
  EXPECT_NE(error_of("name,food\n").find("bad.csv:1: the header must be"), std::string::npos);
  EXPECT_NE(error_of("# only a comment\n").find("bad.csv: no rows"), std::string::npos);
  EXPECT_NE(error_of("method,food\ndifffit,1\ndifffit,2\n").find("bad.csv:3: method 'difffit' appears twice"),
            std::string::npos);
  EXPECT_NE(error_of("method,food,food\n").find("bad.csv:1: column 'food' appears twice"), std::string::npos);
  EXPECT_THROW(read_paper_table(dir.file("missing.csv")), Error);
}

// The shipped table: eight methods x eight datasets, each row's mean as the paper prints it.
TEST(PaperTable, TheShippedTableOneHasEveryCell) {
  const PaperTable paper = read_paper_table(testing::source_dir() + "/experiments/paper-table1.csv");
  EXPECT_EQ(paper.rows.size(), 64u);
  TableSpec spec;
  spec.extra = {"trainable_params"};
  const PivotTable t = build_pivot_table(paper.rows, spec);
  ASSERT_EQ(t.rows.size(), 8u);
  EXPECT_EQ(t.rows.back(), "difffit");
  EXPECT_NEAR(t.means.back().mean, 15.39, 0.005);  // the paper's DiffFit mean
  EXPECT_NEAR(t.means.front().mean, 16.60, 0.006);  // full fine-tuning: 16.595
  EXPECT_DOUBLE_EQ(t.extras[0].values.back(), 0.83e6);
}

TEST(ResultTable, HigherIsBetterAndFiltersAndTheMetricName) {
  TableSpec spec = table1_spec();
  spec.lower_is_better = false;
  spec.mean_column = false;
  spec.extra.clear();
  const std::string md = render_markdown(build_pivot_table(table_rows(), spec));
  EXPECT_NE(md.find("| full | 9.00 | **25.00** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| bitfit | **15.00** | – |"), std::string::npos) << md;
  EXPECT_EQ(md.find("Mean"), std::string::npos) << md;
  EXPECT_EQ(md.find("Inception"), std::string::npos) << md;

  spec.where = {{"method", "full"}};
  const PivotTable only_full = build_pivot_table(table_rows(), spec);
  EXPECT_EQ(only_full.rows, std::vector<std::string>{"full"});

  spec = TableSpec{};  // every grid: t2's run joins the difffit/food cell
  spec.value = "trainable_params";
  const PivotTable all = build_pivot_table(table_rows(), spec);
  EXPECT_EQ(all.cells[0][0].n, 3);
  EXPECT_EQ(all.value_label, "trainable_params");  // the metric column names fid only
}

TEST(ResultTable, UnknownColumnsAndEmptySelectionsAreUsageErrors) {
  auto kind_and_message = [](const TableSpec& spec) -> std::pair<ErrorKind, std::string> {
    try {
      build_pivot_table(table_rows(), spec);
    } catch (const Error& e) {
      return {e.kind(), e.what()};
    }
    return {ErrorKind::Internal, "no error"};
  };
  TableSpec spec;
  spec.value = "nope";
  auto [kind, message] = kind_and_message(spec);
  EXPECT_EQ(kind, ErrorKind::Usage);
  EXPECT_NE(message.find("'nope'"), std::string::npos) << message;
  EXPECT_NE(message.find("trainable_params"), std::string::npos) << message;  // lists what there is
  spec = TableSpec{};
  spec.where = {{"placement", "x"}};
  EXPECT_EQ(kind_and_message(spec).first, ErrorKind::Usage);
  spec = TableSpec{};
  spec.grid = "t9";
  std::tie(kind, message) = kind_and_message(spec);
  EXPECT_EQ(kind, ErrorKind::Usage);
  EXPECT_NE(message.find("t1, t2"), std::string::npos) << message;
}

TEST(ResultTable, LatexIsBooktabsWithEscapesAndBold) {
  std::vector<ResultRow> rows = {
      make_row({{"method", "lora_r8"}, {"dataset", "50%&more"}}, {{"fid", 3.0}}),
      make_row({{"method", "lora_r8"}, {"dataset", "50%&more"}}, {{"fid", 5.0}}),
      make_row({{"method", "bit#fit"}, {"dataset", "50%&more"}}, {{"fid", 7.0}})};
  const std::string tex = render_latex(build_pivot_table(rows, TableSpec{}));
  EXPECT_NE(tex.find("\\toprule"), std::string::npos) << tex;
  EXPECT_NE(tex.find("\\midrule"), std::string::npos) << tex;
  EXPECT_NE(tex.find("\\bottomrule"), std::string::npos) << tex;
  EXPECT_NE(tex.find("\\begin{tabular}{lr}"), std::string::npos) << tex;
  EXPECT_NE(tex.find("Method & 50\\%\\&more \\\\"), std::string::npos) << tex;
  EXPECT_NE(tex.find("lora\\_r8 & \\textbf{4.00 $\\pm$ 1.41} \\\\"), std::string::npos) << tex;
  EXPECT_NE(tex.find("bit\\#fit & 7.00 \\\\"), std::string::npos) << tex;
  EXPECT_NE(tex.find("\\caption{fid by method and dataset; lower is better"), std::string::npos) << tex;
}

TEST(ResultPlot, BarChartIsWellFormedSvgWithOneBarPerCell) {
  TempDir dir;
  write_svg(dir.file("chart.svg"), bar_chart_svg(build_pivot_table(table_rows(), table1_spec())));
  const std::string out = python(dir, R"(
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "bar"]
errors = [l for l in root.iter("{http://www.w3.org/2000/svg}line") if l.get("class") == "error-bar"]
texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
assert all(float(b.get("height")) > 0 for b in bars)
print("bars", len(bars), "errors", len(errors))
print("texts", texts)
)", dir.file("chart.svg"));
  EXPECT_NE(out.find("bars 5 errors 1"), std::string::npos) << out;  // bitfit/cars is missing
  for (const char* label : {"'difffit'", "'full'", "'bitfit'", "'food'", "'cars'", "FID (mini-CNN) (lower is better)"})
    EXPECT_NE(out.find(label), std::string::npos) << label << "\n" << out;
}

void write_loss_csv(const std::filesystem::path& dir, const std::string& body) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "loss.csv") << "step,loss,mse,vb\n" << body;
}

TEST(ResultPlot, LossCurvesAreReadSmoothedAndOverlaid) {
  TempDir dir;
  write_loss_csv(dir.path() / "runA", "1,4,3,1\n2,2,1.5,0.5\n3,nan,nan,nan\n4,1,0.5,0.5\n5,0.");  // torn last line
  write_loss_csv(dir.path() / "runB", "1,3,2,1\n2,1,0.5,0.5\n");
  const LineSeries a = read_loss_curve(dir.file("runA") + "/", "loss", 2);
  EXPECT_EQ(a.name, "runA");
  ASSERT_EQ(a.y.size(), 4u);
  EXPECT_EQ(a.x, (std::vector<double>{1, 2, 3, 4}));
  EXPECT_DOUBLE_EQ(a.y[0], 4.0);
  EXPECT_DOUBLE_EQ(a.y[1], 3.0);
  EXPECT_TRUE(std::isnan(a.y[2]));
  EXPECT_DOUBLE_EQ(a.y[3], 1.0);  // the NaN step does not count in the window
  EXPECT_DOUBLE_EQ(read_loss_curve(dir.file("runB"), "vb").y[1], 0.5);
  EXPECT_THROW(read_loss_curve(dir.file("runB"), "nope"), Error);
  EXPECT_THROW(read_loss_curve(dir.file("nothing-here")), Error);

  LinePlotOptions options;
  options.title = "loss";
  options.log_y = true;
  write_svg(dir.file("loss.svg"), line_plot_svg({a, read_loss_curve(dir.file("runB"))}, options));
  const std::string out = python(dir, R"(
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
lines = [p for p in root.iter("{http://www.w3.org/2000/svg}polyline") if p.get("class") == "series"]
print("series", len(lines), [len(p.get("points").split()) for p in lines])
)", dir.file("loss.svg"));
  EXPECT_NE(out.find("series 2 [3, 2]"), std::string::npos) << out;
}

// Learning curves in the store (/curves), averaged over seeds with a min-max band, and drawn
// by `results plot --curve`: values worked out by hand.
TEST(LearningCurves, StoredAveragedOverSeedsAndDrawnWithABand) {
  TempDir dir;
  std::vector<ResultRow> curves;
  auto point = [&](const std::string& method, const std::string& seed, double step, double fid) {
    ResultRow row;
    row.text = {{"grid", "t1"}, {"method", method}, {"seed", seed}, {"dataset", "food"}};
    row.numbers = {{"step", step}, {"fid", fid}, {"seconds", 1.5}};
    curves.push_back(row);
  };
  point("full", "0", 0, 100), point("full", "1", 0, 120), point("full", "0", 10, 40), point("full", "1", 10, 50);
  // One run of difffit: a line without a band.
  point("difffit", "0", 0, 100), point("difffit", "0", 10, std::numeric_limits<double>::quiet_NaN());
  const std::string path = dir.file("r.h5");
  write_results_h5(path, table_rows(), {{"sweep", "s"}}, curves);
  EXPECT_EQ(read_results_h5(path).size(), table_rows().size());  // /runs as before
  const std::vector<ResultRow> back = read_results_curves(path);
  ASSERT_EQ(back.size(), curves.size());
  EXPECT_EQ(back[3].text.at("seed"), "1");
  EXPECT_DOUBLE_EQ(back[3].numbers.at("fid"), 50);
  EXPECT_TRUE(std::isnan(back[5].numbers.at("fid")));

  const std::vector<LineSeries> series = curve_series(back, "method", "fid");
  ASSERT_EQ(series.size(), 2u);
  EXPECT_EQ(series[0].name, "full");
  EXPECT_EQ(series[0].x, (std::vector<double>{0, 10}));
  EXPECT_EQ(series[0].y, (std::vector<double>{110, 45}));
  EXPECT_EQ(series[0].low, (std::vector<double>{100, 40}));
  EXPECT_EQ(series[0].high, (std::vector<double>{120, 50}));
  EXPECT_EQ(series[1].x, (std::vector<double>{0}));  // a NaN point is no point

  // A results file without curves has none; the command says so by name.
  write_results_h5(dir.file("plain.h5"), table_rows());
  EXPECT_TRUE(read_results_curves(dir.file("plain.h5")).empty());
  auto none = run_difffit("results plot --curve " + dir.file("plain.h5") + " --output " + dir.file("n.svg"));
  EXPECT_EQ(none.exit_code, 3) << none.output;
  EXPECT_NE(none.output.find("plain.h5"), std::string::npos) << none.output;

  auto plot = run_difffit("results plot --curve " + path + " --where dataset=food --rows method --output " +
                          dir.file("curve.svg"));
  ASSERT_EQ(plot.exit_code, 0) << plot.output;
  const std::string out = python(dir, R"(
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
lines = [p for p in root.iter(ns + "polyline") if p.get("class") == "series"]
bands = [p for p in root.iter(ns + "polygon") if p.get("class") == "band"]
print("series", len(lines), [len(p.get("points").split()) for p in lines], "bands", len(bands),
      [len(p.get("points").split()) for p in bands])
)", dir.file("curve.svg"));
  EXPECT_NE(out.find("series 2 [2, 1] bands 1 [4]"), std::string::npos) << out;
}

// Whether a curve plateaued: final within 10% of the best point and of the point at two
// thirds of the run, on the mean over seeds; worked out by hand.
TEST(LearningCurves, PlateauVerdictsFollowTheMeanCurve) {
  std::vector<ResultRow> curves;
  auto point = [&](const std::string& method, const std::string& seed, double step, double fid) {
    ResultRow row;
    row.text = {{"grid", "table1"}, {"method", method}, {"seed", seed}, {"dataset", "food"}};
    row.numbers = {{"step", step}, {"fid", fid}};
    curves.push_back(row);
  };
  const double flat[] = {100, 40, 30, 31}, falling[] = {100, 80, 60, 40};
  for (int i = 0; i < 4; ++i) {
    point("full", "0", 10.0 * i, flat[i] - 1), point("full", "1", 10.0 * i, flat[i] + 1);
    point("difffit", "0", 10.0 * i, falling[i]);
  }
  const std::vector<CurveVerdict> v = curve_verdicts(curves);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].method, "full");
  EXPECT_DOUBLE_EQ(v[0].best, 30);
  EXPECT_DOUBLE_EQ(v[0].best_step, 20);
  EXPECT_DOUBLE_EQ(v[0].final, 31);
  EXPECT_DOUBLE_EQ(v[0].two_thirds, 30);
  EXPECT_TRUE(v[0].plateaued());
  EXPECT_DOUBLE_EQ(v[1].two_thirds, 60);
  EXPECT_FALSE(v[1].plateaued());  // the last third still took a third off
  const std::string page = findings_markdown({}, curves);
  EXPECT_NE(page.find("| food | difffit | 40.0 (30) | 40.0 (30) | 60.0 | **no** |"), std::string::npos) << page;
  EXPECT_NE(page.find("1 of 2 curves plateaued"), std::string::npos) << page;
}

// An output path that exists and is not a regular file (a pipe, a folder; /dev/null as root)
// is refused by name before anything is written: no temporary beside it, nothing replaced.
TEST(ResultsStore, AnOutputThatIsNotARegularFileIsRefusedAndLeftAlone) {
  TempDir dir;
  const std::string pipe = dir.file("pipe"), folder = dir.file("folder");
  ASSERT_EQ(::mkfifo(pipe.c_str(), 0600), 0);
  std::filesystem::create_directory(folder);
  for (const std::string& path : {pipe, folder}) {
    try {
      write_results_h5(path, table_rows());
      ADD_FAILURE() << path << " was written";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::IO);
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
    EXPECT_THROW(write_results_csv(path, table_rows()), Error);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp")) << path;
  }
  EXPECT_TRUE(std::filesystem::is_fifo(pipe));
  EXPECT_TRUE(std::filesystem::is_directory(folder));
  write_results_h5(dir.file("r.h5"), table_rows());
  auto cli = run_difffit("results export " + dir.file("r.h5") + " --csv " + pipe);
  EXPECT_EQ(cli.exit_code, 3) << cli.output;
  EXPECT_NE(cli.output.find(pipe), std::string::npos) << cli.output;
  EXPECT_TRUE(std::filesystem::is_fifo(pipe));
}

class ResultsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("sweep results.h5");  // a space: paths are quoted below
    write_results_h5(path_, table_rows(), {{"sweep", "paper"}});
  }
  std::string quoted(const std::string& p) const { return "'" + p + "'"; }
  TempDir dir_;
  std::string path_;
};

TEST_F(ResultsCli, TableInEveryFormatAndToAFile) {
  auto md = run_difffit("results table " + quoted(path_) + " --grid t1 --extra trainable_params,trainable_pct");
  ASSERT_EQ(md.exit_code, 0) << md.output;
  EXPECT_NE(md.output.find("| difffit | 11.00 ± 1.41 | **20.00** | **15.50** | 0.002 | 0.2 |"), std::string::npos)
      << md.output;
  auto tex = run_difffit("results table " + quoted(path_) + " --grid t1 --format latex --decimals 1");
  ASSERT_EQ(tex.exit_code, 0) << tex.output;
  EXPECT_NE(tex.output.find("full & \\textbf{9.0} & 25.0 & 17.0 \\\\"), std::string::npos) << tex.output;
  const std::string out = dir_.file("t.csv");
  auto csv = run_difffit("results table " + quoted(path_) + " --grid t1 --where method=full --format csv -o " + out);
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  EXPECT_EQ(read_text(out), "method,food,cars,mean\nfull,9,25,17\n");
}

TEST_F(ResultsCli, ExportShowAndPlot) {
  const std::string csv = dir_.file("all.csv");
  auto exported = run_difffit("results export " + quoted(path_) + " --csv " + csv);
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  // Read back by Python's csv module: every row of the store, its text and number columns.
  const std::string check = python(dir_, R"(
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rows) == 8, len(rows)
assert {"grid", "method", "dataset", "metric", "name", "fid", "trainable_params", "total_params"} <= set(rows[0]), rows[0]
fid = {(r["grid"], r["name"]): [] for r in rows}
for r in rows:
    fid[(r["grid"], r["name"])].append(float(r["fid"]) if r["fid"] not in ("", "nan") else math.nan)
assert sorted(fid[("t1", "difffit-food")]) == [10.0, 12.0], fid
assert fid[("t2", "difffit-food")] == [1.0] and math.isnan(fid[("t1", "bitfit-cars")][0]), fid
assert {float(r["total_params"]) for r in rows} == {1e6}
print("csv-ok")
)", "'" + csv + "'");
  EXPECT_NE(check.find("csv-ok"), std::string::npos) << check;

  auto show = run_difffit("results show " + quoted(path_) + " --grid t2");
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_NE(show.output.find("1 of 8 rows"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("sweep = paper"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("difffit-food"), std::string::npos) << show.output;

  auto bars = run_difffit("results plot " + quoted(path_) + " --grid t1 --output " + dir_.file("c.svg"));
  ASSERT_EQ(bars.exit_code, 0) << bars.output;
  EXPECT_NE(read_text(dir_.file("c.svg")).find("class=\"bar\""), std::string::npos);

  write_loss_csv(dir_.path() / "r1", "1,2,1,1\n2,1,0.5,0.5\n");
  write_loss_csv(dir_.path() / "r2", "1,3,2,1\n2,2,1,1\n");
  auto loss = run_difffit("results plot --loss " + dir_.file("r1") + " " + dir_.file("r2") + " --smooth 2 --output " +
                          dir_.file("loss.svg"));
  ASSERT_EQ(loss.exit_code, 0) << loss.output;
  EXPECT_NE(read_text(dir_.file("loss.svg")).find(">r2<"), std::string::npos);
}

// An output may not replace the command's own input, nor a sweep's journal or store.
TEST_F(ResultsCli, AnOutputOverAnInputOrASweepsStateIsRefused) {
  const std::string before = read_text(path_);
  auto table = run_difffit("results table " + quoted(path_) + " --output " + quoted(path_));
  EXPECT_EQ(table.exit_code, 2) << table.output;
  EXPECT_NE(table.output.find("is also an input"), std::string::npos) << table.output;
  EXPECT_EQ(read_text(path_), before);
  const std::string journal = dir_.file("journal.jsonl");
  std::ofstream(journal) << "{}\n";
  for (const std::string& command : {"export " + quoted(path_) + " --csv " + journal,
                                     "findings " + quoted(path_) + " -o " + dir_.file("summary.json")}) {
    auto r = run_difffit("results " + command);
    EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.output;
    EXPECT_NE(r.output.find("a sweep's own state file"), std::string::npos) << r.output;
  }
  EXPECT_EQ(read_text(journal), "{}\n");
  EXPECT_FALSE(std::filesystem::exists(dir_.file("summary.json")));
  // The paper's table and a run's loss log are inputs too.
  const std::string paper = write_paper_csv(dir_);
  auto over_paper = run_difffit("results table " + quoted(path_) + " --grid t1 --paper --paper-file " + paper + " -o " + paper);
  EXPECT_EQ(over_paper.exit_code, 2) << over_paper.output;
  write_loss_csv(dir_.path() / "r1", "1,2,1,1\n");
  const std::string loss = dir_.file("r1/loss.csv"), loss_before = read_text(loss);
  auto over_loss = run_difffit("results plot --loss " + dir_.file("r1") + " --output " + loss);
  EXPECT_EQ(over_loss.exit_code, 2) << over_loss.output;
  EXPECT_EQ(read_text(loss), loss_before);
  auto beside = run_difffit("results findings " + quoted(path_) + " -o " + dir_.file("findings.md"));
  EXPECT_EQ(beside.exit_code, 0) << beside.output;  // other files beside the journal are fine

  // An input named like the output's temporary (OUTPUT.tmp), or like the chart that findings
  // writes beside its page, would be replaced too.
  const std::string tmp_input = dir_.file("in.tmp"), chart_input = dir_.file("scale-gap.svg");
  std::filesystem::copy_file(path_, tmp_input);
  std::filesystem::copy_file(path_, chart_input);
  auto over_tmp = run_difffit("results export " + tmp_input + " --csv " + dir_.file("in"));
  EXPECT_EQ(over_tmp.exit_code, 2) << over_tmp.output;
  EXPECT_NE(over_tmp.output.find("its temporary"), std::string::npos) << over_tmp.output;
  auto over_chart = run_difffit("results findings " + chart_input + " -o " + dir_.file("page.md"));
  EXPECT_EQ(over_chart.exit_code, 2) << over_chart.output;
  EXPECT_EQ(read_text(tmp_input), before);
  EXPECT_EQ(read_text(chart_input), before);
}

TEST_F(ResultsCli, ASelectionOfNothingIsAnErrorAndTheLineGoesToTheOutputFile) {
  for (const std::string& command : {"export " + quoted(path_) + " --grid t9 --csv " + dir_.file("none.csv"),
                                     "findings " + quoted(path_) + " --grid t9"}) {
    auto r = run_difffit("results " + command);
    EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.output;
    EXPECT_NE(r.output.find("grids in the file: t1, t2"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.file("none.csv")));
  auto line = run_difffit("results findings " + quoted(path_) + " --line -o " + dir_.file("line.txt"));
  EXPECT_EQ(line.exit_code, 0) << line.output;
  EXPECT_TRUE(std::filesystem::exists(dir_.file("line.txt"))) << line.output;
}

TEST_F(ResultsCli, MissingFilesAndUnknownColumnsGiveClearErrorsAndExitCodes) {
  auto missing = run_difffit("results table " + dir_.file("nope.h5"));
  EXPECT_EQ(missing.exit_code, 3) << missing.output;
  EXPECT_NE(missing.output.find("nope.h5"), std::string::npos) << missing.output;

  auto column = run_difffit("results table " + quoted(path_) + " --value fidd");
  EXPECT_EQ(column.exit_code, 2) << column.output;
  EXPECT_NE(column.output.find("'fidd'"), std::string::npos) << column.output;

  auto where = run_difffit("results show " + quoted(path_) + " --where colour");
  EXPECT_EQ(where.exit_code, 2) << where.output;
  auto usage = run_difffit("results frobnicate");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  auto no_output = run_difffit("results plot " + quoted(path_));
  EXPECT_EQ(no_output.exit_code, 2) << no_output.output;
  auto help = run_difffit("results table --help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("--higher-is-better"), std::string::npos) << help.output;
}

}  // namespace
}  // namespace difffit
