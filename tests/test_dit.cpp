// DiT against the reference: names, shapes, counts, init, closed-form pieces, and
// outputs of an independent PyTorch implementation on the same weights.
#include <ATen/ATen.h>
#include <torch/types.h>

#include <cmath>
#include <fstream>
#include <map>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/state_dict_file.h"
#include "common/torch_checkpoint.h"
#include "small_dit.h"
#include "test_support.h"
#include "worker/model/checkpoint_loader.h"
#include "worker/model/dit.h"
#include "worker/model/fused_modulation.h"
#include "worker/model/gelu_tanh.h"
#include "worker/model/self_attention.h"

namespace difffit {
namespace {

using testing::TempDir;

// Parameter count from the architecture alone (independent of the module code).
int64_t expected_param_count(const DiTConfig& c) {
  const int64_t D = c.hidden_size, p = c.patch_size, H = c.mlp_hidden();
  int64_t patch = c.in_channels * p * p * D + D;
  int64_t pos = c.num_tokens() * D;
  int64_t time = 256 * D + D + D * D + D;
  int64_t labels = c.class_table_rows() * D;
  int64_t block = (D * 3 * D + 3 * D) + (D * D + D) + (D * H + H) + (H * D + D) + (D * 6 * D + 6 * D);
  int64_t final = (D * p * p * c.out_channels() + p * p * c.out_channels()) + (D * 2 * D + 2 * D);
  return patch + pos + time + labels + c.depth * block + final;
}

int64_t count_params(const DiTImpl& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

TEST(DiTPresets, ParameterCountsMatchTheReference) {
  // Values from the reference implementation's published sizes (pos_embed included).
  const std::map<std::string, int64_t> known = {
      {"DiT-XL/2", 675129632}, {"DiT-S/2", 32963360}, {"DiT-B/2", 130512416}, {"DiT-L/2", 458102816}};
  for (const auto& [name, count] : known) {
    DiT model(dit_preset(name), /*initialize=*/false);
    EXPECT_EQ(count_params(*model), count) << name;
  }
}

TEST(DiTPresets, EveryPresetHasTheRightShapesAndOutput) {
  for (const auto& name : dit_preset_names()) {
    DiTConfig config = dit_preset(name);
    config.input_size = 2 * config.patch_size;  // a 2x2 token grid keeps XL cheap
    DiT model(config, /*initialize=*/false);
    for (auto& p : model->parameters()) p.detach().zero_();
    EXPECT_EQ(count_params(*model), expected_param_count(config)) << name;
    torch::NoGradGuard no_grad;
    at::Tensor out = model->forward(at::randn({2, 4, config.input_size, config.input_size}),
                                    at::tensor({1, 500}, at::kLong), at::tensor({3, 7}, at::kLong));
    EXPECT_EQ(out.sizes(), (at::IntArrayRef{2, 8, config.input_size, config.input_size})) << name;
  }
  EXPECT_THROW(dit_preset("DiT-XXL/2"), Error);
  EXPECT_THROW(dit_preset("DiT-XL/3"), Error);
}

TEST(DiTKeys, XL2StateDictKeysAndShapesEqualTheOfficialCheckpoint) {
  DiT model(dit_preset("DiT-XL/2"), /*initialize=*/false);
  std::map<std::string, std::vector<int64_t>> expected = {
      {"x_embedder.proj.weight", {1152, 4, 2, 2}},
      {"x_embedder.proj.bias", {1152}},
      {"pos_embed", {1, 256, 1152}},
      {"t_embedder.mlp.0.weight", {1152, 256}},
      {"t_embedder.mlp.0.bias", {1152}},
      {"t_embedder.mlp.2.weight", {1152, 1152}},
      {"t_embedder.mlp.2.bias", {1152}},
      {"y_embedder.embedding_table.weight", {1001, 1152}},
      {"final_layer.linear.weight", {32, 1152}},
      {"final_layer.linear.bias", {32}},
      {"final_layer.adaLN_modulation.1.weight", {2304, 1152}},
      {"final_layer.adaLN_modulation.1.bias", {2304}},
  };
  for (int i = 0; i < 28; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    expected[b + "attn.qkv.weight"] = {3456, 1152};
    expected[b + "attn.qkv.bias"] = {3456};
    expected[b + "attn.proj.weight"] = {1152, 1152};
    expected[b + "attn.proj.bias"] = {1152};
    expected[b + "mlp.fc1.weight"] = {4608, 1152};
    expected[b + "mlp.fc1.bias"] = {4608};
    expected[b + "mlp.fc2.weight"] = {1152, 4608};
    expected[b + "mlp.fc2.bias"] = {1152};
    expected[b + "adaLN_modulation.1.weight"] = {6912, 1152};
    expected[b + "adaLN_modulation.1.bias"] = {6912};
  }
  std::map<std::string, std::vector<int64_t>> actual;
  for (const auto& item : model->named_parameters()) actual[item.key()] = item.value().sizes().vec();
  for (const auto& item : model->named_buffers()) actual[item.key()] = item.value().sizes().vec();
  EXPECT_EQ(actual.size(), 292u);
  EXPECT_EQ(actual, expected);
}

DiTConfig small_config() { return testing::small_dit_config(2, 64, 4, 5); }

TEST(DiTInit, OutputIsZeroAtInitialisation) {
  torch::manual_seed(0);
  DiT model(small_config());
  at::Tensor out = model->forward(at::randn({3, 4, 8, 8}), at::tensor({0, 10, 999}, at::kLong),
                                  at::tensor({0, 4, 5}, at::kLong));
  EXPECT_EQ(out.abs().max().item<float>(), 0.0f);
  // ... while the rest of the network is not zero.
  EXPECT_GT(model->blocks[0]->named_parameters()["attn.qkv.weight"].abs().max().item<float>(), 0.0f);
  EXPECT_NEAR(model->y_embedder->embedding_table->weight.std().item<double>(), 0.02, 0.003);
}

// The MLP activation in float64: 0.5 x (1 + tanh(u)) written as x / (1 + exp(-2u)), the
// same function without the cancellation of 1 + tanh(u) for x < 0.
at::Tensor gelu_tanh_f64(const at::Tensor& x) {
  at::Tensor u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3));
  return x / (1 + at::exp(-2 * u));
}

TEST(DiTGelu, KernelsMatchTheTanhFormulaComputedInDouble) {
  at::Tensor x = at::linspace(-12, 12, 240001, at::kDouble);
  at::Tensor xf = x.to(at::kFloat).requires_grad_(true);
  at::Tensor y = gelu_tanh(xf);
  at::Tensor x64 = xf.detach().to(at::kDouble).requires_grad_(true);
  at::Tensor want = gelu_tanh_f64(x64);
  // A few float32 ulp of the exact value, widened for x < 0 where y ~ x exp(-2u) turns the
  // few ulp by which float32 rounds u into |2u| times as many, and 1e-30 where it underflows.
  const double eps = 1.2e-7;
  at::Tensor u = std::sqrt(2.0 / M_PI) * (x64.detach() + 0.044715 * x64.detach().pow(3));
  at::Tensor err = (y.detach().to(at::kDouble) - want.detach()).abs();
  at::Tensor bound = (4 + 6 * u.abs()) * eps * want.detach().abs() + 1e-30;
  EXPECT_TRUE((err <= bound).all().item<bool>()) << (err - bound).max().item<double>();
  // ATen's float32 formula loses digits where 1 + tanh(u) cancels (x < 0), not ours.
  EXPECT_TRUE(at::allclose(y, at::gelu(xf.detach(), "tanh"), 1e-5, 1e-6));

  at::Tensor g = at::randn({x.numel()}, at::kFloat);
  y.backward(g);
  want.backward(g.to(at::kDouble));
  at::Tensor gerr = (xf.grad().to(at::kDouble) - x64.grad()).abs();
  at::Tensor gbound = 8 * 1.2e-7 * (g.to(at::kDouble).abs() * (1 + x64.detach().abs())) + 1e-12;
  EXPECT_TRUE((gerr <= gbound).all().item<bool>()) << (gerr - gbound).max().item<double>();
}

TEST(DiTGelu, Bfloat16IsTheFloat32ResultRoundedAndOtherTypesUseATen) {
  at::Tensor x = (at::randn({7, 33}) * 4).to(at::kBFloat16).requires_grad_(true);
  at::Tensor y = gelu_tanh(x);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  at::Tensor xf = x.detach().to(at::kFloat).requires_grad_(true);
  at::Tensor yf = gelu_tanh(xf);
  EXPECT_TRUE(at::equal(y, yf.to(at::kBFloat16)));
  at::Tensor g = at::randn({7, 33}).to(at::kBFloat16);
  y.backward(g);
  yf.backward(g.to(at::kFloat));
  EXPECT_TRUE(at::equal(x.grad(), xf.grad().to(at::kBFloat16)));
  // A non-contiguous view gives the values of its contiguous copy.
  at::Tensor t = at::randn({16, 9}).t();
  EXPECT_TRUE(at::equal(gelu_tanh(t), gelu_tanh(t.contiguous())));
  at::Tensor d = at::randn({5}, at::kDouble);
  EXPECT_TRUE(at::equal(gelu_tanh(d), at::gelu(d, "tanh")));
}

// Attention by its definition in float64: heads split from qkv (B, N, 3, H, D), softmax of
// q k^T / sqrt(D), times v, heads joined again.
at::Tensor attention_f64(const at::Tensor& qkv, int64_t heads) {
  const int64_t b = qkv.size(0), n = qkv.size(1), c = qkv.size(2) / 3;
  auto parts = qkv.reshape({b, n, 3, heads, c / heads}).permute({2, 0, 3, 1, 4}).unbind(0);
  at::Tensor p = at::matmul(parts[0], parts[1].transpose(-2, -1)).div(std::sqrt(double(c / heads))).softmax(-1);
  return at::matmul(p, parts[2]).transpose(1, 2).reshape({b, n, c});
}

TEST(DiTAttention, MatchesTheDefinitionAndItsGradient) {
  torch::manual_seed(5);
  // float32 runs difffit's CPU kernel (with and without gradients), float64 ATen's path.
  for (const int64_t tokens : {20, 300}) {
    for (const auto dtype : {at::kFloat, at::kDouble}) {
      at::Tensor qkv = at::randn({3, tokens, 3 * 24}, dtype).requires_grad_(true);
      at::Tensor out = self_attention(qkv, 4);
      at::Tensor q64 = qkv.detach().to(at::kDouble).requires_grad_(true);
      at::Tensor want = attention_f64(q64, 4);
      EXPECT_TRUE(at::allclose(out.to(at::kDouble), want, 1e-5, 1e-5)) << tokens << " " << dtype;
      at::Tensor g = at::randn(out.sizes(), dtype);
      out.backward(g);
      want.backward(g.to(at::kDouble));
      EXPECT_TRUE(at::allclose(qkv.grad().to(at::kDouble), q64.grad(), 1e-5, 1e-5)) << tokens << " " << dtype;
      torch::NoGradGuard no_grad;
      EXPECT_TRUE(at::allclose(self_attention(qkv.detach(), 4).to(at::kDouble), want, 1e-5, 1e-5)) << tokens;
    }
  }
  // A strided qkv (a view) gives the attention of its contiguous copy; bf16 comes back as bf16.
  at::Tensor wide = at::randn({2, 9, 100});
  at::Tensor view = wide.narrow(2, 10, 72);
  EXPECT_TRUE(at::allclose(self_attention(view, 3), self_attention(view.contiguous(), 3)));
  at::Tensor bf = self_attention(view.to(at::kBFloat16), 3);
  EXPECT_EQ(bf.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::allclose(bf.to(at::kFloat), self_attention(view, 3), 5e-2, 5e-2));
}

// The fused adaLN steps against the reference's expressions through ATen's autograd:
// forward bit for bit, gradients to float rounding. shift/scale/gate are chunks (views) of
// one (B, 6C) tensor, as the block makes them.
TEST(DiTFusedModulation, ForwardIsTheReferenceBitForBitAndGradientsMatch) {
  torch::manual_seed(8);
  const int64_t B = 3, N = 10, C = 16;
  at::Tensor x0 = at::randn({B, N, C}) * 3 + 1, mod0 = at::randn({B, 6 * C}), a0 = at::randn({B, N, C});
  const at::Tensor g = at::randn({B, N, C});
  for (const bool with_gamma : {false, true}) {
    at::Tensor gamma0 = with_gamma ? at::rand({C}) + 0.5 : at::Tensor();
    at::Tensor out[2];
    std::vector<at::Tensor> grads[2];
    for (const bool fused : {false, true}) {
      at::Tensor x = x0.clone().requires_grad_(true), mod = mod0.clone().requires_grad_(true);
      at::Tensor a = a0.clone().requires_grad_(true);
      at::Tensor gamma = with_gamma ? gamma0.clone().requires_grad_(true) : at::Tensor();
      auto m = mod.chunk(6, 1);
      at::Tensor h, y;
      if (fused) {
        h = norm_modulate(x, m[0], m[1]);
        y = gated_residual(x, m[2], a * h, gamma);
      } else {
        h = at::layer_norm(x, {C}, {}, {}, 1e-6) * (1 + m[1].unsqueeze(1)) + m[0].unsqueeze(1);
        at::Tensor branch = m[2].unsqueeze(1) * (a * h);
        if (with_gamma) branch = branch * gamma;
        y = x + branch;
      }
      out[fused] = y.detach();
      y.backward(g);
      grads[fused] = {x.grad(), mod.grad(), a.grad()};
      if (with_gamma) grads[fused].push_back(gamma.grad());
    }
    EXPECT_TRUE(at::equal(out[0], out[1])) << "gamma " << with_gamma;
    for (size_t i = 0; i < grads[0].size(); ++i) {
      EXPECT_TRUE(at::allclose(grads[1][i], grads[0][i], 1e-5, 1e-5))
          << "gamma " << with_gamma << " input " << i << " " << (grads[1][i] - grads[0][i]).abs().max().item<float>();
    }
  }
  // Shapes the kernels do not index (a shift shared by the batch) take the ATen expression.
  at::Tensor shift = at::randn({1, C}), scale = at::randn({1, C});
  at::Tensor want = at::layer_norm(x0, {C}, {}, {}, 1e-6) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
  EXPECT_TRUE(at::equal(norm_modulate(x0, shift, scale), want));
}

TEST(DiTEmbeddings, PosEmbedFollowsTheColumnFirstSinCosFormula) {
  const int64_t D = 16, G = 5, Q = D / 4;
  at::Tensor pe = sincos_pos_embed_2d(D, G);
  ASSERT_EQ(pe.sizes(), (at::IntArrayRef{G * G, D}));
  for (int64_t i : {0, 2, 4}) {
    for (int64_t j : {0, 1, 3}) {
      const int64_t n = i * G + j;
      for (int64_t k = 0; k < Q; ++k) {
        double w = std::pow(10000.0, -static_cast<double>(k) / Q);
        EXPECT_NEAR(pe[n][k].item<float>(), std::sin(j * w), 1e-6);
        EXPECT_NEAR(pe[n][Q + k].item<float>(), std::cos(j * w), 1e-6);
        EXPECT_NEAR(pe[n][2 * Q + k].item<float>(), std::sin(i * w), 1e-6);
        EXPECT_NEAR(pe[n][3 * Q + k].item<float>(), std::cos(i * w), 1e-6);
      }
    }
  }
  // A coordinate scale of 1/2 on a 2x grid lands the odd... even rows on the original grid.
  at::Tensor doubled = sincos_pos_embed_2d(D, 2 * G, 0.5);
  EXPECT_TRUE(at::allclose(doubled[2 * (2 * G) + 4], pe[1 * G + 2], 1e-6, 1e-6));
}

TEST(DiTEmbeddings, TimestepFeaturesAreCosThenSin) {
  at::Tensor t = at::tensor({0, 1, 250, 999}, at::kLong);
  at::Tensor emb = timestep_frequency_embedding(t, 256);
  ASSERT_EQ(emb.sizes(), (at::IntArrayRef{4, 256}));
  for (int64_t r = 0; r < 4; ++r) {
    double tv = static_cast<double>(t[r].item<int64_t>());
    for (int64_t k : {0, 1, 64, 127}) {
      double f = std::exp(-std::log(10000.0) * k / 128.0);
      EXPECT_NEAR(emb[r][k].item<float>(), std::cos(tv * f), 2e-4 * (1 + tv * f));
      EXPECT_NEAR(emb[r][128 + k].item<float>(), std::sin(tv * f), 2e-4 * (1 + tv * f));
    }
  }
}

// Random non-zero weights so every path contributes.
void randomise(DiTImpl& model, double std = 0.05) {
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    if (item.key() != "pos_embed") item.value().normal_(0.0, std);
  }
}

