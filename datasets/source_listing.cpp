#include "datasets/source_listing.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/csv.h"
#include "common/error.h"
#include "common/input_file.h"
#include "datasets/mat_reader.h"

namespace difffit {
namespace {

namespace fs = std::filesystem;

std::string relative_name(const fs::path& file, const fs::path& root) {
  return file.lexically_relative(root).generic_string();
}

std::vector<std::string> read_lines(const fs::path& path) {
  check_input_file(path.string(), "an annotation file", kListingFileLimit);
  std::ifstream in(path);
  if (!in) throw_io(path.string() + ": cannot open");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

fs::path require(const fs::path& path, const std::string& kind) {
  if (!fs::exists(path)) throw_io(kind + ": expected " + path.string() + " (see the README for the layout)");
  return path;
}

// The first of `candidates` that exists.
fs::path find_first(const std::vector<fs::path>& candidates, const std::string& kind) {
  for (const auto& p : candidates) {
    if (fs::exists(p)) return p;
  }
  throw_io(kind + ": expected " + candidates.front().string() + " (see the README for the layout)");
}

[[noreturn]] void bad_split(const std::string& kind, const std::string& split, const std::string& known) {
  throw_usage(kind + ": unknown split '" + split + "' (" + known + ")");
}

// Adds `name` (relative to root) if the file exists, else records it as missing.
void add_file(SourceListing& out, const fs::path& root, const std::string& name, int64_t label) {
  fs::path p = root / name;
  if (fs::is_regular_file(p)) {
    out.files.push_back({p.string(), name, label});
  } else {
    out.missing.push_back({name, "missing (named by the annotations)"});
  }
}

// More entries than any real dataset folder holds (ImageNet's train split: 1.3M files):
// folder links that reach the same folders again and again would list without end.
constexpr size_t kMaxFolderEntries = 20'000'000;

// All regular, non-hidden files under `dir`, sorted by relative path.
std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> files;
  size_t entries = 0;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
       it != fs::recursive_directory_iterator(); ++it) {
    if (++entries > kMaxFolderEntries)
      throw_data(dir.string() + ": more than " + std::to_string(kMaxFolderEntries) +
                 " entries below it (folder links that reach the same folders many times?)");
    const std::string leaf = it->path().filename().string();
    if (!leaf.empty() && leaf[0] == '.') {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return a.generic_string() < b.generic_string();
  });
  return files;
}

std::vector<std::string> class_folders(const fs::path& root, const std::set<std::string>& exclude) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string leaf = entry.path().filename().string();
    if (entry.is_directory() && leaf[0] != '.' && !exclude.count(leaf)) names.push_back(leaf);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// torchvision ImageFolder semantics: one folder per class, classes sorted by name,
// every file below a class folder (recursively) is a candidate.
SourceListing list_image_folder(const fs::path& root, const std::set<std::string>& exclude = {},
                                const fs::path& name_base = {}) {
  if (!fs::is_directory(root)) throw_io(root.string() + ": not a folder");
  SourceListing out;
  out.class_names = class_folders(root, exclude);
  if (out.class_names.empty()) throw_data(root.string() + ": no class folders");
  const fs::path base = name_base.empty() ? root : name_base;
  for (size_t label = 0; label < out.class_names.size(); ++label) {
    const std::vector<fs::path> files = files_under(root / out.class_names[label]);
    // A class folder without any file is an error, not a class that the model learns never
    // to draw (torchvision's ImageFolder goes further: a class without an image file).
    if (files.empty())
      throw_data((root / out.class_names[label]).string() + ": class folder without files (remove it, or add its "
                 "images)");
    for (const auto& file : files)
      out.files.push_back({file.string(), relative_name(file, base), static_cast<int64_t>(label)});
  }
  return out;
}

SourceListing list_food101(const fs::path& root, const std::string& split) {
  if (split != "train" && split != "test") bad_split("food-101", split, "train | test");
  SourceListing out;
  out.class_names = read_lines(require(root / "meta" / "classes.txt", "food-101"));
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < out.class_names.size(); ++i) index[out.class_names[i]] = static_cast<int64_t>(i);
  for (const auto& line : read_lines(require(root / "meta" / (split + ".txt"), "food-101"))) {
    const std::string cls = line.substr(0, line.find('/'));
    auto it = index.find(cls);
    if (it == index.end()) throw_data("food-101: meta/" + split + ".txt names unknown class '" + cls + "'");
    add_file(out, root, "images/" + line + ".jpg", it->second);
  }
  return out;
}

