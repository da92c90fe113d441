// The sweep: file parsing, expansion into distinct runs, run states folded from the
// journal, the journal's crash tolerance, messages, result rows, and a real sweep in
// one process that is interrupted and resumed.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unistd.h>

#include "common/error.h"
#include "common/file_lock.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/journal.h"
#include "orchestrator/sweep_listing.h"
#include "orchestrator/messages.h"
#include "orchestrator/result_rows.h"
#include "orchestrator/run_states.h"
#include "orchestrator/sweep_config.h"
#include "orchestrator/sweep_job.h"
#include "orchestrator/sweep_ledger.h"
#include "orchestrator/sweep_plan.h"
#include "results/results_store.h"
#include "sweep_fixture.h"
#include "worker/run/experiment_config.h"

namespace difffit {
namespace {

using testing::run_difffit;
using testing::TempDir;

std::string read_file(const std::string& path) { return testing::read_text_file(path); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SweepConfig, ExpandsTemplatesAndNamesTheFieldOfAnError) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  SweepConfig config = load_sweep(s.sweep, {"max_attempts=4", "train.steps=2"});
  EXPECT_EQ(config.name, "tiny");
  EXPECT_EQ(config.max_attempts, 4);  // a sweep field
  ASSERT_EQ(config.overrides.size(), 1u);
  EXPECT_EQ(config.overrides[0], "train.steps=2");  // a run field joins `set`
  ASSERT_EQ(config.grids.size(), 2u);
  const SweepAxis& lr = config.grids[0].axes[0];
  EXPECT_EQ(lr.values[1].label, "2.0e-3");
  EXPECT_EQ(lr.values[1].overrides, Overrides{"train.lr=2.0e-3"});
  EXPECT_EQ(config.grids[1].axes[0].values[1].overrides, Overrides{"method.blocks=all"});
  EXPECT_EQ(config.grids[1].experiment, s.finetune);

