#include "app/cli_options.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <iostream>

#include "common/error.h"
#include "common/logging.h"
#include "common/nccl_communicator.h"
#include "common/platform.h"

namespace difffit {

void add_model_options(po::options_description& options) {
  options.add_options()
      ("model", po::value<std::string>()->default_value("DiT-XL/2"), "preset (DiT-S/2 ... DiT-XL/8) or 'custom'")
      ("depth", po::value<int64_t>(), "number of blocks (custom, or override)")
      ("hidden-size", po::value<int64_t>(), "hidden size D")
      ("num-heads", po::value<int64_t>(), "attention heads")
      ("patch-size", po::value<int64_t>(), "patch size p")
      ("input-size", po::value<int64_t>()->default_value(32), "model-space side (latent: image/8)")
      ("in-channels", po::value<int64_t>()->default_value(4), "input channels (4 = SD VAE latents)")
      ("num-classes", po::value<int64_t>()->default_value(1000), "classes (the table adds a null row)")
      ("learn-sigma", po::value<std::string>()->default_value("true"), "true|false: predict the variance")
      ("class-dropout-prob", po::value<double>()->default_value(0.1), "label dropout for CFG (0 = no null row)")
      ("pos-embed-scale", po::value<double>()->default_value(1.0),
       "sin-cos coordinate scale (G_old/G_new for the 256->512 transfer trick)");
}

DiTConfig model_config_from(const po::variables_map& vm) {
  const std::string name = vm["model"].as<std::string>();
  DiTConfig config;
  if (name == "custom") {
    for (const char* flag : {"depth", "hidden-size", "num-heads", "patch-size"}) {
      if (!vm.count(flag)) throw_usage(std::string("--model custom needs --") + flag);
    }
  } else {
    config = dit_preset(name);
  }
  if (vm.count("depth")) config.depth = vm["depth"].as<int64_t>();
  if (vm.count("hidden-size")) config.hidden_size = vm["hidden-size"].as<int64_t>();
  if (vm.count("num-heads")) config.num_heads = vm["num-heads"].as<int64_t>();
  if (vm.count("patch-size")) config.patch_size = vm["patch-size"].as<int64_t>();
  config.input_size = vm["input-size"].as<int64_t>();
  config.in_channels = vm["in-channels"].as<int64_t>();
  config.num_classes = vm["num-classes"].as<int64_t>();
  const std::string sigma = vm["learn-sigma"].as<std::string>();
  if (sigma != "true" && sigma != "false") throw_usage("--learn-sigma: expected true or false, got '" + sigma + "'");
  config.learn_sigma = sigma == "true";
  config.class_dropout_prob = vm["class-dropout-prob"].as<double>();
  config.pos_embed_scale = vm["pos-embed-scale"].as<double>();
  config.validate();
  return config;
}

void add_sample_options(po::options_description& options, const SampleConfig& defaults) {
  const std::string clip = defaults.clip_denoised ? (*defaults.clip_denoised ? "true" : "false") : "auto";
  options.add_options()
      ("sampler", po::value<std::string>()->default_value(sampler_name(defaults.sampler)), "ddpm | ddim")
      ("steps", po::value<int64_t>()->default_value(defaults.steps), "sampling steps: the reference's respacing \"K\"")
      ("cfg-scale", po::value<double>()->default_value(defaults.cfg_scale),
       "classifier-free guidance scale (used when > 1; doubles the batch)")
      ("eta", po::value<double>()->default_value(defaults.eta), "DDIM eta (0 = deterministic)")
      ("clip-denoised", po::value<std::string>()->default_value(clip),
       "clamp predicted x0 to [-1, 1]: auto (pixel-space models: yes; latents: no) | true | false")
      ("batch-size", po::value<int64_t>()->default_value(defaults.batch_size), "samples per batch (0 = all)")
      ("call-size", po::value<int64_t>()->default_value(defaults.call_size),
       "samples per model call (0 = the batch); fixed, the samples no longer depend on the batch size");
}

SampleConfig sample_config_from(const po::variables_map& vm, int64_t num) {
  SampleConfig sample;
  sample.num = num;
  sample.sampler = parse_sampler(vm["sampler"].as<std::string>());
  sample.steps = vm["steps"].as<int64_t>();
  sample.cfg_scale = vm["cfg-scale"].as<double>();
  sample.eta = vm["eta"].as<double>();
  const std::string clip = vm["clip-denoised"].as<std::string>();
  if (clip != "auto" && clip != "true" && clip != "false") throw_usage("--clip-denoised must be auto, true or false");
  if (clip != "auto") sample.clip_denoised = clip == "true";
  sample.batch_size = vm["batch-size"].as<int64_t>();
  sample.call_size = vm["call-size"].as<int64_t>();
  return sample;
}

void add_method_options(po::options_description& options, const std::string& default_method) {
  auto method = po::value<std::string>();
  if (!default_method.empty()) method->default_value(default_method);
  options.add_options()
      ("method", method, "full | bitfit | difffit | lora | vpt-deep | adaptformer")
      ("option", po::value<std::vector<std::string>>()->composing(),
       "method option key=value, repeatable (e.g. rank=16, blocks=first:14, sites=branches,qkv, "
       "mode=sequential, bottleneck=64, prompts=10, lr_mult=10)");
}

MethodConfig method_config_from(const po::variables_map& vm) {
  std::vector<std::pair<std::string, std::string>> options;
  if (vm.count("option")) {
    for (const auto& text : vm["option"].as<std::vector<std::string>>()) options.push_back(split_option(text));
  }
  return make_method_config(vm["method"].as<std::string>(), options);
}

void add_checkpoint_options(po::options_description& options) {
  options.add_options()
      ("checkpoint", po::value<std::string>()->required(), "DiT weights (.pt from torch.save, or safetensors)")
      ("delta", po::value<std::string>()->default_value(""), "fine-tuned delta to apply on top");
}

ModelSource model_source_from(const po::variables_map& vm) {
  ModelSource source;
  source.checkpoint = vm["checkpoint"].as<std::string>();
  source.delta = vm["delta"].as<std::string>();
  return source;
}

void add_thread_option(po::options_description& options) {
  options.add_options()("threads", po::value<int>()->default_value(1),
                        "intra-op threads (one rank per core with 1 thread is fastest on CPU)");
}

void check_model_inputs(const Hdf5Reader& in, const std::string& x_name, const at::Tensor& x, const at::Tensor& t,
                        const at::Tensor& y, const DiTConfig& config) {
  const int64_t n = x.size(0);
  if (n < 1) throw_data(in.path() + ": dataset '" + x_name + "' has no rows");
  if (x.size(1) != config.in_channels || x.size(2) != config.input_size || x.size(3) != config.input_size) {
    throw_data(in.path() + ": dataset '" + x_name + "' has shape " + c10::str(x.sizes()) + ", the model expects (N, " +
               std::to_string(config.in_channels) + ", " + std::to_string(config.input_size) + ", " +
               std::to_string(config.input_size) + ")");
  }
  if (t.size(0) != n || y.size(0) != n) {
    throw_data(in.path() + ": datasets 't' and 'y' must have N = " + std::to_string(n) + " entries");
  }
  if (t.min().item<int64_t>() < 0) throw_data(in.path() + ": dataset 't' has negative timesteps");
  const int64_t rows = config.class_table_rows();
  if (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= rows) {
    throw_data(in.path() + ": dataset 'y' has labels outside 0.." + std::to_string(rows - 1) +
               " (check --num-classes)");
  }
}

void apply_thread_option(const po::variables_map& vm) { set_compute_threads(vm["threads"].as<int>()); }

int64_t int_flag_in(const po::variables_map& vm, const std::string& name, int64_t min, int64_t max) {
  const int64_t value = vm[name].as<int64_t>();
  if (value < min || value > max)
    throw_usage("--" + name + " must be in " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
                std::to_string(value));
  return value;
}

int run_subcommand(const std::string& group, const std::string& usage, int argc, char** argv,
                   const std::vector<Subcommand>& subcommands) {
  if (argc < 2) {
    std::cerr << usage;
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h") {
    std::cout << usage;
    return 0;
  }
  for (const auto& sub : subcommands) {
    if (sub.name == name) return sub.run(argc - 1, argv + 1);
  }
  throw_usage(group + ": unknown subcommand '" + name + "'\n" + usage);
}

bool parse_command_line(const std::string& command, const std::string& summary, int argc, char** argv,
                        po::options_description& options, po::variables_map& vm,
                        const po::positional_options_description* positional) {
  options.add_options()("help,h", "show this help");
  try {
    po::command_line_parser parser(argc, argv);
    parser.options(options);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: difffit " << command << " [options]\n" << summary << "\n\n" << options << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw_usage(command + ": " + e.what() + " (see difffit " + command + " --help)");
  }
  return true;
}

LaunchRanks join_launch_ranks(int* argc, char*** argv, bool on_cuda) {
  LaunchRanks ranks;
  bool launched = false;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) launched = launched || std::getenv(name);
  if (!launched) {
    refuse_slurm_singletons(1);
    return ranks;
  }
  ranks.mpi = std::make_unique<MpiSession>(argc, argv);
  refuse_slurm_singletons(mpi_world().size);
  LoggingOptions logging;
  logging.rank = mpi_world().rank;
  init_logging(logging);
  ranks.comm = make_data_parallel_communicator(on_cuda);
  return ranks;
}

}  // namespace difffit