SourceListing list_sun397(const fs::path& root, const std::string& split) {
  SourceListing out;
  const fs::path class_file = find_first({root / "ClassName.txt", root / "Partitions" / "ClassName.txt"}, "sun397");
  std::map<std::string, int64_t> index;
  for (const auto& line : read_lines(class_file)) {  // "/a/abbey"
    index[line] = static_cast<int64_t>(out.class_names.size());
    out.class_names.push_back(line.substr(3));  // "abbey", "apartment_building/outdoor"
  }
  if (split == "all") {
    for (const auto& [folder, label] : index) {
      for (const auto& file : files_under(root / folder.substr(1))) {
        out.files.push_back({file.string(), relative_name(file, root), label});
      }
    }
    std::stable_sort(out.files.begin(), out.files.end(),
                     [](const SourceFile& a, const SourceFile& b) { return a.label < b.label; });
    return out;
  }
  // train / test use partition 01; train-NN / test-NN pick another of the ten.
  std::string kind = split.substr(0, split.find('-')), number = "01";
  if (split.size() > kind.size()) number = split.substr(kind.size() + 1);
  if ((kind != "train" && kind != "test") || number.size() != 2) bad_split("sun397", split, "train | test | train-NN | test-NN | all");
  const std::string name = (kind == "train" ? "Training_" : "Testing_") + number + ".txt";
  const fs::path partition = find_first({root / "Partitions" / name, root / name}, "sun397");
  for (const auto& line : read_lines(partition)) {  // "/a/abbey/sun_aaalbzqrimafwbiv.jpg"
    const std::string folder = line.substr(0, line.rfind('/'));
    auto it = index.find(folder);
    if (it == index.end()) throw_data("sun397: " + name + " names unknown class folder '" + folder + "'");
    add_file(out, root, line.substr(1), it->second);
  }
  return out;
}

SourceListing list_caltech101(const fs::path& root, const std::string& split) {
  if (split != "all" && split != "train" && split != "test") bad_split("caltech-101", split, "all | train | test");
  fs::path base = fs::exists(root / "101_ObjectCategories") ? root / "101_ObjectCategories" : root;
  // BACKGROUND_Google is clutter, not a class (torchvision drops it too).
  SourceListing all = list_image_folder(base, {"BACKGROUND_Google"}, base);
  if (split == "all") return all;
  SourceListing out;
  out.class_names = all.class_names;
  std::map<int64_t, int> seen;  // the usual protocol: 30 training images per class
  for (const auto& f : all.files) {
    const bool train = seen[f.label]++ < 30;
    if (train == (split == "train")) out.files.push_back(f);
  }
  return out;
}

SourceListing list_cub200(const fs::path& root, const std::string& split) {
  if (split != "all" && split != "train" && split != "test") bad_split("cub-200-2011", split, "all | train | test");
  fs::path base = fs::exists(root / "CUB_200_2011") ? root / "CUB_200_2011" : root;
  SourceListing out;
  for (const auto& line : read_lines(require(base / "classes.txt", "cub-200-2011"))) {  // "1 001.Black_footed_Albatross"
    out.class_names.push_back(line.substr(line.find(' ') + 1));
  }
  std::map<std::string, std::string> images, labels, is_train;
  auto load = [&](const char* file, std::map<std::string, std::string>& into) {
    for (const auto& line : read_lines(require(base / file, "cub-200-2011"))) {
      const size_t space = line.find(' ');
      into[line.substr(0, space)] = line.substr(space + 1);
    }
  };
  load("images.txt", images);
  load("image_class_labels.txt", labels);
  load("train_test_split.txt", is_train);
  std::vector<std::pair<int64_t, std::string>> ordered;  // by numeric image id
  for (const auto& [id, name] : images) ordered.emplace_back(std::stoll(id), id);
  std::sort(ordered.begin(), ordered.end());
  for (const auto& [number, id] : ordered) {
    if (split != "all" && (is_train[id] == "1") != (split == "train")) continue;
    const int64_t label = std::stoll(labels.at(id)) - 1;
    if (label < 0 || label >= static_cast<int64_t>(out.class_names.size())) throw_data("cub-200-2011: bad label for image " + id);
    add_file(out, base, "images/" + images[id], label);
  }
  return out;
}

