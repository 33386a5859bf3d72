// Thread: main (signals); any (notify).
#include "common/lifecycle.hpp"

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <string>
#include <systemd/sd-daemon.h>

namespace vartalap {

namespace {
sigset_t handled_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
}
} // namespace

void block_signals() {
    const sigset_t set = handled_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN); // a closed peer is an error code, not a process exit
}

int wait_for_signal(std::chrono::milliseconds timeout) {
    const sigset_t set = handled_signals();
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
    const int sig = sigtimedwait(&set, nullptr, &ts);
    return sig > 0 ? sig : 0;
}

void notify(std::string_view state) {
    if (!std::getenv("NOTIFY_SOCKET")) return;
    sd_notify(0, std::string(state).c_str());
}

std::optional<std::chrono::milliseconds> watchdog_ping_interval() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::milliseconds(usec / 2000);
}

} // namespace vartalap
