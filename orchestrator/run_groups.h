// How a sweep job's ranks divide: rank 0 coordinates; the worker ranks 1..N-1 form groups
// of `ranks_per_run` consecutive ranks, and each group trains one run at a time together
// (data parallel over its own communicator). A group's first rank, its leader, is the one
// the coordinator talks to; ranks that do not fill a group stay idle.
#pragma once

#include <string>
#include <vector>

namespace difffit {

struct RunGroups {
  int ranks_per_run = 1;
  int groups = 0;
  int group_of(int rank) const;  // -1 for the coordinator and left-over ranks
  int leader_of(int group) const { return 1 + group * ranks_per_run; }
  bool is_leader(int rank) const { return group_of(rank) >= 0 && leader_of(group_of(rank)) == rank; }
  std::vector<int> leaders() const;
  std::vector<int> members_of(int group) const;  // world ranks, leader first
};

// Throws Config (naming the sweep's ranks_per_run) when the job has fewer worker ranks
// than one group needs; world_size 1 (one process, no workers) gives no groups.
RunGroups plan_run_groups(int world_size, int ranks_per_run, const std::string& where);

}  // namespace difffit