  const std::string bad = tmp.file("bad.yaml");
  std::ofstream(bad) << "sweep: x\nexperiment: e.yaml\ngrids:\n  - name: g\n    axes:\n      - name: a\n        "
                        "valuez: [1]\n";
  std::string message = error_of([&] { load_sweep(bad); });
  EXPECT_NE(message.find("bad.yaml: grids[0].axes[0].valuez: unknown field"), std::string::npos) << message;
  std::ofstream(bad) << "sweep: x\nexperiment: e.yaml\ngrids:\n  - name: g\n    axes:\n      - name: a\n        "
                        "values: [1, 2]\n";
  message = error_of([&] { load_sweep(bad); });
  EXPECT_NE(message.find("needs a `set` that uses {value}"), std::string::npos) << message;
  // A `set` that never uses {value} would map every label to one run.
  std::ofstream(bad) << "sweep: x\nexperiment: e.yaml\ngrids:\n  - name: g\n    axes:\n      - name: a\n        "
                        "set: {method.name: difffit}\n        values: [1, 2]\n";
  message = error_of([&] { load_sweep(bad); });
  EXPECT_NE(message.find("bad.yaml: grids[0].axes[0].set: a list of labels needs a `set` that uses {value}"),
            std::string::npos)
      << message;
  // The sweep's name is its state folder inside output_dir; an axis name is a results column.
  for (const std::string name : {"x/y", "..", ".", "'a\\b'", "\"a\\nb\""}) {
    std::ofstream(bad) << "sweep: " << name << "\ngrids: []\n";
    message = error_of([&] { load_sweep(bad); });
    EXPECT_NE(message.find("bad.yaml: sweep: "), std::string::npos) << name << ": " << message;
    EXPECT_NE(message.find("cannot name the state folder"), std::string::npos) << name << ": " << message;
  }
  for (const std::string name : {"a/b", "."}) {
    std::ofstream(bad) << "sweep: x\nexperiment: e.yaml\ngrids:\n  - name: g\n    axes:\n      - name: '" << name
                       << "'\n        set: {method.name: '{value}'}\n        values: [full]\n";
    message = error_of([&] { load_sweep(bad); });
    EXPECT_NE(message.find("bad.yaml: grids[0].axes[0].name: '" + name + "' cannot name a results column"),
              std::string::npos)
        << message;
  }
}

// Runs are folders inside the sweep's output_dir, named grid.label...: no `set` may move
// them, no name or label may climb out, and no axis may take a column every row has. A
// `set` that YAML aliases expand without bound is refused after a bounded walk.
TEST(SweepConfig, NothingInASweepFileMovesItsRunsOrExpandsWithoutBound) {
  TempDir tmp;
  const std::string bad = tmp.file("bad.yaml");
  auto error_for = [&](const std::string& grids) {
    std::ofstream(bad) << "sweep: x\nexperiment: e.yaml\ngrids:\n" << grids;
    return error_of([&] { load_sweep(bad); });
  };
  std::string message = error_for("  - name: g\n    set: {output_dir: /elsewhere}\n");
  EXPECT_NE(message.find("bad.yaml: grids[0].set: output_dir: the sweep's runs live in its own output_dir"),
            std::string::npos)
      << message;
  message = error_for("  - name: g\n    axes:\n      - name: a\n        values: {v: {output_dir: ../v}}\n");
  EXPECT_NE(message.find("bad.yaml: grids[0].axes[0].values.v: output_dir:"), std::string::npos) << message;
  message = error_for("  - name: g\n    axes:\n      - name: a\n        set: {output_dir: '../{value}'}\n"
                      "        values: [v]\n");
  EXPECT_NE(message.find("bad.yaml: grids[0].axes[0].set: output_dir:"), std::string::npos) << message;
  for (const std::string column : {"attempt", "run_seconds", "run_dir"}) {
    message = error_for("  - name: g\n    axes:\n      - name: " + column + "\n        set: {seed: '{value}'}\n"
                        "        values: [1]\n");
    EXPECT_NE(message.find("bad.yaml: grids[0].axes[0].name: '" + column + "' is reserved for a results column"),
              std::string::npos)
        << message;
  }
  for (const std::string interval : {"1.0e300", "1.0e-300"}) {
    std::ofstream(bad) << "sweep: x\nexperiment: e.yaml\nheartbeat_interval: " << interval << "\ngrids:\n  - name: g\n";
    message = error_of([&] { load_sweep(bad); });
    EXPECT_NE(message.find("bad.yaml: heartbeat_interval: must be in 0.01..3600 seconds"), std::string::npos) << message;
  }
  message = error_for("  - name: a/b\n");
  EXPECT_NE(message.find("bad.yaml: grids[0].name: 'a/b' cannot begin a run folder's name"), std::string::npos)
      << message;
  message = error_for("  - name: g\n    axes:\n      - name: a\n        set: {seed: '{value}'}\n"
                      "        values: ['1/../..']\n");
  EXPECT_NE(message.find("bad.yaml: grids[0].axes[0].values: '1/../..' cannot be part of a run folder's name"),
            std::string::npos)
      << message;

  // Seven levels of ten aliases each: 10^7 fields from a few hundred bytes.
  std::string set = "set:\n  l0: &a0 {k: 1}\n";
  for (int level = 1; level <= 7; ++level) {
    set += "  l" + std::to_string(level) + ": &a" + std::to_string(level) + " {";
    for (int i = 0; i < 10; ++i) set += (i ? ", " : "") + std::string("x") + std::to_string(i) + ": *a" + std::to_string(level - 1);
    set += "}\n";
  }
  std::ofstream(bad) << "sweep: x\nexperiment: e.yaml\n" << set << "grids:\n  - name: g\n";
  message = error_of([&] { load_sweep(bad); });
  EXPECT_NE(message.find("bad.yaml: set: more than 10000 fields"), std::string::npos) << message;
}

TEST(SweepConfig, AFileOfSeveralYamlDocumentsIsRefused) {
  TempDir tmp;
  const std::string sweep = tmp.file("two.yaml");
  std::ofstream(sweep) << "sweep: a\ngrids: []\n---\nsweep: b\ngrids: []\n";
  const std::string message = error_of([&] { load_sweep(sweep); });
  EXPECT_NE(message.find("two.yaml: holds 2 YAML documents ('---' separators); expected one"), std::string::npos)
      << message;
  // One document behind a leading "---" is one document: read on to its (empty) grids.
  std::ofstream(sweep) << "---\nsweep: a\ngrids: []\n";
  const std::string one = error_of([&] { load_sweep(sweep); });
  EXPECT_NE(one.find("two.yaml: grids: expected a non-empty list of grids"), std::string::npos) << one;
}

TEST(SweepConfig, ASweepOfTooManyRunsIsRefusedBeforeExpansion) {
  TempDir tmp;
  auto axis = [](const std::string& name, int n) {
    std::string values;
    for (int i = 0; i < n; ++i) values += (i ? ", " : "") + std::to_string(i);
    return "      - {name: " + name + ", set: {seed: \"{value}\"}, values: [" + values + "]}\n";
  };
  // Three 1000-value axes: 10^9 cells, refused at once naming the grid.
  const std::string big = tmp.file("big.yaml");
  std::ofstream(big) << "sweep: big\nexperiment: e.yaml\ngrids:\n  - name: g\n    axes:\n"
                     << axis("a", 1000) << axis("b", 1000) << axis("c", 1000);
  std::string message = error_of([&] { load_sweep(big); });
  EXPECT_NE(message.find("big.yaml: grids[0] ('g'): 1000 x 1000 x 1000 cells, more than the 100000 runs"),
            std::string::npos)
      << message;
  // Grids within the cap each, over it together.
  std::ofstream(big) << "sweep: big\nexperiment: e.yaml\ngrids:\n  - name: g\n    axes:\n"
                     << axis("a", 300) << axis("b", 200) << "  - name: h\n    axes:\n" << axis("a", 300)
                     << axis("b", 200);
  message = error_of([&] { load_sweep(big); });
  EXPECT_NE(message.find("big.yaml: grids: 120000 cells up to grid 'h', more than the 100000 runs"), std::string::npos)
      << message;
  // At the cap: accepted.
  std::ofstream(big) << "sweep: big\nexperiment: e.yaml\ngrids:\n  - name: g\n    axes:\n"
                     << axis("a", 500) << axis("b", 200);
  EXPECT_EQ(load_sweep(big).grids[0].axes[1].values.size(), 200u);
}

TEST(SweepPlan, TwoCellsOfAGridThatAreOneRunAreAnError) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  // Labels whose settings change nothing: "full" and "difffit" would both be the DiffFit run.
  const std::string sweep = tmp.file("same.yaml");
  std::ofstream(sweep) << "sweep: same\nexperiment: " << s.finetune
                       << "\ngrids:\n  - name: t\n    axes:\n      - name: method\n        values:\n"
                          "          full: {method.name: difffit}\n          difffit: {method.name: difffit}\n";
  const std::string message = error_of([&] { plan_sweep(load_sweep(sweep)); });
  EXPECT_NE(message.find("same.yaml: grid t: cells (method=full) and (method=difffit) are the same run"),
            std::string::npos)
      << message;
}

