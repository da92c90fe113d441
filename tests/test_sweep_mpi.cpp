// A sweep over real MPI ranks (rank 0 coordinates, two workers): results do not
// depend on the rank count, and a job killed outright or stopped by SIGUSR2 resumes
// without losing or repeating a finished run. With ranks_per_run: 2 over 5 ranks, two
// run groups of two ranks train each run data-parallel, also across a kill and resume.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>

#include "orchestrator/journal.h"
#include "orchestrator/sweep_ledger.h"
#include "results/results_store.h"
#include "sweep_fixture.h"

namespace difffit {
namespace {

using testing::mpirun_difffit;
using testing::run_command;
using testing::TempDir;

std::map<std::string, double> losses(const std::string& results) {
  std::map<std::string, double> out;
  for (const auto& row : read_results_h5(results)) out[row.text.at("grid") + "/" + row.text.at("name")] = row.numbers.at("final_loss");
  return out;
}

void expect_each_run_done_once(const std::string& journal, size_t runs) {
  std::map<std::string, int> done;
  for (const auto& e : Journal::read(journal)) {
    if (e.type == JournalEventType::Done) ++done[e.run_id];
  }
  EXPECT_EQ(done.size(), runs);
  for (const auto& [id, n] : done) EXPECT_EQ(n, 1) << id;
}

int count_events(const std::string& journal, const std::string& kind) {
  int n = 0;
  for (const auto& e : Journal::read(journal)) n += e.type == parse_journal_event_type(kind);
  return n;
}

// Starts the sweep in its own session (so the whole job can be killed as a node
// failure would), waits until `started_runs` runs have started and one is in progress, then
// runs the shell `action` ($pid: the job's launcher).
testing::CommandResult when_running(const std::string& sweep_command, const std::string& journal, int started_runs,
                                    const std::string& action, const std::string& log) {
  return run_command("bash -c 'setsid " + sweep_command + " > " + log + " 2>&1 & pid=$!; for i in $(seq 1200); do" +
                     " n=$(grep -c \"\\\"started\\\"\" " + journal + " 2>/dev/null || true);" +
                     " d=$(grep -c \"\\\"done\\\"\" " + journal + " 2>/dev/null || true);" +
                     // While a run is in progress (started, not yet done), not between runs.
                     " [ \"${n:-0}\" -ge " + std::to_string(started_runs) + " ] && [ \"${n:-0}\" -gt \"${d:-0}\" ] && break;" +
                     " sleep 0.02; done;" +
                     " " + action + "; wait $pid'");
}

// The same, sending `signal` to the launcher (or its whole process group).
testing::CommandResult interrupt(const std::string& sweep_command, const std::string& journal, int started_runs,
                                 const std::string& signal, bool whole_group, const std::string& log) {
  const std::string target = whole_group ? "-- -$pid" : "$pid";
  return when_running(sweep_command, journal, started_runs, "kill -" + signal + " " + target, log);
}

class SweepMpi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    sweep_ = new testing::TinySweep(testing::write_tiny_sweep(*tmp_, /*steps=*/30));
    // The reference: the same sweep in one process.
    auto r = testing::run_difffit("sweep run " + sweep_->sweep + " --set output_dir=" + tmp_->file("ref"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    reference_ = new std::map<std::string, double>(losses(tmp_->file("ref/tiny/results.h5")));
    ASSERT_EQ(reference_->size(), 8u);
  }
  static void TearDownTestSuite() {
    delete reference_;
    delete sweep_;
    delete tmp_;
  }
  static std::string run_cmd(const std::string& out) {
    return mpirun_difffit(3) + " sweep run " + sweep_->sweep + " --set output_dir=" + out;
  }
  static TempDir* tmp_;
  static testing::TinySweep* sweep_;
  static std::map<std::string, double>* reference_;
};
TempDir* SweepMpi::tmp_ = nullptr;
testing::TinySweep* SweepMpi::sweep_ = nullptr;
std::map<std::string, double>* SweepMpi::reference_ = nullptr;

TEST_F(SweepMpi, ThreeRanksGiveTheResultsOfOneProcess) {
  const std::string out = tmp_->file("mpi");
  auto r = run_command(run_cmd(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_each_run_done_once(out + "/tiny/journal.jsonl", 8);
  EXPECT_EQ(losses(out + "/tiny/results.h5"), *reference_);
  // Both workers took part, and each rank kept its own log.
  std::set<int> ranks;
  for (const auto& e : Journal::read(out + "/tiny/journal.jsonl")) {
    if (e.type == JournalEventType::Done) ranks.insert(e.rank);
  }
  EXPECT_EQ(ranks, (std::set<int>{1, 2}));
  EXPECT_TRUE(std::filesystem::exists(out + "/tiny/logs/rank-2.log"));
  EXPECT_TRUE(std::filesystem::exists(out + "/tiny/summary.json"));
}

TEST_F(SweepMpi, AJobKilledOutrightResumesWithoutRepeatingFinishedRuns) {
  const std::string out = tmp_->file("killed");
  const std::string journal = out + "/tiny/journal.jsonl";
  interrupt(run_cmd(out), journal, 4, "KILL", /*whole_group=*/true, tmp_->file("killed.log"));
  const int done_before = count_events(journal, "done");
  EXPECT_LT(done_before, 8);
  auto r = run_command(run_cmd(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GE(count_events(journal, "abandoned"), 1);  // the runs the dead job was running
  expect_each_run_done_once(journal, 8);
  EXPECT_EQ(losses(out + "/tiny/results.h5"), *reference_);
}

TEST_F(SweepMpi, SigUsr2SavesRunsExitsWith140AndResumes) {
  const std::string out = tmp_->file("usr2");
  const std::string journal = out + "/tiny/journal.jsonl";
  auto first = interrupt(run_cmd(out), journal, 3, "USR2", /*whole_group=*/false, tmp_->file("usr2.log"));
  EXPECT_EQ(first.exit_code, 140) << first.output;
  EXPECT_GE(count_events(journal, "stopped"), 1);
  EXPECT_EQ(count_events(journal, "abandoned"), 0);
  auto r = run_command(run_cmd(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count_events(journal, "abandoned"), 0);
  expect_each_run_done_once(journal, 8);
  EXPECT_EQ(losses(out + "/tiny/results.h5"), *reference_);
}

// A DRAIN file: the runs in flight finish (none is stopped or abandoned), no new one
// starts, the job exits 6 and removes the file, and the next job finishes the sweep.
TEST_F(SweepMpi, ADrainFileLetsTheRunsInFlightFinishThenTheJobEnds) {
  const std::string out = tmp_->file("drain");
  const std::string journal = out + "/tiny/journal.jsonl";
  auto first = when_running(run_cmd(out), journal, 3, "touch " + out + "/tiny/DRAIN", tmp_->file("drain.log"));
  std::ifstream log(tmp_->file("drain.log"));
  EXPECT_EQ(first.exit_code, kDrainedExitCode) << first.output << std::string(std::istreambuf_iterator<char>(log), {});
  const int started = count_events(journal, "started"), done = count_events(journal, "done");
  EXPECT_EQ(done, started);  // every run that started finished
  EXPECT_LT(done, 8);
  EXPECT_EQ(count_events(journal, "stopped"), 0);
  EXPECT_EQ(count_events(journal, "abandoned"), 0);
  EXPECT_FALSE(std::filesystem::exists(out + "/tiny/DRAIN"));
  auto r = run_command(run_cmd(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_each_run_done_once(journal, 8);
  EXPECT_EQ(losses(out + "/tiny/results.h5"), *reference_);
}

TEST_F(SweepMpi, ALibraryExceptionOnAnyRankEndsTheWholeJob) {
  // Not a difffit error (those have their own path): a std::logic_error thrown where the
  // coordinator or a worker starts. The job must end, with the reason, rather than hang
  // in MPI with the other ranks waiting.
  for (const std::string where : {"coordinator", "worker"}) {
    const std::string out = tmp_->file("fault-" + where);
    auto r = run_command("DIFFFIT_INJECT_FAULT=" + where + " timeout -s KILL 120 " + run_cmd(out));
    EXPECT_NE(r.exit_code, 0) << where << ": " << r.output;
    EXPECT_NE(r.exit_code, 128 + 9) << where << ": the job hung and was killed after 120 s";
    EXPECT_NE(r.output.find("injected fault in the " + where), std::string::npos) << r.output;
  }
}

// A worker that stops answering (frozen with SIGSTOP mid-run) is noticed by its missing
// heartbeats: its run is recorded as failed and not handed out again in this job, the
// other worker finishes the rest, and the job ends (a hung rank cannot finalize). The
// next job runs the stuck run from its checkpoint.
TEST_F(SweepMpi, AHungWorkerIsDetectedAndItsRunFinishesInTheNextJob) {
  const std::string out = tmp_->file("hung");
  const std::string journal = out + "/tiny/journal.jsonl";
  const std::string command = run_cmd(out) + " --set heartbeat_interval=1 --set heartbeat_timeout=4";
  auto first = run_command(
      "bash -c 'setsid " + command + " > " + tmp_->file("hung.log") + " 2>&1 & pid=$!; for i in $(seq 1200); do" +
      " n=$(grep -c \"\\\"started\\\"\" " + journal + " 2>/dev/null || true);" +
      " [ \"${n:-0}\" -ge 3 ] && break; sleep 0.05; done;" +
      " worker=$(grep -o \"pid [0-9]*\" " + out + "/tiny/logs/rank-1.log | head -1 | cut -d\" \" -f2);" +
      " kill -STOP $worker; wait $pid'");
  EXPECT_NE(first.exit_code, 0) << first.output;
  int silent = 0;
  for (const auto& e : Journal::read(journal)) {
    silent += e.type == JournalEventType::Failed && e.error.find("no heartbeat from rank 1") != std::string::npos;
  }
  EXPECT_EQ(silent, 1);
  EXPECT_EQ(count_events(journal, "done"), 7);  // everything but the stuck run
  auto r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_each_run_done_once(journal, 8);
  EXPECT_EQ(losses(out + "/tiny/results.h5"), *reference_);
}

// Two groups of two ranks (ranks 1-2 and 3-4): each run is trained by its group data
// parallel, matching the one-process results up to float summation order.
void expect_losses_near(const std::map<std::string, double>& got, const std::map<std::string, double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, loss] : want) EXPECT_NEAR(got.at(name), loss, 1e-4 * std::max(1.0, std::abs(loss))) << name;
}

TEST_F(SweepMpi, RunGroupsOfTwoRanksTrainEachRunTogether) {
  const std::string out = tmp_->file("groups");
  const std::string journal = out + "/tiny/journal.jsonl";
  const std::string command = mpirun_difffit(5) + " sweep run " + sweep_->sweep + " --set output_dir=" + out +
                              " --set ranks_per_run=2";
  auto r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_each_run_done_once(journal, 8);
  expect_losses_near(losses(out + "/tiny/results.h5"), *reference_);
  std::set<int> leaders;
  std::string a_run_dir;
  for (const auto& e : Journal::read(journal)) {
    if (e.type != JournalEventType::Done) continue;
    leaders.insert(e.rank);
    a_run_dir = e.run_dir;
  }
  EXPECT_EQ(leaders, (std::set<int>{1, 3}));  // runs go to the groups' leaders only
  EXPECT_NE(testing::read_text_file(a_run_dir + "/run.log").find("data-parallel over 2 ranks"), std::string::npos);
  EXPECT_NE(testing::read_text_file(out + "/tiny/logs/rank-4.log").find("rank 1 of a run group of 2"),
            std::string::npos);

  // Killed outright mid-run, then resumed: no finished run is repeated, none is lost.
  const std::string killed = tmp_->file("groups-killed");
  const std::string killed_command = mpirun_difffit(5) + " sweep run " + sweep_->sweep + " --set output_dir=" +
                                     killed + " --set ranks_per_run=2";
  interrupt(killed_command, killed + "/tiny/journal.jsonl", 4, "KILL", /*whole_group=*/true,
            tmp_->file("groups-killed.log"));
  EXPECT_LT(count_events(killed + "/tiny/journal.jsonl", "done"), 8);
  auto resumed = run_command(killed_command);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_GE(count_events(killed + "/tiny/journal.jsonl", "abandoned"), 1);
  expect_each_run_done_once(killed + "/tiny/journal.jsonl", 8);
  expect_losses_near(losses(killed + "/tiny/results.h5"), *reference_);

  // More ranks per run than the job has workers: refused on every rank, naming the field.
  auto refused = run_command(mpirun_difffit(3) + " sweep run " + sweep_->sweep + " --set output_dir=" +
                             tmp_->file("groups-refused") + " --set ranks_per_run=4");
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("ranks_per_run 4 needs at least that many worker ranks"), std::string::npos)
      << refused.output;
}

// A rank of a run group that fails its run alone leaves the others waiting in a collective
// it never joins: it ends the job after the heartbeat timeout instead of letting it hang,
// and the rerun finishes every run.
TEST_F(SweepMpi, ARunGroupRankFailingAloneEndsTheJobRatherThanHangingIt) {
  const std::string out = tmp_->file("groups-fault");
  const std::string command = mpirun_difffit(3) + " sweep run " + sweep_->sweep + " --set output_dir=" + out +
                              " --set ranks_per_run=2 --set heartbeat_interval=1 --set heartbeat_timeout=4";
  auto r = run_command("DIFFFIT_INJECT_FAULT=group-member timeout -s KILL 120 " + command);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, 128 + 9) << "the job hung and was killed after 120 s";
  EXPECT_NE(r.output.find("did not come back from run"), std::string::npos) << r.output;
  auto again = run_command(command);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  expect_each_run_done_once(out + "/tiny/journal.jsonl", 8);
}

}  // namespace
}  // namespace difffit
