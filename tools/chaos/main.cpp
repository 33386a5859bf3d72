// vartalap-chaos: the delivery contract under kill -9 (`make chaos`, issue 14).
//
//   vartalap-chaos [--seconds 60] [--durability fsync|process] [--kill-every-ms 2500] ...
//
// 1. Renders the topology (default topology/local-multiprocess.toml) into a temporary
//    directory and starts it under `vartalapctl up --spawn` (cluster.hpp).
// 2. Logs users in, creates a group, connects every user (checker.hpp) and sends steady
//    1-to-1 and group traffic for --seconds; meanwhile, every --kill-every-ms, kill -9s one
//    running daemon process: every kind once first (gateways included), then any.
// 3. Stops killing and sending, waits (at most --settle-seconds) until every message is
//    SERVER_ACKed and every acked message reached every recipient, then prints
//        1-to-1: acked N, delivered N, lost 0, duplicates K
//        group copies: acked N, delivered N, lost 0, duplicates K
//    and exits 1 if anything acked was lost (or nothing was acked, or some message was
//    still not acked at the end although resent, or the system never came up), 0 otherwise.
//    Each lost copy is named, with the kills around it.
//
// Thread: main only (one io_context for the supervisor's output and every client).
#include "tools/chaos/checker.hpp"
#include "tools/chaos/cluster.hpp"

#include <CLI/CLI.hpp>

#include <iomanip>
#include <iostream>

using namespace std::chrono_literals;
using namespace vartalap::chaos;