TEST(SweepPlan, DistinctRunsBasesFirstSharedRunsListedOnce) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  SweepConfig config = load_sweep(s.sweep);
  SweepPlan plan = plan_sweep(config);
  // 1 base + 2 lr x 3 methods + the placement grid, whose first-half point is table's (1e-3, difffit).
  ASSERT_EQ(plan.runs.size(), 8u);
  EXPECT_EQ(plan.runs[0].name, "pre");
  EXPECT_TRUE(plan.runs[0].memberships.empty());
  std::set<std::string> ids;
  for (size_t i = 1; i < plan.runs.size(); ++i) {
    EXPECT_EQ(plan.runs[i].depends_on, std::vector<size_t>{0}) << plan.runs[i].name;
    ids.insert(plan.runs[i].run_id);
  }
  EXPECT_EQ(ids.size(), 7u);
  EXPECT_EQ(plan.axis_names, (std::vector<std::string>{"lr", "method", "blocks"}));
  const PlannedRun& shared = plan.runs[plan.index_of.at(plan.runs[3].run_id)];
  EXPECT_EQ(shared.name, "table.1.0e-3.difffit");
  ASSERT_EQ(shared.memberships.size(), 2u);
  EXPECT_EQ(shared.memberships[1].grid, "placement");
  EXPECT_EQ(shared.memberships[1].labels[0], std::make_pair(std::string("blocks"), std::string("first-half")));

  // The id is the experiment's own: the same file and overrides loaded directly agree.
  ExperimentLoadOptions options;
  options.inherited = shared.request.inherited;
  options.require_base_done = false;
  ExperimentConfig direct = load_experiment(s.finetune, shared.request.overrides, options);
  EXPECT_EQ(direct.run_id(), shared.run_id);
  EXPECT_EQ(direct.method.name(), "difffit");
  EXPECT_DOUBLE_EQ(direct.train.lr, 1e-3);
  EXPECT_EQ(direct.output_dir, tmp.file("runs"));

  // A sweep-wide `set` changes every run, the base too; the threads setting changes none.
  SweepPlan shorter = plan_sweep(load_sweep(s.sweep, {"train.steps=3"}));
  SweepPlan threaded = plan_sweep(load_sweep(s.sweep, {"threads=2"}));
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    EXPECT_NE(shorter.runs[i].run_id, plan.runs[i].run_id);
    EXPECT_EQ(threaded.runs[i].run_id, plan.runs[i].run_id);
  }
}

// `order:` changes only the order runs start in: method by method here, the same runs with
// the same names and ids; an axis it does not know, or names twice, is refused by field.
TEST(SweepPlan, AGridsOrderSetsWhichRunsStartFirstNotWhatTheyAre) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  const std::string text = read_file(s.sweep);
  auto with_order = [&](const std::string& order) {
    std::string changed = text;
    changed.insert(changed.find("  - name: placement"), "    order: " + order + "\n");
    std::ofstream(tmp.file("ordered.yaml")) << changed;
    return tmp.file("ordered.yaml");
  };
  const SweepPlan plain = plan_sweep(load_sweep(s.sweep));
  const SweepPlan ordered = plan_sweep(load_sweep(with_order("[method]")));
  std::vector<std::string> names;
  for (size_t i = 1; i < 7; ++i) names.push_back(ordered.runs[i].name);  // after the base, the table's 6
  EXPECT_EQ(names, (std::vector<std::string>{"table.1.0e-3.full", "table.2.0e-3.full", "table.1.0e-3.bitfit",
                                             "table.2.0e-3.bitfit", "table.1.0e-3.difffit", "table.2.0e-3.difffit"}));
  ASSERT_EQ(ordered.runs.size(), plain.runs.size());
  for (const PlannedRun& run : plain.runs) {
    const PlannedRun& same = ordered.runs[ordered.index_of.at(run.run_id)];
    EXPECT_EQ(same.name, run.name);
    EXPECT_EQ(same.memberships.size(), run.memberships.size()) << run.name;
  }
  // Naming every axis in file order is the default order.
  const SweepPlan spelled = plan_sweep(load_sweep(with_order("[lr, method]")));
  for (size_t i = 0; i < plain.runs.size(); ++i) EXPECT_EQ(spelled.runs[i].run_id, plain.runs[i].run_id);
  EXPECT_NE(error_of([&] { load_sweep(with_order("[seed]")); }).find("grids[0].order: no axis 'seed' in this grid"),
            std::string::npos)
      << error_of([&] { load_sweep(with_order("[seed]")); });
  EXPECT_NE(error_of([&] { load_sweep(with_order("[method, method]")); }).find("grids[0].order: axis 'method' twice"),
            std::string::npos);
}

JournalEvent event(const std::string& kind, const std::string& run, int attempt = 1) {
  JournalEvent e;
  e.type = parse_journal_event_type(kind);
  e.run_id = run;
  e.attempt = attempt;
  return e;
}

