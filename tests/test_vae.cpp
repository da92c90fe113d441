// The SD autoencoder against an independent PyTorch implementation (tests/python/
// reference_vae.py, random weights), its weight loading (diffusers names, old attention
// names, errors naming keys), posterior sampling, and the latent pipeline: `difffit vae
// encode` -> the training loader -> a run that decodes and scores its samples.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/state_dict_file.h"
#include "common/stop_signals.h"
#include "datasets/image_loader.h"
#include "datasets/prepared_writer.h"
#include "test_support.h"
#include "worker/model/autoencoder_kl.h"
#include "worker/model/vae_loader.h"
#include "worker/run/run_experiment.h"
#include "worker/sample/sample_generator.h"
#include "worker/sample/samples_file.h"
#include "worker/vae/latent_decode.h"
#include "worker/vae/latent_encode.h"

namespace difffit {
namespace {

namespace fs = std::filesystem;
using testing::run_difffit;
using testing::run_python;
using testing::TempDir;

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

class VaeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    run_python("reference_vae.py", dir_->path().string());
    make_prepared_file(dir_->file("images.h5"), 12);
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string weights() { return dir_->file("vae/diffusion_pytorch_model.safetensors"); }
  static at::Tensor expected(const std::string& name) {
    return Hdf5Reader(dir_->file("vae.h5")).read(name, at::kFloat);
  }

  // n RGB 32x32 images in 3 classes: smooth patterns that differ per class and image.
  static void make_prepared_file(const std::string& path, int n) {
    PreparedMeta meta;
    meta.source = "test";
    meta.split = "train";
    meta.resolution = 32;
    meta.channels = 3;
    meta.class_names = {"red", "green", "blue"};
    PreparedWriter writer(path, meta);
    for (int i = 0; i < n; ++i) {
      RawImage image(32, 32, 3);
      for (int y = 0; y < 32; ++y) {
        for (int x = 0; x < 32; ++x) {
          for (int c = 0; c < 3; ++c) {
            image.row(y)[x * 3 + c] = static_cast<uint8_t>((x * (c + 1) * 7 + y * (i + 3) + (c == i % 3) * 120) % 256);
          }
        }
      }
      writer.add(image, i % 3, "img" + std::to_string(i));
    }
    writer.finish();
  }

  static TempDir* dir_;
};
TempDir* VaeTest::dir_ = nullptr;

TEST_F(VaeTest, ConfigIsReadFromShapesAndConfigJson) {
  LoadedVae vae = load_vae(weights());
  const VaeConfig& c = vae.model->config();
  EXPECT_EQ(c.block_out_channels, (std::vector<int64_t>{16, 32, 32, 32}));
  EXPECT_EQ(c.layers_per_block, 1);
  EXPECT_EQ(c.norm_num_groups, 8);  // from config.json: the weights do not fix it
  EXPECT_EQ(c.latent_channels, 4);
  EXPECT_EQ(c.downsample_factor(), 8);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);
  EXPECT_TRUE(c.same_shapes(VaeConfig::tiny()));
  EXPECT_EQ(vae.sha256, sha256_of_file(weights()));
  EXPECT_EQ(vae.sha256.size(), 64u);
  EXPECT_TRUE(vae.renamed.empty());
}

TEST_F(VaeTest, EncodeAndDecodeMatchTheReference) {
  LoadedVae vae = load_vae(weights());
  vae.model->run_options().batch_size = 1;  // batching must not change anything
  // Float32 round-off against the float64 reference (values up to ~2): measured 5e-7 .. 4e-6.
  VaePosterior p = vae.model->encode(expected("x"));
  EXPECT_LT(max_abs_diff(p.mean, expected("mean")), 5e-6);
  EXPECT_LT(max_abs_diff(p.logvar, expected("logvar")), 5e-6);
  VaePosterior rect = vae.model->encode(expected("x_rect"));  // H != W
  EXPECT_LT(max_abs_diff(rect.mean, expected("mean_rect")), 5e-6);
  EXPECT_LT(max_abs_diff(rect.logvar, expected("logvar_rect")), 5e-6);
  at::Tensor decoded = vae.model->decode(expected("sample"));
  EXPECT_LT(max_abs_diff(decoded, expected("decoded")), 5e-5);
  // The same noise as torch.randn(shape, generator=torch.Generator().manual_seed(7)).
  at::Generator g = seeded(7);
  EXPECT_LT(max_abs_diff(vae.model->sample_latents(expected("x"), g), expected("sample")), 2e-6);
}

