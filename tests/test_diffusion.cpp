// Gaussian diffusion: tables, respacing, identities, loss terms and samplers,
// checked against hand-computed values and exact identities.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include <cmath>

#include "common/communicator.h"
#include "common/error.h"
#include "small_dit.h"
#include "test_support.h"
#include "worker/model/build_model.h"
#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/diffusion/respacing.h"
#include "worker/diffusion/samplers.h"
#include "worker/model/peft_method.h"
#include "worker/model/pixel_range.h"
#include "worker/sample/sample_generator.h"
#include "worker/train/adamw.h"
#include "worker/train/ema.h"

namespace difffit {
namespace {

double at_(const at::Tensor& t, int64_t i) { return t[i].item<double>(); }

TEST(Respacing, MatchesHandComputedSteps) {
  EXPECT_EQ(space_timesteps(1000, "4"), (std::vector<int64_t>{0, 333, 666, 999}));
  EXPECT_EQ(space_timesteps(1000, "10"), (std::vector<int64_t>{0, 111, 222, 333, 444, 555, 666, 777, 888, 999}));
  // 999/4 = 249.75: 499.5 rounds half to even (500), 749.25 -> 749.
  EXPECT_EQ(space_timesteps(1000, "5"), (std::vector<int64_t>{0, 250, 500, 749, 999}));
  EXPECT_EQ(space_timesteps(10, "3"), (std::vector<int64_t>{0, 4, 9}));  // round(4.5) = 4
  auto s250 = space_timesteps(1000, "250");
  EXPECT_EQ(s250.size(), 250u);
  EXPECT_EQ(s250.front(), 0);
  EXPECT_EQ(s250.back(), 999);
  auto ddim = space_timesteps(1000, "ddim50");
  EXPECT_EQ(ddim.size(), 50u);
  EXPECT_EQ(ddim[1], 20);
  EXPECT_EQ(ddim.back(), 980);
  EXPECT_EQ(space_timesteps(100, "2,3"), (std::vector<int64_t>{0, 49, 50, 74, 99}));
  EXPECT_EQ(space_timesteps(1000, "").size(), 1000u);
  EXPECT_THROW(space_timesteps(1000, "ddim999"), Error);  // no integer stride gives 999
  EXPECT_THROW(space_timesteps(10, "11"), Error);
  EXPECT_THROW(space_timesteps(10, "x"), Error);
}

TEST(DiffusionTables, LinearBetasAndDerivedTables) {
  at::Tensor betas = linear_beta_schedule(1000);
  EXPECT_EQ(betas.scalar_type(), at::kDouble);
  EXPECT_DOUBLE_EQ(at_(betas, 0), 1e-4);
  EXPECT_DOUBLE_EQ(at_(betas, 999), 0.02);
  EXPECT_DOUBLE_EQ(at_(betas, 500), 500 * ((0.02 - 1e-4) / 999) + 1e-4);  // numpy.linspace: i * step + start
  // T = 100 scales the range by 1000 / T.
  EXPECT_DOUBLE_EQ(at_(linear_beta_schedule(100), 0), 1e-3);
  EXPECT_DOUBLE_EQ(at_(linear_beta_schedule(100), 99), 0.2);
  // The shortest schedule allowed keeps every beta below 1; one step shorter does not.
  EXPECT_LT(linear_beta_schedule(kMinLinearScheduleTimesteps).max().item<double>(), 1.0);
  EXPECT_GE(linear_beta_schedule(kMinLinearScheduleTimesteps - 1).max().item<double>(), 1.0);
  EXPECT_THROW(GaussianDiffusion({kMinLinearScheduleTimesteps - 1, "", true}), Error);

  GaussianDiffusion d({1000, "", true});
  ASSERT_EQ(d.num_steps(), 1000);
  double abar = 1.0;
  for (int64_t t = 0; t < 1000; ++t) {
    abar *= 1.0 - at_(betas, t);
    if (t % 97 == 0 || t == 999) {
      EXPECT_NEAR(at_(d.alphas_cumprod, t), abar, 1e-15);
      EXPECT_NEAR(at_(d.betas, t), at_(betas, t), 1e-14);  // recomputed from the products
    }
  }
  const double b1 = at_(d.betas, 1), ab1 = at_(d.alphas_cumprod, 1), ab0 = at_(d.alphas_cumprod, 0);
  EXPECT_NEAR(at_(d.posterior_variance, 1), b1 * (1 - ab0) / (1 - ab1), 1e-18);
  EXPECT_DOUBLE_EQ(at_(d.posterior_variance, 0), 0.0);
  // log variance at t = 0 is clipped to the value at t = 1.
  EXPECT_DOUBLE_EQ(at_(d.posterior_log_variance_clipped, 0), std::log(at_(d.posterior_variance, 1)));
  EXPECT_NEAR(at_(d.posterior_mean_coef1, 10),
              at_(d.betas, 10) * std::sqrt(at_(d.alphas_cumprod, 9)) / (1 - at_(d.alphas_cumprod, 10)), 1e-15);
}

TEST(DiffusionTables, RespacedBetasComeFromTheKeptCumulativeProducts) {
  GaussianDiffusion base({1000, "", true});
  GaussianDiffusion spaced({1000, "4", true});
  ASSERT_EQ(spaced.timestep_map(), (std::vector<int64_t>{0, 333, 666, 999}));
  EXPECT_NEAR(at_(spaced.betas, 0), 1 - at_(base.alphas_cumprod, 0), 1e-15);
  EXPECT_NEAR(at_(spaced.betas, 2), 1 - at_(base.alphas_cumprod, 666) / at_(base.alphas_cumprod, 333), 1e-12);
  EXPECT_NEAR(at_(spaced.alphas_cumprod, 3), at_(base.alphas_cumprod, 999), 1e-15);
  at::Tensor mapped = spaced.model_timesteps(at::tensor({3, 0, 1}, at::kLong));
  EXPECT_TRUE(at::equal(mapped, at::tensor({999, 0, 333}, at::kLong)));
}

TEST(DiffusionIdentities, QSampleAndInversions) {
  GaussianDiffusion d({1000, "", true});
  torch::manual_seed(0);
  at::Tensor x0 = at::randn({4, 2, 3, 3}), eps = at::randn({4, 2, 3, 3});
  at::Tensor t = at::tensor({0, 10, 500, 999}, at::kLong);
  at::Tensor xt = d.q_sample(x0, t, eps);
  for (int64_t i = 0; i < 4; ++i) {
    double ab = at_(d.alphas_cumprod, t[i].item<int64_t>());
    EXPECT_TRUE(at::allclose(xt[i], std::sqrt(ab) * x0[i] + std::sqrt(1 - ab) * eps[i], 1e-5, 1e-6));
  }
  EXPECT_TRUE(at::allclose(d.predict_xstart_from_eps(xt, t, eps), x0, 1e-3, 1e-3));
  EXPECT_TRUE(at::allclose(d.predict_eps_from_xstart(xt, t.clamp_min(1), d.predict_xstart_from_eps(xt, t.clamp_min(1), eps)),
                           eps, 1e-3, 1e-3));
  // The posterior mean of (x0, x_t) averages them with the documented coefficients.
  GaussianDiffusion::Posterior post = d.q_posterior(x0, xt, t);
  at::Tensor c1 = extract(d.posterior_mean_coef1, t, 4), c2 = extract(d.posterior_mean_coef2, t, 4);
  EXPECT_TRUE(at::allclose(post.mean, c1 * x0 + c2 * xt));
  EXPECT_TRUE(at::allclose(post.mean[0], x0[0], 1e-6, 1e-6));  // t = 0: the posterior mean is x0
}

TEST(DiffusionLoss, KlAndDecoderNllOnHandCheckableCases) {
  // KL(N(0, 1) || N(1, e^2)) = 0.5 * (-1 + 2 - 0 + e^-2 + e^-2).
  at::Tensor kl = normal_kl(at::zeros({1}), at::zeros({1}), at::ones({1}), at::full({1}, 2.0));
  EXPECT_NEAR(kl.item<double>(), 0.5 * (1 + 2 * std::exp(-2.0)), 1e-6);
  EXPECT_NEAR(normal_kl(at::full({1}, 0.3), at::full({1}, -1.0), at::full({1}, 0.3), at::full({1}, -1.0)).item<double>(),
              0.0, 1e-7);
  // Discretized Gaussian: x = 0 with mean 0, sigma 0.1 -> the bin [-1/255, 1/255].
  auto cdf = [](double v) { return 0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); };
  const double sigma = 0.1, half_bin = 1.0 / 255.0;
  double expected = std::log(cdf(half_bin / sigma) - cdf(-half_bin / sigma));
  at::Tensor ll = discretized_gaussian_log_likelihood(at::zeros({1}), at::zeros({1}), at::full({1}, std::log(sigma)));
  EXPECT_NEAR(ll.item<double>(), expected, 1e-5);
  // Edge bins: x = -1 uses the CDF up to -1 + 1/255.
  at::Tensor edge = discretized_gaussian_log_likelihood(at::full({1}, -1.0), at::full({1}, -0.9), at::full({1}, std::log(sigma)));
  EXPECT_NEAR(edge.item<double>(), std::log(cdf((-1.0 + half_bin + 0.9) / sigma)), 1e-5);
}

TEST(DiffusionLoss, HybridLossTermsOnATinyCase) {
  GaussianDiffusion d({1000, "", true});
  torch::manual_seed(1);
  at::Tensor x0 = at::rand({2, 1, 2, 2}) * 2 - 1, noise = at::randn({2, 1, 2, 2});
  at::Tensor t = at::tensor({0, 600}, at::kLong);
  at::Tensor xt = d.q_sample(x0, t, noise);
  at::Tensor eps = at::randn({2, 1, 2, 2}), v = at::rand({2, 1, 2, 2}) * 2 - 1;
  at::Tensor output = at::cat({eps, v}, 1).requires_grad_(true);
  GaussianDiffusion::Losses losses = d.training_losses(output, x0, xt, t, noise);
  EXPECT_TRUE(at::allclose(losses.mse, (noise - eps).pow(2).mean({1, 2, 3})));
  // t > 0: KL between the true posterior and the model's Gaussian, in bits.
  GaussianDiffusion::Posterior truth = d.q_posterior(x0, xt, t);
  GaussianDiffusion::Prediction p = d.p_mean_variance(output.detach(), xt, t);
  double kl1 = (normal_kl(truth.mean[1], truth.log_variance_clipped[1], p.mean[1], p.log_variance[1]).mean() / std::log(2.0))
                   .item<double>();
  EXPECT_NEAR(losses.vb[1].item<double>(), kl1, 1e-5);
  // t = 0: the decoder NLL of x0.
  double nll0 = (-discretized_gaussian_log_likelihood(x0[0], p.mean[0], 0.5 * p.log_variance[0]).mean() / std::log(2.0))
                    .item<double>();
  EXPECT_NEAR(losses.vb[0].item<double>(), nll0, 1e-5);
  EXPECT_TRUE(at::allclose(losses.loss, losses.mse + losses.vb));
  // VB reaches only the variance channel: the eps channel's gradient is the MSE's alone.
  losses.vb.sum().backward();
  EXPECT_EQ(output.grad().narrow(1, 0, 1).abs().max().item<float>(), 0.0f);
  EXPECT_GT(output.grad().narrow(1, 1, 1).abs().max().item<float>(), 0.0f);
}

// A denoiser that knows x0: predicts the exact noise of x_t.
DenoiserFn oracle(const GaussianDiffusion& base, const at::Tensor& x0, bool learned_variance) {
  return [&base, x0, learned_variance](const at::Tensor& x, const at::Tensor& model_t) {
    at::Tensor ab = extract(base.alphas_cumprod, model_t, 4);
    at::Tensor eps = (x - at::sqrt(ab) * x0) / at::sqrt(1 - ab);
    return learned_variance ? at::cat({eps, at::zeros_like(eps)}, 1) : eps;
  };
}

TEST(Samplers, DdimWithEtaZeroIsDeterministicAndInvertsTheForwardProcess) {
  GaussianDiffusion base({1000, "", true});
  GaussianDiffusion spaced({1000, "50", true});
  torch::manual_seed(2);
  at::Tensor x0 = at::rand({3, 2, 4, 4}) * 2 - 1;
  at::Tensor xT = at::randn({3, 2, 4, 4});
  SamplerOptions ddim;
  ddim.kind = SamplerKind::Ddim;
  at::Tensor a = sample_loop(spaced, oracle(base, x0, true), xT, ddim, at::make_generator<at::CPUGeneratorImpl>(1));
  at::Tensor b = sample_loop(spaced, oracle(base, x0, true), xT, ddim, at::make_generator<at::CPUGeneratorImpl>(2));
  EXPECT_TRUE(at::equal(a, b));  // eta = 0: the step noise has no effect
  EXPECT_TRUE(at::allclose(a, x0, 1e-3, 1e-3)) << (a - x0).abs().max().item<float>();
  // DDPM with the oracle also lands on x0 (its last step adds no noise), but is random on the way.
  SamplerOptions ddpm;
  at::Tensor c = sample_loop(spaced, oracle(base, x0, true), xT, ddpm, at::make_generator<at::CPUGeneratorImpl>(1));
  EXPECT_TRUE(at::allclose(c, x0, 1e-3, 1e-3));
}

TEST(Samplers, DdpmStepIsMeanPlusScaledNoise) {
  GaussianDiffusion d({1000, "10", true});
  torch::manual_seed(3);
  at::Tensor x = at::randn({2, 1, 2, 2}), z = at::randn({2, 1, 2, 2});
  at::Tensor out = at::cat({at::randn({2, 1, 2, 2}), at::rand({2, 1, 2, 2}) * 2 - 1}, 1);
  DenoiserFn fixed = [out](const at::Tensor&, const at::Tensor&) { return out; };
  at::Tensor t = at::full({2}, 5, at::kLong);
  GaussianDiffusion::Prediction p = d.p_mean_variance(out, x, t);
  at::Tensor step = sample_step(d, fixed, x, 5, SamplerOptions{}, z);
  EXPECT_TRUE(at::allclose(step, p.mean + at::exp(0.5 * p.log_variance) * z));
  at::Tensor last = sample_step(d, fixed, x, 0, SamplerOptions{}, z);
  EXPECT_TRUE(at::allclose(last, d.p_mean_variance(out, x, at::zeros({2}, at::kLong)).mean));
}

DiTConfig tiny_config() { return testing::small_dit_config(2, 32, 1, 3); }

TEST(Sampling, SameSeedSameSamplesAndInitNoiseReproduces) {
  torch::manual_seed(5);
  DiT model(tiny_config());
  perturb_trainable_weights(*model, 0.02);
  torch::NoGradGuard no_grad;
  SampleRequest request;
  request.sample.sampler = SamplerKind::Ddpm;
  request.sample.num = 3;
  request.sample.steps = 5;
  request.sample.cfg_scale = 2.0;
  request.seed = 7;
  SampleResult a = generate_samples(*model, request), b = generate_samples(*model, request);
  EXPECT_TRUE(at::equal(a.latents, b.latents));
  EXPECT_TRUE(at::equal(a.labels, b.labels));
  request.seed = 8;
  EXPECT_FALSE(at::equal(generate_samples(*model, request).latents, a.latents));
  // DDIM from given noise is a pure function of the noise.
  request.sample.sampler = SamplerKind::Ddim;
  request.init_noise = at::randn({3, 1, 8, 8});
  request.init_labels = at::tensor({0, 1, 2}, at::kLong);
  request.seed = 1;
  at::Tensor d1 = generate_samples(*model, request).latents;
  request.seed = 2;
  EXPECT_TRUE(at::equal(generate_samples(*model, request).latents, d1));
  at::Tensor images = to_uint8_images(at::tensor({-1.0f, 0.0f, 1.0f, 2.0f}).view({1, 1, 2, 2}));
  EXPECT_TRUE(at::equal(images.flatten(), at::tensor({0, 128, 255, 255}, at::kByte)));
}

TEST(Sampling, PerSampleSeedsGiveTheSameSamplesForAnyBatchSizeOrShare) {
  // SplitMix64's first output from 0 is 0xE220A8397B1DCDAF; a seed keeps its low 32 bits.
  EXPECT_EQ(per_sample_seed(0, 0), 0x7B1DCDAFULL);
  EXPECT_EQ(per_sample_seed(0, 5), 0x7B1DCDAFULL + 5);
  torch::manual_seed(5);
  DiT model(tiny_config());
  perturb_trainable_weights(*model, 0.02);
  SampleRequest request;
  request.sample.sampler = SamplerKind::Ddpm;
  request.sample.num = 50;
  request.sample.steps = 4;
  request.sample.cfg_scale = 2.0;
  request.seed = 11;
  request.sample.batch_size = 50;
  SampleResult all = generate_samples(*model, request);
  // Batches of 7 draw the same classes and noise; the model's small matrix products may
  // round differently in a batch of 7 rows than in one of 50 (OpenBLAS picks its kernels
  // by size), so the samples agree to float rounding.
  request.sample.batch_size = 7;
  SampleResult sevens = generate_samples(*model, request);
  EXPECT_TRUE(at::equal(sevens.labels, all.labels));
  // (LibTorch 1.13 with OpenBLAS: within 1e-5; LibTorch 2.6, whose attention kernel also
  // blocks by batch: within 1e-4.)
  EXPECT_TRUE(at::allclose(sevens.latents, all.latents, 1e-4, 5e-4))
      << (sevens.latents - all.latents).abs().max().item<float>();
  // A fixed model call size frees the batch size: calls of 1 sample, batches of 7 and 50,
  // bit for bit (and the same model, so within rounding of the whole-batch calls).
  request.sample.call_size = 1;
  SampleResult single = generate_samples(*model, request);
  request.sample.batch_size = 50;
  EXPECT_TRUE(at::equal(generate_samples(*model, request).latents, single.latents));
  EXPECT_TRUE(at::allclose(single.latents, all.latents, 1e-4, 5e-4));
  // Calls of 5: batches of 10 and 50 (multiples of 5) alike; a batch of 7 is refused.
  request.sample.call_size = 5;
  SampleResult fives = generate_samples(*model, request);
  request.sample.batch_size = 10;
  EXPECT_TRUE(at::equal(generate_samples(*model, request).latents, fives.latents));
  request.sample.batch_size = 7;
  EXPECT_THROW(generate_samples(*model, request), Error);
  request.sample.call_size = 0;
  // Samples 21..34 on their own (a rank's share of whole batches) are bit for bit rows
  // 21..34 of the set drawn in the same batches.
  request.sample.num = 14;
  request.first_index = 21;
  SampleResult share = generate_samples(*model, request);
  EXPECT_TRUE(at::equal(share.latents, sevens.latents.narrow(0, 21, 14)));
  EXPECT_TRUE(at::equal(share.labels, sevens.labels.narrow(0, 21, 14)));
  // Reference seeding draws from one stream in batch order: the batch size matters there.
  request.sample.num = 50;
  request.first_index = 0;
  request.seeding = SampleSeeding::Reference;
  SampleResult reference_sevens = generate_samples(*model, request);
  request.sample.batch_size = 50;
  EXPECT_FALSE(at::equal(generate_samples(*model, request).labels, reference_sevens.labels));
}

TEST(Sampling, RankSharesAreWholeBatchesCoveringEverySample) {
  // 10 samples in batches of 3 over 3 ranks: batches {0-2} {3-5} {6-8} {9}, 2 per rank.
  const std::vector<std::pair<int64_t, int64_t>> ten = {{0, 6}, {6, 4}, {10, 0}};
  // Batch 0 (all at once) over 3 ranks: one batch of ceil(10/3) per rank.
  const std::vector<std::pair<int64_t, int64_t>> whole = {{0, 4}, {4, 4}, {8, 2}};
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(row_share(10, 3, r, 3).first, ten[r].first);
    EXPECT_EQ(row_share(10, 3, r, 3).count, ten[r].second);
    EXPECT_EQ(row_share(10, 0, r, 3).first, whole[r].first);
    EXPECT_EQ(row_share(10, 0, r, 3).count, whole[r].second);
  }
  EXPECT_EQ(row_share(7, 0, 0, 1).count, 7);
  EXPECT_EQ(row_share(7, 50, 0, 1).count, 7);
}

