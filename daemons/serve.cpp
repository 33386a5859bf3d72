// Thread: main (see serve.hpp).
#include "daemons/serve.hpp"

#include "common/lifecycle.hpp"
#include "common/log.hpp"
#include "topology/topology.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace vartalap {
namespace {

using namespace std::chrono_literals;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;

// Long enough for gateways to close sockets with 1001 and ZeroMQ to flush with its 1 s
// LINGER; a drain that takes longer is stuck, and a restart is cheaper than waiting.
constexpr auto kDrainBudget = 5s;
// wait_for_signal() cannot also wake when the drain thread finishes, so main polls in
// short slices; 20 ms bounds the added exit latency at no measurable cost.
constexpr auto kDrainPollInterval = 20ms;
// Without a systemd watchdog main still wakes once a second, only to stay responsive.
constexpr auto kIdleWakeInterval = 1000ms;
// How long "ready" waits for the gateways' first revocation list.
constexpr std::chrono::milliseconds kServingWait = 10'000ms;
// A daemon loop publishes once a second; the watchdog waits at least this long for one
// before holding its ping back, however short WatchdogSec is.
constexpr std::uint64_t kMinHeartbeatAgeMs = 3000;

// WATCHDOG=1 only while every daemon loop of the process has published recently: a stuck
// loop silences the pings and systemd restarts the unit. Says (once per change) who is silent.
void ping_watchdog(const System& system, std::chrono::milliseconds interval,
                   std::vector<std::string>& silent_before) {
    const auto max_age = std::max<std::uint64_t>(static_cast<std::uint64_t>(interval.count()),
                                                 kMinHeartbeatAgeMs);
    std::vector<std::string> silent = system.silent_daemons(max_age);
    if (silent.empty()) {
        notify("WATCHDOG=1");
        if (!silent_before.empty()) spdlog::info("watchdog: every daemon loop runs again");
    } else if (silent != silent_before) {
        spdlog::error("watchdog: not pinging systemd: no heartbeat for over {} ms from {}",
                      max_age, fmt::join(silent, ", "));
    }
    silent_before = std::move(silent);
}

const char* signal_name(int signal) {
    switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal";
    }
}

// SIGHUP: re-reads the topology file and applies what can change without a restart:
// system.log_level here, and each daemon's reloadable limits on the daemon's own thread
// (System::reload). It says what it changed; endpoints, slots and the daemon set need a
// restart (a unit restart, or the supervisor's), and are left as they are.
void reload(System& system, const std::string& file) {
    notify("RELOADING=1");
    topology::LoadResult loaded = topology::load_file(file);
    if (!loaded.topology) {
        for (const auto& error : loaded.errors) spdlog::error("SIGHUP: {}", error.str());
        spdlog::error("SIGHUP: {} has errors; nothing changed", file);
    } else {
        const auto before = spdlog::get_level();
        auto wanted = spdlog::level::from_str(loaded.topology->log_level);
        if (wanted == spdlog::level::off && loaded.topology->log_level != "off")
            wanted = spdlog::level::info;
        if (wanted == before) {
            spdlog::info("SIGHUP: reloaded {}: log_level {} unchanged", file,
                         loaded.topology->log_level);
        } else {
            spdlog::set_level(wanted);
            spdlog::log(std::max(wanted, spdlog::level::info),
                        "SIGHUP: reloaded {}: log_level {} -> {}", file,
                        spdlog::level::to_string_view(before), spdlog::level::to_string_view(wanted));
        }
        for (const std::string& change : system.reload(*loaded.topology))
            spdlog::warn("SIGHUP: {}: needs a restart to apply; left as it was", change);
    }
    notify("READY=1");
}

[[noreturn]] void force_exit(const char* reason) {
    spdlog::error("{}: forcing exit without finishing the drain", reason);
    spdlog::default_logger()->flush();
    std::cout.flush();
    // _Exit: daemon threads may still hold sockets and locks; running destructors or
    // atexit handlers now could hang, which is exactly what forcing is meant to avoid.
    std::_Exit(kExitFailure);
}

} // namespace

int serve(System& system_ref, const std::string& file) {
    System* system = &system_ref;
    // Every address a daemon reports as bound, including kernel-chosen ports (listen =
    // "127.0.0.1:0"), so tests and scripts learn where to connect.
    for (const auto& [instance, roles] : system->bound_endpoints())
        for (const auto& [role, address] : roles)
            std::cout << "listening " << instance << ' ' << role << ' ' << address << '\n';
    // A gateway serves authenticated requests once it holds the revocation list; "ready"
    // waits for that, bounded (a profile daemon on another host may start later; until it
    // answers, those gateways refuse with 503 "server starting, retry").
    for (const std::string& name : system->wait_serving(kServingWait))
        spdlog::warn("{}: no revocation list from a profile daemon within {} s; refusing "
                     "authenticated requests with 503 until it arrives",
                     name, kServingWait.count() / 1000);
    std::cout << "ready" << std::endl;
    notify("READY=1");

    const std::optional<std::chrono::milliseconds> watchdog = watchdog_ping_interval();
    int signal = 0;
    std::vector<std::string> silent;
    while (true) {
        signal = wait_for_signal(watchdog.value_or(kIdleWakeInterval));
        if (watchdog) ping_watchdog(*system, *watchdog, silent);
        if (signal == 0) continue;
        if (signal == SIGHUP) {
            reload(*system, file);
            continue;
        }
        break; // SIGINT or SIGTERM
    }

    notify("STOPPING=1");
    spdlog::info("{}: draining (a second SIGINT/SIGTERM forces exit)", signal_name(signal));

    std::atomic<bool> stopped{false};
    std::atomic<bool> stop_failed{false};
    std::thread drainer([&] {
        try {
            system->stop();
        } catch (const std::exception& error) {
            spdlog::error("drain failed: {}", error.what());
            stop_failed.store(true);
        }
        stopped.store(true, std::memory_order_release);
    });

    const auto deadline = std::chrono::steady_clock::now() + kDrainBudget;
    auto next_watchdog = std::chrono::steady_clock::now();
    while (!stopped.load(std::memory_order_acquire)) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) force_exit("drain took longer than 5 s");
        if (watchdog && now >= next_watchdog) {
            notify("WATCHDOG=1");
            next_watchdog = now + *watchdog;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        const int again = wait_for_signal(std::min<std::chrono::milliseconds>(
            left, kDrainPollInterval));
        if (again == SIGINT || again == SIGTERM) force_exit(signal_name(again));
        // A SIGHUP while draining changes nothing.
    }
    drainer.join();
    spdlog::info("stopped");
    return stop_failed.load() ? kExitFailure : kExitOk;
}

} // namespace vartalap
