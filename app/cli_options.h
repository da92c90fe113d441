// Command-line pieces shared by the subcommands: model shape flags, method flags,
// threads. Every command that builds a model takes the same shape flags.
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/communicator.h"
#include "common/hdf5_tensors.h"
#include "worker/model/build_model.h"
#include "worker/model/dit_config.h"
#include "worker/model/method_config.h"
#include "worker/sample/sample_config.h"

namespace difffit {

namespace po = boost::program_options;


// --model --depth --hidden-size --num-heads --patch-size --input-size --in-channels
// --num-classes --learn-sigma --class-dropout-prob --pos-embed-scale
void add_model_options(po::options_description& options);
// Flags override a preset; `custom` needs --depth --hidden-size --num-heads --patch-size.
DiTConfig model_config_from(const po::variables_map& vm);

// --method --option k=v (repeatable)
void add_method_options(po::options_description& options, const std::string& default_method);
MethodConfig method_config_from(const po::variables_map& vm);

// The sampling flags of `sample` and `bench sample`: --sampler --steps --cfg-scale --eta
// --clip-denoised --batch-size --call-size, defaulting to `defaults`' values (each command
// declares --num itself: what 0 means differs).
void add_sample_options(po::options_description& options, const SampleConfig& defaults);
SampleConfig sample_config_from(const po::variables_map& vm, int64_t num);

// --checkpoint (required) --delta: the weights of a model to run
void add_checkpoint_options(po::options_description& options);
ModelSource model_source_from(const po::variables_map& vm);

// Inputs for one model call read from `in`: `x_name` (N, C, S, S) as the model expects,
// N >= 1 rows, t (N) >= 0 and y (N) labels the class table holds; throws Data naming the
// file and dataset otherwise.
void check_model_inputs(const Hdf5Reader& in, const std::string& x_name, const at::Tensor& x, const at::Tensor& t,
                        const at::Tensor& y, const DiTConfig& config);

// The integer flag --NAME, required to be in [min, max]: a usage error naming it otherwise.
int64_t int_flag_in(const po::variables_map& vm, const std::string& name, int64_t min, int64_t max);

// --threads (intra-op threads for LibTorch and OpenBLAS)
void add_thread_option(po::options_description& options);
void apply_thread_option(const po::variables_map& vm);

// The ranks this process was launched among: under mpirun/srun (Open MPI or PMIx
// variables set) MPI is started, log lines carry the rank, and `comm` spans the ranks
// (NCCL when on_cuda); otherwise both stay empty and the command runs in one process.
struct LaunchRanks {
  std::unique_ptr<MpiSession> mpi;
  std::unique_ptr<Communicator> comm;
};
LaunchRanks join_launch_ranks(int* argc, char*** argv, bool on_cuda);

// `difffit GROUP SUB ...` for the commands that group several (sweep, vae, bench, results):
// runs SUB with argv starting at SUB; without SUB prints `usage` to stderr and returns 2,
// with -h/--help prints it and returns 0; an unknown SUB is a usage error.
struct Subcommand {
  std::string name;
  std::function<int(int, char**)> run;
};
int run_subcommand(const std::string& group, const std::string& usage, int argc, char** argv,
                   const std::vector<Subcommand>& subcommands);

// Parses argv for one subcommand; prints help and returns false on --help.
bool parse_command_line(const std::string& command, const std::string& summary, int argc, char** argv,
                        po::options_description& options, po::variables_map& vm,
                        const po::positional_options_description* positional = nullptr);

}  // namespace difffit
