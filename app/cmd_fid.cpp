// difffit fid: FID (and KID) of generated samples against a reference set or its
// statistics, with the FID InceptionV3 or the mini benchmark's CNN; also scores
// precomputed features, exports .npz for the ADM evaluator and writes sample grids.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/json_text.h"
#include "common/logging.h"
#include "eval/feature_stats.h"
#include "eval/fid_inception.h"
#include "eval/frechet_distance.h"
#include "eval/image_features.h"
#include "eval/image_set.h"
#include "eval/kid.h"
#include "eval/mini_cnn.h"
#include "eval/npz_export.h"
#include "eval/sample_grid.h"

namespace difffit {
namespace {

struct Score {
  std::string metric;       // "FID", "FID (mini-CNN)", ...
  std::string feature_net;  // the network's id
  double fid = 0.0;
  int64_t n_samples = 0, n_reference = 0;
  bool has_kid = false;
  KidResult kid;
  std::optional<double> class_accuracy;  // mini-CNN only: samples classified as their conditioning class
  std::string samples, reference;
};

void print_score(const Score& s, bool json) {
  if (json) {
    // Non-finite numbers are written as null, the metric still named.
    auto number = [](double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(); };
    nlohmann::ordered_json out = {{"metric", s.metric},           {"fid", number(s.fid)},
                                  {"n_samples", s.n_samples},     {"n_reference", s.n_reference},
                                  {"feature_net", s.feature_net}, {"samples", s.samples},
                                  {"reference", s.reference}};
    if (s.has_kid) {
      out["kid_mean"] = number(s.kid.mean);
      out["kid_std"] = number(s.kid.std);
      out["kid_subset_size"] = s.kid.subset_size;
      out["kid_subsets"] = s.kid.subsets;
    }
    if (s.class_accuracy) out["class_accuracy"] = number(*s.class_accuracy);
    std::cout << json_text(out, 2) << std::endl;
    return;
  }
  // Tiny negative values are round-off: clamp for display only (the JSON keeps them).
  std::printf("%s: %.6f  (%lld samples vs %lld reference, features %s)\n", s.metric.c_str(), std::max(s.fid, 0.0),
              static_cast<long long>(s.n_samples), static_cast<long long>(s.n_reference), s.feature_net.c_str());
  if (s.has_kid)
    std::printf("KID: %.6g +- %.6g  (%lld subsets of %lld)\n", s.kid.mean, s.kid.std,
                static_cast<long long>(s.kid.subsets), static_cast<long long>(s.kid.subset_size));
  if (s.class_accuracy) std::printf("class accuracy (mini-CNN): %.4f\n", *s.class_accuracy);
  std::fflush(stdout);
}

KidOptions kid_options(const po::variables_map& vm) {
  KidOptions k;
  k.subsets = vm["kid-subsets"].as<int64_t>();
  k.subset_size = vm["kid-subset-size"].as<int64_t>();
  k.seed = vm["seed"].as<uint64_t>();
  return k;
}

// --features-a / --features-b: score given feature matrices.
int score_given_features(const po::variables_map& vm) {
  const std::string a = vm["features-a"].as<std::string>(), b = vm["features-b"].as<std::string>();
  const at::Tensor fa = Hdf5Reader(a).read("features", at::kDouble, 2);
  const at::Tensor fb = Hdf5Reader(b).read("features", at::kDouble, 2);
  require_finite(fa, a + ": dataset 'features'");
  require_finite(fb, b + ": dataset 'features'");
  if (fa.size(1) != fb.size(1))
    throw_data("feature dimensions differ: " + a + " has " + std::to_string(fa.size(1)) + ", " + b + " has " +
               std::to_string(fb.size(1)));
  FeatureStats sa, sb;
  sa.add(fa);
  sb.add(fb);
  Score s;
  s.metric = "FID (given features)";
  s.feature_net = "given";
  s.samples = a, s.reference = b;
  s.fid = frechet_distance(sa, sb);
  s.n_samples = sa.count(), s.n_reference = sb.count();
  if (vm.count("kid")) {
    s.has_kid = true;
    s.kid = kernel_inception_distance(fa, fb, kid_options(vm));
  }
  print_score(s, vm.count("json") > 0);
  return 0;
}

std::unique_ptr<FeatureNetwork> make_feature_net(const po::variables_map& vm, const std::string& cache_dir) {
  const std::string kind = vm["feature-net"].as<std::string>();
  if (kind == "inception") {
    // Resolved before any images are read, so a missing file is reported at once.
    const std::string weights = resolve_inception_weights(vm["inception-weights"].as<std::string>());
    return std::make_unique<InceptionFeatureNet>(weights, parse_resize_mode(vm["resize"].as<std::string>()),
                                                 vm["device"].as<std::string>());
  }
  if (kind == "mini-cnn") {
    if (vm.count("mini-cnn-weights")) return load_mini_cnn_feature_net(vm["mini-cnn-weights"].as<std::string>());
    if (!vm.count("mini-cnn-train"))
      throw_usage("fid: --feature-net mini-cnn needs --mini-cnn-train DATA.h5 (the mini benchmark's training images) "
                  "or --mini-cnn-weights FILE");
    MiniCnnTrainOptions train;
    train.epochs = vm["mini-cnn-epochs"].as<int64_t>();
    train.max_images = vm["mini-cnn-max-images"].as<int64_t>();
    train.seed = vm["seed"].as<uint64_t>();
    return load_or_train_mini_cnn(vm["mini-cnn-train"].as<std::string>(),
                                  cache_dir.empty() ? default_cache_dir() : cache_dir, train);
  }
  throw_usage("fid: unknown --feature-net '" + kind + "' (expected inception or mini-cnn)");
}

struct GridPick {
  at::Tensor images, labels;
};

// The images a grid shows: the first `columns` of each class (labelled sets), or
// columns x columns images; read in batches so a large sample file is never loaded whole.
GridPick pick_grid_images(const ImageSet& samples, int64_t columns) {
  GridPick pick;
  if (!samples.has_labels()) {
    pick.images = samples.images(0, std::min(samples.size(), columns * columns));
    return pick;
  }
  const at::Tensor labels = samples.labels();
  const int64_t* l = labels.data_ptr<int64_t>();
  std::map<int64_t, int64_t> shown;
  std::vector<int64_t> chosen;
  for (int64_t i = 0; i < samples.size(); ++i)
    if (shown[l[i]]++ < columns) chosen.push_back(i);
  std::vector<at::Tensor> images;
  constexpr int64_t kBatch = 1024;
  size_t next = 0;
  for (int64_t s = 0; s < samples.size() && next < chosen.size(); s += kBatch) {
    const int64_t k = std::min(kBatch, samples.size() - s);
    if (chosen[next] >= s + k) continue;  // nothing wanted in this batch
    const at::Tensor batch = samples.images(s, k);
    for (; next < chosen.size() && chosen[next] < s + k; ++next) images.push_back(batch[chosen[next] - s]);
  }
  pick.images = at::stack(images);
  pick.labels = labels.index_select(0, at::tensor(chosen, at::TensorOptions().dtype(at::kLong)));
  return pick;
}

}  // namespace

int run_fid_command(int argc, char** argv) {
  po::options_description options("fid options");
  options.add_options()
      ("samples", po::value<std::string>(), "generated images: HDF5 with images uint8 (N,H,W,C)")
      ("reference", po::value<std::string>(), "reference images (HDF5 images [+ labels]); stats are cached")
      ("reference-stats", po::value<std::string>(), "reference statistics file (mu, sigma, n [, features])")
      ("features-a", po::value<std::string>(), "score precomputed features: HDF5 with features (N,D)")
      ("features-b", po::value<std::string>(), "... against these")
      ("feature-net", po::value<std::string>()->default_value("inception"), "inception | mini-cnn")
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
      ("device", po::value<std::string>()->default_value("cpu"), "cpu | cuda (Inception only)")
      ("cache-dir", po::value<std::string>()->default_value(""),
       "reference stats and mini-CNN cache (default $DIFFFIT_CACHE_DIR or ~/.cache/difffit)")
      ("no-cache", "compute the reference statistics afresh and store nothing")
      ("kid", "also compute KID (needs raw features on both sides)")
      ("kid-subsets", po::value<int64_t>()->default_value(100), "KID subsets")
      ("kid-subset-size", po::value<int64_t>()->default_value(1000), "KID subset size (capped by N)")
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
  if (!parse_command_line("fid",
                          "FID/KID of samples against a reference.\n"
                          "  difffit fid --samples A.h5 (--reference B.h5 | --reference-stats S.h5) "
                          "[--feature-net inception|mini-cnn] [--kid]\n"
                          "  difffit fid --features-a FA.h5 --features-b FB.h5",
                          argc, argv, options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  if (vm.count("features-a") || vm.count("features-b")) {
    if (!vm.count("features-a") || !vm.count("features-b")) throw_usage("fid: give both --features-a and --features-b");
    if (vm.count("samples")) throw_usage("fid: --features-a/--features-b cannot be combined with --samples");
    return score_given_features(vm);
  }
  if (!vm.count("samples")) throw_usage("fid: --samples is required (see difffit fid --help)");
  if (vm.count("reference") && vm.count("reference-stats"))
    throw_usage("fid: give only one of --reference and --reference-stats");
  // Without a reference the command only writes the grid / .npz export, if asked to.
  const bool score = vm.count("reference") || vm.count("reference-stats");
  if (!score && !vm.count("grid") && !vm.count("export-samples-npz"))
    throw_usage("fid: give --reference or --reference-stats (or only --grid / --export-samples-npz)");
  const bool want_kid = vm.count("kid") > 0;
  const std::string samples_path = vm["samples"].as<std::string>();
  const std::string cache_dir = vm.count("no-cache") ? "" : vm["cache-dir"].as<std::string>().empty()
                                                               ? default_cache_dir()
                                                               : vm["cache-dir"].as<std::string>();

  ImageSet samples(samples_path);  // checks the file before a network is loaded or trained
  if (vm.count("grid")) {
    const int64_t columns = vm["grid-columns"].as<int64_t>();
    const GridPick pick = pick_grid_images(samples, columns);
    GridStyle style;
    style.columns = columns;
    style.scale = vm["grid-scale"].as<int64_t>() > 0 ? vm["grid-scale"].as<int64_t>() : readable_grid_scale(samples.height());
    style.label_rows = vm["grid-names"].as<bool>();
    style.class_names = class_names_in(samples_path);
    write_sample_grid(vm["grid"].as<std::string>(), pick.images, pick.labels, style);
    log()->info("[fid] wrote the sample grid {}", vm["grid"].as<std::string>());
  }
  if (vm.count("export-samples-npz")) {
    export_samples_npz(samples_path, vm["export-samples-npz"].as<std::string>(), vm["num-samples"].as<int64_t>());
    log()->info("[fid] wrote {}", vm["export-samples-npz"].as<std::string>());
  }

  if (!score) return 0;

  std::unique_ptr<FeatureNetwork> net = make_feature_net(vm, vm.count("no-cache") ? "" : cache_dir);
  ExtractOptions sample_options;
  sample_options.max_images = vm["num-samples"].as<int64_t>();
  sample_options.batch_size = vm["batch-size"].as<int64_t>();
  sample_options.keep_features = want_kid;
  ExtractOptions reference_options = sample_options;
  reference_options.max_images = vm["num-reference"].as<int64_t>();

  ExtractResult reference;
  std::string reference_name;
  if (vm.count("reference")) {
    reference_name = vm["reference"].as<std::string>();
    reference = reference_statistics(reference_name, *net, reference_options, cache_dir);
  } else {
    reference_name = vm["reference-stats"].as<std::string>();
    StatsAttributes attributes;
    reference.stats = load_feature_stats(reference_name, &attributes, want_kid ? &reference.features : nullptr);
    reference.images = reference.stats.count();
    const auto it = attributes.find("feature_net");
    if (it == attributes.end())
      log()->warn("[fid] {} does not say which feature network made it; assuming {}", reference_name, net->id());
    else if (it->second != net->id())
      throw_data(reference_name + ": statistics were computed with feature network '" + it->second +
                 "', not '" + net->id() + "': scores across networks are meaningless");
    if (want_kid && !reference.features.defined())
      throw_usage("fid: KID needs the reference's raw features, which " + reference_name +
                  " does not hold: pass --reference instead");
  }
  if (reference.stats.dim() != net->dim())
    throw_data(reference_name + ": statistics have dimension " + std::to_string(reference.stats.dim()) +
               ", the feature network gives " + std::to_string(net->dim()));
  if (vm.count("save-reference-stats"))
    save_feature_stats(vm["save-reference-stats"].as<std::string>(), reference.stats,
                       {{"feature_net", net->id()}, {"metric", net->metric_name()}, {"source", reference_name}},
                       reference.features);
  if (vm.count("export-reference-npz")) export_stats_npz(reference.stats, vm["export-reference-npz"].as<std::string>());

  const ExtractResult generated = extract_features(samples, *net, sample_options);
  Score s;
  s.metric = net->metric_name();
  s.feature_net = net->id();
  s.samples = samples_path;
  s.reference = reference_name;
  s.fid = frechet_distance(generated.stats, reference.stats);
  s.n_samples = generated.stats.count();
  s.n_reference = reference.stats.count();
  if (want_kid) {
    s.has_kid = true;
    s.kid = kernel_inception_distance(generated.features, reference.features, kid_options(vm));
  }
  if (auto* cnn = dynamic_cast<MiniCnnFeatureNet*>(net.get())) {
    s.class_accuracy = class_accuracy(cnn->net(), samples_path, sample_options.max_images);
  }
  print_score(s, vm.count("json") > 0);
  return 0;
}

}  // namespace difffit
