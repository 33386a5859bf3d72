// What `vartalapctl units` and `vartalapctl nginx` render from a topology.
// Thread: main. Errors: a message on stderr and a non-zero return.
#pragma once

#include "topology/topology.hpp"

#include <filesystem>
#include <string>

namespace vartalap::ctl {

// Writes into `dir` the systemd files for the daemons placed on `host`: one template unit
// per daemon kind there (vartalap-<kind>@.service), vartalap.target (wanting each
// instance), and <instance>.env (the topology path). `bindir` holds vartalapd;
// `topology_path` is where the topology file will be installed. Returns an exit code.
int render_units(const topology::Topology& topology, const std::string& host,
                 const std::filesystem::path& dir, const std::string& bindir,
                 const std::string& topology_path);

// The template unit for one daemon kind, exactly as render_units writes it.
std::string unit_template(const std::string& kind, const std::string& bindir);

// An nginx site for the public side: one port; /wss, /wss/ (and an upgrade on /), also
// under /v1.0, to the ws-gateway upstreams, REST paths to the rest-gateway upstreams.
std::string render_nginx(const topology::Topology& topology, int listen_port,
                         const std::string& server_name);

} // namespace vartalap::ctl
