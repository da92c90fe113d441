// The sweep's results file (HDF5) and its CSV export.
//
// Layout: group /runs holds one 1-D dataset per column, all of the same length (one entry
// per row): text columns as fixed-length UTF-8 strings, NUL-padded ("" when a row lacks the
// value), numeric columns as float64 (NaN when missing). Root attributes (strings) describe the
// file, among them format = "difffit-results-1". Group /curves, when runs drew learning
// curves, is a second table of the same layout: one row per (run, grid, curve point), with
// the run's text columns (grid, run_id, name, axis labels) and step plus each metric.
// Read it from Python with
//   import h5py, pandas as pd
//   f = h5py.File("results.h5", "r"); runs = f["runs"]
//   df = pd.DataFrame({k: (runs[k].asstr()[:] if runs[k].dtype.kind in "OS" else runs[k][:]) for k in runs})
// (files of earlier versions hold variable-length strings; both read the same here and in h5py).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "results/result_row.h"

namespace difffit {

inline constexpr const char* kResultsFormat = "difffit-results-1";

// Writes PATH.tmp, then renames it over PATH, so an existing file stays intact when the
// write fails. `attributes` become root attributes (the format attribute is always set).
// Column names must be non-empty and free of '/'; a name may not be both text and numeric.
void write_results_h5(const std::string& path, const std::vector<ResultRow>& rows,
                      const std::map<std::string, std::string>& attributes = {},
                      const std::vector<ResultRow>& curves = {});

// Every row holds every column of the file (dense). `attributes`, when given, receives
// the root string attributes.
std::vector<ResultRow> read_results_h5(const std::string& path,
                                       std::map<std::string, std::string>* attributes = nullptr);
// The learning-curve points of /curves (none when the file has no such group).
std::vector<ResultRow> read_results_curves(const std::string& path);

// Header: text columns (grid, run_id, name first, then sorted), then numeric columns
// (sorted); numbers in their shortest round-trip form, empty for NaN; lines end in "\n".
std::string results_csv(const std::vector<ResultRow>& rows);
void write_results_csv(const std::string& path, const std::vector<ResultRow>& rows);

}  // namespace difffit
