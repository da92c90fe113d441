// The inputs of a sweep's HTML report, read from its state folder (OUTPUT_DIR/SWEEP):
// results.h5, the journal (run states, attempts, failure reasons) and each done run's
// samples.png.
#pragma once

#include <string>

#include "results/html_report.h"

namespace difffit {

ReportInput load_sweep_report(const std::string& sweep_dir, const std::string& page_path);

}  // namespace difffit
