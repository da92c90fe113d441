// The difffit binary as a user meets it: outputs, exit codes and messages.
#include <ATen/ATen.h>
#include <sys/stat.h>
#include <torch/cuda.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "common/hdf5_tensors.h"
#include "sweep_fixture.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::run_difffit;
using testing::TempDir;

const char* kSmallModel =
    " --model custom --depth 2 --hidden-size 64 --num-heads 4 --patch-size 2 --input-size 8 --num-classes 7";

class CliForward : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    testing::run_python("make_dit_fixture.py", dir_->path().string() + " 2 64 4 2 8 4 7 true 1.5");
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* CliForward::dir_ = nullptr;

TEST_F(CliForward, MatchesTheReferenceOutputsWithAndWithoutCfg) {
  const std::string out = dir_->file("out.h5");
  auto r = run_difffit("forward --checkpoint " + dir_->file("model.pt") + kSmallModel + " --inputs " +
                       dir_->file("inputs.h5") + " --output " + out + " --cfg-scale 1.5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Hdf5Reader got(out), want(dir_->file("expected.h5"));
  EXPECT_TRUE(at::allclose(got.read("out", at::kFloat), want.read("out", at::kFloat), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(got.read("out_cfg", at::kFloat), want.read("out_cfg", at::kFloat), 1e-4, 1e-5));
}

TEST_F(CliForward, BadInputsGiveAClearMessageAndExitCode) {
  auto missing = run_difffit("forward --checkpoint " + dir_->file("model.pt") + kSmallModel +
                             " --inputs /nonexistent/in.h5 --output " + dir_->file("o.h5"));
  EXPECT_EQ(missing.exit_code, 3) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent/in.h5"), std::string::npos) << missing.output;

  auto wrong_classes = run_difffit("forward --checkpoint " + dir_->file("model.pt") +
                                   " --model custom --depth 2 --hidden-size 64 --num-heads 4 --patch-size 2"
                                   " --input-size 8 --num-classes 9 --inputs " + dir_->file("inputs.h5") +
                                   " --output " + dir_->file("o.h5"));
  EXPECT_EQ(wrong_classes.exit_code, 3) << wrong_classes.output;
  EXPECT_NE(wrong_classes.output.find("y_embedder.embedding_table.weight"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_->file("o.h5")));  // nothing half-written

  auto wrong_size = run_difffit("forward --checkpoint " + dir_->file("model.pt") +
                                " --model custom --depth 2 --hidden-size 64 --num-heads 4 --patch-size 2"
                                " --input-size 16 --num-classes 7 --inputs " + dir_->file("inputs.h5") +
                                " --output " + dir_->file("o.h5"));
  EXPECT_EQ(wrong_size.exit_code, 3) << wrong_size.output;
  EXPECT_NE(wrong_size.output.find("dataset 'x'"), std::string::npos) << wrong_size.output;

  // No rows at all (CFG would split an empty batch): refused by name, not a crash.
  {
    Hdf5Writer empty(dir_->file("empty.h5"));
    empty.write("x", at::zeros({0, 4, 8, 8}));
    empty.write("t", at::zeros({0}, at::kLong));
    empty.write("y", at::zeros({0}, at::kLong));
    empty.commit();
  }
  auto no_rows = run_difffit("forward --checkpoint " + dir_->file("model.pt") + kSmallModel + " --inputs " +
                             dir_->file("empty.h5") + " --output " + dir_->file("o.h5") + " --cfg-scale 2");
  EXPECT_EQ(no_rows.exit_code, 3) << no_rows.output;
  EXPECT_NE(no_rows.output.find(dir_->file("empty.h5") + ": dataset 'x' has no rows"), std::string::npos)
      << no_rows.output;
  auto nan_scale = run_difffit("forward --checkpoint " + dir_->file("model.pt") + kSmallModel + " --inputs " +
                               dir_->file("inputs.h5") + " --output " + dir_->file("o.h5") + " --cfg-scale nan");
  EXPECT_EQ(nan_scale.exit_code, 2) << nan_scale.output;
  EXPECT_NE(nan_scale.output.find("--cfg-scale must be a finite number"), std::string::npos) << nan_scale.output;
}

// Opening a named pipe blocks until a writer comes: the checkpoint and the inputs are
// checked for being regular files before they are opened.
TEST_F(CliForward, APipeGivenAsCheckpointOrInputsIsRefusedByName) {
  TempDir tmp;
  const std::string fifo = tmp.file("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto checkpoint = testing::run_difffit_within(60, "forward --checkpoint " + fifo + kSmallModel + " --inputs " +
                                                        dir_->file("inputs.h5") + " --output " + tmp.file("o.h5"));
  EXPECT_EQ(checkpoint.exit_code, 3) << checkpoint.output;
  EXPECT_NE(checkpoint.output.find(fifo + ": is a named pipe (FIFO); expected a checkpoint file"), std::string::npos)
      << checkpoint.output;
  auto inputs = testing::run_difffit_within(60, "forward --checkpoint " + dir_->file("model.pt") + kSmallModel +
                                                    " --inputs " + fifo + " --output " + tmp.file("o.h5"));
  EXPECT_EQ(inputs.exit_code, 3) << inputs.output;
  EXPECT_NE(inputs.output.find(fifo + ": is a named pipe (FIFO); expected an HDF5 file"), std::string::npos)
      << inputs.output;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("o.h5")));
}

