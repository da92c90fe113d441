#include "orchestrator/run_groups.h"

#include "common/error.h"

namespace difffit {

int RunGroups::group_of(int rank) const {
  if (rank < 1 || ranks_per_run < 1) return -1;
  const int group = (rank - 1) / ranks_per_run;
  return group < groups ? group : -1;
}

std::vector<int> RunGroups::leaders() const {
  std::vector<int> out;
  for (int g = 0; g < groups; ++g) out.push_back(leader_of(g));
  return out;
}

std::vector<int> RunGroups::members_of(int group) const {
  std::vector<int> out;
  for (int k = 0; k < ranks_per_run; ++k) out.push_back(leader_of(group) + k);
  return out;
}

RunGroups plan_run_groups(int world_size, int ranks_per_run, const std::string& where) {
  RunGroups groups;
  groups.ranks_per_run = ranks_per_run;
  const int workers = world_size - 1;
  if (workers < 1) return groups;
  if (workers < ranks_per_run) {
    throw_config(where + ": ranks_per_run " + std::to_string(ranks_per_run) + " needs at least that many worker ranks; " +
                 "the job has " + std::to_string(workers) + " (launch " + std::to_string(ranks_per_run + 1) +
                 " ranks or more: rank 0 coordinates)");
  }
  groups.groups = workers / ranks_per_run;
  return groups;
}

}  // namespace difffit
