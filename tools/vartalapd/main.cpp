// vartalapd: one daemon instance of a topology as its own process (what systemd runs).
//
//   vartalapd KIND --topology FILE --instance NAME [--data-dir DIR] [--log-level LEVEL]
//
// KIND must match the instance's kind in FILE (a guard against a unit file pointing at the
// wrong instance). The instance and every peer it talks to must use ipc:// or tcp://
// endpoints: inproc:// only connects daemons inside one process (`vartalapctl up`).
// --data-dir overrides system.data_dir (the units pass systemd's $STATE_DIRECTORY).
// Signals, READY=1/STOPPING=1/WATCHDOG=1 and the drain are those of `vartalapctl up`.
//
// Thread: main (see daemons/serve.hpp).
#include "common/lifecycle.hpp"
#include "common/log.hpp"
#include "common/version.hpp"
#include "daemons/serve.hpp"
#include "daemons/system.hpp"
#include "topology/catalog.hpp"
#include "topology/topology.hpp"

#include <CLI/CLI.hpp>
#include <iostream>

namespace topology = vartalap::topology;

namespace {

// The inproc:// endpoints `instance` binds or connects to, which another process cannot use.
std::vector<std::string> inproc_endpoints(const topology::Topology& t, const std::string& instance) {
    std::vector<std::string> found;
    for (const auto& spec : t.daemons)
        if (spec.name == instance)
            for (const auto& [role, endpoint] : spec.endpoints)
                if (endpoint.rfind("inproc://", 0) == 0) found.push_back(role + " " + endpoint);
    for (const auto& link : topology::links(t))
        if ((link.from == instance || link.to == instance) && link.endpoint.rfind("inproc://", 0) == 0)
            found.push_back(link.from + " -> " + link.to + " " + link.endpoint);
    return found;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalapd: run one daemon instance of a Vartalap topology"};
    app.set_version_flag("--version", std::string(vartalap::version()));
    std::string kind, file, instance, data_dir, log_level;
    app.add_option("KIND", kind, "daemon kind (ws-gateway, session, ...)")->required();
    app.add_option("--topology,-t", file, "topology file (TOML)")->required();
    app.add_option("--instance,-i", instance, "instance name in the topology")->required();
    app.add_option("--data-dir", data_dir, "override system.data_dir");
    app.add_option("--log-level", log_level, "override system.log_level")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    CLI11_PARSE(app, argc, argv);

    topology::LoadResult loaded = topology::load_file(file);
    for (const auto& error : loaded.errors) std::cerr << error.str() << '\n';
    if (!loaded.topology) return 1;
    topology::Topology& t = *loaded.topology;
    const topology::DaemonSpec* spec = t.find(instance);
    if (!spec) {
        std::cerr << file << ": no daemon instance named '" << instance << "'\n";
        return 1;
    }
    if (spec->kind != kind) {
        std::cerr << file << ": instance '" << instance << "' is a " << spec->kind << ", not a "
                  << kind << '\n';
        return 1;
    }
    if (auto inproc = inproc_endpoints(t, instance); !inproc.empty()) {
        std::cerr << file << ": instance '" << instance
                  << "' cannot run as its own process: it uses inproc:// endpoints, which only "
                     "work inside one process (use ipc:// or tcp://, or run `vartalapctl up`):\n";
        for (const auto& e : inproc) std::cerr << "  " << e << '\n';
        return 1;
    }
    if (!data_dir.empty()) t.data_dir = data_dir;

    vartalap::init_logging(log_level.empty() ? t.log_level : log_level, instance);
    vartalap::block_signals();
    try {
        vartalap::System system(std::move(t), {}, instance);
        system.start();
        return vartalap::serve(system, file);
    } catch (const std::exception& error) {
        std::cerr << "vartalapd " << instance << ": " << error.what() << '\n';
        return 1;
    }
}