TEST(RunStates, FoldsTheJournalIntoStatesAndSchedulesInDependencyOrder) {
  SweepPlan plan;
  for (const char* id : {"base", "a", "b"}) {
    PlannedRun run;
    run.run_id = id;
    plan.index_of[id] = plan.runs.size();
    plan.runs.push_back(run);
  }
  plan.runs[1].depends_on = {0};
  plan.runs[2].depends_on = {0};
  RunStates states(plan, /*max_attempts=*/2);
  EXPECT_EQ(states.next_runnable(), 0);  // a and b wait for the base
  states.apply(event("started", "base"));
  EXPECT_EQ(states.state(0), RunState::Running);
  EXPECT_EQ(states.next_runnable(), -1);
  states.apply(event("stopped", "base"));  // a saved stop is not a failure
  EXPECT_EQ(states.state(0), RunState::Pending);
  states.apply(event("started", "base", 2));
  states.apply(event("done", "base", 2));
  EXPECT_EQ(states.progress(0).starts, 2);
  EXPECT_EQ(states.next_runnable(), 1);
  states.apply(event("started", "a"));
  EXPECT_EQ(states.next_runnable(), 2);
  states.apply(event("failed", "a"));
  states.apply(event("started", "a", 2));
  states.apply(event("abandoned", "a", 2));  // the job died during the second attempt: not a's fault
  EXPECT_EQ(states.state(1), RunState::Pending);
  states.apply(event("started", "a", 3));
  states.apply(event("failed", "a", 3));  // a's second own failure: given up (max_attempts 2)
  EXPECT_EQ(states.state(1), RunState::Failed);
  EXPECT_EQ(states.given_up(), std::vector<size_t>{1});
  states.apply(event("reset", "a"));
  EXPECT_EQ(states.state(1), RunState::Pending);
  states.apply(event("done", "unknown-run"));  // not in the plan: ignored
  EXPECT_EQ(states.count(RunState::Done), 1u);

  // Job deaths do not use up max_attempts; only many of them give a run up.
  RunStates preempted(plan, 1);
  for (int k = 1; k < kAbandonedLimit; ++k) {
    preempted.apply(event("started", "base", k));
    preempted.apply(event("abandoned", "base", k));
  }
  EXPECT_EQ(preempted.state(0), RunState::Pending);
  preempted.apply(event("started", "base", kAbandonedLimit));
  preempted.apply(event("abandoned", "base", kAbandonedLimit));
  EXPECT_EQ(preempted.state(0), RunState::Failed);

  // A failed base blocks the runs that start from it.
  RunStates blocked(plan, 1);
  blocked.apply(event("started", "base"));
  blocked.apply(event("failed", "base"));
  EXPECT_EQ(blocked.state(1), RunState::Blocked);
  EXPECT_EQ(blocked.next_runnable(), -1);
  EXPECT_FALSE(blocked.any_runnable_or_running());
}

TEST(SweepLock, ASecondSweepOnTheSameFolderIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.file("sweep.lock");
  {
    FileLock first(path);
    try {
      FileLock second(path);
      FAIL() << "a second lock on the same file must fail";
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 2);
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("another sweep is running"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(::getpid()) + " on "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(" since 20"), std::string::npos) << e.what();
    }
  }
  FileLock again(path);  // released with its holder
}

TEST(Journal, SurvivesATornLastLine) {
  TempDir tmp;
  const std::string path = tmp.file("state/journal.jsonl");
  {
    Journal journal(path);
    JournalEvent done = event("done", "r1");
    done.metrics_json = R"j({"fid": 12.5, "metric": "FID (mini-CNN)"})j";
    done.seconds = 3.25;
    journal.append(done);
  }
  std::ofstream(path, std::ios::app) << R"({"event":"started","run":"r2)";  // cut off by a crash
  {
    Journal journal(path);
    journal.append(event("started", "r3"));
  }
  int skipped = 0;
  auto events = Journal::read(path, &skipped);
  EXPECT_EQ(skipped, 1);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].run_id, "r1");
  EXPECT_DOUBLE_EQ(events[0].seconds, 3.25);
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(events[0].metrics_json)["fid"].get<double>(), 12.5);
  EXPECT_FALSE(events[0].time.empty());
  EXPECT_EQ(events[1].run_id, "r3");
  EXPECT_EQ(Journal::read(tmp.file("missing.jsonl")).size(), 0u);
}

// Events are a closed set: every name round-trips, and a readable line with an unknown event
// (a journal of another version) is an error naming the file and line, never skipped silently.
// The findings page's "finished at, wall time": a job's time runs from its sweep-started
// event to its sweep-ended event, or to its last event when it died without one.
TEST(Journal, TheSweepsHistoryCountsEachJobsWallTime) {
  auto at = [](const std::string& kind, const std::string& time) {
    JournalEvent e = event(kind, kind == "done" || kind == "started" ? "r1" : "");
    e.time = time;
    return e;
  };
  EXPECT_EQ(parse_iso8601_utc("1970-01-02T00:00:10Z"), 86410.0);
  EXPECT_TRUE(std::isnan(parse_iso8601_utc("yesterday")));
  const SweepHistory h = sweep_history({at("sweep-started", "2026-12-05T01:00:00Z"),
                                        at("started", "2026-12-05T01:00:00Z"),
                                        at("done", "2026-12-05T01:01:40Z"),
                                        at("sweep-ended", "2026-12-05T01:01:50Z"),
                                        at("sweep-started", "2026-12-05T02:00:00Z"),
                                        at("started", "2026-12-05T02:00:00Z"),
                                        at("done", "2026-12-05T02:08:20Z")});  // killed: no sweep-ended
  EXPECT_EQ(h.jobs, 2);
  EXPECT_DOUBLE_EQ(h.wall_seconds, 110.0 + 500.0);
  // `sweep status`'s estimate: the last job's median run time, as many at a time as it ran.
  EXPECT_EQ(h.last_job_ranks, 1);
  EXPECT_EQ(h.run_seconds.size(), 2u);
  ASSERT_EQ(h.last_job_run_seconds.size(), 1u);
  SweepHistory two = h;
  two.last_job_run_seconds = {600, 300, 420};
  two.last_job_ranks = 2;
  EXPECT_EQ(time_left_line(two, 10), "left: 10 runs; a run took 7.0 min (median of the last job's 3), 2 at a time: "
                                     "about 0.6 h");
  two.last_job_run_seconds.clear();
  two.run_seconds = {60};
  EXPECT_EQ(time_left_line(two, 1), "left: 1 run; a run took 1.0 min (median of 1 finished runs), 2 at a time: about 0.0 h");
  EXPECT_EQ(time_left_line(two, 0), "");
  EXPECT_EQ(h.first_started, "2026-12-05T01:00:00Z");
  EXPECT_EQ(h.last_done, "2026-12-05T02:08:20Z");
}

