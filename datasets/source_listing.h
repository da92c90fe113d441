// Finding the images and labels of a dataset in its native layout. A listing is
// only names and labels; decoding happens in prepare. Every kind documents the
// layout it expects under its root folder in docs (README "Datasets").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace difffit {

struct SourceFile {
  std::string path;   // to open
  std::string name;   // relative to the dataset root; stored in `source_files`
  int64_t label = 0;  // index into class_names
};

struct SkippedFile {
  std::string name;
  std::string reason;
};

struct SourceListing {
  std::vector<std::string> class_names;
  std::vector<SourceFile> files;     // in a deterministic order (sorted or annotation order)
  std::vector<SkippedFile> missing;  // named by the annotations but not on disk
};

// kind: imagefolder | food-101 | sun397 | caltech-101 | cub-200-2011 | artbench-10 |
// flowers-102 | stanford-cars | df20-mini. Splits depend on the kind (see the README);
// a split the kind does not know is a usage error.
SourceListing list_dataset_files(const std::string& kind, const std::string& root, const std::string& split);

// Every --source kind prepare accepts, fashion-mnist included.
const std::vector<std::string>& dataset_kinds();

}  // namespace difffit
