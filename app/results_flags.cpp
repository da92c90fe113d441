#include "app/results_flags.h"

#include <sstream>

#include "results/results_views.h"

namespace difffit {

void add_selection_options(po::options_description& options) {
  options.add_options()
      ("grid", po::value<std::string>()->default_value(""), "only rows of this grid of the sweep")
      ("where", po::value<std::vector<std::string>>()->composing(), "only rows whose text column K equals V (K=V, repeatable)");
}

void add_table_options(po::options_description& options) {
  add_selection_options(options);
  const TableSpec d;
  options.add_options()
      ("rows", po::value<std::string>()->default_value(d.row_key), "text column: one table row per value")
      ("cols", po::value<std::string>()->default_value(d.col_key), "text column: one table column per value")
      ("value", po::value<std::string>()->default_value(d.value), "numeric column in the cells")
      ("extra", po::value<std::vector<std::string>>()->composing(),
       "numeric columns shown once per row, comma-separated (e.g. trainable_params,trainable_pct; A/B% = 100 A/B)")
      ("higher-is-better", "mark the largest value of a column as best (default: the smallest)")
      ("decimals", po::value<int>()->default_value(d.decimals), "digits after the decimal point")
      ("no-mean", "leave out the mean column")
      ("label", po::value<std::string>()->default_value(""),
       "name of the value in titles (default: the rows' metric column for fid, e.g. \"FID (mini-CNN)\")");
}

std::vector<std::string> comma_list(const po::variables_map& vm, const char* flag) {
  std::vector<std::string> out;
  if (!vm.count(flag)) return out;
  for (const std::string& item : vm[flag].as<std::vector<std::string>>()) {
    std::stringstream in(item);
    for (std::string part; std::getline(in, part, ',');)
      if (!part.empty()) out.push_back(part);
  }
  return out;
}

TableSpec table_spec_from(const po::variables_map& vm) {
  TableSpec spec;
  spec.grid = vm["grid"].as<std::string>();
  if (vm.count("where"))
    for (const std::string& w : vm["where"].as<std::vector<std::string>>()) spec.where.push_back(parse_where(w));
  if (!vm.count("rows")) return spec;  // selection only
  spec.row_key = vm["rows"].as<std::string>();
  spec.col_key = vm["cols"].as<std::string>();
  spec.value = vm["value"].as<std::string>();
  spec.extra = comma_list(vm, "extra");
  spec.lower_is_better = !vm.count("higher-is-better");
  spec.decimals = vm["decimals"].as<int>();
  spec.mean_column = !vm.count("no-mean");
  spec.value_label = vm["label"].as<std::string>();
  return spec;
}

}  // namespace difffit