TEST(Journal, AnUnknownEventIsAnErrorNamingTheFileAndLine) {
  for (const char* name : {"sweep-started", "started", "done", "failed", "stopped", "abandoned", "reset", "sweep-ended"})
    EXPECT_STREQ(journal_event_name(parse_journal_event_type(name)), name);
  TempDir tmp;
  const std::string path = tmp.file("journal.jsonl");
  {
    Journal journal(path);
    journal.append(event("started", "r1"));
  }
  std::ofstream(path, std::ios::app) << R"({"event":"paused","run":"r1"})" << "\n";
  try {
    Journal::read(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 3);
    const std::string what = e.what();
    EXPECT_NE(what.find(path + ":2: unknown journal event 'paused'"), std::string::npos) << what;
    EXPECT_NE(what.find("known: sweep-started, started, done"), std::string::npos) << what;
  }
}

// A known event that cannot be used is skipped with a warning naming FILE:LINE and the field,
// never taken for a torn write and never kept as a done run without its metrics.
TEST(Journal, AnUnusableEventIsSkippedNamingTheLineAndField) {
  TempDir tmp;
  const std::string path = tmp.file("journal.jsonl");
  {
    Journal journal(path);
    journal.append(event("started", "r1"));
  }
  std::ofstream(path, std::ios::app) << R"({"event":"done","run":"r1","metrics":5})" << "\n"
                                     << R"({"event":"done","metrics":{"fid":1.5}})" << "\n"
                                     << R"({"event":"done","run":"r2","attempt":"one","metrics":{}})" << "\n"
                                     << R"({"event":"done","run":"r3","metrics":{"fid":2.5}})" << "\n";
  int skipped = 0;
  std::vector<std::string> invalid;
  const auto events = Journal::read(path, &skipped, &invalid);
  EXPECT_EQ(skipped, 0);  // not torn lines
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].run_id, "r3");
  ASSERT_EQ(invalid.size(), 3u);
  EXPECT_NE(invalid[0].find(path + ":2: done event: 'metrics' is number, not a JSON object"), std::string::npos)
      << invalid[0];
  EXPECT_NE(invalid[1].find(path + ":3: done event without 'run' (the run id)"), std::string::npos) << invalid[1];
  EXPECT_NE(invalid[2].find(path + ":4: done event: 'attempt': expected a number, got string"), std::string::npos)
      << invalid[2];
}

TEST(Messages, EveryKindRoundTrips) {
  Message assign{MessageKind::Assign};
  assign.request.index = 7;
  assign.request.experiment = "exp \"quoted\".yaml";
  assign.request.inherited = {"output_dir=/tmp/x"};
  assign.request.overrides = {"method.name=lora", "name=g.a.b"};
  assign.request.expected_run_id = "0123456789abcdef";
  assign.request.attempt = 3;
  assign.request.time_limit_s = 12.5;
  Message a = decode_message(encode_message(assign));
  EXPECT_EQ(a.kind, MessageKind::Assign);
  EXPECT_EQ(a.request.index, 7);
  EXPECT_EQ(a.request.experiment, assign.request.experiment);
  EXPECT_EQ(a.request.inherited, assign.request.inherited);
  EXPECT_EQ(a.request.overrides, assign.request.overrides);
  EXPECT_EQ(a.request.expected_run_id, assign.request.expected_run_id);
  EXPECT_EQ(a.request.attempt, 3);
  EXPECT_DOUBLE_EQ(a.request.time_limit_s, 12.5);

  Message report{MessageKind::Report};
  report.report.index = 2;
  report.report.status = RunStatus::Stopped;
  report.report.signal = 12;
  report.report.metrics_json = "{\"fid\": 1}";
  report.report.error = "line1\nline2";
  report.report.seconds = 0.5;
  Message r = decode_message(encode_message(report));
  EXPECT_EQ(r.report.status, RunStatus::Stopped);
  EXPECT_EQ(r.report.signal, 12);
  EXPECT_EQ(r.report.metrics_json, report.report.metrics_json);
  EXPECT_EQ(r.report.error, report.report.error);

  Message beat{MessageKind::Heartbeat};
  beat.index = 4;
  beat.step = 99;
  Message b = decode_message(encode_message(beat));
  EXPECT_EQ(b.index, 4);
  EXPECT_EQ(b.step, 99);
  Message stop{MessageKind::Stop};
  stop.signal = 15;
  EXPECT_EQ(decode_message(encode_message(stop)).signal, 15);
  EXPECT_EQ(decode_message(encode_message(Message{MessageKind::Exit})).kind, MessageKind::Exit);
  EXPECT_THROW(decode_message("{\"kind\": \"dance\"}"), Error);
  EXPECT_THROW(decode_message("{not json"), Error);
}

TEST(ResultRows, OneRowPerGridMembershipWithLabelsAndMetrics) {
  SweepPlan plan;
  PlannedRun run;
  run.run_id = "r";
  run.name = "g.x";
  run.memberships = {{"g", {{"method", "x"}}}, {"h", {{"blocks", "all"}}}};
  plan.index_of["r"] = 0;
  plan.runs.push_back(run);
  plan.axis_names = {"method", "blocks"};
  RunStates states(plan, 1);
  states.apply(event("started", "r"));
  JournalEvent done = event("done", "r");
  done.metrics_json = R"j({"run_id": "r", "method": "difffit", "fid": 3.5, "metric": "FID (mini-CNN)"})j";
  states.apply(done);
  auto rows = result_rows(plan, states);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].text.at("grid"), "g");
  EXPECT_EQ(rows[0].text.at("method"), "x");              // the axis label
  EXPECT_EQ(rows[0].text.at("method_name"), "difffit");   // the metric of the same name
  EXPECT_EQ(rows[0].text.at("blocks"), "");
  EXPECT_EQ(rows[1].text.at("blocks"), "all");
  EXPECT_DOUBLE_EQ(rows[1].numbers.at("fid"), 3.5);
  EXPECT_EQ(rows[1].text.at("metric"), "FID (mini-CNN)");
}