class CliDiffusion : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    testing::run_python("make_diffusion_fixture.py", dir_->path().string());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model_flags() {
    return " --checkpoint " + dir_->file("model.pt") +
           " --model custom --depth 2 --hidden-size 32 --num-heads 2 --patch-size 2 --input-size 8"
           " --in-channels 1 --num-classes 3";
  }
  static TempDir* dir_;
};
TempDir* CliDiffusion::dir_ = nullptr;

TEST_F(CliDiffusion, LossTermsMatchTheReference) {
  auto r = run_difffit("loss" + model_flags() + " --inputs " + dir_->file("loss_in.h5") + " --output " +
                       dir_->file("loss_out.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Hdf5Reader got(dir_->file("loss_out.h5")), want(dir_->file("expected.h5"));
  for (const char* term : {"mse", "vb", "loss"}) {
    at::Tensor a = got.read(term, at::kFloat), b = want.read(term, at::kFloat);
    EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-6)) << term << "\n" << a << "\n" << b;
  }
}

TEST_F(CliDiffusion, BadLossInputsAndSampleRequestsAreRefusedByName) {
  {
    Hdf5Reader in(dir_->file("loss_in.h5"));
    Hdf5Writer out(dir_->file("bad_labels.h5"));
    for (const char* name : {"x_start", "noise"}) out.write(name, in.read(name, at::kFloat));
    const at::Tensor t = in.read("t", at::kLong);
    out.write("t", t);
    out.write("y", at::full_like(t, 50));
    out.commit();
  }
  auto labels = run_difffit("loss" + model_flags() + " --inputs " + dir_->file("bad_labels.h5") + " --output " +
                            dir_->file("o.h5"));
  EXPECT_EQ(labels.exit_code, 3) << labels.output;
  EXPECT_NE(labels.output.find("bad_labels.h5: dataset 'y' has labels outside 0..3"), std::string::npos)
      << labels.output;
  const std::map<std::string, std::string> refused = {
      {" --num 99999999999999", "more than this machine's memory"},
      {" --num 2 --eta nan --sampler ddim", "DDIM's eta must be in [0, 1]"},
      {" --num 2 --cfg-scale inf", "the CFG scale must be a finite number"},
      {" --num 2 --threads 100000", "--threads must be in 1..1024"},
      {" --num 2 --device gpu", "sample: --device: unknown device 'gpu' (expected cpu, cuda or cuda:K)"},
      {" --num 2 --clip-denoised maybe", "--clip-denoised must be auto, true or false"},
  };
  for (const auto& [flags, message] : refused) {
    auto r = run_difffit("sample" + model_flags() + flags + " --steps 2 --output " + dir_->file("o.h5"));
    EXPECT_EQ(r.exit_code, 2) << flags << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << flags << "\n" << r.output;
  }
  if (!torch::cuda::is_available()) {
    auto r = run_difffit("sample" + model_flags() + " --num 2 --steps 2 --device cuda --output " + dir_->file("o.h5"));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("this LibTorch has no CUDA"), std::string::npos) << r.output;
  }
}

