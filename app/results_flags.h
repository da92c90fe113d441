// The flags of `difffit results` that pick rows of a results file and shape a pivot table,
// and the TableSpec they make.
#pragma once

#include <string>
#include <vector>

#include "app/cli_options.h"
#include "results/result_table.h"

namespace difffit {

// --grid --where K=V (repeatable): which rows.
void add_selection_options(po::options_description& options);
// The selection, and --rows --cols --value --extra --higher-is-better --decimals --no-mean --label.
void add_table_options(po::options_description& options);
// The TableSpec of those flags (the selection only, where the table flags were not declared).
TableSpec table_spec_from(const po::variables_map& vm);
// The values of a repeatable flag, each also split at commas.
std::vector<std::string> comma_list(const po::variables_map& vm, const char* flag);

}  // namespace difffit