namespace {

// Runs `io` until `done()` or the deadline; true if done.
template <class Done>
bool run_until(boost::asio::io_context& io, SteadyClock::time_point deadline, Done done) {
    while (!done()) {
        if (SteadyClock::now() >= deadline) return false;
        io.run_for(20ms);
        io.restart();
    }
    return true;
}

void print_tally(const char* what, const Tally& t) {
    std::cout << what << ": acked " << t.acked << ", delivered " << t.delivered << ", lost " << t.lost
              << ", duplicates " << t.duplicates;
    if (t.unacked > 0) std::cout << " (and " << t.unacked << " sent but never acked)";
    std::cout << std::endl;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalap-chaos: random kill -9s under steady traffic; reconciles what was acked with what arrived"};
    ClusterOptions cluster_options;
    cluster_options.topology = "topology/local-multiprocess.toml";
    cluster_options.durability = "fsync";
    CheckerOptions checker_options;
    double seconds = 60, settle_seconds = 60;
    int kill_every_ms = 2500;
    std::uint32_t seed = std::random_device{}();
    app.add_option("--seconds", seconds, "traffic (and kills) for this long")->capture_default_str();
    app.add_option("--durability", cluster_options.durability, "of sessions and persistence")
        ->check(CLI::IsMember({"fsync", "process"}))->capture_default_str();
    app.add_option("--kill-every-ms", kill_every_ms, "one kill -9 this often")->capture_default_str();
    app.add_option("--settle-seconds", settle_seconds, "after the traffic: the deadline for quiescence")->capture_default_str();
    app.add_option("--topology", cluster_options.topology, "the topology file to copy")->capture_default_str();
    app.add_option("--vartalapctl", cluster_options.vartalapctl, "path of vartalapctl")->required();
    app.add_option("--users", checker_options.users, "users")->capture_default_str()->check(CLI::Range(3, 1000));
    app.add_option("--group-members", checker_options.group_members, "users in the group")->capture_default_str()->check(CLI::Range(2, 100));
    app.add_option("--chat-rate", checker_options.chat_rate, "1-to-1 messages per second")->capture_default_str();
    app.add_option("--group-rate", checker_options.group_rate, "group messages per second")->capture_default_str();
    app.add_option("--seed", seed, "random seed (printed; repeat a run's choices with it)");
    app.add_flag("--keep", cluster_options.keep_dir, "keep the temporary directory (data, logs of the run)");
    CLI11_PARSE(app, argc, argv);

    std::cout << "chaos: seed " << seed << ", " << seconds << " s of traffic, a kill every " << kill_every_ms << " ms"
              << std::endl;
    boost::asio::io_context io;
    Cluster cluster(io, cluster_options);
    cluster.start();
    if (!run_until(io, SteadyClock::now() + 30s, [&] { return cluster.all_ready() || !cluster.running(); }) ||
        !cluster.all_ready()) {
        std::cout << "chaos: FAIL: the system did not come up within 30 s" << std::endl;
        return 1;
    }
    Checker checker(io, cluster, checker_options, seed);
    checker.setup();
    checker.start_traffic();

    std::mt19937 random(seed);
    const auto traffic_end = SteadyClock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    auto next_kill = SteadyClock::now() + std::chrono::milliseconds(kill_every_ms);
    while (SteadyClock::now() < traffic_end && cluster.running()) {
        run_until(io, std::min(next_kill, traffic_end), [] { return false; });
        if (SteadyClock::now() >= next_kill) {
            const std::string killed = cluster.kill_one(random);
            if (!killed.empty()) std::cout << "chaos: kill -9 " << killed << std::endl;
            next_kill += std::chrono::milliseconds(kill_every_ms);
        }
    }
    checker.stop_traffic();
    if (!cluster.running()) {
        std::cout << "chaos: FAIL: the supervisor exited" << std::endl;
        return 1;
    }
    std::cout << "chaos: traffic stopped; waiting for every message to be acked and delivered" << std::endl;
    const auto settle_end = SteadyClock::now() + std::chrono::milliseconds(static_cast<long>(settle_seconds * 1000));
    auto next_reconnect = SteadyClock::now() + 5s;
    const bool quiet = run_until(io, settle_end, [&] {
        if (SteadyClock::now() >= next_reconnect) {
            // What is still without a SERVER_ACK now waits for the app's next start: reconnect.
            checker.reconnect_waiting_users();
            next_reconnect = SteadyClock::now() + 5s;
        }
        return checker.quiescent() && cluster.down().empty();
    });

    const KillStats& kills = cluster.kill_stats();
    std::cout << "chaos: " << kills.total << " kills (";
    bool first = true;
    for (const auto& [kind, n] : kills.by_kind) {
        std::cout << (first ? "" : ", ") << kind << ' ' << n;
        first = false;
    }
    std::cout << "), longest from kill to ready " << std::fixed << std::setprecision(2) << kills.longest_down_s
              << " s, " << kills.slower_than_2s << " over 2 s" << std::endl;
    if (const auto down = cluster.down(); !down.empty())
        for (const auto& name : down) std::cout << "chaos: " << name << " is not ready again" << std::endl;
    std::cout << "chaos: " << checker.reconnects() << " connections, " << checker.resends() << " resends, "
              << checker.replaced_closes() << " live sockets closed as replaced (4000)" << std::endl;
    for (const auto& [reason, n] : checker.errors()) std::cout << "chaos: error frames \"" << reason << "\": " << n << std::endl;
    if (!quiet) std::cout << "chaos: not quiescent after " << settle_seconds << " s" << std::endl;
    const Tally chat = checker.chat(), group = checker.group();
    checker.print_lost(20);
    print_tally("1-to-1", chat);
    print_tally("group copies", group);
    checker.close_all();
    const int supervisor_status = cluster.stop(15s);
    std::cout << "chaos: supervisor exit status " << supervisor_status << std::endl;

    bool failed = false;
    if (chat.lost > 0 || group.lost > 0) {
        std::cout << "chaos: FAIL: acked messages lost" << std::endl;
        failed = true;
    }
    if (chat.unacked > 0 || group.unacked > 0) {
        // Resent on every reconnect and after every error frame, yet never taken: the
        // system did not recover within the settle time.
        std::cout << "chaos: FAIL: messages never acked although resent" << std::endl;
        failed = true;
    }
        if (chat.acked == 0 || group.acked == 0) {
        std::cout << "chaos: FAIL: nothing was acked" << std::endl;
        failed = true;
    }
    if (!failed) std::cout << "chaos: OK" << std::endl;
    return failed ? 1 : 0;
}
