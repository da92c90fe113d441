// The sweep's HTML report, opened in a real headless browser (Debian's chromium): every
// table, chart and sample grid renders, nothing fails to load, failures show their reason.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "common/image_io.h"
#include "orchestrator/journal.h"
#include "results/html_report.h"
#include "results/results_store.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::TempDir;

ResultRow row(const std::string& method, double fid, const std::string& run_dir) {
  ResultRow r;
  r.text = {{"grid", "table1"}, {"method", method}, {"dataset", "new-classes"}, {"name", "study." + method},
            {"run_id", method + "-id"}, {"run_dir", run_dir}, {"metric", "FID (mini-CNN)"}};
  r.numbers = {{"fid", fid}, {"class_accuracy", 0.8}, {"trainable_params", method == "full" ? 1000.0 : 10.0},
               {"steps_per_second", method == "full" ? 2.0 : 4.0}, {"delta_bytes", 100.0}};
  return r;
}

JournalEvent event(const std::string& kind, const std::string& run_id, double seconds = 0) {
  JournalEvent e;
  e.type = parse_journal_event_type(kind);
  e.run_id = run_id;
  e.attempt = 1;
  e.rank = 1;
  e.seconds = seconds;
  return e;
}

// Without a dataset axis a grid's table pivots on its own axes, never pooling them: the
// transfer's methods by pos_embed, its baselines by start; seeds are what is averaged.
TEST(HtmlReport, AGridWithoutADatasetAxisIsTabledByItsOwnAxes) {
  ReportInput input;
  input.title = "Sweep t";
  for (const char* seed : {"0", "1"}) {
    for (const char* method : {"full", "difffit"}) {
      for (const char* pos : {"unaligned", "aligned"}) {
        ResultRow r = row(method, std::string(pos) == "aligned" ? 10.0 : 30.0, "");
        r.text.erase("dataset");
        r.text["grid"] = "transfer";
        r.text["pos_embed"] = pos;
        r.text["seed"] = seed;
        input.rows.push_back(r);
      }
    }
    for (const char* start : {"scratch-64px", "source-32px"}) {
      ResultRow r = row("full", std::string(start) == "scratch-64px" ? 90.0 : 5.0, "");
      r.text.erase("dataset");
      r.text.erase("method");  // not an axis of this grid
      r.text["grid"] = "transfer-baselines";
      r.text["start"] = start;
      r.text["seed"] = seed;
      input.rows.push_back(r);
    }
  }
  const std::string page = html_report(input);
  EXPECT_NE(page.find("by method and pos_embed (grid transfer)"), std::string::npos) << page;
  EXPECT_NE(page.find("<th align=\"right\">aligned</th>"), std::string::npos) << page;
  EXPECT_NE(page.find("by start and grid (grid transfer-baselines)"), std::string::npos) << page;
  EXPECT_NE(page.find("<td align=\"left\">source-32px</td>"), std::string::npos) << page;
}

TEST(HtmlReport, RendersEveryPartInAHeadlessBrowser) {
  const std::string browser = "/usr/bin/chromium";
  TempDir dir;
  const std::filesystem::path sweep = dir.path() / "study";
  std::filesystem::create_directories(sweep);
  std::vector<ResultRow> rows;
  for (const std::string method : {"full", "difffit"}) {
    const std::filesystem::path run = dir.path() / ("study." + method);
    std::filesystem::create_directories(run);
    write_png((run / "samples.png").string(), at::full({20, 30, 1}, method == "full" ? 200 : 90, at::kByte));
    rows.push_back(row(method, method == "full" ? 20.0 : 15.0, run.string()));
  }
  // A second seed of DiffFit: in the tables, but its samples are not shown again.
  for (ResultRow& r : rows) r.text["seed"] = "0";
  {
    const std::filesystem::path run = dir.path() / "study.difffit.1";
    std::filesystem::create_directories(run);
    write_png((run / "samples.png").string(), at::full({20, 30, 1}, 50, at::kByte));
    rows.push_back(row("difffit", 17.0, run.string()));
    rows.back().text["seed"] = "1";
    rows.back().text["run_id"] = "difffit-seed1-id";
    rows.back().text["name"] = "study.difffit.1";
  }
  write_results_h5((sweep / "results.h5").string(), rows);
  {
    Journal journal((sweep / "journal.jsonl").string());
    for (const ResultRow& r : rows) {
      if (r.text.at("seed") != "0") continue;
      journal.append(event("started", r.text.at("run_id")));
      JournalEvent done = event("done", r.text.at("run_id"), 12.0);
      done.run_dir = r.text.at("run_dir");
      done.metrics_json = "{\"name\": \"" + r.text.at("name") + "\"}";
      journal.append(done);
    }
    journal.append(event("started", "bitfit-id"));
    JournalEvent failed = event("failed", "bitfit-id", 3.0);
    failed.error = "loss diverged at step 7 <nan>";
    journal.append(failed);
  }
  const std::string page = dir.file("report.html");
  auto r = testing::run_difffit("results report " + sweep.string() + " -o " + page);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string html = testing::read_text_file(page);
  // Self-contained: no resource outside the page.
  EXPECT_EQ(std::regex_search(html, std::regex("(src|href)=\"(?!data:|#)[a-z]+://")), false);
  EXPECT_NE(html.find("loss diverged at step 7 &lt;nan&gt;"), std::string::npos);

  if (!std::filesystem::exists(browser)) GTEST_SKIP() << "no " << browser << " (Debian's chromium)";
  // The browser reports what it rendered through the page title: images decoded, tables, charts.
  std::ofstream(page, std::ios::app)
      << "<script>window.onload = () => { const img = [...document.images];"
         " document.title = 'images=' + img.length + ' decoded=' + img.filter(i => i.complete && i.naturalWidth > 0).length"
         " + ' tables=' + document.querySelectorAll('table').length + ' cells=' + document.querySelectorAll('td').length"
         " + ' bars=' + document.querySelectorAll('svg .bar').length + ' failed=' + document.querySelectorAll('tr.failed').length; };"
         "</script>";
  auto dom = testing::run_command(browser + " --headless --no-sandbox --disable-gpu --virtual-time-budget=5000 --dump-dom file://" +
                                  page + " 2>/dev/null");
  ASSERT_EQ(dom.exit_code, 0) << dom.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom.output, m, std::regex("<title>(images=[^<]*)</title>"))) << dom.output.substr(0, 2000);
  // 2 grids (one per cell); tables: Table 1, the findings' methods table, the run status; 2 bars; 1 failed run.
  EXPECT_EQ(m[1].str(), "images=2 decoded=2 tables=3 cells=" +
                            std::to_string(2 * 5 + 2 * 7 + 3 * 6) + " bars=2 failed=1");
}

}  // namespace
}  // namespace difffit