SourceListing list_artbench(const fs::path& root, const std::string& split) {
  if (split != "train" && split != "test") bad_split("artbench-10", split, "train | test");
  fs::path base = fs::exists(root / "artbench-10-imagefolder-split") ? root / "artbench-10-imagefolder-split" : root;
  return list_image_folder(require(base / split, "artbench-10"), {}, base);
}

SourceListing list_flowers102(const fs::path& root, const std::string& split) {
  auto labels_mat = read_mat_file(require(root / "imagelabels.mat", "flowers-102").string());
  auto setid = read_mat_file(require(root / "setid.mat", "flowers-102").string());
  if (!labels_mat.count("labels")) throw_data("flowers-102: imagelabels.mat has no 'labels'");
  const std::vector<double>& labels = labels_mat["labels"].numbers;
  std::vector<std::string> parts;
  if (split == "train") parts = {"trnid"};
  else if (split == "val") parts = {"valid"};
  else if (split == "test") parts = {"tstid"};
  else if (split == "trainval") parts = {"trnid", "valid"};
  else if (split == "all") parts = {"trnid", "valid", "tstid"};
  else bad_split("flowers-102", split, "train | val | trainval | test | all");
  std::vector<int64_t> ids;
  for (const auto& part : parts) {
    if (!setid.count(part)) throw_data("flowers-102: setid.mat has no '" + part + "'");
    for (double id : setid[part].numbers) ids.push_back(static_cast<int64_t>(id));
  }
  std::sort(ids.begin(), ids.end());
  SourceListing out;
  int64_t classes = 0;
  for (double l : labels) classes = std::max<int64_t>(classes, static_cast<int64_t>(l));
  for (int64_t c = 1; c <= classes; ++c) {
    char name[64];
    std::snprintf(name, sizeof(name), "class_%03lld", static_cast<long long>(c));
    out.class_names.push_back(name);  // the dataset ships no class names
  }
  for (int64_t id : ids) {
    if (id < 1 || id > static_cast<int64_t>(labels.size())) throw_data("flowers-102: image id out of range");
    char name[64];
    std::snprintf(name, sizeof(name), "jpg/image_%05lld.jpg", static_cast<long long>(id));
    add_file(out, root, name, static_cast<int64_t>(labels[id - 1]) - 1);
  }
  return out;
}

SourceListing list_stanford_cars(const fs::path& root, const std::string& split) {
  if (split != "train" && split != "test") bad_split("stanford-cars", split, "train | test");
  SourceListing out;
  auto meta = read_mat_file(find_first({root / "devkit" / "cars_meta.mat", root / "cars_meta.mat"}, "stanford-cars").string());
  for (const auto& v : meta["class_names"].elements) out.class_names.push_back(v.as_string());
  if (out.class_names.empty()) throw_data("stanford-cars: cars_meta.mat has no class_names");
  const fs::path annos = split == "train"
      ? find_first({root / "devkit" / "cars_train_annos.mat", root / "cars_train_annos.mat"}, "stanford-cars")
      : find_first({root / "cars_test_annos_withlabels.mat", root / "devkit" / "cars_test_annos_withlabels.mat"},
                   "stanford-cars");
  auto annotations = read_mat_file(annos.string());
  const MatValue& a = annotations["annotations"];
  const std::string folder = split == "train" ? "cars_train/" : "cars_test/";
  for (int64_t i = 0; i < a.numel(); ++i) {
    const int64_t label = static_cast<int64_t>(a.field(i, "class").as_scalar()) - 1;
    if (label < 0 || label >= static_cast<int64_t>(out.class_names.size())) throw_data("stanford-cars: bad class");
    add_file(out, root, folder + a.field(i, "fname").as_string(), label);
  }
  return out;
}