TEST(AdamW, FirstStepMovesEachWeightByLrTimesSignOfItsGradient) {
  at::Tensor w = at::tensor({1.0f, -2.0f, 0.5f}).requires_grad_(true);
  AdamW opt({{"all", 0.1, {"w"}, {w}}}, AdamWOptions{});
  w.mutable_grad() = at::tensor({0.3f, -4.0f, 0.0f});
  opt.step();
  EXPECT_TRUE(at::allclose(w.detach(), at::tensor({0.9f, -1.9f, 0.5f}), 1e-5, 1e-6));
  StateDict state = opt.state_dict();
  EXPECT_EQ(state.at("w.step").item<int64_t>(), 1);
  EXPECT_TRUE(at::allclose(state.at("w.exp_avg"), at::tensor({0.03f, -0.4f, 0.0f})));
}

// The fused float32 update against the same optimizer on float64 parameters (ATen's ops in
// double, the update's maths to ~1e-16): weight decay, three steps, the moments too.
TEST(AdamW, FusedFloatStepsMatchTheUpdateInDouble) {
  torch::manual_seed(3);
  const at::Tensor w0 = at::randn({1000});
  at::Tensor w = w0.clone().requires_grad_(true);
  at::Tensor w64 = w0.to(at::kDouble).requires_grad_(true);
  AdamWOptions options;
  options.weight_decay = 0.1;
  AdamW fused({{"all", 1e-2, {"w"}, {w}}}, options);
  AdamW exact({{"all", 1e-2, {"w"}, {w64}}}, options);
  Ema ema({"w"}, {w}, 0.9);
  Ema ema64({"w"}, {w64}, 0.9);
  const int64_t version = w._version();
  for (int step = 0; step < 3; ++step) {
    const at::Tensor g = at::randn({1000}) * (step + 1);
    w.mutable_grad() = g.clone();
    w64.mutable_grad() = g.to(at::kDouble);
    fused.step();
    exact.step();
    ema.update();
    ema64.update();
  }
  EXPECT_TRUE(at::allclose(w.detach().to(at::kDouble), w64.detach(), 1e-6, 1e-7));
  for (const char* key : {"w.exp_avg", "w.exp_avg_sq"}) {
    EXPECT_TRUE(at::allclose(fused.state_dict().at(key).to(at::kDouble), exact.state_dict().at(key), 1e-6, 1e-6))
        << key;
  }
  EXPECT_TRUE(at::allclose(ema.state_dict().at("w").to(at::kDouble), ema64.state_dict().at("w"), 1e-6, 1e-7));
  EXPECT_GT((w.detach() - w0).abs().min().item<float>(), 0.0f);  // every weight moved
  EXPECT_GT(w._version(), version);  // written in place as far as autograd can tell
}