TEST_F(VaeTest, FullSizeKeysAndShapesEqualTheReference) {
  AutoencoderKL sd(VaeConfig::stable_diffusion());
  std::ifstream in(dir_->file("sd_keys.txt"));
  std::string line;
  std::set<std::string> reference;
  while (std::getline(in, line)) reference.insert(line);
  std::set<std::string> ours;
  int64_t params = 0;
  for (const auto& item : sd->named_parameters()) {
    std::string text = item.key();
    for (int64_t d : item.value().sizes()) text += " " + std::to_string(d);
    ours.insert(text);
    params += item.value().numel();
  }
  EXPECT_EQ(ours, reference);
  EXPECT_EQ(params, 83653863);
  // Shapes through the whole SD network: (N, 3, 8s, 8s) <-> (N, 4, s, s).
  VaePosterior p = sd->encode(at::zeros({1, 3, 16, 16}));
  EXPECT_EQ(p.mean.sizes(), (at::IntArrayRef{1, 4, 2, 2}));
  EXPECT_EQ(sd->decode(p.mean).sizes(), (at::IntArrayRef{1, 3, 16, 16}));
}

TEST_F(VaeTest, EncodeDecodeShapes) {
  AutoencoderKL vae(VaeConfig::tiny());
  vae->run_options().batch_size = 2;
  at::Tensor x = at::rand({3, 3, 64, 48}) * 2 - 1;
  VaePosterior p = vae->encode(x);
  EXPECT_EQ(p.mean.sizes(), (at::IntArrayRef{3, 4, 8, 6}));
  EXPECT_EQ(p.logvar.sizes(), (at::IntArrayRef{3, 4, 8, 6}));
  EXPECT_EQ(vae->decode(at::randn({3, 4, 8, 6})).sizes(), (at::IntArrayRef{3, 3, 64, 48}));
  EXPECT_THROW(vae->encode(at::zeros({1, 3, 20, 16})), Error);  // not a multiple of 8
  EXPECT_THROW(vae->decode(at::zeros({1, 3, 2, 2})), Error);    // wrong latent channels
}

TEST_F(VaeTest, SamplingIsSeededAndHasThePosteriorMoments) {
  VaePosterior p{at::full({50, 4, 32, 32}, 0.5f), at::full({50, 4, 32, 32}, std::log(4.0f))};
  at::Generator a = seeded(11), b = seeded(11), c = seeded(12);
  at::Tensor first = sample_posterior(p, a, 0.18215);
  EXPECT_TRUE(at::equal(first, sample_posterior(p, b, 0.18215)));
  EXPECT_FALSE(at::equal(first, sample_posterior(p, c, 0.18215)));
  at::Tensor unscaled = first / 0.18215;
  EXPECT_NEAR(unscaled.mean().item<double>(), 0.5, 0.02);  // 204800 draws: std of the mean ~0.0044
  EXPECT_NEAR(unscaled.std().item<double>(), 2.0, 0.02);
  AutoencoderKL vae(VaeConfig::tiny());
  at::Generator g = seeded(1), h = seeded(1);
  at::Tensor x = at::rand({2, 3, 16, 16}) * 2 - 1;
  EXPECT_TRUE(at::equal(vae->sample_latents(x, g), vae->sample_latents(x, h)));
  // logvar is clamped to [-30, 20]: quant_conv made to output the constants (m, +-100).
  {
    torch::NoGradGuard no_grad;
    vae->quant_conv->weight.zero_();
    vae->quant_conv->bias.copy_(at::tensor({0.1f, 0.2f, 0.3f, 0.4f, 100.0f, -100.0f, 100.0f, 1.5f}));
  }
  VaePosterior clamped = vae->encode(x);
  EXPECT_FLOAT_EQ(clamped.mean[1][2][0][0].item<float>(), 0.3f);
  EXPECT_FLOAT_EQ(clamped.logvar[0][0][1][1].item<float>(), 20.0f);
  EXPECT_FLOAT_EQ(clamped.logvar[0][1][1][1].item<float>(), -30.0f);
  EXPECT_FLOAT_EQ(clamped.logvar[0][3][1][1].item<float>(), 1.5f);
}

