// Helpers shared by the tests: temporary folders, running the Python reference
// scripts and the difffit binary.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>

namespace difffit::testing {

// Where the tests find difffit, the source tree, the reference Python, its scripts and
// mpiexec: fixed at build time, or given by the environment for a build that moved (the
// GPU bundle, scripts/gpu-bundle.sh).
inline std::string test_setting(const char* variable, const char* built_in) {
  const char* value = std::getenv(variable);
  return value && *value ? value : built_in;
}
inline std::string difffit_binary() { return test_setting("DIFFFIT_TEST_BINARY", DIFFFIT_BINARY); }
inline std::string source_dir() { return test_setting("DIFFFIT_TEST_SOURCE_DIR", DIFFFIT_SOURCE_DIR); }
inline std::string test_python() { return test_setting("DIFFFIT_TEST_PYTHON", DIFFFIT_PYTHON); }
inline std::string test_scripts() { return test_setting("DIFFFIT_TEST_SCRIPTS", DIFFFIT_TEST_SCRIPTS); }
inline std::string mpiexec() { return test_setting("DIFFFIT_TEST_MPIEXEC", DIFFFIT_MPIEXEC); }

// A fresh folder under the system temp dir, removed at the end of the scope.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "difffit-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Runs tests/python/SCRIPT with the test Python (the one with PyTorch); fails the test on error.
inline std::string run_python(const std::string& script, const std::string& args) {
  CommandResult r = run_command(test_python() + " " + test_scripts() + "/" + script + " " + args);
  EXPECT_EQ(r.exit_code, 0) << script << " failed:\n" << r.output;
  return r.output;
}

inline CommandResult run_difffit(const std::string& args) {
  return run_command(difffit_binary() + " " + args);
}

// difffit killed (SIGKILL) after `seconds`: a command that blocks fails its test (exit 137)
// instead of hanging the suite.
inline CommandResult run_difffit_within(int seconds, const std::string& args) {
  return run_command("timeout -s KILL " + std::to_string(seconds) + " " + difffit_binary() + " " + args);
}

// "mpiexec ... -n RANKS difffit": shared memory only, root allowed, more ranks than cores.
inline std::string mpirun_difffit(int ranks) {
  return std::string("env OMPI_MCA_btl=self,vader OMPI_MCA_plm_rsh_agent=false ") + mpiexec() +
         " --oversubscribe --allow-run-as-root -n " + std::to_string(ranks) + " " + difffit_binary();
}

}  // namespace difffit::testing
