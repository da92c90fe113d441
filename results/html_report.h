// One self-contained HTML page of a sweep: its tables, bar charts, learning curves, sample grids side by
// side, the findings, and every run's status (failures with their reasons) with a link to
// its folder. Images are embedded (data: URIs) and the charts inline, so the file can be
// mailed or opened anywhere without its run folders.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "results/result_row.h"

namespace difffit {

struct ReportRun {
  std::string run_id, name, state;  // state: done | failed | running | abandoned | stopped
  std::string run_dir;              // as recorded (a link is made relative to the page)
  std::string error;                // the last failure's reason
  int attempts = 0;
  double seconds = 0;               // wall time of the last attempt
};

struct ReportGrid {
  std::string caption;    // e.g. "difffit on new-classes"
  std::string png_bytes;  // the run's samples.png
};

struct ReportInput {
  std::string title;                   // e.g. "Sweep demo"
  std::vector<ResultRow> rows;         // the results file's rows
  std::vector<ResultRow> curves;       // ... and its learning-curve points
  std::map<std::string, std::string> attributes;  // ... and its root attributes (how far the sweep came)
  std::vector<ReportRun> runs;         // from the journal, in order of first appearance
  std::vector<ReportGrid> sample_grids;
  std::string page_dir;                // where the page is written (run links are relative to it)
};

std::string html_report(const ReportInput& input);

// Markdown (GitHub flavour, tables included) to an HTML fragment, with cmark-gfm.
std::string markdown_to_html(const std::string& markdown);

}  // namespace difffit
