#include "common/stop_signals.h"

#include <csignal>
#include <initializer_list>

namespace difffit {
namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int signal) { g_signal = signal; }
}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGUSR2, SIGTERM, SIGINT}) sigaction(signal, &action, nullptr);
}

int stop_signal() { return g_signal; }
void clear_stop_signal() { g_signal = 0; }
void request_stop(int signal) { g_signal = signal; }

const char* stop_signal_name(int signal) {
  switch (signal) {
    case SIGUSR2: return "SIGUSR2";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "other";
  }
}

}  // namespace difffit
