// A tiny sweep written into a temporary folder: its own prepared data (96 images),
// a pre-training experiment, a fine-tuning template and a sweep file with two grids.
#pragma once

#include <fstream>
#include <string>

#include "test_support.h"

namespace difffit::testing {

struct TinySweep {
  std::string dir, data, pretrain, finetune, sweep;
};

// steps: training steps of every run; `extra` is appended to the sweep file.
inline TinySweep write_tiny_sweep(const TempDir& tmp, int steps = 6, const std::string& extra = "") {
  TinySweep s;
  s.dir = tmp.path().string();
  s.data = tmp.file("data.h5");
  if (!std::filesystem::exists(s.data)) {
    auto r = run_difffit("prepare --source fashion-mnist --split test --limit 96 --resolution 16 --output " + s.data);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string model =
      "model: {name: custom, depth: 2, hidden_size: 32, num_heads: 2, patch_size: 4, input_size: 16,"
      " in_channels: 1, num_classes: 10}\n";
  const std::string train = "train: {steps: " + std::to_string(steps) +
                            ", batch_size: 8, lr: 1.0e-3, ema_decay: 0.9, checkpoint_every: 3, log_every: 100}\n";
  s.pretrain = tmp.file("pretrain.yaml");
  std::ofstream(s.pretrain) << "name: pre\nseed: 1\n" << model << "method: {name: full}\ndata: {train: " << s.data
                            << "}\n" << train << "sample: {num: 0}\n";
  s.finetune = tmp.file("finetune.yaml");
  std::ofstream(s.finetune) << "name: ft\nseed: 1\nbase_checkpoint: run:" << s.pretrain << "\n" << model
                            << "method: {name: difffit}\ndata: {train: " << s.data << "}\n" << train
                            << "sample: {num: 4, steps: 3, batch_size: 4}\neval: {feature_net: none}\n";
  s.sweep = tmp.file("sweep.yaml");
  std::ofstream(s.sweep) << "sweep: tiny\nexperiment: " << s.finetune << "\noutput_dir: " << tmp.file("runs")
                         << "\nmax_attempts: 2\nheartbeat_interval: 1\nheartbeat_timeout: 60\n"
                            "grids:\n"
                            "  - name: table\n"
                            "    axes:\n"
                            "      - name: lr\n"
                            "        set: {train.lr: \"{value}\"}\n"
                            "        values: [1.0e-3, 2.0e-3]\n"
                            "      - name: method\n"
                            "        set: {method.name: \"{value}\"}\n"
                            "        values: [full, bitfit, difffit]\n"
                            "  - name: placement\n"
                            "    set: {method.name: difffit, train.lr: 1.0e-3}\n"
                            "    axes:\n"
                            "      - name: blocks\n"
                            "        values: {first-half: {method.blocks: first-half}, all: {method.blocks: all}}\n"
                         << extra;
  return s;
}

}  // namespace difffit::testing