// A real sweep in one process, stopped by SIGTERM half-way (checkpoint saved, exit
// 143) and resumed: every run ends done exactly once, with the losses of a sweep that
// was never interrupted.
TEST(SweepInProcess, StopsOnASignalResumesAndMatchesAnUninterruptedSweep) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp, /*steps=*/30);  // long enough to be stopped mid-training
  auto plan = testing::run_difffit("sweep plan " + s.sweep);
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_NE(plan.output.find("8 runs in 2 grid(s)"), std::string::npos) << plan.output;

  // Stop once the third run has started (the journal says so), as a scheduler would.
  const std::string journal = tmp.file("runs/tiny/journal.jsonl");
  const std::string command = testing::difffit_binary() + " sweep run " + s.sweep + " > " + tmp.file("first.log") +
                              " 2>&1 & pid=$!; for i in $(seq 600); do"
                              " n=$(grep -c event.:.started " + journal + " 2>/dev/null || true);"  // runs, not sweep-started
                              " [ \"${n:-0}\" -ge 3 ] && break; sleep 0.05; done; kill -TERM $pid; wait $pid";
  auto first = testing::run_command("bash -c '" + command + "'");
  EXPECT_EQ(first.exit_code, 143) << read_file(tmp.file("first.log"));
  auto events = Journal::read(journal);
  int stopped = 0;
  for (const auto& e : events) stopped += e.type == JournalEventType::Stopped;
  EXPECT_EQ(stopped, 1) << read_file(journal);
  // summary.json tells a script the stop was saved, where the job's status may not (mpirun exits 1).
  const std::string summary = tmp.file("runs/tiny/summary.json");
  EXPECT_NE(read_file(summary).find("\"stopped_by_signal\": 15"), std::string::npos) << read_file(summary);
  // A job killed outright leaves no summary.json, rather than the last job's.
  const std::string killed = testing::difffit_binary() + " sweep run " + s.sweep + " > " + tmp.file("killed.log") +
                             " 2>&1 & pid=$!; for i in $(seq 600); do"
                             " n=$(grep -c sweep-started " + journal + " 2>/dev/null || true);"
                             " [ \"${n:-0}\" -ge 2 ] && break; sleep 0.05; done; kill -KILL $pid; wait $pid";
  testing::run_command("bash -c '" + killed + "'");
  EXPECT_FALSE(std::filesystem::exists(summary)) << read_file(tmp.file("killed.log"));

  auto second = run_difffit("sweep run " + s.sweep);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  events = Journal::read(journal);
  std::map<std::string, int> done;
  for (const auto& e : events) {
    if (e.type == JournalEventType::Done) ++done[e.run_id];
  }
  ASSERT_EQ(done.size(), 8u);
  for (const auto& [id, n] : done) EXPECT_EQ(n, 1) << id;

  // The same sweep, never interrupted, in another folder: the same losses per run name.
  auto reference = run_difffit("sweep run " + s.sweep + " --set output_dir=" + tmp.file("ref"));
  ASSERT_EQ(reference.exit_code, 0) << reference.output;
  auto rows = read_results_h5(tmp.file("runs/tiny/results.h5"));
  auto ref_rows = read_results_h5(tmp.file("ref/tiny/results.h5"));
  ASSERT_EQ(rows.size(), 8u);  // 6 in `table`, 2 in `placement`
  ASSERT_EQ(ref_rows.size(), rows.size());
  std::map<std::string, double> loss, ref_loss;
  for (const auto& r : rows) loss[r.text.at("name")] = r.numbers.at("final_loss");
  for (const auto& r : ref_rows) ref_loss[r.text.at("name")] = r.numbers.at("final_loss");
  EXPECT_EQ(loss, ref_loss);
  // The results file says how far the sweep came over its three jobs, and when it finished.
  std::map<std::string, std::string> attributes;
  read_results_h5(tmp.file("runs/tiny/results.h5"), &attributes);
  EXPECT_EQ(attributes["runs_planned"], "8");
  EXPECT_EQ(attributes["runs_done"], "8");
  EXPECT_EQ(attributes["jobs"], "3");
  EXPECT_EQ(attributes["finished"], sweep_history(events).last_done);
  EXPECT_FALSE(attributes["finished"].empty());

  auto status = run_difffit("sweep status " + s.sweep);
  ASSERT_EQ(status.exit_code, 0);
  EXPECT_NE(status.output.find("8/8 done, 0 running, 0 pending, 0 failed"), std::string::npos) << status.output;
  // A finished sweep reruns as a no-op.
  auto again = run_difffit("sweep run " + s.sweep);
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(Journal::read(journal).size(), events.size() + 2);  // sweep-started, sweep-ended
}

// A run that fails is retried up to max_attempts, then given up; the others finish;
// the exit code says so; --retry-failed tries again.
TEST(SweepInProcess, AFailingRunIsRetriedThenGivenUpWithoutEndingTheSweep) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp, 3);
  std::ofstream(tmp.file("sweep.yaml"), std::ios::app)
      << "  - name: broken\n    set: {data.train: " << tmp.file("no-such-data.h5") << "}\n";
  auto r = run_difffit("sweep run " + s.sweep);
  EXPECT_EQ(r.exit_code, 5) << r.output;
  auto status = run_difffit("sweep status " + s.sweep);
  EXPECT_NE(status.output.find("8/9 done, 0 running, 0 pending, 1 failed"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("no-such-data.h5"), std::string::npos) << status.output;
  int failures = 0;
  for (const auto& e : Journal::read(tmp.file("runs/tiny/journal.jsonl"))) failures += e.type == JournalEventType::Failed;
  EXPECT_EQ(failures, 2);  // max_attempts
  r = run_difffit("sweep run " + s.sweep + " --retry-failed");
  EXPECT_EQ(r.exit_code, 5);
  failures = 0;
  for (const auto& e : Journal::read(tmp.file("runs/tiny/journal.jsonl"))) failures += e.type == JournalEventType::Failed;
  EXPECT_EQ(failures, 4);
  // Results of the finished runs are intact and readable throughout.
  EXPECT_EQ(read_results_h5(tmp.file("runs/tiny/results.h5")).size(), 8u);
}