// Reads a CSV file with a header into records; quoted fields may span lines.
std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
  check_input_file(path.string(), "an annotation file", kListingFileLimit);
  std::ifstream in(path);
  if (!in) throw_io(path.string() + ": cannot open");
  std::vector<std::vector<std::string>> rows;
  std::string line, record;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    record += record.empty() ? line : "\n" + line;
    if (std::count(record.begin(), record.end(), '"') % 2 != 0) continue;  // inside quotes
    if (!record.empty()) rows.push_back(parse_csv_line(record));
    record.clear();
  }
  return rows;
}

SourceListing list_df20_mini(const fs::path& root, const std::string& split) {
  if (split != "train" && split != "test") bad_split("df20-mini", split, "train | test");
  const fs::path train_csv = require(root / "DF20M-train_metadata_PROD.csv", "df20-mini");
  const fs::path test_csv = require(root / "DF20M-public_test_metadata_PROD.csv", "df20-mini");
  const fs::path images = fs::exists(root / "DF20M") ? root / "DF20M" : root;
  SourceListing out;
  std::map<int64_t, std::string> names;  // class_id -> scientific name, from both splits
  std::vector<std::pair<std::string, int64_t>> wanted;
  for (const auto& csv : {train_csv, test_csv}) {
    auto rows = read_csv(csv);
    if (rows.empty()) throw_data(csv.string() + ": empty");
    const auto& header = rows[0];
    auto column = [&](const std::string& name) -> int64_t {
      auto it = std::find(header.begin(), header.end(), name);
      return it == header.end() ? -1 : it - header.begin();
    };
    const int64_t path_col = column("image_path"), class_col = column("class_id"), name_col = column("scientificName");
    if (path_col < 0 || class_col < 0) throw_data(csv.string() + ": needs columns image_path and class_id");
    for (size_t r = 1; r < rows.size(); ++r) {
      const auto& row = rows[r];
      if (static_cast<int64_t>(row.size()) <= std::max(path_col, class_col)) continue;
      const int64_t label = std::stoll(row[class_col]);
      if (name_col >= 0 && name_col < static_cast<int64_t>(row.size())) names[label] = row[name_col];
      if ((csv == train_csv) == (split == "train")) wanted.emplace_back(row[path_col], label);
    }
  }
  const int64_t classes = names.empty() ? 0 : names.rbegin()->first + 1;
  for (int64_t c = 0; c < classes; ++c) out.class_names.push_back(names.count(c) ? names[c] : "class_" + std::to_string(c));
  for (const auto& [name, label] : wanted) {
    if (label < 0 || label >= classes) throw_data("df20-mini: class_id out of range");
    add_file(out, images, fs::path(name).filename().string(), label);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& dataset_kinds() {
  static const std::vector<std::string> kinds = {"fashion-mnist", "imagefolder",   "food-101",
                                                 "sun397",        "caltech-101",   "cub-200-2011",
                                                 "artbench-10",   "flowers-102",   "stanford-cars",
                                                 "df20-mini"};
  return kinds;
}

SourceListing list_dataset_files(const std::string& kind, const std::string& root_text, const std::string& split) {
  const fs::path root(root_text);
  if (!fs::is_directory(root)) throw_io(kind + ": input folder " + root_text + " does not exist");
  if (kind == "imagefolder") return list_image_folder(root);
  if (kind == "food-101") return list_food101(root, split);
  if (kind == "sun397") return list_sun397(root, split);
  if (kind == "caltech-101") return list_caltech101(root, split);
  if (kind == "cub-200-2011") return list_cub200(root, split);
  if (kind == "artbench-10") return list_artbench(root, split);
  if (kind == "flowers-102") return list_flowers102(root, split);
  if (kind == "stanford-cars") return list_stanford_cars(root, split);
  if (kind == "df20-mini") return list_df20_mini(root, split);
  throw_usage("unknown dataset kind '" + kind + "'");
}

}  // namespace difffit
