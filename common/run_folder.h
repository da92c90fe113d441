// The files of a run folder and of a sweep's state folder, named in one place: the run,
// the trainer, the learning curve, the sweep and the results commands all find them here.
#pragma once

#include <string>

namespace difffit {

struct RunFolder {
  std::string dir;

  std::string file(const std::string& name) const { return dir + "/" + name; }
  std::string config() const { return file("config.yaml"); }              // the resolved experiment
  std::string log() const { return file("run.log"); }
  std::string lock() const { return file("run.lock"); }                  // held while a process runs it
  std::string loss() const { return file("loss.csv"); }                  // step,loss,mse,vb
  std::string curve() const { return file("curve.csv"); }                // step, metrics, seconds
  std::string checkpoint() const { return file("checkpoint.safetensors"); }
  std::string delta() const { return file("delta.safetensors"); }        // the fine-tuned tensors
  std::string model() const { return file("model.safetensors"); }        // plain weights (pre-training)
  std::string samples() const { return file("samples.h5"); }
  std::string grid() const { return file("samples.png"); }
  std::string metrics() const { return file("metrics.json"); }
  std::string done() const { return file("DONE"); }                      // written last
  std::string stopped() const { return file("STOPPED"); }                // a saved stop by a signal
};

struct SweepFolder {
  std::string dir;  // the sweep's state folder, OUTPUT_DIR/SWEEP

  std::string file(const std::string& name) const { return dir + "/" + name; }
  std::string journal() const { return file("journal.jsonl"); }  // every event, the source of truth
  std::string lock() const { return file("sweep.lock"); }         // held by the job's rank 0
  std::string results() const { return file("results.h5"); }      // the results store
  std::string results_csv() const { return file("results.csv"); }
  std::string summary() const { return file("summary.json"); }
  // Present: the job starts no more runs, lets the runs in flight finish, removes it and
  // exits 6 (a stop that loses no work, where run folders do not outlive the machine).
  std::string drain() const { return file("DRAIN"); }
};

}  // namespace difffit