// Over-fits one fixed batch (fixed t and noise) for every method.
TEST(Training, EveryMethodOverfitsOneBatch) {
  GaussianDiffusion d({1000, "", true});
  torch::manual_seed(6);
  at::Tensor x0 = at::rand({8, 1, 8, 8}) * 2 - 1, noise = at::randn({8, 1, 8, 8});
  at::Tensor t = at::randint(0, 1000, {8}, at::kLong), y = at::randint(0, 3, {8}, at::kLong);
  at::Tensor xt = d.q_sample(x0, t, noise);
  for (const auto& method : method_names()) {
    torch::manual_seed(9);
    DiT model(tiny_config());
    perturb_trainable_weights(*model, 0.05);  // a "pre-trained" start
    MethodSetup setup = apply_method(*model, make_method_config(method));
    // Prompt tuning needs a larger step, as in the VPT paper's sweeps.
    const double lr = method == "vpt-deep" ? 5e-2 : 1e-2;
    AdamW opt(method_adamw_groups(setup, lr / (method == "difffit" ? 10 : 1)), AdamWOptions{});
    model->eval();  // no label dropout: the batch is fixed
    double first = 0, last = 0;
    for (int step = 0; step < 200; ++step) {
      opt.zero_grad();
      at::Tensor loss = d.training_losses(model->forward(xt, t, y), x0, xt, t, noise).loss.mean();
      if (step == 0) first = loss.item<double>();
      last = loss.item<double>();
      loss.backward();
      opt.step();
    }
    EXPECT_LT(last, first / 3) << method << ": " << first << " -> " << last;
  }
}

}  // namespace
}  // namespace difffit
