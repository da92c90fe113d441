#include "worker/run/experiment_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/json_text.h"
#include "common/names.h"
#include "common/number_format.h"
#include "common/platform.h"
#include "common/run_folder.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/yaml_fields.h"
#include "eval/sample_grid.h"
#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/sample/sample_generator.h"

namespace difffit {
namespace {

// Sets "a.b.c" in `root` to `value`, creating mappings on the way: a flow list
// ("[fid, kid]") is a list as in the file, anything else a scalar.
void apply_override(YAML::Node root, const std::string& text, const std::string& source) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw_usage("--set '" + text + "': expected key=value");
  std::string path = text.substr(0, eq), value = text.substr(eq + 1);
  std::vector<std::string> keys;
  std::stringstream stream(path);
  std::string key;
  while (std::getline(stream, key, '.')) keys.push_back(key);
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node next = node[keys[i]];
    if (!next.IsDefined() || next.IsNull()) {
      node[keys[i]] = YAML::Node(YAML::NodeType::Map);
      next = node[keys[i]];
    }
    if (!next.IsMap()) throw_usage("--set '" + text + "': " + source + ": '" + keys[i] + "' is not a section");
    node.reset(next);
  }
  if (!value.empty() && value.front() == '[') {
    try {
      node[keys.back()] = YAML::Load(value);
    } catch (const YAML::Exception& e) {
      throw_usage("--set '" + text + "': not a YAML list (" + e.msg + ")");
    }
    return;
  }
  node[keys.back()] = value;
}

void parse_data(const YamlSection& s, DataConfig& d) {
  s.require_known_keys({"train", "reference", "random_flip"});
  s.read("train", d.train);
  s.read("reference", d.reference);
  s.read("random_flip", d.random_flip);
}

void parse_train(const YamlSection& s, TrainConfig& t) {
  s.require_known_keys({"steps", "batch_size", "grad_accum", "lr", "weight_decay", "ema_decay", "ema_warmup", "grad_clip",
                        "precision", "device", "checkpoint_every", "checkpoint_blocks", "log_every", "timesteps"});
  s.read("steps", t.steps);
  s.read("batch_size", t.batch_size);
  s.read("grad_accum", t.grad_accum);
  s.read("lr", t.lr);
  s.read("weight_decay", t.weight_decay);
  s.read("ema_decay", t.ema_decay);
  s.read("ema_warmup", t.ema_warmup);
  s.read("grad_clip", t.grad_clip);
  std::string precision = precision_name(t.precision), device = device_kind_name(t.device);
  s.read("precision", precision);
  s.read("device", device);
  s.read("checkpoint_every", t.checkpoint_every);
  s.read("checkpoint_blocks", t.checkpoint_blocks);
  s.read("log_every", t.log_every);
  s.read("timesteps", t.timesteps);
  auto bad = [&](const std::string& key, const std::string& why) { throw_config(s.where(key) + ": " + why); };
  if (t.steps < 0) bad("steps", "must be at least 0 (0: sample and score the base checkpoint as it is)");
  if (t.batch_size < 1) bad("batch_size", "must be at least 1");
  if (t.grad_accum < 1) bad("grad_accum", "must be at least 1");
  if (!(t.lr > 0)) bad("lr", "must be positive");
  if (t.ema_decay < 0 || t.ema_decay > 1) bad("ema_decay", "must be in [0, 1]");
  if (t.timesteps < kMinLinearScheduleTimesteps || t.timesteps > kMaxTimesteps)
    bad("timesteps", "must be in " + std::to_string(kMinLinearScheduleTimesteps) + ".." + std::to_string(kMaxTimesteps) +
                         " (the linear schedule's last beta, 20 / T, must be below 1; DiT uses 1000)");
  if (t.weight_decay < 0) bad("weight_decay", "must be >= 0");
  if (t.grad_clip < 0) bad("grad_clip", "must be >= 0 (0 = off)");
  if (t.log_every < 0) bad("log_every", "must be >= 0");
  if (t.checkpoint_every < 0) bad("checkpoint_every", "must be >= 0 (0 = at the end only)");
  t.device = parse_device_kind(device, s.where("device"));
  // "auto" is resolved here, so the run id and config.yaml name the precision that actually ran.
  t.precision = parse_precision(precision, s.where("precision"), t.device);
}

