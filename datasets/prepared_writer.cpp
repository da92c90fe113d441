#include "datasets/prepared_writer.h"

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdio>
#include <fstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/sha256.h"

namespace difffit {

struct PreparedWriter::Impl {
  explicit Impl(const std::string& path) : file(path) {}
  Hdf5Writer file;
  Sha256 hash;
};

int64_t image_chunk_rows(int64_t resolution, int64_t channels) {
  const int64_t row_bytes = resolution * resolution * channels;
  return std::max<int64_t>(1, (256 * 1024) / std::max<int64_t>(1, row_bytes));
}

PreparedWriter::PreparedWriter(const std::string& path, const PreparedMeta& meta)
    : impl_(std::make_unique<Impl>(path)), path_(path), meta_(meta) {
  if (meta.resolution <= 0 || (meta.channels != 1 && meta.channels != 3)) {
    throw_usage("prepare: resolution must be positive and channels 1 or 3");
  }
  if (meta.class_names.empty()) throw_data(path + ": a dataset needs at least one class");
  chunk_rows_ = image_chunk_rows(meta.resolution, meta.channels);
  impl_->file.create_appendable("images", c10::ScalarType::Byte, {meta.resolution, meta.resolution, meta.channels},
                                chunk_rows_, 1);  // level 1: most of the gain, a fraction of the time
  impl_->file.create_appendable("labels", c10::ScalarType::Long, {}, 4096, 4);
}

// Hdf5Writer removes PATH.tmp unless committed; the report's temporary goes too.
PreparedWriter::~PreparedWriter() {
  if (!finished_) std::remove((path_ + ".report.txt.tmp").c_str());
}

void PreparedWriter::add(const RawImage& image, int64_t label, const std::string& source_file) {
  if (image.width != meta_.resolution || image.height != meta_.resolution || image.channels != meta_.channels) {
    throw_data(path_ + ": image " + source_file + " is not " + std::to_string(meta_.resolution) + "x" +
               std::to_string(meta_.resolution) + "x" + std::to_string(meta_.channels));
  }
  if (label < 0 || label >= static_cast<int64_t>(meta_.class_names.size())) {
    throw_data(path_ + ": label " + std::to_string(label) + " of " + source_file + " outside the class list");
  }
  impl_->hash.update(image.pixels.data(), image.pixels.size());
  pending_.insert(pending_.end(), image.pixels.begin(), image.pixels.end());
  labels_.push_back(label);
  source_files_.push_back(source_file);
  if (++pending_rows_ == chunk_rows_) flush();
}

void PreparedWriter::flush() {
  if (pending_rows_ == 0) return;
  impl_->file.append("images", pending_.data(), pending_rows_);
  pending_.clear();
  pending_rows_ = 0;
}

void PreparedWriter::skip(const std::string& source_file, const std::string& reason) {
  skipped_.emplace_back(source_file, reason);
}

PrepareSummary PreparedWriter::finish() {
  if (finished_) throw_io(path_ + ": finish() called twice");
  if (labels_.empty()) {
    throw_data(path_ + ": no usable images (" + std::to_string(skipped_.size()) + " skipped" +
               (skipped_.empty() ? "" : ", first: " + skipped_[0].first + ": " + skipped_[0].second) + ")");
  }
  flush();
  impl_->file.append("labels", labels_.data(), static_cast<int64_t>(labels_.size()));
  // Labels hash as little-endian int64 (the native order on every supported machine).
  impl_->hash.update(labels_.data(), labels_.size() * sizeof(int64_t));
  PrepareSummary summary;
  summary.path = path_;
  summary.report_path = path_ + ".report.txt";
  summary.images = static_cast<int64_t>(labels_.size());
  summary.skipped = static_cast<int64_t>(skipped_.size());
  summary.content_hash = impl_->hash.hex_digest();

  Hdf5Writer& f = impl_->file;
  f.write_strings("class_names", meta_.class_names);
  f.write_strings("source_files", source_files_);
  f.write_int_attribute("format_version", 1);
  f.write_string_attribute("source", meta_.source);
  f.write_string_attribute("split", meta_.split);
  f.write_string_attribute("crop", meta_.crop);
  f.write_string_attribute("description", meta_.description);
  f.write_int_attribute("resolution", meta_.resolution);
  f.write_int_attribute("channels", meta_.channels);
  f.write_int_attribute("num_classes", static_cast<int64_t>(meta_.class_names.size()));
  f.write_int_attribute("num_images", summary.images);
  f.write_int_attribute("num_skipped", summary.skipped);
  f.write_string_attribute("content_hash", summary.content_hash);

  // The report goes next to the data; written first under a temporary name so that
  // both appear only when the dataset is complete.
  const std::string report_tmp = temporary_path_for(summary.report_path);
  {
    std::ofstream report(report_tmp, std::ios::trunc);
    report << "# difffit prepare report\n"
           << "output: " << path_ << "\nsource: " << meta_.source << "\ninput: " << meta_.input
           << "\nsplit: " << meta_.split << "\nresolution: " << meta_.resolution << "\nchannels: " << meta_.channels
           << "\ncrop: " << meta_.crop << "\nimages: " << summary.images << "\nclasses: "
           << meta_.class_names.size() << "\nskipped: " << summary.skipped
           << "\ncontent_hash: " << summary.content_hash << "\n";
    if (!skipped_.empty()) report << "\n# skipped files: name<TAB>reason\n";
    for (const auto& [name, reason] : skipped_) report << name << "\t" << reason << "\n";
    if (!report) throw_io(report_tmp + ": cannot write the report");
  }
  f.commit();
  commit_file(report_tmp, summary.report_path);
  finished_ = true;
  return summary;
}

}  // namespace difffit
