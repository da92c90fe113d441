// The paper's own Table 1, kept as data (experiments/paper-table1.csv), beside a sweep's
// pivot table: `difffit results table ... --paper`.
#pragma once

#include <string>
#include <vector>

#include "results/result_row.h"
#include "results/result_table.h"

namespace difffit {

struct PaperTable {
  std::string path;
  std::string source;            // its "# source: ..." comment line: the citation
  std::vector<ResultRow> rows;   // one per cell: text method, dataset; numbers fid, trainable_params
};

// Reads "method,<dataset>...[,params_m]" with '#' comment lines; errors name the file, line
// and field.
PaperTable read_paper_table(const std::string& path);

// The paper's cells as a pivot table shaped like `ours` (same extras where the paper has
// them: trainable_params), titled with its source.
PivotTable paper_pivot(const PaperTable& paper, const PivotTable& ours);

// `ours` with a row "<label> (paper)" after each row the paper also has, holding the
// paper's values in the columns both tables share (the rest missing); bold marks stay
// those of `ours`. Returns false (and leaves `ours` alone) when no row and column match.
// `paper` comes from paper_pivot(..., ours).
bool interleave_paper_rows(PivotTable& ours, const PivotTable& paper);

// `ours` rendered with the paper's FID beside it: interleaved rows where the datasets
// match, else the paper's own table after ours (not as CSV). Usage errors say why not.
std::string render_with_paper(PivotTable ours, const PaperTable& paper, TableFormat format);

}  // namespace difffit