void parse_eval(const YamlSection& s, EvalConfig& e) {
  s.require_known_keys({"feature_net", "feature_train", "num_reference", "inception_weights", "resize", "kid",
                        "metrics", "grid_columns", "vae", "every", "curve_samples"});
  std::string feature_net = feature_net_kind_name(e.feature_net), resize = resize_mode_name(e.resize);
  s.read("feature_net", feature_net);
  e.feature_net = parse_feature_net_kind(feature_net, s.where("feature_net"));
  s.read("feature_train", e.feature_train);
  s.read("num_reference", e.num_reference);
  s.read("inception_weights", e.inception_weights);
  s.read("resize", resize);
  e.resize = parse_resize_mode(resize, s.where("resize"));
  if (s.has("metrics")) {
    std::vector<std::string> names;
    s.read("metrics", names);
    e.metrics = parse_metric_set(names, s.where("metrics"));
  }
  bool kid = e.metrics.count(Metric::Kid) > 0;
  s.read("kid", kid);
  if (kid) {
    e.metrics.insert(Metric::Kid);
  } else if (e.metrics.count(Metric::Kid)) {
    throw_config(s.where("kid") + ": false, but eval.metrics names kid");
  }
  s.read("grid_columns", e.grid_columns);
  s.read("vae", e.vae);
  s.read("every", e.every);
  s.read("curve_samples", e.curve_samples);
  if (e.every < 0) throw_config(s.where("every") + ": must be >= 0 (0 = no learning curve)");
  if (e.curve_samples < 0) throw_config(s.where("curve_samples") + ": must be >= 0 (0 = sample.num)");
  if (e.num_reference < 0) throw_config(s.where("num_reference") + ": must be >= 0");
  if (e.grid_columns < 1 || e.grid_columns > kMaxGridColumns)
    throw_config(s.where("grid_columns") + ": must be in 1.." + std::to_string(kMaxGridColumns));
  if (!e.vae.empty() && !std::filesystem::is_regular_file(e.vae)) {
    throw_config(s.where("vae") + ": " + e.vae + " is not a file (AutoencoderKL weights, e.g. "
                 "diffusion_pytorch_model.safetensors)");
  }
}

void parse_sample(const YamlSection& s, SampleConfig& c) {
  s.require_known_keys({"num", "sampler", "steps", "cfg_scale", "eta", "batch_size", "call_size", "clip_denoised"});
  s.read("num", c.num);
  std::string sampler = sampler_name(c.sampler);
  s.read("sampler", sampler);
  c.sampler = parse_sampler(sampler, s.where("sampler"));
  s.read("steps", c.steps);
  s.read("cfg_scale", c.cfg_scale);
  s.read("eta", c.eta);
  s.read("batch_size", c.batch_size);
  s.read("call_size", c.call_size);
  if (c.call_size < 0) throw_config(s.where("call_size") + ": must be >= 0 (0 = the whole batch)");
  if (c.call_size > 0 && c.batch_size % c.call_size != 0)
    throw_config(s.where("call_size") + ": the batch_size (" + std::to_string(c.batch_size) +
                 ") must be a multiple of it");
  std::string clip = c.clip_denoised ? (*c.clip_denoised ? "true" : "false") : "auto";
  s.read("clip_denoised", clip);
  if (clip != "auto" && clip != "true" && clip != "false") {
    throw_config(s.where("clip_denoised") + ": must be auto, true or false");
  }
  c.clip_denoised = clip == "auto" ? std::nullopt : std::optional<bool>(clip == "true");
  if (c.num < 0) throw_config(s.where("num") + ": must be >= 0");
  if (c.batch_size < 0) throw_config(s.where("batch_size") + ": must be >= 0");
  if (c.cfg_scale < 0) throw_config(s.where("cfg_scale") + ": must be >= 0 (1 = no guidance)");
  if (c.eta < 0 || c.eta > 1) throw_config(s.where("eta") + ": must be in [0, 1]");
  if (c.steps < 1) throw_config(s.where("steps") + ": must be at least 1");
}

// "a=1;b=x" (the model's and the method's key=value strings) as entries of the open map.
void emit_key_values(YAML::Emitter& out, const std::string& items) {
  std::stringstream stream(items);
  std::string item;
  while (std::getline(stream, item, ';')) {
    const auto eq = item.find('=');
    if (eq != std::string::npos) out << YAML::Key << item.substr(0, eq) << YAML::Value << item.substr(eq + 1);
  }
}

