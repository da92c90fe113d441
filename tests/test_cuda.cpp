// CUDA against the CPU: the same model, inputs and random draws on both devices give the
// same forward, backward, optimizer step, samples and features within stated tolerances
// (float32 with TF32 off; bf16 autocast to its precision). Every test is skipped, saying
// so, where no CUDA device is visible (this machine, CI): they run on a GPU machine.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <cstdlib>
#include <string>

#include "eval/fid_inception.h"
#include "test_support.h"
#include "small_dit.h"
#include "worker/model/dit.h"
#include "worker/model/method_config.h"
#include "worker/model/peft_method.h"
#include "worker/sample/sample_generator.h"
#include "worker/train/adamw.h"
#include "worker/model/autocast_guard.h"

namespace difffit {
namespace {

const char* const kMethods[] = {"full", "bitfit", "lora", "vpt-deep", "adaptformer", "difffit"};

// max |a - b| <= atol + rtol * max |b|: one bound for the whole tensor, as accumulated
// rounding is spread over it.
::testing::AssertionResult close(const at::Tensor& a, const at::Tensor& b, double rtol, double atol) {
  const double diff = (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  if (diff <= atol + rtol * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| " << diff << " > " << atol << " + " << rtol << " * " << scale;
}

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no CUDA device";
    // TF32 rounds float32 products to 10 bits: off, so float32 means float32 on both sides.
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }

  // A small DiT with `method` applied and every tensor moved off its initial values
  // (adaLN-zero would make the output, and most gradients, zero), built the same way twice.
  struct Pair {
    DiT cpu{nullptr}, cuda{nullptr};
    MethodSetup cpu_setup, cuda_setup;
  };
  static Pair pair(const std::string& method) {
    Pair p;
    for (int side = 0; side < 2; ++side) {
      at::manual_seed(11);
      DiT model(testing::small_dit_config(2, 32, 4, 10));
      MethodSetup setup = apply_method(*model, make_method_config(method));
      torch::NoGradGuard no_grad;
      for (auto& param : model->parameters()) param.add_(at::randn(param.sizes()) * 0.05);
      if (side == 0) {
        p.cpu = model, p.cpu_setup = setup;
      } else {
        model->to(at::kCUDA);
        p.cuda = model, p.cuda_setup = setup;
      }
    }
    return p;
  }
  struct Inputs {
    at::Tensor x, t, y;
  };
  static Inputs inputs() {
    at::manual_seed(3);
    return {at::randn({6, 4, 8, 8}), at::randint(0, 1000, {6}, at::kLong), at::randint(0, 10, {6}, at::kLong)};
  }
};

TEST_F(Cuda, ForwardBackwardAndAdamWStepMatchTheCpuForEveryMethod) {
  const Inputs in = inputs();
  for (const char* method : kMethods) {
    Pair p = pair(method);
    p.cpu->train();
    p.cuda->train();
    const at::Tensor no_drop = at::zeros({6}, at::kBool);
    at::Tensor a = p.cpu->forward(in.x, in.t, in.y, no_drop);
    at::Tensor b = p.cuda->forward(in.x.cuda(), in.t.cuda(), in.y.cuda(), no_drop.cuda());
    EXPECT_TRUE(close(b, a, 1e-4, 1e-5)) << method << " forward";
    (a * a).mean().backward();
    (b * b).mean().backward();
    const auto names = p.cpu_setup.trainable_names();
    const auto ta = p.cpu_setup.trainable_tensors(), tb = p.cuda_setup.trainable_tensors();
    ASSERT_EQ(ta.size(), tb.size());
    for (size_t i = 0; i < ta.size(); ++i) {
      if (!ta[i].grad().defined()) continue;
      EXPECT_TRUE(close(tb[i].grad(), ta[i].grad(), 1e-3, 1e-6)) << method << " grad " << names[i];
    }
    // One AdamW step (difffit's fused CPU kernel against ATen's ops on CUDA).
    AdamWOptions options;
    options.lr = 1e-3;
    AdamW ca(method_adamw_groups(p.cpu_setup, 1e-3), options), cb(method_adamw_groups(p.cuda_setup, 1e-3), options);
    ca.step();
    cb.step();
    for (size_t i = 0; i < ta.size(); ++i)
      EXPECT_TRUE(close(tb[i], ta[i], 1e-5, 1e-6)) << method << " after AdamW " << names[i];
  }
}

TEST_F(Cuda, Bf16AutocastStaysWithinBf16OfFloat32) {
  const Inputs in = inputs();
  for (const char* method : {"full", "difffit"}) {
    Pair p = pair(method);
    torch::NoGradGuard no_grad;
    p.cpu->eval();
    p.cuda->eval();
    const at::Tensor reference = p.cpu->forward(in.x, in.t, in.y);
    at::Tensor bf16;
    {
      AutocastGuard autocast(true, at::kCUDA);
      bf16 = p.cuda->forward(in.x.cuda(), in.t.cuda(), in.y.cuda());
    }
    // bf16 keeps 8 significant bits (relative 2^-8 per rounding) through two blocks.
    EXPECT_TRUE(close(bf16.to(at::kFloat), reference, 3e-2, 1e-3)) << method;
    EXPECT_FALSE(close(bf16.to(at::kFloat), reference, 1e-6, 0)) << method << ": autocast did not change anything";
  }
}

TEST_F(Cuda, DdimSamplesWithGuidanceMatchTheCpu) {
  Pair p = pair("difffit");
  SampleRequest request;
  request.sample.num = 4;
  request.sample.sampler = SamplerKind::Ddim;
  request.sample.steps = 5;
  request.sample.cfg_scale = 1.5;
  request.seed = 7;
  const SampleResult a = generate_samples(*p.cpu, request);
  request.device = c10::kCUDA;
  const SampleResult b = generate_samples(*p.cuda, request);
  EXPECT_TRUE(at::equal(a.labels, b.labels.cpu()));  // drawn on the CPU either way
  EXPECT_TRUE(close(b.latents, a.latents, 1e-3, 1e-4));
}

// Inception features need the FID weights (pt_inception-2015-12-05), which are not shipped.
TEST_F(Cuda, InceptionFeaturesMatchTheCpu) {
  const char* weights = std::getenv(kInceptionWeightsEnv);
  if (!weights || !*weights) GTEST_SKIP() << "skipped: set " << kInceptionWeightsEnv << " to the FID Inception weights";
  InceptionFeatureNet cpu(weights, ResizeMode::PytorchFid, c10::Device(c10::kCPU)),
      cuda(weights, ResizeMode::PytorchFid, c10::Device(c10::kCUDA));
  at::manual_seed(5);
  const at::Tensor images = at::randint(0, 256, {4, 64, 64, 3}, at::kByte);
  EXPECT_TRUE(close(cuda.outputs(images).pool, cpu.outputs(images).pool, 1e-4, 1e-5));
}

}  // namespace
}  // namespace difffit
