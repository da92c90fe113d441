// The data and training sections of an experiment (worker/run/experiment_config reads them
// from YAML): what the trainer needs, without the rest of the experiment.
#pragma once

#include <cstdint>
#include <string>

#include "common/platform.h"

namespace difffit {

struct DataConfig {
  std::string train;           // prepared HDF5 (difffit prepare) to train on
  std::string reference;       // held-out HDF5 to score samples against (optional)
  bool random_flip = true;     // horizontal flip p = 0.5, as DiT
};

struct TrainConfig {
  int64_t steps = 1000;        // optimizer steps
  int64_t batch_size = 64;     // images per loader batch
  int64_t grad_accum = 1;      // loader batches per optimizer step (effective batch = batch_size x grad_accum)
  double lr = 1e-4;            // base learning rate (methods multiply it, e.g. DiffFit x10)
  double weight_decay = 0.0;   // AdamW decay (DiT: 0)
  double ema_decay = 0.9999;   // EMA of the trainable tensors; samples use the EMA
  bool ema_warmup = false;     // decay min(ema_decay, (1+k)/(10+k)) at update k (short runs); off = reference
  double grad_clip = 0.0;      // max global grad norm (0 = off)
  Precision precision = Precision::Fp32;  // fp32 (exact) | bf16 (autocast) | auto in files (resolved on load: bf16 where faster)
  DeviceKind device = DeviceKind::Cpu;    // cpu | cuda (noise is drawn on the CPU either way, so seeds agree)
  int64_t checkpoint_every = 500;  // steps between run checkpoints (0 = only at the end/on signals)
  bool checkpoint_blocks = false;  // activation checkpointing per DiT block: less memory, one more block forward
  int64_t log_every = 50;      // steps between log lines
  int64_t timesteps = 1000;    // T of the diffusion process
};

}  // namespace difffit
