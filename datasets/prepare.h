// `difffit prepare --source KIND`: one dataset split from its native layout into a
// prepared HDF5 file (see prepared_writer.h for the layout).
#pragma once

#include <cstdint>
#include <string>

#include "datasets/pil_resample.h"
#include "datasets/prepared_writer.h"

namespace difffit {

struct PrepareOptions {
  std::string source;                 // kind: fashion-mnist | imagefolder | food-101 | ... (dataset_kinds())
  std::string input;                  // dataset root (fashion-mnist: the IDX folder)
  std::string output;                 // the .h5 file to write
  std::string split = "train";        // which split; kinds without splits only record it
  int64_t resolution = 256;           // output side in pixels
  int64_t channels = 0;               // 1 or 3; 0 = natural (1 for fashion-mnist, 3 = RGB otherwise)
  FitMode fit = FitMode::AdmCenter;   // how images are fitted to resolution x resolution
  int64_t limit = 0;                  // keep the first N listed images (0 = all)
  int threads = 1;                    // decode/resize threads (output order is fixed regardless)
};

PrepareSummary prepare_dataset(const PrepareOptions& options);

}  // namespace difffit
