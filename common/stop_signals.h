// SIGUSR2 (SLURM's early warning), SIGTERM and SIGINT only set a flag; long loops
// poll it at a safe point, save their state, and exit with 128 + signal.
#pragma once

namespace difffit {

void install_stop_handlers();
int stop_signal();             // the signal received, or 0
void clear_stop_signal();      // for tests
void request_stop(int signal);  // what the handler does (tests call it directly)
const char* stop_signal_name(int signal);  // "SIGUSR2", "SIGTERM", "SIGINT"

// Thrown after a loop saved its state because a stop signal arrived.
struct StoppedBySignal {
  int signal;
};

}  // namespace difffit
