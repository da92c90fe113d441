// difffit merge: base checkpoint + linear delta -> one plain DiT checkpoint.
#include "app/cli_options.h"
#include "app/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/safetensors.h"
#include "common/torch_checkpoint.h"
#include "worker/model/build_model.h"
#include "worker/model/delta.h"

namespace difffit {

int run_merge_command(int argc, char** argv) {
  po::options_description options("merge options");
  options.add_options()
      ("checkpoint", po::value<std::string>()->required(), "base DiT weights the delta was trained on")
      ("delta", po::value<std::string>()->required(), "delta file written by a run (its model shape is read from it)")
      ("output", po::value<std::string>()->required(),
       "merged state dict: *.pt (torch.load-able, reference keys) or *.safetensors");
  po::variables_map vm;
  if (!parse_command_line("merge", "Folds gamma, LoRA and bias deltas into plain DiT weights.", argc, argv,
                          options, vm)) {
    return 0;
  }
  ModelSource source;
  source.checkpoint = vm["checkpoint"].as<std::string>();
  source.delta = vm["delta"].as<std::string>();
  DeltaInfo info = read_delta_info(source.delta);
  DiT model = build_model(info.model, source);
  StateDict merged = merge_to_plain_state_dict(*model);

  const std::string output = vm["output"].as<std::string>();
  check_output_path(output, "--output", {source.checkpoint, source.delta});
  const bool as_pt = output.size() > 3 && output.compare(output.size() - 3, 3, ".pt") == 0;
  if (as_pt) {
    save_torch_state_dict(output, merged);
  } else {
    // The merged model stands for the run that trained the delta: its run id and steps go
    // along, so an experiment can name the file with base_run_id like a pre-trained model.
    TensorFileMetadata metadata{{"model", info.model.to_key_values()}, {"merged_from", source.delta}};
    for (const char* key : {"run_id", "steps"})
      if (info.metadata.count(key)) metadata[key] = info.metadata.at(key);
    save_safetensors(output, merged, metadata);
  }
  log()->info("[merge] {} delta folded into {} tensors -> {}", info.method.name(), merged.size(), output);
  return 0;
}

}  // namespace difffit
