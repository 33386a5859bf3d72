// `vartalapctl status FILE`: asks every daemon's control socket for `status` at once and
// shows the answers (docs/INTERNAL_PROTOCOL.md, "Operations").
//
// The query (query_status) and the presentation (status_table, status_array,
// status_exit_code) are separate so the presentation is unit-tested without sockets.
// Thread: main.
#pragma once

#include "topology/topology.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace vartalap::ctl {

// What is known about one daemon of the file after asking.
struct DaemonStatus {
    std::string instance;
    std::string kind;
    std::string host;
    // The daemon's `status` reply (an object) when it answered.
    std::optional<nlohmann::json> reply;
    // Without a reply: "down" (it did not answer in time), "unknown" (no control endpoint,
    // or one that cannot be asked from here: see `note`) or "invalid" (it answered something
    // that is not a status object: see `note`).
    std::string missing = "down";
    std::string note;
};

// The health shown for a daemon: the reply's "health" ("ok", "starting", "stalled",
// "draining"), else `missing`.
std::string health_of(const DaemonStatus& status);

// The text table: INSTANCE KIND HOST HEALTH UPTIME PID VERSION IN/OUT, one row per daemon in
// the given order, then a summary line ("8 daemons: 7 ok, 1 down"). Absent values are "-".
std::string status_table(const std::vector<DaemonStatus>& statuses);

// The JSON array of --json: each reply as received, or {"instance", "kind", "host",
// "health": "down"|"unknown"|"invalid"} (plus "note" when there is one) for a daemon
// without one.
nlohmann::json status_array(const std::vector<DaemonStatus>& statuses);

// 0 when every daemon's health is "ok" (and there is at least one), else 1.
int status_exit_code(const std::vector<DaemonStatus>& statuses);

// "45s", "12m03s", "3h04m", "2d05h".
std::string format_uptime(std::uint64_t seconds);
// A counter for a narrow column: exact below 10 000, then "12.3k", "4.5M", "6.7G".
std::string format_count(double value);

// Sends `status` to the control endpoint of every daemon of `topology` (only those placed
// on `host` unless it is empty) at once, one DEALER each with LINGER 0, and collects the
// replies until all have answered or `timeout` has passed. Results are in file order.
std::vector<DaemonStatus> query_status(const topology::Topology& topology,
                                       const std::string& host,
                                       std::chrono::milliseconds timeout);

// The whole subcommand: prints the table (or the JSON array) on stdout and returns the exit
// code: 0 all ok, 1 otherwise, 2 when FILE does not load (its errors go to stderr) or no
// daemon is placed on `host`.
int run_status(const std::string& file, bool json, int timeout_ms, const std::string& host);

} // namespace vartalap::ctl