TEST_F(VaeTest, OldAttentionNamesLoad) {
  VaeLoadOptions options;
  options.config_json = dir_->file("vae/config.json");  // legacy.bin has no config.json beside it
  LoadedVae old = load_vae(dir_->file("legacy.bin"), options);
  EXPECT_EQ(old.renamed.size(), 16u);  // query/key/value/proj_attn (weight, bias) in two mid blocks
  LoadedVae current = load_vae(weights());
  const at::Tensor x = expected("x");
  EXPECT_TRUE(at::equal(old.model->encode(x).mean, current.model->encode(x).mean));
  EXPECT_TRUE(at::equal(old.model->decode(expected("sample")), current.model->decode(expected("sample"))));
  StateDict renamed = rename_legacy_vae_keys({{"decoder.mid_block.attentions.0.proj_attn.weight", at::zeros({8, 8, 1, 1})},
                                              {"encoder.mid_block.attentions.0.key.bias", at::zeros({8})}});
  EXPECT_EQ(renamed.count("decoder.mid_block.attentions.0.to_out.0.weight"), 1u);
  EXPECT_EQ(renamed.at("decoder.mid_block.attentions.0.to_out.0.weight").sizes(), (at::IntArrayRef{8, 8}));
  EXPECT_EQ(renamed.count("encoder.mid_block.attentions.0.to_k.bias"), 1u);
}

TEST_F(VaeTest, BadWeightFilesNameTheKeys) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "bad");
  fs::copy_file(dir_->file("vae/config.json"), tmp.path() / "bad" / "config.json");
  const std::string bad = (tmp.path() / "bad" / "diffusion_pytorch_model.safetensors").string();
  auto message_of = [&](const StateDict& state) {
    save_safetensors(bad, state);
    try {
      load_vae(bad);
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 3);
      return std::string(e.what());
    }
    ADD_FAILURE() << "no error";
    return std::string();
  };
  const StateDict good = load_state_dict_file(weights());
  StateDict missing = good;
  missing.erase("encoder.mid_block.attentions.0.to_k.bias");
  std::string m = message_of(missing);
  EXPECT_NE(m.find("missing keys (1)"), std::string::npos) << m;
  EXPECT_NE(m.find("encoder.mid_block.attentions.0.to_k.bias [32]"), std::string::npos) << m;
  EXPECT_NE(m.find(bad), std::string::npos) << m;
  StateDict shaped = good;
  shaped["decoder.conv_out.bias"] = at::zeros({5});
  m = message_of(shaped);
  EXPECT_NE(m.find("decoder.conv_out.bias: file [5], model [3]"), std::string::npos) << m;
  StateDict extra = good;
  extra["encoder.down_blocks.0.extra.weight"] = at::zeros({2});
  m = message_of(extra);
  EXPECT_NE(m.find("unexpected keys (1)"), std::string::npos) << m;
  EXPECT_NE(m.find("encoder.down_blocks.0.extra.weight"), std::string::npos) << m;
  m = message_of({{"model.diffusion_model.x", at::zeros({1})}});
  EXPECT_NE(m.find("not an AutoencoderKL state dict"), std::string::npos) << m;
  // A config.json that is not JSON, or has a field of the wrong type: named.
  const fs::path config_json = tmp.path() / "bad" / "config.json";
  std::ofstream(config_json) << "{\"layers_per_block\": 1,";
  m = message_of(good);
  EXPECT_NE(m.find(config_json.string() + ": not a readable config.json"), std::string::npos) << m;
  std::ofstream(config_json) << "{\"norm_num_groups\": \"eight\"}";
  m = message_of(good);
  EXPECT_NE(m.find(config_json.string() + ": norm_num_groups: unexpected value \"eight\""), std::string::npos) << m;
  // Without config.json the SD default of 32 groups cannot split 16 channels: say what to do.
  fs::remove(config_json);
  m = message_of(good);
  EXPECT_NE(m.find("config.json"), std::string::npos) << m;
  VaeLoadOptions groups;
  groups.norm_num_groups = 8;
  EXPECT_NO_THROW(load_vae(bad, groups));
}

