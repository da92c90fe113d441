#include "orchestrator/sweep_report.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "common/error.h"
#include "common/input_file.h"
#include "common/run_folder.h"
#include "orchestrator/journal.h"
#include "results/result_columns.h"
#include "results/results_store.h"

namespace difffit {

ReportInput load_sweep_report(const std::string& sweep_dir, const std::string& page_path) {
  namespace fs = std::filesystem;
  const fs::path dir(sweep_dir);
  const SweepFolder folder{sweep_dir};
  const fs::path journal = folder.journal();
  if (!fs::exists(journal)) throw_data(sweep_dir + ": no journal.jsonl: not a sweep's state folder (OUTPUT_DIR/SWEEP)");
  ReportInput input;
  input.title = "Sweep " + dir.filename().string();
  input.page_dir = fs::path(page_path).parent_path().string();
  if (input.page_dir.empty()) input.page_dir = ".";
  if (fs::exists(folder.results())) {
    input.rows = read_results_h5(folder.results(), &input.attributes);
    input.curves = read_results_curves(folder.results());
  }

  // Each run's latest state, in order of first appearance.
  std::map<std::string, size_t> index;
  for (const JournalEvent& e : Journal::read(journal.string())) {
    if (e.run_id.empty()) continue;
    auto [it, fresh] = index.emplace(e.run_id, input.runs.size());
    if (fresh) {
      input.runs.emplace_back();
      input.runs.back().run_id = e.run_id;
    }
    ReportRun& run = input.runs[it->second];
    if (e.type == JournalEventType::Started) {
      ++run.attempts;
      run.state = "running";
    } else if (e.type == JournalEventType::Done || e.type == JournalEventType::Failed ||
               e.type == JournalEventType::Stopped || e.type == JournalEventType::Abandoned) {  // an attempt ended
      run.state = journal_event_name(e.type);
      run.seconds = e.seconds;
      if (!e.error.empty()) run.error = e.error;
      if (!e.run_dir.empty()) run.run_dir = e.run_dir;
      if (e.type == JournalEventType::Done) run.error.clear();
      if (!e.metrics_json.empty()) {
        const auto metrics = nlohmann::json::parse(e.metrics_json, nullptr, /*allow_exceptions=*/false);
        if (metrics.is_object() && metrics.contains("name") && metrics["name"].is_string()) run.name = metrics["name"];
      }
    } else if (e.type == JournalEventType::Reset) {
      run.state = "pending";
    }
  }
  // One sample grid per cell: of runs that differ only in their seed, the first that has
  // samples (all of them would make a study's page tens of MB).
  std::set<std::string> shown_cells, shown_runs;
  for (const ResultRow& row : input.rows) {
    const std::string run_dir = text_value(row, "run_dir");
    const fs::path png = RunFolder{run_dir}.grid();
    if (run_dir.empty() || !fs::exists(png)) continue;
    std::string cell;  // every text column but the seed and the run's own names
    for (const auto& [column, value] : row.text)
      if (column != "seed" && column != "name" && column != "run_id" && column != "run_dir") cell += column + "=" + value + ";";
    if (!text_value(row, "seed").empty() && !shown_cells.insert(cell).second) continue;
    std::string caption = text_value(row, "name");
    if (caption.empty() || !shown_runs.insert(caption).second) continue;  // a run listed in two grids is shown once
    // The samples' side: the resolution transfer puts 32 px and 64 px grids side by side.
    if (const double side = number_value(row, "image_size"); !std::isnan(side))
      caption += " (" + std::to_string(static_cast<int64_t>(side)) + " px)";
    input.sample_grids.push_back({caption, read_input_file(png.string(), "a sample grid", kImageFileLimit)});
  }
  return input;
}

}  // namespace difffit
