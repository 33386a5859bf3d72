// vartalapctl: the operator's and developer's tool for topology files.
//
//   vartalapctl validate FILE     errors on stderr as "file:line: message"; exit 1 on errors
//   vartalapctl show FILE         the daemons per host and the socket links between them
//   vartalapctl up FILE [--host HOST] [--log-level LEVEL]
//                                 run the daemons (all, or those placed on HOST) in this process
//
// `up` prints "listening <instance> <role> <address>" for every bound endpoint and then
// "ready" on stdout (tests and scripts parse these lines), sends READY=1 to systemd, and
// runs until SIGINT/SIGTERM. Shutdown: STOPPING=1, drain with a 5 s budget, exit 0; a
// second signal or an exhausted budget exits 1 at once. SIGHUP is logged and ignored
// until reloading exists.
//
// Thread: main, plus one short-lived thread in `up` that runs System::stop() so that main
// can keep taking signals (and enforce the budget) while the daemons drain.
#include "common/lifecycle.hpp"
#include "common/log.hpp"
#include "daemons/serve.hpp"
#include "daemons/system.hpp"
#include "topology/topology.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace topology = vartalap::topology;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;

// Loads `file`; on errors prints each as "file:line: message" on stderr.
std::optional<topology::Topology> load_or_report(const std::string& file) {
    topology::LoadResult result = topology::load_file(file);
    for (const auto& error : result.errors) std::cerr << error.str() << '\n';
    return std::move(result.topology);
}

int run_validate(const std::string& file) {
    const auto loaded = load_or_report(file);
    if (!loaded) return kExitFailure;
    std::cout << file << ": ok (" << loaded->daemons.size() << " daemons)\n";
    return kExitOk;
}

std::string slots_text(const topology::DaemonSpec& daemon) {
    std::string out;
    for (const auto& range : daemon.slots) {
        if (!out.empty()) out += ',';
        out += std::to_string(range.first);
        if (range.last != range.first) out += '-' + std::to_string(range.last);
    }
    return out;
}

int run_show(const std::string& file) {
    const auto loaded = load_or_report(file);
    if (!loaded) return kExitFailure;
    const topology::Topology& topo = *loaded;
    const std::vector<topology::Link> all_links = topology::links(topo);
    const std::vector<std::string> hosts = topo.hosts();

    std::cout << "topology " << topo.name << " (" << file << "): " << topo.daemons.size()
              << " daemons, " << all_links.size() << " links, " << hosts.size()
              << (hosts.size() == 1 ? " host" : " hosts") << "; data in " << topo.data_dir
              << "\n";
    for (const std::string& host : hosts) {
        std::cout << "\nhost " << host << "\n";
        for (const auto& daemon : topo.daemons) {
            if (daemon.host != host) continue;
            std::cout << "\n" << daemon.kind << " " << daemon.name << " on " << daemon.host << ":";
            for (const auto& [role, endpoint] : daemon.endpoints)
                std::cout << " " << role << "=" << endpoint;
            if (!daemon.slots.empty()) std::cout << " slots=" << slots_text(daemon);
            std::cout << "\n";
            bool any = false;
            for (const auto& link : all_links) {
                if (link.from != daemon.name) continue;
                any = true;
                std::cout << "  " << link.from << " --" << link.socket << "--> " << link.to << " ("
                          << link.role << " " << link.endpoint;
                const topology::DaemonSpec* peer = topo.find(link.to);
                if (peer && peer->host != daemon.host) std::cout << " on host " << peer->host;
                std::cout << ")\n";
            }
            if (!any) std::cout << "  (no outgoing links: peers connect to it)\n";
        }
    }
    return kExitOk;
}

int run_up(const std::string& file, const std::string& host, const std::string& log_level) {
    auto loaded = load_or_report(file);
    if (!loaded) return kExitFailure;
    if (!host.empty()) {
        const std::vector<std::string> hosts = loaded->hosts();
        if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) {
            std::string known;
            for (const auto& name : hosts) known += (known.empty() ? "" : ", ") + name;
            std::cerr << file << ": no daemon is placed on host '" << host << "' (hosts: "
                      << known << ")\n";
            return kExitFailure;
        }
    }

    vartalap::init_logging(log_level.empty() ? loaded->log_level : log_level);
    // Before any thread exists: every daemon thread inherits the blocked mask, so SIGINT,
    // SIGTERM and SIGHUP reach only main's wait_for_signal() and never interrupt a daemon.
    vartalap::block_signals();

    std::unique_ptr<vartalap::System> system;
    try {
        system = std::make_unique<vartalap::System>(std::move(*loaded), host);
        system->start();
    } catch (const std::exception& error) {
        std::cerr << "vartalapctl up: " << file << ": " << error.what() << '\n';
        return kExitFailure;
    }

    return vartalap::serve(*system, file);
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalapctl: validate, draw and run Vartalap topology files"};
    app.require_subcommand(1);

    std::string file;
    std::string host;
    std::string log_level;

    CLI::App* validate = app.add_subcommand(
        "validate", "Check a topology file; errors go to stderr as file:line: message");
    validate->add_option("FILE", file, "topology file (TOML)")->required();

    CLI::App* show = app.add_subcommand(
        "show", "Print the daemons of a topology by host, with the socket links they open");
    show->add_option("FILE", file, "topology file (TOML)")->required();

    CLI::App* up = app.add_subcommand(
        "up", "Run the daemons of a topology in this process until SIGINT/SIGTERM");
    up->add_option("FILE", file, "topology file (TOML)")->required();
    up->add_option("--host", host, "run only the daemons placed on this host (default: all)");
    up->add_option("--log-level", log_level, "override system.log_level")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

    CLI11_PARSE(app, argc, argv);

    try {
        if (*validate) return run_validate(file);
        if (*show) return run_show(file);
        if (*up) return run_up(file, host, log_level);
    } catch (const std::exception& error) {
        std::cerr << "vartalapctl: " << error.what() << '\n';
        return kExitFailure;
    }
    return kExitFailure;
}