std::string short_hash(const std::string& text) {
  Sha256 sha;
  sha.update(text);
  return sha.hex_digest().substr(0, 16);
}

}  // namespace

ExperimentConfig load_experiment(const std::string& path, const std::vector<std::string>& overrides,
                                 const ExperimentLoadOptions& options) {
  YamlSection root = YamlSection::load_file(path);
  for (const auto& o : options.inherited) apply_override(root.node(), o, path);
  for (const auto& o : overrides) apply_override(root.node(), o, path);
  root.require_known_keys({"name", "seed", "output_dir", "base_checkpoint", "base_run_id", "threads", "model", "method",
                           "data", "train", "sample", "eval"});
  ExperimentConfig config;
  root.read("name", config.name);
  // The name becomes a folder name inside output_dir.
  if (!usable_folder_name(config.name)) {
    throw_config(root.where("name") + ": '" + config.name + "' cannot name a run folder inside output_dir (" +
                 kFolderNameRule + ")");
  }
  if (!valid_utf8(config.name)) throw_config(root.where("name") + ": not valid UTF-8 (names are stored as UTF-8 text)");
  int64_t seed = 0;
  root.read("seed", seed);
  config.seed = static_cast<uint64_t>(seed);
  root.read("output_dir", config.output_dir);
  root.read("base_checkpoint", config.base_checkpoint);
  // "run:OTHER.yaml" names the pre-training experiment whose model this run starts from;
  // it resolves to that run's model file, so the run id follows the base's own id.
  if (config.base_checkpoint.rfind("run:", 0) == 0) {
    const std::string other = config.base_checkpoint.substr(4);
    if (other.empty()) throw_config(root.where("base_checkpoint") + ": 'run:' needs an experiment file after it");
    ExperimentLoadOptions base_options = options;
    base_options.chain.push_back(std::filesystem::absolute(path).lexically_normal().string());
    const std::string other_abs = std::filesystem::absolute(other).lexically_normal().string();
    if (std::find(base_options.chain.begin(), base_options.chain.end(), other_abs) != base_options.chain.end()) {
      std::string cycle;
      for (const auto& file : base_options.chain) cycle += file + " -> ";
      throw_config(root.where("base_checkpoint") + ": the run: bases form a cycle (" + cycle + other_abs +
                   "); an experiment cannot start from itself");
    }
    ExperimentConfig base = load_experiment(other, {}, base_options);
    const std::string model = RunFolder{base.run_dir()}.model();
    if (options.require_base_done &&
        (!std::filesystem::exists(RunFolder{base.run_dir()}.done()) || !std::filesystem::exists(model))) {
      throw_config(root.where("base_checkpoint") + ": the base experiment has not finished; run `difffit run " +
                   other + "` first (expected " + model + ")");
    }
    config.base_checkpoint = model;
    config.base_experiment = other;
    config.base_run_id = base.run_id();
  }
  // A run's config.yaml names a base made by another run by its file and that run's id, which
  // stands for the base in this run's id (as "run:FILE" does), so loading it keeps the run id.
  std::string base_run_id;
  root.read("base_run_id", base_run_id);
  if (!base_run_id.empty()) {
    if (config.base_checkpoint.empty() || !config.base_run_id.empty())
      throw_config(root.where("base_run_id") + ": goes with a base_checkpoint file (difffit writes both into a run's "
                   "config.yaml)");
    const bool hex16 = base_run_id.size() == 16 && base_run_id.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex16) throw_config(root.where("base_run_id") + ": '" + base_run_id + "' is not a run id (16 hex digits)");
    // The id stands for the file in this run's id: it must be the id of the run that made it
    // (a base_checkpoint changed with --set and a stale base_run_id would take another run's id).
    if (std::filesystem::is_regular_file(config.base_checkpoint)) {
      const std::string made_by = is_safetensors_file(config.base_checkpoint)
                                      ? read_safetensors_metadata(config.base_checkpoint)["run_id"]
                                      : "";
      if (made_by != base_run_id)
        throw_config(root.where("base_run_id") + ": " + base_run_id + ", but " + config.base_checkpoint + " was " +
                     (made_by.empty() ? "not made by a difffit run" : "made by run " + made_by) +
                     " (set base_run_id to match, or to \"\" for a plain file)");
    }
    config.base_run_id = base_run_id;
  }
  root.read("threads", config.threads);
  config.model = parse_dit_config(root.child("model"));
  config.method = parse_method_config(root.child("method"));
  try {
    config.method.blocks.resolve(config.model.depth);  // known only with the model
  } catch (const Error& e) {
    throw_config(root.where("method.blocks") + ": " + e.what());
  }
  parse_data(root.child("data"), config.data);
  if (config.data.train.empty()) throw_config(root.where("data.train") + ": missing (a prepared HDF5 file)");
  if (root.has("train")) parse_train(root.child("train"), config.train);
  if (root.has("sample")) parse_sample(root.child("sample"), config.sample);
  if (root.has("eval")) parse_eval(root.child("eval"), config.eval);
  if (config.threads < 1 || config.threads > kMaxComputeThreads)
    throw_config(root.where("threads") + ": must be in 1.." + std::to_string(kMaxComputeThreads));
  if (config.train.steps == 0 && config.base_checkpoint.empty())
    throw_config(root.where("train.steps") + ": 0 steps evaluates a base_checkpoint, and none is set");
  // Respacing picks sample.steps of the train.timesteps steps: found here, not after training.
  if (config.sample.num > 0 && config.sample.steps > config.train.timesteps) {
    throw_config(root.where("sample.steps") + ": " + std::to_string(config.sample.steps) +
                 " sampling steps, more than train.timesteps (" + std::to_string(config.train.timesteps) + ")");
  }
  if (config.eval.every > 0 && config.eval.curve_samples == 0 && config.sample.num == 0)
    throw_config(root.where("eval.curve_samples") + ": eval.every draws a learning curve, which needs samples: "
                 "set eval.curve_samples or sample.num");
  // The sampler's own memory check, here rather than after training.
  for (const auto& [field, n] : {std::pair<const char*, int64_t>{"sample.num", config.sample.num},
                                 std::pair<const char*, int64_t>{"eval.curve_samples", config.eval.curve_samples}}) {
    const std::string too_many = latents_exceed_memory(config.model, n);
    if (!too_many.empty()) throw_config(root.where(field) + ": " + too_many);
  }
  // The sampler's own CFG check, here rather than after training.
  if ((config.sample.num > 0 || config.eval.every > 0) && config.sample.cfg_scale > 1.0 &&
      config.model.class_dropout_prob <= 0)
    throw_config(root.where("sample.cfg_scale") + ": " + shortest_double(config.sample.cfg_scale) +
                 " (classifier-free guidance) needs a model with a null class: model.class_dropout_prob > 0");
  if (config.eval.every > 0 && config.sample.steps > config.train.timesteps)
    throw_config(root.where("sample.steps") + ": more sampling steps than train.timesteps for the learning curve");
  // Relative paths in the file are relative to the working directory, as on the command line.
  return config;
}

