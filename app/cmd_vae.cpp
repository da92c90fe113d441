// difffit vae encode|decode|info: the latent pipeline with the SD autoencoder. `encode`
// turns a prepared image file into a latent dataset file the training loader reads;
// `decode` turns latents (samples) into uint8 images the evaluation reads.
#include <ATen/ATen.h>

#include <iostream>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/torch_device.h"
#include "worker/model/vae_loader.h"
#include "worker/vae/latent_decode.h"
#include "worker/vae/latent_encode.h"

namespace difffit {
namespace {

void add_vae_options(po::options_description& options) {
  options.add_options()
      ("vae", po::value<std::string>()->default_value(""),
       "AutoencoderKL weights: diffusers diffusion_pytorch_model.safetensors or .bin (default $DIFFFIT_VAE_WEIGHTS)")
      ("vae-config", po::value<std::string>()->default_value("auto"),
       "diffusers config.json (auto: the one beside the weights, if any; group count and scaling factor)")
      ("device", po::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:K")
      ("bf16", po::bool_switch(), "bf16 autocast (faster; float32 otherwise)");
  add_thread_option(options);
}

LoadedVae load_vae_from(const po::variables_map& vm, int64_t batch_size) {
  apply_thread_option(vm);
  const std::string path = resolve_vae_weights(vm["vae"].as<std::string>());
  if (path.empty()) throw_usage("vae: no weights: pass --vae FILE or set $DIFFFIT_VAE_WEIGHTS");
  VaeLoadOptions load;
  load.config_json = vm["vae-config"].as<std::string>();
  load.device = parse_torch_device(vm["device"].as<std::string>(), "vae: --device");
  if (load.device.is_cuda() && !at::hasCUDA()) throw_usage("vae: --device cuda, but this LibTorch has no CUDA");
  LoadedVae vae = load_vae(path, load);
  vae.model->run_options().batch_size = batch_size;
  vae.model->run_options().bf16 = vm["bf16"].as<bool>();
  return vae;
}

int vae_encode_command(int argc, char** argv) {
  po::options_description options("vae encode options");
  options.add_options()
      ("input", po::value<std::string>()->required(), "prepared image file (difffit prepare)")
      ("output", po::value<std::string>()->required(), "latent dataset file to write")
      ("batch-size", po::value<int64_t>()->default_value(32), "images per encoder pass")
      ("flip", po::value<std::string>()->default_value("both"),
       "both: also encode every image flipped horizontally (latents_flipped, for random flips) | none")
      ("seed", po::value<uint64_t>()->default_value(0), "seed of the posterior sampling noise")
      ("limit", po::value<int64_t>()->default_value(0), "encode only the first N images (0 = all)");
  add_vae_options(options);
  po::variables_map vm;
  if (!parse_command_line("vae encode",
                          "Encodes a prepared image file into latents (posterior sample * scaling factor) for training.",
                          argc, argv, options, vm)) {
    return 0;
  }
  EncodeDatasetOptions encode;
  encode.input = vm["input"].as<std::string>();
  encode.output = vm["output"].as<std::string>();
  encode.batch_size = vm["batch-size"].as<int64_t>();
  encode.seed = vm["seed"].as<uint64_t>();
  encode.limit = vm["limit"].as<int64_t>();
  const std::string flip = vm["flip"].as<std::string>();
  if (flip != "both" && flip != "none") throw_usage("vae encode: --flip must be both or none");
  encode.flip_both = flip == "both";
  check_output_path(encode.output, "--output", {encode.input, resolve_vae_weights(vm["vae"].as<std::string>())});
  if (encode.batch_size < 1) throw_usage("vae encode: --batch-size must be at least 1");
  LoadedVae vae = load_vae_from(vm, encode.batch_size);
  encode_prepared_dataset(vae, encode);
  return 0;
}

int vae_decode_command(int argc, char** argv) {
  po::options_description options("vae decode options");
  options.add_options()
      ("input", po::value<std::string>()->required(), "HDF5 with latents (N, z, h, w) (+ y or labels)")
      ("output", po::value<std::string>()->required(), "HDF5 to write: images uint8 (N, H, W, C), labels, y")
      ("batch-size", po::value<int64_t>()->default_value(8), "latents per decoder pass");
  add_vae_options(options);
  po::variables_map vm;
  if (!parse_command_line("vae decode", "Decodes latents (e.g. a run's samples.h5) into uint8 images.", argc, argv,
                          options, vm)) {
    return 0;
  }
  DecodeFileOptions decode;
  decode.input = vm["input"].as<std::string>();
  decode.output = vm["output"].as<std::string>();
  decode.batch_size = vm["batch-size"].as<int64_t>();
  if (decode.batch_size < 1) throw_usage("vae decode: --batch-size must be at least 1");
  check_output_path(decode.output, "--output", {decode.input, resolve_vae_weights(vm["vae"].as<std::string>())});
  LoadedVae vae = load_vae_from(vm, decode.batch_size);
  decode_latent_file(vae, decode);
  return 0;
}

int vae_info_command(int argc, char** argv) {
  po::options_description options("vae info options");
  add_vae_options(options);
  po::variables_map vm;
  if (!parse_command_line("vae info", "Prints the architecture read from a VAE weight file and its SHA-256.", argc,
                          argv, options, vm)) {
    return 0;
  }
  LoadedVae vae = load_vae_from(vm, 1);
  const VaeConfig& c = vae.model->config();
  int64_t params = 0;
  for (const auto& p : vae.model->parameters()) params += p.numel();
  std::cout << "file: " << vae.path << "\nsha256: " << vae.sha256 << "\narchitecture: " << c.describe()
            << "\ndownsampling: " << c.downsample_factor() << "x\nparameters: " << params
            << "\nold attention keys renamed: " << vae.renamed.size() << "\n";
  return 0;
}

}  // namespace

int run_vae_command(int argc, char** argv) {
  return run_subcommand("vae",
                        "usage: difffit vae encode|decode|info [options]\n"
                        "  encode  prepared image file -> latent dataset file (training on latents)\n"
                        "  decode  latents (samples) -> uint8 images\n"
                        "  info    the architecture and SHA-256 of a VAE weight file\n",
                        argc, argv,
                        {{"encode", vae_encode_command}, {"decode", vae_decode_command}, {"info", vae_info_command}});
}

}  // namespace difffit
