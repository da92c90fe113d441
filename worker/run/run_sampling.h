// How a run draws its samples: the one conversion from an experiment's sample: section to
// a SampleRequest, and the samples with their images (decoded when latent), shared out
// over the ranks of a data-parallel run. The run's final samples and its learning-curve
// points both come from here, so a curve point is drawn exactly as the final samples are.
#pragma once

#include <cstdint>
#include <functional>

#include "worker/run/experiment_config.h"
#include "worker/sample/sample_generator.h"
#include "worker/sample/samples_file.h"

namespace difffit {

class Communicator;

// `num` samples as the experiment's sample: section describes them, seeded from the run
// (the same per-sample streams for every draw of the run: a curve point's samples are the
// first of the final ones, made by other weights).
SampleRequest run_sample_request(const ExperimentConfig& config, int64_t num);

// Throws StoppedBySignal when a stop signal reached any of `ranks` (null: this process);
// every rank must call it at the same point.
void stop_if_signalled(Communicator* ranks);

// Generates `num` samples over `ranks` (null: one process) and gives them their images.
// `on_step(done, total)` reports this rank's progress. A stop signal ends the sampling
// (StoppedBySignal; the run's checkpoint is already saved): in one process at the next
// sampler step or decoded batch, over several ranks after the round of batches that every
// rank is in, and before and after the decoding.
// Samples with NaN or Inf are a data error naming the run folder and the base checkpoint:
// nothing is scored or marked done.
SamplesFile draw_run_samples(DiTImpl& model, const ExperimentConfig& config, int64_t num, Communicator* ranks,
                             const std::function<void(int64_t, int64_t)>& on_step = nullptr);

}  // namespace difffit
