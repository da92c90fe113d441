// Streams images into a prepared dataset file (the layout the loader and the
// evaluation read; see the README, "Datasets"):
//   images        uint8 (N, H, W, C), chunked + deflate
//   labels        int64 (N)
//   class_names   strings (num_classes)
//   source_files  strings (N), relative to the dataset root
//   root attributes: format_version, source, split, resolution, channels, num_classes,
//   num_images, num_skipped, crop, content_hash, description
// Everything goes to PATH.tmp, renamed to PATH by finish(); the list of skipped files
// with reasons goes to PATH.report.txt.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/image_io.h"

namespace difffit {

struct PreparedMeta {
  std::string source;                    // dataset kind, e.g. "food-101" or "mini:inverted"
  std::string input;                     // where the data came from (report only)
  std::string split;                     // e.g. "train", "test", "ref"
  std::string crop = "adm-center";       // how images were fitted: adm-center | pad-center
  std::string description;               // free text (mini benchmark tasks describe their shift)
  int64_t resolution = 256;              // H = W
  int64_t channels = 3;                  // C
  std::vector<std::string> class_names;  // label i is class_names[i]
};

struct PrepareSummary {
  std::string path;          // the committed file
  std::string report_path;   // PATH.report.txt
  int64_t images = 0;        // written
  int64_t skipped = 0;       // listed in the report
  std::string content_hash;  // SHA-256 (hex) over images bytes then labels bytes (int64 little-endian)
};

class PreparedWriter {
 public:
  PreparedWriter(const std::string& path, const PreparedMeta& meta);
  ~PreparedWriter();  // without finish(): removes the temporary file
  PreparedWriter(const PreparedWriter&) = delete;
  PreparedWriter& operator=(const PreparedWriter&) = delete;

  // image must be resolution x resolution x channels already.
  void add(const RawImage& image, int64_t label, const std::string& source_file);
  void skip(const std::string& source_file, const std::string& reason);
  int64_t images() const { return static_cast<int64_t>(labels_.size()); }
  // Writes the small datasets, attributes and report, then renames into place.
  // Throws a Data error (and leaves nothing behind) when no image was added.
  PrepareSummary finish();

 private:
  void flush();

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  PreparedMeta meta_;
  std::vector<int64_t> labels_;
  std::vector<std::string> source_files_;
  std::vector<std::pair<std::string, std::string>> skipped_;
  std::vector<uint8_t> pending_;  // images not yet appended (one chunk's worth)
  int64_t pending_rows_ = 0;
  int64_t chunk_rows_ = 1;
  bool finished_ = false;
};

// Chunk rows for images: about 256 KiB per chunk, at least one image. Small images
// share chunks (good compression); large ones get one chunk each (cheap random reads).
int64_t image_chunk_rows(int64_t resolution, int64_t channels);

}  // namespace difffit