TEST_F(CliDiffusion, SamplersReproduceTheReferenceFromTheSameNoiseAndSeed) {
  for (const std::string sampler : {"ddpm", "ddim"}) {
    for (const std::string cfg : {"1.0", "4.0"}) {
      const std::string out = dir_->file(sampler + cfg + ".h5");
      // The reference samples without clipping x0 (DiT); auto would clip this pixel-space model.
      auto r = run_difffit("sample" + model_flags() + " --sampler " + sampler + " --steps 10 --seed 77 --seeding reference --cfg-scale " +
                           cfg + " --clip-denoised false --init-noise " + dir_->file("noise.h5") + " --output " + out);
      ASSERT_EQ(r.exit_code, 0) << r.output;
      Hdf5Reader got(out), want(dir_->file("expected.h5"));
      at::Tensor a = got.read("latents", at::kFloat);
      at::Tensor b = want.read(sampler + (cfg == "4.0" ? "_cfg" : ""), at::kFloat);
      EXPECT_TRUE(at::allclose(a, b, 1e-3, 1e-4)) << sampler << " cfg " << cfg << " max diff "
                                                  << (a - b).abs().max().item<float>();
      EXPECT_EQ(got.read("images", at::kByte).sizes(), (at::IntArrayRef{3, 8, 8, 1}));
      EXPECT_TRUE(at::equal(got.read("y", at::kLong), at::tensor({2, 0, 1}, at::kLong)));
    }
  }
}

