// vartalapctl: the operator's and developer's tool for topology files.
//
//   vartalapctl validate FILE     errors on stderr as "file:line: message"; exit 1 on errors
//   vartalapctl show FILE         the daemons per host and the socket links between them
//   vartalapctl up FILE [--host HOST] [--log-level LEVEL]
//                                 run the daemons (all, or those placed on HOST) in this process
//   vartalapctl up FILE --spawn [--host HOST] [--vartalapd PATH] [--log-level LEVEL]
//                                 run each of those daemons as its own vartalapd process and
//                                 supervise them (restart with backoff, drain in order); see
//                                 supervisor.hpp for its output lines and policy
//   vartalapctl units --host HOST FILE DIR [--bindir DIR] [--installed-topology PATH]
//                                 systemd units, target and env files for HOST (render.hpp)
//   vartalapctl nginx FILE [--port N] [--server-name NAME]
//                                 an nginx site for the public side, on stdout
//   vartalapctl status FILE [--json] [--timeout-ms N] [--host HOST]
//                                 ask every daemon's control socket for its status (status.hpp);
//                                 exit 0 only if all are ok, 1 otherwise, 2 for a bad FILE
//   vartalapctl keys DIR --host HOST [--host HOST ...]
//                                 a CURVE key pair per host for tcp:// (keys.hpp); prints the
//                                 [host.HOST] entries for the topology
//
// `up` prints "listening <instance> <role> <address>" for every bound endpoint and then
// "ready" on stdout (tests and scripts parse these lines), sends READY=1 to systemd, and
// runs until SIGINT/SIGTERM. Shutdown: STOPPING=1, drain with a 5 s budget, exit 0; a
// second signal or an exhausted budget exits 1 at once. SIGHUP re-reads FILE and applies
// system.log_level (daemons/serve.hpp); the rest needs a restart.
//
// Thread: main, plus one short-lived thread in `up` that runs System::stop() so that main
// can keep taking signals (and enforce the budget) while the daemons drain.
#include "common/lifecycle.hpp"
#include "common/log.hpp"
#include "common/version.hpp"
#include "daemons/serve.hpp"
#include "daemons/system.hpp"
#include "tools/vartalapctl/keys.hpp"
#include "tools/vartalapctl/render.hpp"
#include "tools/vartalapctl/status.hpp"
#include "tools/vartalapctl/supervisor.hpp"
#include "topology/catalog.hpp"
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
    if (loaded->insecure_tcp && !loaded->curve())
        std::cerr << file << ": warning: insecure_tcp = true: tcp:// endpoints are plain text; "
                             "anyone who reaches them can act as a daemon (vartalapctl keys)\n";
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
        if (const std::string error = loaded->unknown_host_error(host); !error.empty()) {
            std::cerr << error << '\n';
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
    app.set_version_flag("--version", std::string(vartalap::version()));
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
        "up", "Run the daemons of a topology (in this process, or one process each with "
              "--spawn) until SIGINT/SIGTERM");
    up->add_option("FILE", file, "topology file (TOML)")->required();
    up->add_option("--host", host, "run only the daemons placed on this host (default: all)");
    up->add_option("--log-level", log_level, "override system.log_level")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    bool spawn = false;
    std::string vartalapd;
    CLI::Option* spawn_flag = up->add_flag(
        "--spawn", spawn,
        "run each daemon as its own vartalapd process (ipc:// or tcp:// endpoints only), "
        "restarted on crash; SIGINT/SIGTERM stop them in drain order within 10 s");
    up->add_option("--vartalapd", vartalapd,
                   "the vartalapd executable (default: the one next to vartalapctl)")
        ->needs(spawn_flag);

    std::string units_dir;
    std::string bindir = "/usr/local/bin";
    std::string installed_topology = "/etc/vartalap/topology.toml";
    CLI::App* units = app.add_subcommand(
        "units", "Render the systemd units, target and instance env files for one host");
    units->add_option("--host", host, "the host whose daemons get units")->required();
    units->add_option("FILE", file, "topology file (TOML)")->required();
    units->add_option("DIR", units_dir, "output directory (created if missing)")->required();
    units->add_option("--bindir", bindir, "where vartalapd is installed");
    units->add_option("--installed-topology", installed_topology,
                      "where FILE will be installed on the host");

    int nginx_port = 80;
    std::string server_name = "_";
    CLI::App* nginx = app.add_subcommand(
        "nginx", "Print an nginx site: one public port, /wss, /wss/ (also under /v1.0) to the "
                 "ws-gateways, REST to the rest-gateways");
    nginx->add_option("FILE", file, "topology file (TOML)")->required();
    nginx->add_option("--port", nginx_port, "public port nginx listens on");
    nginx->add_option("--server-name", server_name, "nginx server_name");

    bool status_json = false;
    int timeout_ms = 2000;
    CLI::App* status = app.add_subcommand(
        "status", "Ask every daemon's control socket for its status and print a table; exit 0 "
                  "only if every daemon is ok, 1 otherwise, 2 for a bad file");
    status->add_option("FILE", file, "topology file (TOML)")->required();
    status->add_flag("--json", status_json, "print the replies as a JSON array instead");
    status->add_option("--timeout-ms", timeout_ms, "how long to wait for the replies")
        ->check(CLI::Range(1, 600000));
    status->add_option("--host", host, "ask only the daemons placed on this host (default: all)");

    std::string keys_dir;
    std::vector<std::string> key_hosts;
    CLI::App* keys = app.add_subcommand(
        "keys", "Make a CURVE key pair per host for the tcp:// internal transport: DIR/HOST.key "
                "(secret, 0600) and DIR/HOST.pub; prints the [host.HOST] topology entries");
    keys->add_option("DIR", keys_dir, "where the key files go (created 0700)")->required();
    keys->add_option("--host", key_hosts, "a host of the topology (repeat for each)")->required();

    CLI11_PARSE(app, argc, argv);

    try {
        if (*units || *nginx) {
            auto loaded = load_or_report(file);
            if (!loaded) return kExitFailure;
            if (*units)
                return vartalap::ctl::render_units(*loaded, host, units_dir, bindir,
                                                   installed_topology);
            std::cout << vartalap::ctl::render_nginx(*loaded, nginx_port, server_name);
            return kExitOk;
        }
        if (*status) return vartalap::ctl::run_status(file, status_json, timeout_ms, host);
        if (*keys) return vartalap::ctl::run_keys(keys_dir, key_hosts, std::cout, std::cerr);
        if (*validate) return run_validate(file);
        if (*show) return run_show(file);
        if (*up && spawn)
            return vartalap::ctl::run_supervisor({file, host, vartalapd, log_level});
        if (*up) return run_up(file, host, log_level);
    } catch (const std::exception& error) {
        std::cerr << "vartalapctl: " << error.what() << '\n';
        return kExitFailure;
    }
    return kExitFailure;
}
