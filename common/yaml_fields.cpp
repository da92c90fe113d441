#include "common/yaml_fields.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "common/error.h"

namespace difffit {

YamlSection::YamlSection(YAML::Node node, std::string source, std::string path)
    : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)) {}

namespace {

// Parsed files by path, reused while the file's text stays the same: a sweep's planner
// loads the same template once per run (10,000 times in a large sweep), and parsing YAML
// is the slow part. Callers get a deep copy they may change.
YAML::Node parse_file_cached(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return YAML::LoadFile(file);  // the parser reports why
  std::ostringstream text;
  text << in.rdbuf();
  static std::mutex mutex;
  static std::map<std::string, std::pair<std::string, YAML::Node>> cache;  // path -> (text, parsed)
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(file);
  if (it == cache.end() || it->second.first != text.str()) {
    it = cache.insert_or_assign(file, std::make_pair(text.str(), YAML::Load(text.str()))).first;
  }
  return YAML::Clone(it->second.second);
}

}  // namespace

YamlSection YamlSection::load_file(const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) throw_io(file + ": is a folder; expected a YAML file");
  try {
    YAML::Node root = parse_file_cached(file);
    if (!root.IsMap()) throw_config(file + ": the top level must be a mapping");
    return YamlSection(root, file);
  } catch (const YAML::BadFile&) {
    throw_io(file + ": cannot open config file");
  } catch (const YAML::ParserException& e) {
    throw_config(file + ": YAML syntax error: " + e.what());
  } catch (const std::ios_base::failure& e) {
    throw_io(file + ": cannot read config file: " + e.what());
  }
}

std::string YamlSection::where(const std::string& key) const {
  return source_ + ": " + (path_.empty() ? key : path_ + "." + key);
}

bool YamlSection::has(const std::string& key) const { return node_.IsMap() && node_[key]; }

YamlSection YamlSection::child(const std::string& key) const {
  if (!has(key)) throw_config(where(key) + ": missing section");
  YAML::Node sub = node_[key];
  if (!sub.IsMap()) throw_config(where(key) + ": expected a mapping");
  return YamlSection(sub, source_, path_.empty() ? key : path_ + "." + key);
}

namespace {
template <typename T>
void read_scalar(const YamlSection& section, const std::string& key, T& out, const char* what) {
  if (!section.has(key)) return;
  const YAML::Node value = section.node()[key];
  if (!value.IsScalar()) throw_config(section.where(key) + ": expected " + what);
  try {
    out = value.as<T>();
  } catch (const YAML::Exception&) {
    throw_config(section.where(key) + ": expected " + what + ", got '" + value.Scalar() + "'");
  }
}
}  // namespace

void YamlSection::read(const std::string& key, int64_t& out) const { read_scalar(*this, key, out, "an integer"); }
void YamlSection::read(const std::string& key, int& out) const { read_scalar(*this, key, out, "an integer"); }
void YamlSection::read(const std::string& key, double& out) const { read_scalar(*this, key, out, "a number"); }
void YamlSection::read(const std::string& key, bool& out) const { read_scalar(*this, key, out, "true or false"); }
void YamlSection::read(const std::string& key, std::string& out) const { read_scalar(*this, key, out, "a string"); }

void YamlSection::read(const std::string& key, std::vector<std::string>& out) const {
  if (!has(key)) return;
  const YAML::Node value = node_[key];
  out.clear();
  if (value.IsScalar()) {
    out.push_back(value.Scalar());
    return;
  }
  if (!value.IsSequence()) throw_config(where(key) + ": expected a list of names");
  for (const auto& item : value) {
    if (!item.IsScalar()) throw_config(where(key) + ": expected a list of names");
    out.push_back(item.Scalar());
  }
}

std::vector<std::string> YamlSection::keys() const {
  std::vector<std::string> result;
  if (!node_.IsMap()) return result;
  for (const auto& item : node_) result.push_back(item.first.as<std::string>());
  return result;
}

void YamlSection::require_known_keys(const std::set<std::string>& known) const {
  for (const auto& key : keys()) {
    if (known.count(key)) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw_config(where(key) + ": unknown field (known: " + list + ")");
  }
}

}  // namespace difffit