TEST_F(CliDiffusion, ClippedSamplingMatchesTheReferenceClipDenoised) {
  for (const std::string sampler : {"ddpm", "ddim"}) {
    const std::string out = dir_->file(sampler + "_clip.h5");
    // auto = clip for this 1-channel (pixel-space) model.
    auto r = run_difffit("sample" + model_flags() + " --sampler " + sampler + " --steps 10 --seed 77 --seeding reference --init-noise " +
                         dir_->file("noise.h5") + " --output " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    at::Tensor a = Hdf5Reader(out).read("latents", at::kFloat);
    at::Tensor b = Hdf5Reader(dir_->file("expected.h5")).read(sampler + "_clip", at::kFloat);
    at::Tensor unclipped = Hdf5Reader(dir_->file("expected.h5")).read(sampler, at::kFloat);
    EXPECT_TRUE(at::allclose(a, b, 1e-3, 1e-4)) << sampler << " max diff " << (a - b).abs().max().item<float>();
    EXPECT_FALSE(at::allclose(b, unclipped, 1e-3, 1e-4)) << "the fixture must exercise the clamp";
  }
}

TEST_F(CliDiffusion, PerSampleSeedingMatchesTheReferenceFedEachSamplesOwnStream) {
  // The fixture draws sample i's class, x_T and step noise from its own generator
  // (seed SplitMix64(77) + i); in batches of 2 or all at once, difffit draws the same
  // (the samples of the two agree to the rounding of the model's products at each size).
  at::Tensor want = Hdf5Reader(dir_->file("expected.h5")).read("per_sample_cfg", at::kFloat);
  at::Tensor want_y = Hdf5Reader(dir_->file("expected.h5")).read("per_sample_y", at::kLong);
  at::Tensor first;
  for (const std::string batch : {"2", "5"}) {
    const std::string out = dir_->file("per_sample_" + batch + ".h5");
    auto r = run_difffit("sample" + model_flags() + " --steps 10 --seed 77 --cfg-scale 4.0 --clip-denoised false"
                         " --num 5 --batch-size " + batch + " --output " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    at::Tensor got = Hdf5Reader(out).read("latents", at::kFloat);
    EXPECT_TRUE(at::allclose(got, want, 1e-3, 1e-4)) << "batch " << batch << " max diff "
                                                     << (got - want).abs().max().item<float>();
    EXPECT_TRUE(at::equal(Hdf5Reader(out).read("y", at::kLong), want_y));
    if (first.defined()) {
      EXPECT_TRUE(at::allclose(got, first, 1e-4, 1e-4)) << "max diff " << (got - first).abs().max().item<float>();
    }
    first = got;
  }
}

TEST(CliParams, ReportsThePapersCountsAsJson) {
  auto r = run_difffit("params --model DiT-XL/2 --num-classes 101 --method lora --option rank=16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"trainable\": 2181888"), std::string::npos) << r.output;
  auto a = run_difffit("params --model DiT-XL/2 --num-classes 101 --method adaptformer --option bottleneck=64 "
                       "--option mode=sequential --json");
  EXPECT_NE(a.output.find("\"trainable\": 4280320"), std::string::npos) << a.output;
  auto all = run_difffit("params --model DiT-XL/2 --num-classes 101");
  ASSERT_EQ(all.exit_code, 0) << all.output;
  EXPECT_TRUE(std::regex_search(all.output, std::regex("bitfit +607,136")));
  EXPECT_TRUE(std::regex_search(all.output, std::regex("lora +1,149,696")));
}

TEST(CliBench, TrainStepReportsEveryMethodAgainstFull) {
  auto r = run_difffit("bench train-step --model custom --depth 1 --hidden-size 16 --num-heads 2 --patch-size 4"
                       " --input-size 8 --in-channels 1 --num-classes 3 --batch 2 --steps 2 --warmup 0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The JSON document on stdout (stderr, in the same output, has the table and the log).
  const size_t begin = r.output.find("{\n  \"benchmark\"");
  ASSERT_NE(begin, std::string::npos) << r.output;
  const auto report = nlohmann::json::parse(r.output.substr(begin, r.output.find("\n}", begin) + 2 - begin));
  std::map<std::string, nlohmann::json> methods;
  for (const auto& m : report.at("methods")) methods[m.at("method")] = m;
  for (const char* method : {"full", "bitfit", "difffit", "lora", "vpt-deep", "adaptformer"})
    EXPECT_TRUE(methods.count(method)) << method << "\n" << r.output;
  EXPECT_EQ(methods["full"].at("speedup_vs_full"), 1.0) << r.output;  // full against itself
  auto f = run_difffit("bench fid --num 64 --dim 8 --json");
  ASSERT_EQ(f.exit_code, 0) << f.output;
  EXPECT_NE(f.output.find("\"mini_cnn_images_per_second\""), std::string::npos);
  auto l = run_difffit("bench loader --images 256 --batch-size 16 --seconds 0.2 --batches 20");
  ASSERT_EQ(l.exit_code, 0) << l.output;
  EXPECT_NE(l.output.find("\"images\": 256"), std::string::npos) << l.output;
  EXPECT_NE(l.output.find("\"prefetch_images_per_s\""), std::string::npos) << l.output;
  EXPECT_EQ(run_difffit("bench nope").exit_code, 2);
}

// --profile writes the timed steps as a trace of ATen ops (the GEMMs among them); a folder
// that does not exist is an I/O error naming the file, before any step runs.
TEST(CliBench, TrainStepProfileWritesATraceOrSaysWhyNot) {
  TempDir dir;
  const std::string model = "bench train-step --model custom --depth 1 --hidden-size 16 --num-heads 2 --patch-size 4"
                            " --input-size 8 --in-channels 1 --num-classes 3 --batch 2 --steps 2 --warmup 1"
                            " --method difffit --json --profile ";
  auto r = run_difffit(model + dir.file("p"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir.file("p-difffit.trace.json"));
  ASSERT_TRUE(in) << r.output;
  const auto trace = nlohmann::json::parse(in);
  std::set<std::string> names;
  for (const auto& event : trace) names.insert(event.at("name").get<std::string>());
  EXPECT_TRUE(names.count("aten::mm") || names.count("aten::addmm")) << trace.size() << " events";
  auto bad = run_difffit(model + dir.file("missing/p"));
  EXPECT_EQ(bad.exit_code, 3) << bad.output;
  EXPECT_NE(bad.output.find("cannot write " + dir.file("missing/p-difffit.trace.json")), std::string::npos)
      << bad.output;
}

TEST(CliBench, VaeDecoderTimingAndDeviceChoices) {
  auto v = run_difffit("bench vae --num 2 --resolution 16 --batch-size 1 --json");
  ASSERT_EQ(v.exit_code, 0) << v.output;
  EXPECT_NE(v.output.find("\"benchmark\": \"vae-decode\""), std::string::npos) << v.output;
  EXPECT_NE(v.output.find("\"device\": \"cpu\""), std::string::npos) << v.output;
  auto odd = run_difffit("bench vae --resolution 20");
  EXPECT_EQ(odd.exit_code, 2);
  EXPECT_NE(odd.output.find("multiple of 8"), std::string::npos) << odd.output;
  auto tf32 = run_difffit("bench sample --tf32");
  EXPECT_EQ(tf32.exit_code, 2);
  EXPECT_NE(tf32.output.find("--tf32 needs --device cuda"), std::string::npos) << tf32.output;
  auto tpu = run_difffit("bench train-step --device tpu");
  EXPECT_EQ(tpu.exit_code, 2) << tpu.output;
  EXPECT_NE(tpu.output.find("--device: unknown device 'tpu' (expected cpu, cuda or cuda:K)"), std::string::npos)
      << tpu.output;
  if (!torch::cuda::is_available()) {
    for (const std::string gpu : {"cuda", "cuda:1"}) {
      auto cuda = run_difffit("bench vae --device " + gpu);
      EXPECT_EQ(cuda.exit_code, 2) << gpu;
      EXPECT_NE(cuda.output.find("--device " + gpu + ": this LibTorch has no CUDA, or no CUDA device is visible"),
                std::string::npos)
          << cuda.output;
    }
  }
}

TEST(CliUsage, UnknownThingsAreUsageErrors) {
  EXPECT_EQ(run_difffit("frobnicate").exit_code, 2);
  auto m = run_difffit("params --method nope");
  EXPECT_EQ(m.exit_code, 2);
  EXPECT_NE(m.output.find("unknown method 'nope'"), std::string::npos) << m.output;
  auto o = run_difffit("params --method difffit --option rank=3");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.output.find("no option 'rank'"), std::string::npos) << o.output;
  EXPECT_EQ(run_difffit("params --model custom --depth 2").exit_code, 2);
  auto zero = run_difffit("params --model custom --depth 1 --hidden-size 0 --num-heads 2 --patch-size 4");
  EXPECT_EQ(zero.exit_code, 2) << zero.output;
  EXPECT_NE(zero.output.find("hidden_size must be in 1.."), std::string::npos) << zero.output;
  // Numbers that are not finite: refused by name (a NaN multiplier trained to a NaN loss).
  auto nan = run_difffit("params --method difffit --option lr_mult=nan");
  EXPECT_EQ(nan.exit_code, 2) << nan.output;
  EXPECT_NE(nan.output.find("method option 'lr_mult': expected a finite number, got 'nan'"), std::string::npos)
      << nan.output;
  auto inf = run_difffit("params --model custom --depth 1 --hidden-size 8 --num-heads 2 --patch-size 4 "
                         "--pos-embed-scale inf");
  EXPECT_EQ(inf.exit_code, 2) << inf.output;
  EXPECT_NE(inf.output.find("pos_embed_scale must be a positive finite number"), std::string::npos) << inf.output;
  for (const char* command : {"forward", "params", "merge", "demo", "sample", "loss", "run"}) {
    auto h = run_difffit(std::string(command) + " --help");
    EXPECT_EQ(h.exit_code, 0) << command;
    EXPECT_NE(h.output.find("usage: difffit " + std::string(command)), std::string::npos);
  }
}

// Values no model or benchmark could use, and flags that could not take effect: a usage
// error naming the flag or field, before any work (they crashed, ran for hours, printed
// LibTorch's own text, or were silently dropped).
TEST(CliUsage, ValuesBeyondAnyUseAndFlagsThatCannotTakeEffectAreRefusedByName) {
  TempDir dir;
  const std::string tiny = " --model custom --depth 1 --hidden-size 16 --num-heads 2 --patch-size 4 --input-size 8"
                           " --in-channels 1 --num-classes 2";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"params --model custom --depth 100000 --hidden-size 32 --num-heads 2 --patch-size 4", "depth must be in 1..1024"},
      {"params --model custom --depth 2 --hidden-size 32 --num-heads 2 --patch-size 4 --input-size 4611686018427387904",
       "input_size must be in"},
      {"params --model custom --depth 2 --hidden-size 32 --num-heads 2 --patch-size 4 --in-channels 4611686018427387904",
       "in_channels must be in"},
      {"params --model custom --depth 2 --hidden-size 65536 --num-heads 2 --patch-size 4 --num-classes 16000000",
       "parameters, more than"},
      {"params --method adaptformer --option bottleneck=4611686018427387904", "'bottleneck' must be in"},
      {"bench train-step" + tiny + " --method full --steps 0", "--steps must be in 1.."},
      {"bench train-step" + tiny + " --method full --warmup -1", "--warmup must be in 0.."},
      {"bench train-step" + tiny + " --method full --batch 0", "--batch must be in 1.."},
      {"bench train-step" + tiny + " --method full,bitfit --option rank=3", "--option goes with one --method"},
      {"bench fid --num -5", "--num must be in 2.."},
      {"bench loader --seconds nan", "--seconds must be a positive number"},
      {"bench loader --batch-size 0", "--batch-size must be in 1.."},
      {"loss" + tiny + " --checkpoint none.pt --inputs none.h5 --output o.h5 --timesteps 0", "--timesteps must be in 21.."},
      {"prepare --benchmark mini --limit 5 --output " + dir.file("mb"), "--limit does not go with --benchmark"},
      {"results export none.h5 --csv ''", "--csv: an empty path"},
  };
  for (const auto& [command, message] : cases) {
    auto r = run_difffit(command);
    EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << command << "\n" << r.output;
  }
  // An empty output path once made the temporary ./.tmp: a file of that name was replaced.
  std::ofstream(dir.file(".tmp")) << "keep\n";
  auto empty = testing::run_command("cd " + dir.path().string() + " && " + testing::difffit_binary() +
                                    " sample" + tiny + " --checkpoint none.pt --output ''");
  EXPECT_EQ(empty.exit_code, 2) << empty.output;
  EXPECT_EQ(testing::read_text_file(dir.file(".tmp")), "keep\n");
  // Finite features whose squares overflow: named, exit 3 (LibTorch's eigh failed, exit 1).
  for (const auto& [name, scale] : {std::pair{"big.h5", 1e200}, std::pair{"small.h5", 1.0}}) {
    Hdf5Writer f(dir.file(name));
    f.write("features", at::arange(12, at::kDouble).reshape({4, 3}) * scale);
    f.commit();
  }
  auto big = run_difffit("eval --features-a " + dir.file("big.h5") + " --features-b " + dir.file("small.h5"));
  EXPECT_EQ(big.exit_code, 3) << big.output;
  EXPECT_NE(big.output.find("big.h5: dataset 'features' holds values beyond 1e150"), std::string::npos) << big.output;
  // A sweep's --set of a key a grid sets itself would change only the runs outside the grid.
  const testing::TinySweep sweep = testing::write_tiny_sweep(dir);
  auto conflict = run_difffit("sweep plan " + sweep.sweep + " --set method.name=bitfit");
  EXPECT_EQ(conflict.exit_code, 2) << conflict.output;
  EXPECT_NE(conflict.output.find("grid 'table' sets method.name itself for every run (every value of axis 'method'"),
            std::string::npos) << conflict.output;
  EXPECT_EQ(run_difffit("sweep plan " + sweep.sweep + " --set name=x").exit_code, 2);
  EXPECT_EQ(run_difffit("sweep plan " + sweep.sweep + " --set train.batch_size=4").exit_code, 0);
  // A key only some values of an axis set still holds for the other cells.
  const testing::TinySweep partial = testing::write_tiny_sweep(
      dir, 6, "  - name: some\n    axes:\n      - name: m\n        values: {a: {train.ema_decay: 0.5}, b: {}}\n");
  EXPECT_EQ(run_difffit("sweep plan " + partial.sweep + " --set train.ema_decay=0.8").exit_code, 0);
}

