#include "common/yaml_fields.h"

#include <cmath>
#include <map>
#include <mutex>
#include <utility>

#include "common/error.h"
#include "common/input_file.h"

namespace difffit {

YamlSection::YamlSection(YAML::Node node, std::string source, std::string path)
    : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)) {}

namespace {

// Every mapping key must be a scalar that appears once in its mapping: yaml-cpp keeps the
// first of two equal keys, where most YAML readers keep the last, so the same file would
// mean two things. Walked without recursion, each node once (aliases share their node).
void check_mapping_keys(const YAML::Node& root, const std::string& file) {
  std::vector<std::pair<YAML::Node, std::string>> todo = {{root, ""}};
  std::set<std::pair<int, int>> seen;  // nodes by their place in the text
  while (!todo.empty()) {
    auto [node, path] = todo.back();
    todo.pop_back();
    if (!node.IsMap() && !node.IsSequence()) continue;
    if (!seen.insert({node.Mark().line, node.Mark().column}).second) continue;
    const std::string prefix = path.empty() ? "" : path + ".";
    if (node.IsSequence()) {
      for (size_t i = 0; i < node.size(); ++i) todo.push_back({node[i], path + "[" + std::to_string(i) + "]"});
      continue;
    }
    std::set<std::string> keys;
    for (const auto& item : node) {
      if (!item.first.IsScalar())
        throw_config(file + ": " + (path.empty() ? "the top level" : path) + ": line " +
                     std::to_string(item.first.Mark().line + 1) + ": a key must be a plain name, not a list or mapping");
      const std::string key = item.first.Scalar();
      if (!keys.insert(key).second)
        throw_config(file + ": " + prefix + key + ": given twice (line " + std::to_string(item.first.Mark().line + 1) +
                     ")");
      todo.push_back({item.second, prefix + key});
    }
  }
}

// The file's one document. YAML::Load keeps the first of several ("---" separators) and
// drops the rest unread, so a second experiment in the same file would never run.
YAML::Node parse_one_document(const std::string& text, const std::string& file) {
  std::vector<YAML::Node> documents = YAML::LoadAll(text);
  if (documents.size() > 1)
    throw_config(file + ": holds " + std::to_string(documents.size()) +
                 " YAML documents ('---' separators); expected one (a sweep file runs several experiments)");
  return documents.empty() ? YAML::Node() : documents.front();
}

// Parsed files by path, reused while the file's text stays the same: a sweep's planner
// loads the same template once per run (10,000 times in a large sweep), and parsing YAML
// is the slow part. Callers get a deep copy they may change.
YAML::Node parse_file_cached(const std::string& file) {
  const std::string text = read_input_file(file, "a YAML file", kConfigFileLimit);
  static std::mutex mutex;
  static std::map<std::string, std::pair<std::string, YAML::Node>> cache;  // path -> (text, parsed)
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(file);
  if (it == cache.end() || it->second.first != text) {
    YAML::Node parsed = parse_one_document(text, file);
    check_mapping_keys(parsed, file);  // before the copy below, which has no text positions
    it = cache.insert_or_assign(file, std::make_pair(text, parsed)).first;
  }
  return YAML::Clone(it->second.second);
}

}  // namespace

YamlSection YamlSection::load_file(const std::string& file) {
  try {
    YAML::Node root = parse_file_cached(file);
    if (!root.IsMap()) throw_config(file + ": the top level must be a mapping");
    return YamlSection(root, file);
  } catch (const YAML::ParserException& e) {
    throw_config(file + ": YAML syntax error: " + e.what());
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
void YamlSection::read(const std::string& key, double& out) const {
  double value = out;
  read_scalar(*this, key, value, "a number");
  // YAML's .nan and .inf are numbers to the parser; no field of a config means them.
  if (!std::isfinite(value)) throw_config(where(key) + ": expected a finite number, got '" + node_[key].Scalar() + "'");
  out = value;
}
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
