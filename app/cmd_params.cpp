// difffit params: total and trainable parameter counts per fine-tuning method.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/error.h"
#include "common/json_text.h"
#include "worker/model/dit.h"
#include "worker/model/peft_method.h"

namespace difffit {
namespace {

std::string with_commas(int64_t value) {
  std::string digits = std::to_string(value), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

int run_params_command(int argc, char** argv) {
  po::options_description options("params options");
  add_model_options(options);
  add_method_options(options, "");
  options.add_options()("json", "print JSON instead of a table");
  po::variables_map vm;
  if (!parse_command_line("params",
                          "Counts total and trainable parameters; all methods unless --method is given.",
                          argc, argv, options, vm)) {
    return 0;
  }
  DiTConfig config = model_config_from(vm);
  std::vector<MethodConfig> methods;
  if (vm.count("method")) {
    methods.push_back(method_config_from(vm));
  } else {
    if (vm.count("option")) throw_usage("params: --option needs --method");
    for (const auto& name : method_names()) methods.push_back(make_method_config(name));
  }

  std::vector<MethodSetup> setups;
  for (const auto& method : methods) {
    DiT model(config, /*initialize=*/false);  // shapes only: no memory is touched
    setups.push_back(apply_method(*model, method));
  }

  if (vm.count("json")) {
    nlohmann::ordered_json out = {{"model", config.to_key_values()}, {"methods", nlohmann::ordered_json::array()}};
    for (const auto& s : setups) {
      out["methods"].push_back({{"method", s.config.name()},
                                {"options", s.config.to_options_string()},
                                {"trainable", s.trainable_params},
                                {"total", s.total_params},
                                {"percent", s.trainable_percent()}});
    }
    std::cout << json_text(out, 2) << std::endl;
    return 0;
  }
  std::cout << config.describe() << "\n\n";
  std::printf("%-12s %15s %15s %9s  %s\n", "method", "trainable", "total", "percent", "options");
  for (const auto& s : setups) {
    std::printf("%-12s %15s %15s %8.4f%%  %s\n", s.config.name().c_str(), with_commas(s.trainable_params).c_str(),
                with_commas(s.total_params).c_str(), s.trainable_percent(), s.config.to_options_string().c_str());
  }
  return 0;
}

}  // namespace difffit