// results.h5 is a snapshot of the journal: when it cannot be written the sweep still
// finishes every run, and a rerun rebuilds it.
TEST(SweepInProcess, AResultsFileThatCannotBeWrittenDoesNotStopTheSweep) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp, 2);
  std::filesystem::create_directories(tmp.file("runs/tiny/results.h5.tmp/blocked"));  // the write's temp name
  auto r = run_difffit("sweep run " + s.sweep);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("results snapshot not written"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("runs/tiny/results.h5")));
  int done = 0;
  for (const auto& e : Journal::read(tmp.file("runs/tiny/journal.jsonl"))) done += e.type == JournalEventType::Done;
  EXPECT_EQ(done, 8);
  std::filesystem::remove_all(tmp.file("runs/tiny/results.h5.tmp"));
  r = run_difffit("sweep run " + s.sweep);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_results_h5(tmp.file("runs/tiny/results.h5")).size(), 8u);
}

// A done event whose metrics are not an object, or without a run id, is named with its line
// and field by every reader; the run is done again and results.h5 rewritten with all rows.
TEST(SweepInProcess, AnUnusableDoneEventIsNamedAndItsRunDoneAgain) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  ASSERT_EQ(run_difffit("sweep run " + s.sweep + " --simulate-runs").exit_code, 0);
  const std::string journal = tmp.file("runs/tiny/journal.jsonl");
  std::vector<std::string> lines;
  std::istringstream in(read_file(journal));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  // The last run done is a grid's run (the base finishes first): its metrics become a number.
  size_t bad = lines.size();
  while (bad > 0 && nlohmann::json::parse(lines[bad - 1])["event"] != "done") --bad;
  ASSERT_GT(bad, 0u);
  auto j = nlohmann::json::parse(lines[bad - 1]);
  const std::string bad_run = j["run"];
  j["metrics"] = 5;
  lines[bad - 1] = j.dump();
  lines.push_back(R"({"event":"done","metrics":{"fid":1.5}})");
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  std::ofstream(journal) << text;
  const std::string where = journal + ":" + std::to_string(bad) + ": done event: 'metrics' is number";
  const std::string no_run = journal + ":" + std::to_string(lines.size()) + ": done event without 'run'";

  auto status = run_difffit("sweep status " + s.sweep);
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find(where), std::string::npos) << status.output;
  EXPECT_NE(status.output.find(no_run), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("7/8 done"), std::string::npos) << status.output;

  auto r = run_difffit("sweep run " + s.sweep + " --simulate-runs");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(where), std::string::npos) << r.output;
  const auto rows = read_results_h5(tmp.file("runs/tiny/results.h5"));
  ASSERT_EQ(rows.size(), 8u);
  for (const auto& row : rows) EXPECT_EQ(row.numbers.count("fid"), 1u) << row.text.at("name");
  int done = 0;
  for (const auto& e : Journal::read(journal)) done += e.type == JournalEventType::Done && e.run_id == bad_run;
  EXPECT_EQ(done, 1);  // the usable one, written by the rerun
}

// A journal shared with another sweep file of the same name (or grids taken out) keeps its
// finished runs; the job says that results.h5 holds only this plan's.
TEST(SweepInProcess, FinishedRunsOutsideThePlanAreNamedNotLost) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  ASSERT_EQ(run_difffit("sweep run " + s.sweep + " --simulate-runs").exit_code, 0);
  std::string text = read_file(s.sweep);
  const std::string two = "values: [1.0e-3, 2.0e-3]";
  ASSERT_NE(text.find(two), std::string::npos);
  text.replace(text.find(two), two.size(), "values: [1.0e-3]");
  const std::string other = tmp.file("other.yaml");
  std::ofstream(other) << text;
  auto r = run_difffit("sweep run " + other + " --simulate-runs");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 finished run(s) are not in this sweep's plan (another sweep file named 'tiny'"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(read_results_h5(tmp.file("runs/tiny/results.h5")).size(), 5u);
  // The first file finds every run still done.
  auto again = run_difffit("sweep status " + s.sweep);
  EXPECT_NE(again.output.find("8/8 done"), std::string::npos) << again.output;
  // The smaller file's status repeats what its job said.
  auto smaller = run_difffit("sweep status " + other);
  EXPECT_NE(smaller.output.find("5/5 done"), std::string::npos) << smaller.output;
  EXPECT_NE(smaller.output.find("note: 3 finished run(s) are not in this sweep's plan"), std::string::npos)
      << smaller.output;
  EXPECT_EQ(again.output.find("note:"), std::string::npos) << again.output;
}

// Under srun without PMIx, Open MPI starts N singletons: each refuses to run alone.
TEST(SlurmGuard, OneRankWhereSlurmStartedSeveralIsAUsageError) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  const std::string run = "run " + s.pretrain + " --set output_dir=" + tmp.file("runs");
  for (const std::string& command : {"sweep run " + s.sweep, run}) {
    auto r = testing::run_command("env SLURM_NTASKS=4 " + testing::difffit_binary() + " " + command);
    EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.output;
    EXPECT_NE(r.output.find("SLURM_NTASKS=4"), std::string::npos) << command << "\n" << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.file("runs")));  // nothing ran
}

