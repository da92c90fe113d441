// difffit eval (alias: fid): FID, sFID, KID, Inception Score and precision/recall of
// generated samples against a reference set or its statistics, with the FID InceptionV3
// or the mini benchmark's CNN (eval/evaluate.h); also scores precomputed features,
// exports .npz for the ADM evaluator and writes sample grids.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/json_text.h"
#include "common/logging.h"
#include "common/torch_device.h"
#include "eval/evaluate.h"
#include "eval/feature_network.h"
#include "eval/feature_stats.h"
#include "eval/image_features.h"
#include "eval/image_set.h"
#include "eval/npz_export.h"
#include "eval/sample_grid.h"

namespace difffit {
namespace {

// The flags, read once.
struct EvalArgs {
  FeatureNetChoice net;
  EvaluationRequest request;
  std::string features_a, features_b;  // score given feature matrices instead of images
  std::string grid, export_samples_npz;
  GridStyle grid_style;
  int64_t grid_scale = 0;
  bool json = false;
};

EvalArgs eval_args_from(const po::variables_map& vm) {
  EvalArgs a;
  auto text = [&](const char* name) { return vm.count(name) ? vm[name].as<std::string>() : std::string(); };
  a.net.kind = parse_feature_net_kind(vm["feature-net"].as<std::string>(), "--feature-net");
  a.net.inception_weights = vm["inception-weights"].as<std::string>();
  a.net.resize = parse_resize_mode(vm["resize"].as<std::string>(), "--resize");
  a.net.device = parse_torch_device(vm["device"].as<std::string>(), "eval: --device");
  a.net.mini_cnn_train = text("mini-cnn-train");
  a.net.mini_cnn_weights = text("mini-cnn-weights");
  a.net.mini_cnn.epochs = vm["mini-cnn-epochs"].as<int64_t>();
  a.net.mini_cnn.max_images = vm["mini-cnn-max-images"].as<int64_t>();
  a.net.mini_cnn.seed = vm["seed"].as<uint64_t>();
  const std::string cache_dir = vm["cache-dir"].as<std::string>().empty() ? default_cache_dir()
                                                                           : vm["cache-dir"].as<std::string>();
  a.net.cache_dir = cache_dir;  // a trained mini-CNN is kept even with --no-cache

  EvaluationRequest& r = a.request;
  r.samples = text("samples");
  r.reference = text("reference");
  r.reference_stats = text("reference-stats");
  r.metrics = parse_metric_set(vm["metrics"].as<std::vector<std::string>>(), "--metrics");
  if (vm.count("kid")) r.metrics.insert(Metric::Kid);
  r.num_samples = vm["num-samples"].as<int64_t>();
  r.num_reference = vm["num-reference"].as<int64_t>();
  r.batch_size = vm["batch-size"].as<int64_t>();
  r.kid.subsets = vm["kid-subsets"].as<int64_t>();
  r.kid.subset_size = vm["kid-subset-size"].as<int64_t>();
  r.kid.seed = vm["seed"].as<uint64_t>();
  r.is_split_size = vm["is-split-size"].as<int64_t>();
  r.pr_k = vm["pr-k"].as<int64_t>();
  r.cache_dir = vm.count("no-cache") ? "" : cache_dir;
  r.save_reference_stats = text("save-reference-stats");

  a.features_a = text("features-a");
  a.features_b = text("features-b");
  a.grid = text("grid");
  a.grid_style.columns = vm["grid-columns"].as<int64_t>();
  a.grid_scale = vm["grid-scale"].as<int64_t>();
  a.grid_style.label_rows = vm["grid-names"].as<bool>();
  a.export_samples_npz = text("export-samples-npz");
  r.export_reference_npz = text("export-reference-npz");
  a.json = vm.count("json") > 0;
  auto at_least = [&](const char* flag, int64_t value, int64_t low) {
    if (value < low) throw_usage(std::string("eval: --") + flag + " must be at least " + std::to_string(low));
  };
  at_least("num-samples", r.num_samples, 0);
  at_least("num-reference", r.num_reference, 0);
  at_least("batch-size", r.batch_size, 1);
  at_least("grid-columns", a.grid_style.columns, 1);
  at_least("grid-scale", a.grid_scale, 0);
  at_least("mini-cnn-epochs", a.net.mini_cnn.epochs, 1);
  at_least("kid-subsets", r.kid.subsets, 1);
  at_least("kid-subset-size", r.kid.subset_size, 2);
  at_least("is-split-size", r.is_split_size, 1);
  at_least("pr-k", r.pr_k, 1);
  // Checked before the feature network runs, not after; a million subsets is already hours.
  if (r.kid.subsets > 1000000) throw_usage("eval: --kid-subsets must be at most 1000000");
  if (a.grid_style.columns > kMaxGridColumns)
    throw_usage("eval: --grid-columns must be at most " + std::to_string(kMaxGridColumns));
  if (a.grid_scale > 64) throw_usage("eval: --grid-scale must be at most 64");  // a typo, not a request
  return a;
}

void print_evaluation(const Evaluation& e, bool json) {
  if (json) {
    nlohmann::ordered_json out;
    out["samples_file"] = e.samples;
    add_evaluation_json(e, out);
    std::cout << json_text(out, 2) << std::endl;
  } else {
    std::cout << evaluation_text(e) << std::flush;
  }
}

// --features-a / --features-b: FID, KID and precision/recall of given feature matrices.
int score_given_features(const EvalArgs& a) {
  const at::Tensor fa = Hdf5Reader(a.features_a).read("features", at::kDouble, 2);
  const at::Tensor fb = Hdf5Reader(a.features_b).read("features", at::kDouble, 2);
  require_finite(fa, a.features_a + ": dataset 'features'");
  require_finite(fb, a.features_b + ": dataset 'features'");
  if (fa.size(1) < 1 || fb.size(1) < 1)
    throw_data((fa.size(1) < 1 ? a.features_a : a.features_b) + ": dataset 'features' has no columns");
  if (fa.size(1) != fb.size(1))
    throw_data("feature dimensions differ: " + a.features_a + " has " + std::to_string(fa.size(1)) + ", " +
               a.features_b + " has " + std::to_string(fb.size(1)));
  // Finite but huge values overflow the covariance (their squares) and no score is defined.
  for (const auto& [f, path] : {std::pair{&fa, &a.features_a}, std::pair{&fb, &a.features_b}})
    if (f->numel() > 0 && f->abs().max().item<double>() > 1e150)
      throw_data(*path + ": dataset 'features' holds values beyond 1e150 (their squares overflow the covariance)");
  EvaluationRequest request = a.request;
  request.samples = a.features_a;
  request.reference = a.features_b;
  const Evaluation e = evaluate_features(fa, fb, request);
  print_evaluation(e, a.json);
  return 0;
}

}  // namespace

int run_eval_command(int argc, char** argv) {
  po::options_description options("eval options");
  options.add_options()
      ("samples", po::value<std::string>(), "generated images: HDF5 with images uint8 (N,H,W,C)")
      ("reference", po::value<std::string>(), "reference images (HDF5 images [+ labels]); stats are cached")
      ("reference-stats", po::value<std::string>(), "reference statistics file (mu, sigma, n [, features])")
      ("metrics", po::value<std::vector<std::string>>()->default_value({"fid"}, "fid")->composing(),
       "comma-separated: fid, kid, sfid, is (Inception Score), pr (precision/recall), or all")
      ("features-a", po::value<std::string>(), "score precomputed features: HDF5 with features (N,D)")
      ("features-b", po::value<std::string>(), "... against these (the reference)")
      ("feature-net", po::value<std::string>()->default_value("inception"), "inception | mini-cnn | auto")
      ("inception-weights", po::value<std::string>()->default_value(""),
       "pt_inception-2015-12-05-6726825d.pth or a safetensors copy (else $DIFFFIT_INCEPTION_WEIGHTS)")
      ("resize", po::value<std::string>()->default_value("pytorch-fid"),
       "to 299x299: pytorch-fid (bilinear) | clean (PIL bicubic)")
      ("mini-cnn-train", po::value<std::string>(), "HDF5 images + labels the mini-CNN trains on (once; cached)")
      ("mini-cnn-weights", po::value<std::string>(), "a trained mini-CNN (.safetensors) to use as is")
      ("mini-cnn-epochs", po::value<int64_t>()->default_value(MiniCnnTrainOptions{}.epochs), "mini-CNN training epochs")
      ("mini-cnn-max-images", po::value<int64_t>()->default_value(0), "train the mini-CNN on the first N images (0 = all)")
      ("num-samples", po::value<int64_t>()->default_value(0), "use the first N samples (0 = all)")
      ("num-reference", po::value<int64_t>()->default_value(0), "use the first N reference images (0 = all)")
      ("batch-size", po::value<int64_t>()->default_value(50), "images per forward pass")
      ("device", po::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:K (Inception only)")
      ("cache-dir", po::value<std::string>()->default_value(""),
       "reference stats and mini-CNN cache (default $DIFFFIT_CACHE_DIR or ~/.cache/difffit)")
      ("no-cache", "compute the reference statistics afresh and store nothing")
      ("kid", "also compute KID (the same as adding kid to --metrics)")
      ("kid-subsets", po::value<int64_t>()->default_value(100), "KID subsets")
      ("kid-subset-size", po::value<int64_t>()->default_value(1000), "KID subset size (capped by N)")
      ("is-split-size", po::value<int64_t>()->default_value(5000), "Inception Score: samples per split (ADM: 5000)")
      ("pr-k", po::value<int64_t>()->default_value(3), "precision/recall: the k-th neighbour's distance (ADM: 3)")
      ("seed", po::value<uint64_t>()->default_value(0), "KID subset sampling and mini-CNN training seed")
      ("save-reference-stats", po::value<std::string>(), "write the reference statistics to this HDF5 file")
      ("export-samples-npz", po::value<std::string>(), "write the samples as arr_0 (N,H,W,3) for the ADM evaluator")
      ("export-reference-npz", po::value<std::string>(), "write the reference mu, sigma as .npz")
      ("grid", po::value<std::string>(), "write a PNG grid of the samples (one row per class when labelled)")
      ("grid-columns", po::value<int64_t>()->default_value(10), "images per grid row")
      ("grid-scale", po::value<int64_t>()->default_value(0), "grid pixels per image pixel (0 = tiles of about 96 px)")
      ("grid-names", po::value<bool>()->default_value(true), "name each row's class (the file's class_names, else 'class K')")
      ("json", "print the result as one JSON object");
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("eval",
                          "Scores samples against a reference: FID, sFID, KID, Inception Score, precision/recall.\n"
                          "  difffit eval --samples A.h5 (--reference B.h5 | --reference-stats S.h5) "
                          "[--metrics fid,sfid,is,pr,kid] [--feature-net inception|mini-cnn]\n"
                          "  difffit eval --features-a FA.h5 --features-b FB.h5\n"
                          "  (difffit fid is the same command)",
                          argc, argv, options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  const EvalArgs a = eval_args_from(vm);
  const EvaluationRequest& r = a.request;
  const std::vector<std::string> eval_inputs{r.samples,          r.reference,          r.reference_stats,
                                             a.net.mini_cnn_train, a.net.mini_cnn_weights, a.features_a,
                                             a.features_b, a.net.inception_weights};
  for (const auto& [flag, output] : {std::pair<std::string, std::string>{"--grid", a.grid},
                                     {"--export-samples-npz", a.export_samples_npz},
                                     {"--export-reference-npz", r.export_reference_npz},
                                     {"--save-reference-stats", r.save_reference_stats}})
    if (!output.empty()) check_output_path(output, flag, eval_inputs);
  if (!a.features_a.empty() || !a.features_b.empty()) {
    if (a.features_a.empty() || a.features_b.empty()) throw_usage("eval: give both --features-a and --features-b");
    if (!r.samples.empty()) throw_usage("eval: --features-a/--features-b cannot be combined with --samples");
    return score_given_features(a);
  }
  if (r.samples.empty()) throw_usage("eval: --samples is required (see difffit eval --help)");
  if (!r.reference.empty() && !r.reference_stats.empty())
    throw_usage("eval: give only one of --reference and --reference-stats");
  // Without a reference the command only writes the grid / .npz export, if asked to.
  const bool score = !r.reference.empty() || !r.reference_stats.empty();
  if (!score && a.grid.empty() && a.export_samples_npz.empty())
    throw_usage("eval: give --reference or --reference-stats (or only --grid / --export-samples-npz)");

  const ImageSet samples(r.samples);  // checks the file before a network is loaded or trained
  // Under mpirun the ranks share the feature extraction; rank 0 writes and prints.
  LaunchRanks ranks = join_launch_ranks(&argc, &argv, a.net.device.is_cuda());
  const bool writer = !ranks.comm || ranks.comm->rank() == 0;
  if (writer && !a.grid.empty()) {
    GridStyle style = a.grid_style;
    style.scale = a.grid_scale > 0 ? a.grid_scale : readable_grid_scale(samples.height());
    style.class_names = class_names_in(r.samples);
    write_image_set_grid(a.grid, samples, style);
    log()->info("[eval] wrote the sample grid {}", a.grid);
  }
  if (writer && !a.export_samples_npz.empty()) {
    export_samples_npz(r.samples, a.export_samples_npz, r.num_samples);
    log()->info("[eval] wrote {}", a.export_samples_npz);
  }
  if (!score) return 0;

  std::unique_ptr<FeatureNetwork> net = make_feature_network(a.net, samples.channels(), ranks.comm.get());
  if (!net) throw_usage("eval: --feature-net none scores nothing");
  EvaluationRequest shared = r;
  shared.ranks = ranks.comm.get();
  const Evaluation e = evaluate_samples(shared, *net);
  if (writer) print_evaluation(e, a.json);
  return 0;
}

}  // namespace difffit