TEST(DiTCfg, GuidesOnlyTheDocumentedChannels) {
  torch::manual_seed(3);
  DiT model(small_config());
  randomise(*model);
  model->eval();
  torch::NoGradGuard no_grad;
  at::Tensor x = at::randn({2, 4, 8, 8});
  at::Tensor z = at::cat({x, x});
  at::Tensor t = at::tensor({5, 700, 5, 700}, at::kLong);
  at::Tensor y = at::tensor({1, 3, 5, 5}, at::kLong);
  at::Tensor plain = model->forward(z, t, y);
  at::Tensor cond = plain.narrow(0, 0, 2), uncond = plain.narrow(0, 2, 2);
  const double s = 4.0;
  at::Tensor mixed = uncond + s * (cond - uncond);

  at::Tensor ref = model->forward_with_cfg(z, t, y, s, CfgChannels::Reference);
  EXPECT_TRUE(at::allclose(ref.narrow(0, 0, 2).narrow(1, 0, 3), mixed.narrow(1, 0, 3), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(ref.narrow(0, 2, 2).narrow(1, 0, 3), mixed.narrow(1, 0, 3), 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(ref.narrow(1, 3, 5), plain.narrow(1, 3, 5)));  // channel 3 and variance unguided
  EXPECT_FALSE(at::allclose(plain.narrow(1, 3, 1), at::cat({mixed, mixed}).narrow(1, 3, 1)));

  at::Tensor eps = model->forward_with_cfg(z, t, y, s, CfgChannels::Eps);
  EXPECT_TRUE(at::allclose(eps.narrow(0, 0, 2).narrow(1, 0, 4), mixed.narrow(1, 0, 4), 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(eps.narrow(1, 4, 4), plain.narrow(1, 4, 4)));
  at::Tensor all = model->forward_with_cfg(z, t, y, s, CfgChannels::All);
  EXPECT_TRUE(at::allclose(all.narrow(0, 0, 2), mixed, 1e-5, 1e-6));
}

TEST(DiTLabels, TrainingModeDropsLabelsToTheNullClass) {
  DiTConfig config = small_config();
  config.class_dropout_prob = 0.999999;
  torch::manual_seed(4);
  DiT model(config);
  randomise(*model);
  at::Tensor x = at::randn({3, 4, 8, 8});
  at::Tensor t = at::tensor({1, 2, 3}, at::kLong);
  torch::NoGradGuard no_grad;
  model->eval();
  at::Tensor null_out = model->forward(x, t, at::full({3}, 5, at::kLong));
  at::Tensor labelled = model->forward(x, t, at::tensor({0, 1, 2}, at::kLong));
  model->train();
  at::Tensor dropped = model->forward(x, t, at::tensor({0, 1, 2}, at::kLong));
  EXPECT_TRUE(at::allclose(dropped, null_out));
  EXPECT_FALSE(at::allclose(labelled, null_out));
}

class DiTReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    testing::run_python("make_dit_fixture.py", dir_->path().string() + " 2 64 4 2 8 4 7 true 4.0");
  }
  static void TearDownTestSuite() { delete dir_; }
  static DiTConfig config() {
    DiTConfig c = small_config();
    c.num_classes = 7;
    return c;
  }
  static TempDir* dir_;
};
TempDir* DiTReference::dir_ = nullptr;

TEST_F(DiTReference, ForwardMatchesThePyTorchReferenceOnAnOfficialFormatCheckpoint) {
  DiT model(config(), /*initialize=*/false);
  LoadReport report = load_dit_checkpoint(*model, dir_->file("model.pt"));
  EXPECT_EQ(report.loaded, model->parameters().size());
  model->eval();
  Hdf5Reader in(dir_->file("inputs.h5")), expected(dir_->file("expected.h5"));
  at::Tensor x = in.read("x", at::kFloat), t = in.read("t", at::kLong), y = in.read("y", at::kLong);
  torch::NoGradGuard no_grad;
  at::Tensor out = model->forward(x, t, y);
  at::Tensor want = expected.read("out", at::kFloat);
  EXPECT_GT(want.abs().max().item<float>(), 0.1f);  // a meaningful, non-zero comparison
  EXPECT_TRUE(at::allclose(out, want, 1e-4, 1e-5)) << (out - want).abs().max().item<float>();
  at::Tensor null = at::full_like(y, 7);
  at::Tensor guided = model->forward_with_cfg(at::cat({x, x}), at::cat({t, t}), at::cat({y, null}), 4.0);
  at::Tensor want_cfg = expected.read("out_cfg", at::kFloat);
  EXPECT_TRUE(at::allclose(guided.narrow(0, 0, 3), want_cfg, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(model->pos_embed.squeeze(0), expected.read("pos_embed", at::kFloat).squeeze(0), 0, 1e-7));
}

TEST_F(DiTReference, LoadsTheEmaWeightsOfATrainingCheckpoint) {
  DiT a(config(), false), b(config(), false);
  load_dit_checkpoint(*a, dir_->file("model.pt"));
  load_dit_checkpoint(*b, dir_->file("train.pt"));  // auto selects "ema"
  for (const auto& item : a->named_parameters()) {
    EXPECT_TRUE(at::equal(item.value(), b->named_parameters()[item.key()])) << item.key();
  }
}

TEST_F(DiTReference, AWrongClassCountIsReportedByKeyAndFile) {
  DiTConfig wrong = config();
  wrong.num_classes = 9;
  DiT model(wrong, false);
  try {
    load_dit_checkpoint(*model, dir_->file("model.pt"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(what.find("model.pt"), std::string::npos) << what;
    EXPECT_NE(what.find("y_embedder.embedding_table.weight: checkpoint [8, 64], model [10, 64]"),
              std::string::npos) << what;
  }
  // Fine-tuning to a new class count re-initialises the table instead.
  LoadOptions options;
  options.reinit_class_table = true;
  LoadReport report = load_dit_checkpoint(*model, dir_->file("model.pt"), options);
  EXPECT_EQ(report.reinitialised, std::vector<std::string>{"y_embedder.embedding_table.weight"});
}

TEST_F(DiTReference, MissingAndUnexpectedKeysAreListed) {
  DiT model(config(), false);
  StateDict state = dit_reference_state_dict(*model);
  state.erase("blocks.1.mlp.fc2.bias");
  state["blocks.1.extra.weight"] = at::zeros({2});
  try {
    load_dit_state_dict(*model, state, LoadOptions{}, "edited.pt");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("missing keys (1):\n    blocks.1.mlp.fc2.bias [64]"), std::string::npos) << what;
    EXPECT_NE(what.find("unexpected keys (1):\n    blocks.1.extra.weight [2]"), std::string::npos) << what;
  }
  // Integers of the right shape where the model has floats: named, not converted.
  state = dit_reference_state_dict(*model);
  state["blocks.0.attn.qkv.bias"] = at::zeros(state["blocks.0.attn.qkv.bias"].sizes(), at::kInt);
  try {
    load_dit_state_dict(*model, state, LoadOptions{}, "integers.safetensors");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(what.find("integers.safetensors: checkpoint does not match"), std::string::npos) << what;
    EXPECT_NE(what.find("not floating point (1):\n    blocks.0.attn.qkv.bias: file Int"), std::string::npos) << what;
  }
}

TEST_F(DiTReference, CorruptAndTruncatedCheckpointsGiveADataError) {
  TempDir tmp;
  {
    std::ofstream(tmp.file("garbage.pt")) << "this is not a checkpoint";
  }
  DiT model(config(), false);
  try {
    load_dit_checkpoint(*model, tmp.file("garbage.pt"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(std::string(e.what()).find("garbage.pt"), std::string::npos);
  }
  std::filesystem::copy_file(dir_->file("model.pt"), tmp.file("cut.pt"));
  std::filesystem::resize_file(tmp.file("cut.pt"), std::filesystem::file_size(tmp.file("cut.pt")) / 2);
  try {
    load_dit_checkpoint(*model, tmp.file("cut.pt"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.pt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_dit_checkpoint(*model, tmp.file("absent.pt")), Error);
}

// The resolution transfer: the checkpoint of a 4x4-token model loaded into the same model at
// twice the input size. pos_embed is rebuilt from the sin-cos formula (positions i, j or, aligned,
// i * G_old/G_new, j * G_old/G_new; values from the independent NumPy formula); every other
// tensor is the checkpoint's, bit for bit.
TEST_F(DiTReference, TwiceTheInputSizeRebuildsOnlyPosEmbedFromTheFormulaAtScaledCoordinates) {
  const StateDict file = load_state_dict_file(dir_->file("model.pt"));
  Hdf5Reader expected(dir_->file("expected.h5"));
  for (double scale : {1.0, 0.5}) {
    DiTConfig bigger = config();
    bigger.input_size = 16;
    bigger.pos_embed_scale = scale;
    DiT model(bigger, /*initialize=*/false);
    LoadReport report = load_dit_checkpoint(*model, dir_->file("model.pt"));
    EXPECT_EQ(report.rebuilt, std::vector<std::string>{"pos_embed"});
    EXPECT_EQ(report.loaded + 1, model->parameters().size());
    const at::Tensor want = expected.read(scale == 1.0 ? "pos_embed_2x" : "pos_embed_2x_aligned", at::kFloat);
    ASSERT_EQ(want.size(0), 64);
    EXPECT_TRUE(at::allclose(model->pos_embed[0], want, 1e-6, 1e-6)) << "scale " << scale;
    int64_t compared = 0;
    for (const auto& [name, tensor] : dit_reference_state_dict(*model)) {
      if (name == "pos_embed") continue;
      ASSERT_TRUE(file.count(name)) << name;
      EXPECT_TRUE(at::equal(tensor, file.at(name))) << name;
      ++compared;
    }
    EXPECT_EQ(compared + 1, static_cast<int64_t>(file.size())) << "checkpoint tensors compared";
  }
}

TEST_F(DiTReference, PosEmbedIsRebuiltForAnotherInputSize) {
  DiTConfig bigger = config();
  bigger.input_size = 16;
  bigger.pos_embed_scale = 0.5;  // the new 8x8 grid spans the old 4x4 grid's range
  DiT model(bigger, false);
  LoadReport report = load_dit_checkpoint(*model, dir_->file("model.pt"));
  EXPECT_EQ(report.rebuilt, std::vector<std::string>{"pos_embed"});
  at::Tensor old_pe = sincos_pos_embed_2d(64, 4);
  // Token (2,4) of the 8x8 grid sits at coordinate (1,2) of the 4x4 grid.
  EXPECT_TRUE(at::allclose(model->pos_embed[0][2 * 8 + 4], old_pe[1 * 4 + 2], 1e-6, 1e-6));
}

}  // namespace
}  // namespace difffit
