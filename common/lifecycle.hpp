// Process lifecycle: signals and systemd notification.
//
// Signals are blocked in every thread (block_signals() before any thread starts) and
// taken synchronously by the main thread with wait_for_signal(), so handlers never run
// daemon code. sd_notify messages are sent only when NOTIFY_SOCKET is set (under systemd).
// Thread-safety: notify() is safe from any thread; the signal functions are for main.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace vartalap {

// Blocks SIGINT, SIGTERM, SIGHUP for this thread and every thread it starts later.
void block_signals();
// Waits up to `timeout` for one of them; returns the signal number or 0 on timeout.
int wait_for_signal(std::chrono::milliseconds timeout);

// sd_notify(0, state) if NOTIFY_SOCKET is set; "READY=1", "STOPPING=1", "WATCHDOG=1", ...
void notify(std::string_view state);
// Half the watchdog period if the service manager enabled one for this process.
std::optional<std::chrono::milliseconds> watchdog_ping_interval();

} // namespace vartalap
