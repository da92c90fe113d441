#include "worker/run/learning_curve.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/csv.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/logging.h"
#include "common/number_format.h"
#include "common/run_folder.h"
#include "eval/feature_network.h"
#include "worker/model/dit.h"
#include "worker/run/run_sampling.h"
#include "worker/run/run_scoring.h"

namespace difffit {
namespace {

// The metrics a point keeps, in column order: the scalars of metrics.json's scores.
const char* const kCurveMetrics[] = {"fid", "class_accuracy", "kid", "sfid", "inception_score", "precision", "recall"};

struct CurveFile {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // whole, well-formed rows only
};

// A row torn by a kill or edited by hand (too few fields, a step that is not a number an
// int64 holds) is dropped.
CurveFile read_curve_file(const std::string& path) {
  CurveFile file;
  if (!check_input_file_if_present(path, "a learning-curve file")) return file;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> fields = split_on_commas(line);
    if (file.header.empty()) {
      if (fields.empty() || fields[0] != "step") return {};
      file.header = std::move(fields);
      continue;
    }
    int64_t step = 0;
    if (fields.size() != file.header.size() || !parse_whole(fields[0], step) || step < 0) continue;
    file.rows.push_back(std::move(fields));
  }
  return file;
}

std::string curve_text(const CurveFile& file) {
  const auto line = [](const std::vector<std::string>& fields) {
    std::string out;
    for (size_t i = 0; i < fields.size(); ++i) out += (i ? "," : "") + fields[i];
    return out + "\n";
  };
  std::string out = line(file.header);
  for (const auto& row : file.rows) out += line(row);
  return out;
}

}  // namespace

LearningCurve::LearningCurve(const ExperimentConfig& config, std::string run_dir, const DataParallel& dp)
    : config_(config),
      path_(RunFolder{run_dir}.curve()),
      dp_(dp),
      every_(config.eval.every),
      num_(config.eval.curve_samples > 0 ? config.eval.curve_samples : config.sample.num) {}

LearningCurve::~LearningCurve() = default;

bool LearningCurve::due(int64_t step) const {
  return enabled() && (step == 0 || step % every_ == 0 || step == config_.train.steps);
}

bool LearningCurve::start(int64_t step, bool resumed) {
  if (!enabled()) return true;
  CurveFile file;
  if (resumed) {
    file = read_curve_file(path_);
    std::vector<std::vector<std::string>> kept;
    for (auto& row : file.rows)
      if (std::stoll(row[0]) <= step) kept.push_back(std::move(row));
    file.rows = std::move(kept);
    header_ = file.header;
  }
  const bool has_point = !file.rows.empty() && std::stoll(file.rows.back()[0]) == step;
  if (dp_.rank == 0) {
    if (file.header.empty()) {
      std::error_code gone;
      std::filesystem::remove(path_, gone);
    } else {
      write_file_atomically(path_, curve_text(file));
    }
  }
  return has_point;
}

void LearningCurve::record(DiTImpl& model, int64_t step) {
  const auto begin = std::chrono::steady_clock::now();
  Communicator* ranks = dp_.active() ? dp_.comm : nullptr;
  const SamplesFile samples = draw_run_samples(model, config_, num_, ranks);
  if (!samples.images.defined()) {
    log()->warn("[curve] step {}: latent samples without a VAE cannot be scored; no learning curve", step);
    every_ = 0;
    return;
  }
  if (!net_) {
    net_ = run_feature_network(config_, samples.images.size(3), ranks);
    if (!net_) {
      log()->warn("[curve] the run scores nothing (eval.feature_net none, or no data.reference): no learning curve");
      every_ = 0;
      return;
    }
  }
  const std::optional<Evaluation> score =
      score_run_images(config_, samples, "curve point at step " + std::to_string(step), *net_, ranks,
                       !said_small_set_);
  said_small_set_ = true;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  seconds_ += seconds;
  if (!score) return;  // the other ranks

  nlohmann::ordered_json scores;
  add_evaluation_json(*score, scores);
  if (header_.empty()) {
    header_ = {"step"};
    for (const char* key : kCurveMetrics)
      if (scores.contains(key) && scores[key].is_number()) header_.push_back(key);
    header_.push_back("seconds");
  }
  CurveFile file = read_curve_file(path_);
  if (file.header.empty()) file.header = header_;
  std::vector<std::string> row;
  for (const std::string& column : file.header) {
    if (column == "step") row.push_back(std::to_string(step));
    else if (column == "seconds") row.push_back(shortest_double(seconds));
    else if (scores.contains(column) && scores[column].is_number()) row.push_back(shortest_double(scores[column].get<double>()));
    else row.emplace_back();
  }
  file.rows.push_back(std::move(row));
  write_file_atomically(path_, curve_text(file));
  std::string line;
  for (size_t i = 1; i + 1 < file.header.size(); ++i) line += " " + file.header[i] + " " + file.rows.back()[i];
  log()->info("[curve] step {}:{} ({} samples, {:.1f} s)", step, line, num_, seconds);
}

nlohmann::ordered_json LearningCurve::read_columns(const std::string& run_dir) {
  const CurveFile file = read_curve_file(RunFolder{run_dir}.curve());
  if (file.header.empty() || file.rows.empty()) return nullptr;
  nlohmann::ordered_json columns = nlohmann::ordered_json::object();
  for (size_t i = 0; i < file.header.size(); ++i) {
    nlohmann::ordered_json values = nlohmann::ordered_json::array();
    for (const auto& row : file.rows) {
      char* end = nullptr;
      const double value = row[i].empty() ? NAN : std::strtod(row[i].c_str(), &end);
      if (row[i].empty() || *end != '\0' || !std::isfinite(value)) values.push_back(nullptr);
      else values.push_back(value);
    }
    columns[file.header[i]] = std::move(values);
  }
  return columns;
}

}  // namespace difffit