// The transport of a job of one rank: there is no other rank to talk to.
class OneRankTransport : public MessageTransport {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void send(int, Channel, const std::string&) override { ADD_FAILURE() << "a one-rank job sends nothing"; }
  std::optional<Envelope> poll(Channel, double) override {
    ADD_FAILURE() << "a one-rank job waits for nothing";
    return std::nullopt;
  }
  [[noreturn]] void abort_job(int code) override { throw std::runtime_error("job aborted: " + std::to_string(code)); }
};

// The sweep job as a library function: alone, rank 0 runs every run itself (the base run
// first), and a rerun finds everything done.
TEST(SweepJob, OneRankRunsTheWholeSweepThenFindsItDone) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  const SweepConfig config = load_sweep(s.sweep, {});
  OneRankTransport alone;
  EXPECT_EQ(run_sweep_job(config, alone, SweepJobOptions{}), 0);
  const size_t runs = plan_sweep(config).runs.size();
  std::ifstream in(config.state_dir() + "/summary.json");
  const auto summary = nlohmann::json::parse(in);
  EXPECT_EQ(summary["done"], runs) << summary.dump(2);
  EXPECT_EQ(summary["failed"], 0) << summary.dump(2);
  for (const ResultRow& row : read_results_h5(config.state_dir() + "/results.h5"))
    EXPECT_TRUE(std::filesystem::exists(row.text.at("run_dir") + "/DONE")) << row.text.at("run_dir");
  const auto started = [&] {
    std::ifstream journal(config.state_dir() + "/journal.jsonl");
    size_t n = 0;
    for (std::string line; std::getline(journal, line);) n += line.find("\"event\":\"started\"") != std::string::npos;
    return n;
  };
  const size_t first = started();
  EXPECT_EQ(first, runs);
  EXPECT_EQ(run_sweep_job(config, alone, SweepJobOptions{}), 0);
  EXPECT_EQ(started(), first);  // nothing run twice
}

// A DRAIN file in the state folder: the run in flight finishes, no other starts, the file is
// removed and the job exits 6; the next job goes on. Found at the start, nothing starts.
TEST(SweepInProcess, ADrainFileEndsTheJobAfterTheRunInFlight) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  const SweepConfig config = load_sweep(s.sweep, {});
  const SweepPlan plan = plan_sweep(config);
  const std::string drain = config.state_dir() + "/DRAIN";
  const RunExecutor simulated = simulated_runs();
  int executed = 0;
  const RunExecutor drain_during_first = [&](const RunRequest& request, const std::function<void(int64_t)>& on_step,
                                             const DataParallel& dp) {
    if (executed++ == 0) std::ofstream(drain) << "";
    return simulated(request, on_step, dp);
  };
  {
    SweepLedger ledger(config, plan, 1);
    EXPECT_EQ(run_sweep_in_process(config, ledger, drain_during_first), kDrainedExitCode);
    EXPECT_EQ(ledger.states().count(RunState::Done), 1u);
  }
  EXPECT_EQ(executed, 1);
  EXPECT_FALSE(std::filesystem::exists(drain));  // honoured, so the next job goes on
  std::ifstream in(config.state_dir() + "/summary.json");
  const auto summary = nlohmann::json::parse(in);
  EXPECT_EQ(summary["drained"], true) << summary.dump(2);
  EXPECT_EQ(summary["pending"], plan.runs.size() - 1) << summary.dump(2);
  {
    std::filesystem::create_directories(config.state_dir());
    std::ofstream(drain) << "";
    SweepLedger ledger(config, plan, 1);
    EXPECT_EQ(run_sweep_in_process(config, ledger, simulated), kDrainedExitCode);  // nothing started
    EXPECT_EQ(ledger.states().count(RunState::Done), 1u);
  }
  SweepLedger ledger(config, plan, 1);
  EXPECT_EQ(run_sweep_in_process(config, ledger, simulated), 0);
  EXPECT_EQ(ledger.states().count(RunState::Done), plan.runs.size());
}

// Runs that all finish at once (simulated: answered without training) must not make the
// coordinator rewrite the results snapshot after each one: its cost grows with the
// results, so that would be quadratic in the sweep's size. Every result still lands.
TEST(SweepInProcess, SimulatedRunsFinishingTogetherShareSnapshotWrites) {
  TempDir tmp;
  auto s = testing::write_tiny_sweep(tmp);
  const int runs = 1500;
  std::ofstream sweep(tmp.file("big.yaml"));
  sweep << "sweep: big\nexperiment: " << s.finetune << "\noutput_dir: " << tmp.file("runs")
        << "\ngrids:\n  - name: seeds\n    axes:\n      - name: seed\n        set: {seed: \"{value}\"}\n"
           "        values: [";
  for (int i = 0; i < runs; ++i) sweep << (i ? ", " : "") << i + 1;
  sweep << "]\n";
  sweep.close();
  auto r = run_difffit("sweep run " + tmp.file("big.yaml") + " --simulate-runs");
  ASSERT_EQ(r.exit_code, 0) << r.output.substr(0, 2000);
  for (const auto& entry : std::filesystem::directory_iterator(tmp.file("runs")))  // no run folders
    EXPECT_EQ(entry.path().filename(), "big");
  const auto rows = read_results_h5(tmp.file("runs/big/results.h5"));
  ASSERT_EQ(rows.size(), static_cast<size_t>(runs));
  EXPECT_EQ(rows.back().text.at("run_dir"), "(simulated)");
  std::ifstream in(tmp.file("runs/big/summary.json"));
  const auto summary = nlohmann::json::parse(in);
  EXPECT_EQ(summary["done"], runs + 1);  // and the base run they fine-tune
  EXPECT_GE(summary["snapshots_written"].get<int>(), 2);  // at least the first run's and the end's
  EXPECT_LT(summary["snapshots_written"].get<int>(), runs / 10) << summary.dump(2);
  EXPECT_GT(summary["coordinator_peak_rss_bytes"].get<double>(), 0);
}

}  // namespace
}  // namespace difffit
