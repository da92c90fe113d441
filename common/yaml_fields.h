// Typed access to YAML config fields with errors that name the file and the
// field path (e.g. "experiments/quick.yaml: model.depth: expected an integer").
#pragma once

#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

namespace difffit {

// A YAML mapping together with where it came from, for error messages.
class YamlSection {
 public:
  YamlSection(YAML::Node node, std::string source, std::string path = "");

  static YamlSection load_file(const std::string& file);

  bool has(const std::string& key) const;
  YamlSection child(const std::string& key) const;  // must exist and be a mapping

  // Reads `key` into `out` when present; leaves `out` unchanged otherwise.
  void read(const std::string& key, int64_t& out) const;
  void read(const std::string& key, int& out) const;
  void read(const std::string& key, double& out) const;
  void read(const std::string& key, bool& out) const;
  void read(const std::string& key, std::string& out) const;
  void read(const std::string& key, std::vector<std::string>& out) const;  // a list, or one scalar

  // Every key of the mapping must be one of `known`: catches typos.
  void require_known_keys(const std::set<std::string>& known) const;

  std::vector<std::string> keys() const;
  std::string where(const std::string& key) const;  // "file: path.key"
  const YAML::Node& node() const { return node_; }

 private:
  YAML::Node node_;
  std::string source_;
  std::string path_;
};

}  // namespace difffit