// One writer for both forms. Canonical: what changes results, hashed into the run id (its
// bytes must never change, or every run id would). Resolved: the whole experiment, an
// experiment file itself, written into the run folder (model and method as maps, the
// settings that do not change results added after the canonical ones).
std::string ExperimentConfig::to_yaml(bool resolved) const {
  using YAML::Key, YAML::Value;
  YAML::Emitter out;
  out << YAML::BeginMap;
  if (resolved) out << Key << "name" << Value << name;
  out << Key << "seed" << Value;
  if (resolved) out << static_cast<int64_t>(seed);  // as it was read
  else out << seed;
  if (resolved) out << Key << "output_dir" << Value << output_dir;
  // A base from another run is named by that run's id, so ids (and seeds) do not depend on
  // where the runs are stored; the resolved file keeps the path and the id.
  out << Key << "base_checkpoint" << Value
      << (resolved || base_run_id.empty() ? base_checkpoint : "run:" + base_run_id);
  if (resolved && !base_run_id.empty()) out << Key << "base_run_id" << Value << base_run_id;
  if (resolved) out << Key << "threads" << Value << threads;
  if (resolved) {
    out << Key << "model" << Value << YAML::BeginMap << Key << "name" << Value << "custom";
    emit_key_values(out, model.to_key_values());
    out << YAML::EndMap << Key << "method" << Value << YAML::BeginMap << Key << "name" << Value << method.name();
    emit_key_values(out, method.to_options_string());
    out << YAML::EndMap;
  } else {
    out << Key << "model" << Value << model.to_key_values();
    out << Key << "method" << Value << method.name() + ":" + method.to_options_string();
  }
  out << Key << "data" << Value << YAML::BeginMap << Key << "train" << Value << data.train << Key << "reference" << Value
      << data.reference << Key << "random_flip" << Value << data.random_flip << YAML::EndMap;
  out << Key << "train" << Value << YAML::BeginMap << Key << "steps" << Value << train.steps << Key << "batch_size"
      << Value << train.batch_size << Key << "grad_accum" << Value << train.grad_accum << Key << "lr" << Value
      << shortest_double(train.lr) << Key << "weight_decay" << Value << shortest_double(train.weight_decay) << Key
      << "ema_decay" << Value << shortest_double(train.ema_decay) << Key << "ema_warmup" << Value << train.ema_warmup
      << Key << "grad_clip" << Value << shortest_double(train.grad_clip) << Key << "precision" << Value
      << precision_name(train.precision) << Key << "timesteps" << Value << train.timesteps;
  if (resolved) {
    out << Key << "device" << Value << device_kind_name(train.device) << Key << "checkpoint_every" << Value << train.checkpoint_every
        << Key << "checkpoint_blocks" << Value << train.checkpoint_blocks
        << Key << "log_every" << Value << train.log_every;
  }
  out << YAML::EndMap;
  out << Key << "sample" << Value << YAML::BeginMap << Key << "num" << Value << sample.num << Key << "sampler" << Value
      << sampler_name(sample.sampler) << Key << "steps" << Value << sample.steps << Key << "cfg_scale" << Value
      << shortest_double(sample.cfg_scale) << Key << "eta" << Value << shortest_double(sample.eta) << Key
      << "batch_size" << Value << sample.batch_size << Key << "clip_denoised" << Value << sample.clip_for(model.pixel_space());
  // Only when set, so the ids of runs that call the model on whole batches stay as they were.
  if (sample.call_size > 0) out << Key << "call_size" << Value << sample.call_size;
  out << YAML::EndMap;
  out << Key << "eval" << Value << YAML::BeginMap << Key << "feature_net" << Value
      << feature_net_kind_name(eval.feature_net) << Key << "feature_train" << Value << eval.feature_train << Key
      << "num_reference" << Value << eval.num_reference << Key << "inception_weights" << Value
      << eval.inception_weights << Key << "resize" << Value << resize_mode_name(eval.resize) << Key << "kid" << Value
      << (eval.metrics.count(Metric::Kid) > 0);
  // Only beyond FID and KID, so the ids of runs that score just those stay as they were.
  if (eval.metrics != MetricSet{Metric::Fid} && eval.metrics != MetricSet{Metric::Fid, Metric::Kid})
    out << Key << "metrics" << Value << YAML::Flow << metric_keys(eval.metrics);
  if (resolved) out << Key << "grid_columns" << Value << eval.grid_columns;
  // Only when set, so the ids of runs without a VAE stay as they were.
  if (!eval.vae.empty()) out << Key << "vae" << Value << eval.vae;
  // Only with a curve (it adds curve.csv), so the ids of runs without one stay as they were.
  if (eval.every > 0) out << Key << "every" << Value << eval.every << Key << "curve_samples" << Value << eval.curve_samples;
  out << YAML::EndMap << YAML::EndMap;
  return out.c_str();
}

std::string ExperimentConfig::canonical_yaml() const { return to_yaml(false); }

std::string ExperimentConfig::resolved_yaml() const {
  return "# The resolved experiment of run " + run_id() + " (difffit): `difffit run` on this file runs it again.\n" +
         to_yaml(true) + "\n";
}

std::string ExperimentConfig::run_id() const { return short_hash(canonical_yaml()); }

std::string ExperimentConfig::run_dir() const {
  return (std::filesystem::path(output_dir) / (name + "-" + run_id())).string();
}

uint64_t derive_seed(const ExperimentConfig& config, const std::string& purpose) {
  Sha256 sha;
  sha.update(std::to_string(config.seed) + "/" + config.run_id() + "/" + purpose);
  auto digest = sha.digest();
  uint64_t seed = 0;
  for (int i = 0; i < 8; ++i) seed = (seed << 8) | digest[i];
  return seed >> 1;  // keep it positive for APIs that take int64
}

}  // namespace difffit
