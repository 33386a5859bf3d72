// Serving a running System until SIGINT/SIGTERM, shared by `vartalapctl up` and vartalapd.
//
// Prints "listening <instance> <role> <address>" for every bound endpoint and then "ready"
// on stdout (tests and scripts parse these lines), sends READY=1 to systemd, pings the
// watchdog at half its period while every daemon loop publishes its heartbeat, and on
// SIGINT/SIGTERM sends STOPPING=1 and drains with a 5 s budget; a second signal or an
// exhausted budget exits 1 at once. SIGHUP re-reads the file and applies system.log_level
// and the daemons' reloadable limits (INTERNAL_PROTOCOL.md, "Reload").
//
// Thread: main, which must have called block_signals() before System::start(); one
// short-lived thread runs System::stop() so main keeps taking signals while daemons drain.
#pragma once

#include "daemons/system.hpp"

#include <string>

namespace vartalap {

// Returns the process exit code: 0 after a clean drain, 1 if the drain failed.
int serve(System& system, const std::string& label);

} // namespace vartalap
