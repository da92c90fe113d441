// Fine-tuning methods: what each trains, the paper's parameter counts, identity at
// initialisation, gradients, deltas and merging.
#include <ATen/ATen.h>
#include <limits>
#include <map>
#include <torch/types.h>

#include "common/error.h"
#include "common/safetensors.h"
#include "small_dit.h"
#include "test_support.h"
#include "worker/model/build_model.h"
#include "worker/model/checkpoint_loader.h"
#include "worker/model/delta.h"
#include "worker/model/peft_method.h"
#include "worker/model/autocast_guard.h"

namespace difffit {
namespace {

using testing::TempDir;

MethodSetup setup_for(const DiTConfig& config, const std::string& method,
                      const std::vector<std::pair<std::string, std::string>>& options = {}) {
  DiT model(config, /*initialize=*/false);
  return apply_method(*model, make_method_config(method, options));
}

DiTConfig food101_xl2() {
  DiTConfig c = dit_preset("DiT-XL/2");
  c.num_classes = 101;
  return c;
}

TEST(PeftCounts, XL2OnFood101MatchesThePapersParameterColumn) {
  const DiTConfig c = food101_xl2();
  const int64_t table = 102 * 1152, biases = 489632;
  EXPECT_EQ(setup_for(c, "bitfit").trainable_params, 607136);
  EXPECT_EQ(setup_for(c, "lora").trainable_params, 1149696);
  EXPECT_EQ(setup_for(c, "lora", {{"rank", "16"}}).trainable_params, 2181888);
  EXPECT_EQ(setup_for(c, "adaptformer").trainable_params, 4280320);
  EXPECT_EQ(setup_for(c, "adaptformer", {{"mode", "sequential"}}).trainable_params, 4280320);
  // Full fine-tuning trains everything but the fixed pos_embed: the paper's 673.8M.
  MethodSetup full = setup_for(c, "full");
  EXPECT_EQ(full.trainable_params, 673799072);
  EXPECT_EQ(full.total_params, 673799072 + 256 * 1152);
  // DiffFit default: gamma on both block branches of the first 14 blocks.
  EXPECT_EQ(setup_for(c, "difffit").trainable_params, biases + table + 14 * 2 * 1152);
  // The ports' placement adds gamma_qkv and gamma_proj: 14 x 6D gamma.
  EXPECT_EQ(setup_for(c, "difffit", {{"sites", "branches,qkv,proj"}}).trainable_params, biases + table + 96768);
  EXPECT_EQ(setup_for(c, "difffit", {{"blocks", "all"}}).trainable_params, biases + table + 28 * 2 * 1152);
  EXPECT_EQ(setup_for(c, "vpt-deep", {{"prompts", "10"}}).trainable_params, table + 28 * 10 * 1152);
  EXPECT_NEAR(setup_for(c, "bitfit").trainable_percent(), 0.09, 0.001);
}

DiTConfig small_config() { return testing::small_dit_config(4, 32, 4, 6); }

std::set<std::string> trainable_names(const DiTImpl& model) {
  std::set<std::string> names;
  for (const auto& item : model.named_parameters()) {
    if (item.value().requires_grad()) names.insert(item.key());
  }
  return names;
}

TEST(PeftTrainable, EachMethodTrainsExactlyItsTensors) {
  const DiTConfig c = small_config();
  {
    DiT m(c);
    apply_method(*m, make_method_config("bitfit"));
    for (const auto& item : m->named_parameters()) {
      const std::string& k = item.key();
      bool bias = k.size() > 5 && k.compare(k.size() - 5, 5, ".bias") == 0;
      EXPECT_EQ(item.value().requires_grad(), bias || k == "y_embedder.embedding_table.weight") << k;
    }
  }
  {
    DiT m(c);
    MethodSetup s = apply_method(*m, make_method_config("difffit"));
    auto names = trainable_names(*m);
    EXPECT_TRUE(names.count("blocks.0.gamma1") && names.count("blocks.1.gamma2"));
    EXPECT_FALSE(m->named_parameters().contains("blocks.2.gamma1"));  // first half only
    EXPECT_TRUE(names.count("blocks.3.attn.qkv.bias"));
    EXPECT_FALSE(names.count("blocks.0.attn.qkv.weight"));
    EXPECT_FALSE(names.count("pos_embed"));
    ASSERT_EQ(s.groups.size(), 2u);
    for (const auto& g : s.groups) EXPECT_DOUBLE_EQ(g.lr_mult, 10.0) << g.name;
    EXPECT_EQ(s.groups[1].name, "gamma");
    EXPECT_EQ(s.groups[1].names.size(), 4u);
  }
  {
    DiT m(c);
    apply_method(*m, make_method_config("lora", {{"rank", "3"}, {"targets", "qkv,fc2"}}));
    auto names = trainable_names(*m);
    EXPECT_TRUE(names.count("blocks.2.attn.qkv.lora_A") && names.count("blocks.2.mlp.fc2.lora_B"));
    EXPECT_EQ(m->named_parameters()["blocks.2.attn.qkv.lora_A"].sizes(), (at::IntArrayRef{3, 32}));
    EXPECT_EQ(names.size(), 4u * 4u + 1u);  // A and B on two layers of 4 blocks + class table
  }
  {
    DiT m(c);
    apply_method(*m, make_method_config("full"));
    auto names = trainable_names(*m);
    EXPECT_EQ(names.size(), m->parameters().size() - 1);  // everything but pos_embed
  }
  EXPECT_THROW(make_method_config("difffit", {{"rank", "4"}}), Error);
  EXPECT_THROW(make_method_config("lora", {{"rank", "zero"}}), Error);
  EXPECT_THROW(make_method_config("nope"), Error);
  EXPECT_THROW(make_method_config("difffit", {{"sites", "branches,elsewhere"}}), Error);
}

TEST(PeftBlocks, BlockRangesResolve) {
  EXPECT_EQ(BlockRange{"first-half"}.resolve(28).size(), 14u);
  EXPECT_EQ(BlockRange{"first:3"}.resolve(28), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(BlockRange{"last:2"}.resolve(28), (std::vector<int64_t>{26, 27}));
  EXPECT_EQ(BlockRange{"list:5,1"}.resolve(28), (std::vector<int64_t>{5, 1}));
  EXPECT_TRUE(BlockRange{"none"}.resolve(28).empty());
  EXPECT_THROW(BlockRange{"first:29"}.resolve(28), Error);
  EXPECT_THROW(BlockRange{"list:28"}.resolve(28), Error);
  EXPECT_THROW(BlockRange{"middle"}.resolve(28), Error);
}

// A base model with every weight random, standing in for a pre-trained DiT.
DiT pretrained(const DiTConfig& c, uint64_t seed = 11) {
  torch::manual_seed(seed);
  DiT m(c);
  torch::NoGradGuard no_grad;
  for (auto& item : m->named_parameters()) {
    if (item.key() != "pos_embed") item.value().normal_(0.0, 0.1);
  }
  return m;
}

struct Batch {
  at::Tensor x, t, y;
};
Batch batch() {
  torch::manual_seed(99);
  return {at::randn({3, 4, 8, 8}), at::tensor({0, 300, 999}, at::kLong), at::tensor({0, 5, 2}, at::kLong)};
}

TEST(PeftIdentity, MethodsStartAsTheBaseModel) {
  const DiTConfig c = small_config();
  Batch b = batch();
  DiT base = pretrained(c);
  base->eval();
  torch::NoGradGuard no_grad;
  at::Tensor want = base->forward(b.x, b.t, b.y);
  for (const std::string method : {"difffit", "lora", "adaptformer"}) {
    for (const std::string variant : {"", "sequential", "all-sites"}) {
      std::vector<std::pair<std::string, std::string>> options;
      if (variant == "sequential" && method != "adaptformer") continue;
      if (variant == "all-sites" && method != "difffit") continue;
      if (variant == "sequential") options = {{"mode", "sequential"}};
      if (variant == "all-sites") options = {{"sites", "branches,qkv,proj,patch_embed,time_embed,final_layer"}};
      DiT m = pretrained(c);
      apply_method(*m, make_method_config(method, options));
      m->eval();
      EXPECT_TRUE(at::equal(m->forward(b.x, b.t, b.y), want)) << method << " " << variant;
    }
  }
  // VPT prompts are attended to from the start, so VPT changes the output.
  DiT vpt = pretrained(c);
  apply_method(*vpt, make_method_config("vpt-deep", {{"prompts", "3"}}));
  vpt->eval();
  EXPECT_FALSE(at::allclose(vpt->forward(b.x, b.t, b.y), want));
}

TEST(PeftGradients, FrozenTensorsGetNoGradient) {
  const DiTConfig c = small_config();
  Batch b = batch();
  for (const auto& method : method_names()) {
    DiT m = pretrained(c);
    apply_method(*m, make_method_config(method));
    m->train();
    m->forward(b.x, b.t, b.y).square().mean().backward();
    for (const auto& item : m->named_parameters()) {
      const bool trained = item.value().requires_grad();
      EXPECT_EQ(item.value().grad().defined(), trained) << method << " " << item.key();
      const bool behind_zero = item.key().find("lora_A") != std::string::npos ||
                               item.key().find("adapter.down") != std::string::npos;
      if (trained && !behind_zero) {
        // (lora_A and the adapter's down layer see 0 gradient while their up side is 0.)
        EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << method << " " << item.key();
      }
    }
  }
}

// Activation checkpointing per block changes what is kept, not what is computed: every
// method's output and gradients match the plain backward (float32; and under bf16 autocast,
// whose state the recomputation repeats).
TEST(PeftGradients, CheckpointedBlocksGiveThePlainGradients) {
  const DiTConfig c = small_config();
  Batch b = batch();
  const at::Tensor drop = at::zeros({3}, at::kBool);
  for (const auto& method : method_names()) {
    for (const bool bf16 : {false, true}) {
      std::map<std::string, at::Tensor> grads[2];
      at::Tensor out[2];
      for (const bool checkpoint : {false, true}) {
        DiT m = pretrained(c);
        apply_method(*m, make_method_config(method));
        m->train();
        m->run_options().checkpoint_blocks = checkpoint;
        {
          AutocastGuard autocast(bf16, c10::DeviceType::CPU);
          out[checkpoint] = m->forward(b.x, b.t, b.y, drop).to(at::kFloat);
        }
        out[checkpoint].square().mean().backward();
        for (const auto& item : m->named_parameters()) {
          if (item.value().grad().defined()) grads[checkpoint][item.key()] = item.value().grad().clone();
        }
      }
      const std::string where = method + (bf16 ? " bf16" : " fp32");
      EXPECT_TRUE(at::equal(out[0], out[1])) << where;
      ASSERT_EQ(grads[0].size(), grads[1].size()) << where;
      for (const auto& [name, g] : grads[0]) {
        ASSERT_TRUE(grads[1].count(name)) << where << " " << name;
        const double tolerance = bf16 ? 1e-2 : 1e-6;  // c's gradient sums the blocks in another order
        EXPECT_TRUE(at::allclose(grads[1][name], g, tolerance, tolerance)) << where << " " << name;
      }
    }
  }
}

TEST(PeftDelta, SaveAndLoadRoundTripReproducesTheModel) {
  const DiTConfig c = small_config();
  Batch b = batch();
  TempDir dir;
  for (const auto& method : method_names()) {
    DiT tuned = pretrained(c);
    MethodSetup s = apply_method(*tuned, make_method_config(method));
    perturb_trainable_weights(*tuned, 0.05);  // stands in for fine-tuning
    const std::string path = dir.file(method + ".safetensors");
    save_delta(path, *tuned, s.config, {{"run_id", "abc"}});
    TensorFileMetadata meta;
    StateDict stored = load_safetensors(path, &meta);
    EXPECT_EQ(static_cast<int64_t>(stored.size()), static_cast<int64_t>(trainable_names(*tuned).size()));
    EXPECT_EQ(meta["run_id"], "abc");

    DiT restored = pretrained(c);  // the same base weights
    DeltaInfo info = load_delta(path, *restored);
    EXPECT_EQ(info.method.to_options_string(), s.config.to_options_string());
    tuned->eval();
    restored->eval();
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(at::equal(tuned->forward(b.x, b.t, b.y), restored->forward(b.x, b.t, b.y))) << method;
  }
  // A delta for another architecture is refused by name.
  DiTConfig other = c;
  other.hidden_size = 64;
  DiT wrong(other);
  EXPECT_THROW(load_delta(dir.file("difffit.safetensors"), *wrong), Error);

  // NaN in a delta would sample NaN images and merge a NaN model: named by tensor.
  TensorFileMetadata meta;
  StateDict stored = load_safetensors(dir.file("difffit.safetensors"), &meta);
  stored.begin()->second.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  save_safetensors(dir.file("nan.safetensors"), stored, meta);
  DiT base = pretrained(c);
  try {
    load_delta(dir.file("nan.safetensors"), *base);
    ADD_FAILURE() << "a NaN delta was loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(std::string(e.what()).find(stored.begin()->first + " holds NaN or infinite values"), std::string::npos)
        << e.what();
  }
  // Bad model metadata names the file.
  meta["model"] = "depth=abc";
  save_safetensors(dir.file("meta.safetensors"), load_safetensors(dir.file("difffit.safetensors")), meta);
  try {
    read_delta_info(dir.file("meta.safetensors"));
    ADD_FAILURE() << "bad metadata was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("meta.safetensors") + ": metadata: "), std::string::npos) << e.what();
  }
}

TEST(PeftMerge, MergedPlainModelEqualsThePeftModel) {
  const DiTConfig c = small_config();
  Batch b = batch();
  const std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> cases = {
      {"difffit", {{"sites", "branches,qkv,proj,patch_embed,time_embed,final_layer"}, {"blocks", "all"}}},
      {"lora", {{"targets", "qkv,proj,fc1,fc2,adaLN"}}},
      {"bitfit", {}},
      {"full", {}}};
  DiT base = pretrained(c);
  base->eval();
  for (const auto& [method, options] : cases) {
    DiT tuned = pretrained(c);
    apply_method(*tuned, make_method_config(method, options));
    perturb_trainable_weights(*tuned, 0.05);  // stands in for fine-tuning
    tuned->eval();
    DiT plain(c, false);
    load_dit_state_dict(*plain, merge_to_plain_state_dict(*tuned), LoadOptions{}, "merged");
    plain->eval();
    torch::NoGradGuard no_grad;
    at::Tensor a = tuned->forward(b.x, b.t, b.y), m = plain->forward(b.x, b.t, b.y);
    EXPECT_TRUE(at::allclose(a, m, 1e-4, 1e-5)) << method << " max diff " << (a - m).abs().max().item<float>();
    EXPECT_GT((a - base->forward(b.x, b.t, b.y)).abs().max().item<float>(), 1e-3) << method;
  }
  for (const std::string method : {"vpt-deep", "adaptformer"}) {
    DiT tuned = pretrained(c);
    apply_method(*tuned, make_method_config(method));
    EXPECT_THROW(merge_to_plain_state_dict(*tuned), Error) << method;
  }
}

}  // namespace
}  // namespace difffit
