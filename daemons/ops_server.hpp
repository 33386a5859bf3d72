// The process's ops thread: for every daemon of the process that names them, the control
// socket (ZeroMQ ROUTER at `control`) and the Prometheus metrics port (HTTP at `metrics`).
// Protocol: docs/INTERNAL_PROTOCOL.md, "Operations". It reads each daemon's metrics::Board
// and never touches a daemon's own state, so a stuck daemon is reported, not waited for.
//
// Thread: bind() and bound_endpoints() on the controlling thread (bind creates the sockets
// and acceptors); after start(), everything runs on the ops thread; set_draining() from any
// thread; stop() from the controlling thread (idempotent, joins the thread).
#pragma once

#include "common/clock.hpp"
#include "common/metrics.hpp"
#include "common/zmq/zap_guard.hpp"
#include "topology/topology.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace vartalap {

// What the ops thread knows of one daemon.
struct OpsEntry {
    const topology::DaemonSpec* spec = nullptr;
    const metrics::Board* board = nullptr;
    // The daemon's refused CURVE handshakes (null: no CURVE in this topology); published as
    // vartalap_internal_refused_total{reason="key"|"handshake"} with every kind's metrics.
    const ZapGuard::Refusals* refusals = nullptr;
};

class Transport;

// The `status` reply (INTERNAL_PROTOCOL.md, "Control socket") for one daemon.
nlohmann::json status_json(const OpsEntry& entry, std::uint64_t started_ms, std::uint64_t now_ms,
                           bool draining);
// The daemon's published snapshot plus the metrics every kind has (vartalap_up, uptime, ...),
// rendered as Prometheus text.
std::string metrics_text(const OpsEntry& entry, std::uint64_t started_ms, std::uint64_t now_ms,
                         bool draining);
// The reply to one control request word ("status", "metrics", anything else: an error).
std::string control_reply(std::string_view request, const OpsEntry& entry,
                          std::uint64_t started_ms, std::uint64_t now_ms, bool draining);

class OpsServer {
public:
    // `transport` (may be null: plain sockets) secures the control sockets bound at tcp://.
    OpsServer(zmq::context_t& zmq, std::vector<OpsEntry> entries, const Clock& clock,
              Transport* transport = nullptr);
    ~OpsServer();
    OpsServer(const OpsServer&) = delete;
    OpsServer& operator=(const OpsServer&) = delete;

    // Binds every control endpoint and metrics port. Throws std::runtime_error naming the
    // instance and role that could not be bound.
    void bind();
    // instance -> {"control": endpoint, "metrics": "127.0.0.1:40123"} (ports as bound).
    std::map<std::string, std::map<std::string, std::string>> bound_endpoints() const;
    // Starts the thread; the daemons' start time (uptime) is now.
    void start();
    // From now on every daemon reports health "draining".
    void set_draining() { draining_.store(true, std::memory_order_relaxed); }
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::atomic<bool> draining_{false};
};

} // namespace vartalap
