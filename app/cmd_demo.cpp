// difffit demo: a short tour of what works, on a small DiT and on DiT-XL/2's shapes.
#include <ATen/ATen.h>
#include <torch/types.h>

#include <cstdio>
#include <filesystem>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/logging.h"
#include "common/torch_checkpoint.h"
#include "worker/model/build_model.h"
#include "worker/model/delta.h"
#include "worker/model/peft_method.h"

namespace difffit {
namespace {

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

int run_demo_command(int argc, char** argv) {
  po::options_description options("demo options");
  options.add_options()("output-dir", po::value<std::string>()->default_value("demo-output"),
                        "where the demo writes its checkpoint and deltas")(
      "seed", po::value<uint64_t>()->default_value(0), "random seed");
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("demo", "A short demonstration of the model and every fine-tuning method.", argc,
                          argv, options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  torch::manual_seed(vm["seed"].as<uint64_t>());
  const std::filesystem::path dir = vm["output-dir"].as<std::string>();
  std::filesystem::create_directories(dir);

  // 1. The paper's parameter column: DiT-XL/2 on Food-101 (101 classes), shapes only.
  DiTConfig xl = dit_preset("DiT-XL/2");
  xl.num_classes = 101;
  std::printf("\n== Trainable parameters, %s (paper: BitFit 0.61M, LoRA-R8 1.15M, AdaptFormer 4.28M)\n",
              xl.describe().c_str());
  for (const auto& name : method_names()) {
    DiT shapes(xl, /*initialize=*/false);
    MethodSetup setup = apply_method(*shapes, make_method_config(name));
    std::printf("  %-12s %12lld  (%.4f%%)\n", name.c_str(), static_cast<long long>(setup.trainable_params),
                setup.trainable_percent());
  }

  // 2. A small "pre-trained" DiT saved as an official-format .pt checkpoint.
  DiTConfig small;
  small.depth = 4;
  small.hidden_size = 128;
  small.num_heads = 4;
  small.patch_size = 4;
  small.input_size = 32;
  small.in_channels = 4;
  small.num_classes = 10;
  DiT base(small);
  perturb_trainable_weights(*base, 0.02);
  const std::string base_path = (dir / "base.pt").string();
  save_torch_state_dict(base_path, dit_reference_state_dict(*base));
  base->eval();
  torch::NoGradGuard no_grad;
  at::Tensor x = at::randn({4, 4, 32, 32});
  at::Tensor t = at::randint(0, 1000, {4}, at::kLong);
  at::Tensor y = at::randint(0, 10, {4}, at::kLong);
  at::Tensor base_out = base->forward(x, t, y);
  at::Tensor guided = base->forward_with_cfg(at::cat({x, x}), at::cat({t, t}),
                                             at::cat({y, at::full_like(y, 10)}), 4.0);
  std::printf("\n== Small DiT (%s): output %s, CFG output %s\n", small.describe().c_str(),
              c10::str(base_out.sizes()).c_str(), c10::str(guided.sizes()).c_str());

  // 3. Every method: starts equal to the base, stores a small delta, merges when linear.
  std::printf("\n  %-12s %10s %12s %14s %16s\n", "method", "trainable", "delta bytes", "|init - base|",
              "|merged - peft|");
  for (const auto& name : method_names()) {
    ModelSource source;
    source.checkpoint = base_path;
    DiT model = build_model(small, source);
    MethodSetup setup = apply_method(*model, make_method_config(name));
    model->eval();
    double init_diff = max_abs_diff(model->forward(x, t, y), base_out);
    perturb_trainable_weights(*model, 0.05);  // stands in for fine-tuning
    const std::string delta_path = (dir / ("delta-" + name + ".safetensors")).string();
    save_delta(delta_path, *model, setup.config);
    std::string merged = "not linear";
    if (setup.config.kind != MethodKind::VptDeep && setup.config.kind != MethodKind::AdaptFormer) {
      DiT plain(small, /*initialize=*/false);
      load_dit_state_dict(*plain, merge_to_plain_state_dict(*model), LoadOptions{}, "merged " + name);
      plain->eval();
      char text[32];
      std::snprintf(text, sizeof text, "%.2e", max_abs_diff(plain->forward(x, t, y), model->forward(x, t, y)));
      merged = text;
    }
    std::printf("  %-12s %10lld %12lld %14.2e %16s\n", name.c_str(), static_cast<long long>(setup.trainable_params),
                static_cast<long long>(std::filesystem::file_size(delta_path)), init_diff, merged.c_str());
  }
  std::printf("\nbase checkpoint: %s (%lld bytes); deltas in %s\n", base_path.c_str(),
              static_cast<long long>(std::filesystem::file_size(base_path)), dir.string().c_str());
  return 0;
}

}  // namespace difffit