TEST(CliUsage, AFolderGivenForAYamlFileIsNamed) {
  TempDir dir;
  for (const std::string& command : {"run " + dir.path().string(), "sweep status " + dir.path().string()}) {
    auto r = run_difffit(command);
    EXPECT_EQ(r.exit_code, 3) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(dir.path().string() + ": is a folder; expected a YAML file"), std::string::npos)
        << r.output;
  }
}

// Config and state files that are pipes, devices or far too large: each is named with what
// was expected (and the limit), exit 3, at once; before, the pipes blocked for ever and
// /dev/zero was read until memory ran out.
TEST(CliUsage, PipesDevicesAndOversizedFilesGivenAsInputsAreRefusedByName) {
  TempDir dir;
  const std::string fifo = dir.file("pipe.yaml"), big = dir.file("big.yaml");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::ofstream(big) << "name: big\n";
  std::filesystem::resize_file(big, 17 << 20);  // sparse
  const std::string pipe_yaml = fifo + ": is a named pipe (FIFO); expected a YAML file";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"run " + fifo, pipe_yaml},
      {"sweep plan " + fifo, pipe_yaml},
      {"sweep status " + fifo, pipe_yaml},
      {"run /dev/zero", "/dev/zero: is a character device; expected a YAML file"},
      {"run " + big, big + ": is 17825792 bytes, over the 16 MiB limit for a YAML file"},
  };
  for (const auto& [command, message] : cases) {
    auto r = testing::run_difffit_within(60, command);
    EXPECT_EQ(r.exit_code, 3) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << command << "\n" << r.output;
  }

  // A sweep's journal that is a pipe: named by status and by run (which appends to it).
  const testing::TinySweep sweep = testing::write_tiny_sweep(dir);
  const std::string journal = dir.file("runs/tiny/journal.jsonl");
  std::filesystem::create_directories(dir.file("runs/tiny"));
  ASSERT_EQ(::mkfifo(journal.c_str(), 0600), 0);
  for (const std::string command : {"sweep status ", "sweep run "}) {
    auto r = testing::run_difffit_within(60, command + sweep.sweep);
    EXPECT_EQ(r.exit_code, 3) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(journal + ": is a named pipe (FIFO); expected a sweep journal"), std::string::npos)
        << command << "\n" << r.output;
  }

  // A dataset's .mat annotations that are a pipe.
  const std::string flowers = dir.file("flowers");
  std::filesystem::create_directories(flowers + "/jpg");
  ASSERT_EQ(::mkfifo((flowers + "/imagelabels.mat").c_str(), 0600), 0);
  std::ofstream(flowers + "/setid.mat") << "not read";
  auto r = testing::run_difffit_within(60, "prepare --source flowers-102 --split train --input " + flowers +
                                               " --resolution 16 --output " + dir.file("flowers.h5"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find(flowers + "/imagelabels.mat: is a named pipe (FIFO); expected a .mat file"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("flowers.h5")));
}

}  // namespace
}  // namespace difffit