TEST_F(VaeTest, EncodeCommandWritesALatentDatasetTheLoaderReads) {
  TempDir tmp;
  const std::string latents = tmp.file("latents.h5");
  auto r = run_difffit("vae encode --vae " + weights() + " --input " + dir_->file("images.h5") + " --output " +
                       latents + " --batch-size 5 --seed 3 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Hdf5Reader file(latents);
  at::Tensor stored = file.read("latents", at::kFloat, 4), flipped = file.read("latents_flipped", at::kFloat, 4);
  EXPECT_EQ(stored.sizes(), (at::IntArrayRef{12, 4, 4, 4}));
  EXPECT_EQ(file.read_string_attribute("kind"), "latents");
  EXPECT_EQ(file.read_string_attribute("vae_sha256"), sha256_of_file(weights()));
  EXPECT_EQ(file.read_string_attribute("vae_file"), "diffusion_pytorch_model.safetensors");
  EXPECT_EQ(file.read_string_attribute("scaling_factor"), "0.18215");
  EXPECT_EQ(file.read_string_attribute("flip"), "both");
  EXPECT_EQ(file.read_int_attribute("latent_size"), 4);
  EXPECT_EQ(file.read_int_attribute("num_classes"), 3);
  EXPECT_EQ(file.read_strings("class_names"), (std::vector<std::string>{"red", "green", "blue"}));
  Hdf5Reader images(dir_->file("images.h5"));
  EXPECT_EQ(file.read_string_attribute("source_content_hash"), images.read_string_attribute("content_hash"));
  EXPECT_TRUE(at::equal(file.read("labels", at::kLong), images.read("labels", at::kLong)));

  // The same numbers in process: batches of 5, the noise of each batch then of its flipped copy.
  LoadedVae vae = load_vae(weights());
  at::Generator g = seeded(3);
  for (int64_t start = 0; start < 12; start += 5) {
    const int64_t n = std::min<int64_t>(5, 12 - start);
    at::Tensor x = images_to_model_space(images.read_rows("images", at::kByte, start, n));
    EXPECT_LT(max_abs_diff(vae.model->sample_latents(x, g), stored.narrow(0, start, n)), 1e-5);
    EXPECT_LT(max_abs_diff(vae.model->sample_latents(x.flip({3}), g), flipped.narrow(0, start, n)), 1e-5);
  }
  // [-1, 1] mapping as the loader's.
  at::Tensor px = images_to_model_space(at::tensor({0, 128, 255}, at::kByte).view({1, 1, 1, 3}));
  EXPECT_EQ(px.sizes(), (at::IntArrayRef{1, 3, 1, 1}));
  EXPECT_FLOAT_EQ(px[0][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(px[0][2].item<float>(), 1.0f);

  // The loader yields the stored rows; a flipped image takes its latents_flipped row.
  for (int64_t memory : {int64_t(4) << 30, int64_t(0)}) {  // in memory, then read per row
    LoaderOptions o;
    o.path = latents;
    o.batch_size = 4;
    o.seed = 9;
    o.max_memory_bytes = memory;
    ImageBatchLoader loader(o);
    EXPECT_TRUE(loader.latent());
    EXPECT_EQ(loader.in_memory(), memory > 0);
    EXPECT_EQ(loader.channels(), 4);
    EXPECT_EQ(loader.resolution(), 4);
    EXPECT_EQ(loader.num_classes(), 3);
    int flips = 0;
    for (int64_t step = 0; step < 6; ++step) {
      const LoaderCursor at_batch = loader.cursor();
      ImageBatch batch = loader.next();
      for (int64_t b = 0; b < batch.images.size(0); ++b) {
        const int64_t index = batch.indices[b].item<int64_t>();
        const bool flip = loader.flipped(at_batch.epoch, index);
        flips += flip;
        EXPECT_TRUE(at::equal(batch.images[b], (flip ? flipped : stored)[index]));
        EXPECT_EQ(batch.labels[b].item<int64_t>(), index % 3);
      }
    }
    EXPECT_GT(flips, 0);
    EXPECT_LT(flips, 24);
    // Exact resume.
    ImageBatchLoader a(o), b(o);
    a.next();
    a.next();
    b.seek(a.cursor());
    EXPECT_TRUE(at::equal(a.next().images, b.next().images));
  }

  // --flip none: no latents_flipped, and the loader does not flip.
  const std::string plain = tmp.file("plain.h5");
  r = run_difffit("vae encode --vae " + weights() + " --input " + dir_->file("images.h5") + " --output " + plain +
                  " --flip none --limit 8");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(Hdf5Reader(plain).has("latents_flipped"));
  LoaderOptions o;
  o.path = plain;
  o.batch_size = 8;
  ImageBatchLoader loader(o);
  at::Tensor rows = Hdf5Reader(plain).read("latents", at::kFloat);
  ImageBatch batch = loader.next();
  for (int64_t b = 0; b < 8; ++b) {
    const int64_t index = batch.indices[b].item<int64_t>();
    EXPECT_FALSE(loader.flipped(0, index));
    EXPECT_TRUE(at::equal(batch.images[b], rows[index]));
  }

  // decode: latents -> uint8 images with the labels.
  const std::string decoded = tmp.file("decoded.h5");
  r = run_difffit("vae decode --vae " + weights() + " --input " + latents + " --output " + decoded + " --batch-size 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Hdf5Reader out(decoded);
  at::Tensor pixels = out.read("images", at::kByte, 4);
  EXPECT_EQ(pixels.sizes(), (at::IntArrayRef{12, 32, 32, 3}));
  EXPECT_TRUE(at::equal(out.read("labels", at::kLong), images.read("labels", at::kLong)));
  at::Tensor same = decode_to_uint8(*vae.model, stored);
  EXPECT_LE(max_abs_diff(pixels, same), 1.0);  // round-off may cross a truncation boundary

  // Errors name the file.
  r = run_difffit("vae encode --vae " + weights() + " --input " + latents + " --output " + tmp.file("x.h5"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("already a latent dataset"), std::string::npos) << r.output;
  r = run_difffit("vae encode --vae " + tmp.file("none.safetensors") + " --input " + dir_->file("images.h5") +
                  " --output " + tmp.file("x.h5"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("none.safetensors"), std::string::npos) << r.output;
}

TEST_F(VaeTest, ARunOnLatentsDecodesAndScoresItsSamples) {
  TempDir tmp;
  const std::string latents = tmp.file("latents.h5");
  auto r = run_difffit("vae encode --vae " + weights() + " --input " + dir_->file("images.h5") + " --output " + latents);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ::setenv("DIFFFIT_CACHE_DIR", tmp.file("cache").c_str(), 1);
  ::unsetenv("DIFFFIT_VAE_WEIGHTS");
  const std::string yaml = tmp.file("latent.yaml");
  std::ofstream(yaml) << "name: latent\noutput_dir: " << tmp.path().string()
                      << "\nmodel: {name: custom, depth: 1, hidden_size: 32, num_heads: 2, patch_size: 2, input_size: 4,"
                         " in_channels: 4, num_classes: 3}\nmethod: {name: full}\ndata: {train: "
                      << latents << ", reference: " << dir_->file("images.h5")
                      << "}\ntrain: {steps: 3, batch_size: 4, checkpoint_every: 0}\n"
                         "sample: {num: 6, steps: 3, batch_size: 6}\neval: {feature_net: mini-cnn, feature_train: "
                      << dir_->file("images.h5") << "}\n";
  // Without a VAE: latents only.
  ExperimentConfig plain = load_experiment(yaml);
  EXPECT_EQ(plain.canonical_yaml().find("vae:"), std::string::npos);  // ids of runs without a VAE are unchanged
  RunOutcome no_vae = run_experiment(plain);
  Hdf5Reader latent_samples(no_vae.run_dir + "/samples.h5");
  EXPECT_FALSE(latent_samples.has("images"));
  EXPECT_FALSE(no_vae.score.has_value());
  EXPECT_FALSE(fs::exists(no_vae.run_dir + "/samples.png"));

  ExperimentConfig c = load_experiment(yaml, {"eval.vae=" + weights()});
  EXPECT_NE(c.run_id(), plain.run_id());
  RunOutcome run = run_experiment(c);
  Hdf5Reader samples(run.run_dir + "/samples.h5");
  at::Tensor pixels = samples.read("images", at::kByte, 4);
  EXPECT_EQ(pixels.sizes(), (at::IntArrayRef{6, 32, 32, 3}));
  EXPECT_EQ(samples.read_string_attribute("vae_sha256"), sha256_of_file(weights()));
  LoadedVae vae = load_vae(weights());
  EXPECT_LE(max_abs_diff(pixels, decode_to_uint8(*vae.model, samples.read("latents", at::kFloat))), 1.0);
  EXPECT_TRUE(fs::exists(run.run_dir + "/samples.png"));
  // A run stops at a decoded batch: the hook runs after each one, and what it throws ends
  // the decoding there.
  LatentDecoding decoding;
  decoding.vae = weights();
  decoding.batch_size = 2;
  int batches = 0;
  decoding.after_batch = [&] {
    if (++batches == 2) throw StoppedBySignal{SIGUSR2};
  };
  const SampleResult drawn{samples.read("latents", at::kFloat), samples.read("y", at::kLong)};
  EXPECT_THROW(samples_with_images(drawn, decoding), StoppedBySignal);
  EXPECT_EQ(batches, 2);  // of 3
  ASSERT_TRUE(run.score.has_value());
  EXPECT_EQ("FID" + run.score->metric_suffix, "FID (mini-CNN)");
  EXPECT_EQ(run.score->num_samples, 6);

  // Two ranks (the 6 samples drawn in one batch on rank 0): each decodes and scores 3;
  // rank 0 alone gathers all 6 images and writes them; the score is the one process's (the
  // weights differ by float summation order only).
  auto two = testing::run_command(testing::mpirun_difffit(2) + " run " + yaml + " --set eval.vae=" + weights() +
                                  " --set output_dir=" + tmp.file("two"));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("6 images -> 128-d features"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("over 2 ranks"), std::string::npos) << two.output;
  const ExperimentConfig two_config = load_experiment(yaml, {"eval.vae=" + weights(), "output_dir=" + tmp.file("two")});
  Hdf5Reader two_samples(two_config.run_dir() + "/samples.h5");
  EXPECT_LE(max_abs_diff(two_samples.read("images", at::kByte, 4),
                         decode_to_uint8(*vae.model, two_samples.read("latents", at::kFloat))),
            1.0);
  std::ifstream two_metrics(two_config.run_dir() + "/metrics.json");
  const nlohmann::json scored = nlohmann::json::parse(two_metrics);
  ASSERT_TRUE(run.score->fid.has_value());
  EXPECT_EQ(scored["fid_samples"], 6);
  EXPECT_NEAR(scored["fid"].get<double>(), *run.score->fid, 1e-3 * std::max(1.0, std::abs(*run.score->fid)));

  // A missing weight file is a config error naming the field.
  r = run_difffit("run " + yaml + " --set eval.vae=" + tmp.file("missing.safetensors"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("eval.vae"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace difffit
