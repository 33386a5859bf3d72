// Runs the daemons of a topology in this process: `vartalapctl up` and the integration
// tests use it. One ZeroMQ context; the ZeroMQ-loop daemons on `[system] threads` shared
// event loops (EventLoop) with the ws-gateway, the rest-gateway and push on a thread each.
//
// Thread-safety: start/stop from one controlling thread.
#pragma once

#include "daemons/daemon.hpp"
#include "daemons/ops_server.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vartalap {

class EventLoop;
class Transport;

class System {
public:
    // `host`: run only the daemons placed on this host (empty: all of them);
    // `instance`: run only this one daemon instance (vartalapd: one process per daemon).
    explicit System(topology::Topology topology, std::string host = {}, std::string instance = {});
    ~System();
    System(const System&) = delete;
    System& operator=(const System&) = delete;

    // Loads (or creates) the access-key secret, makes the internal transport (the hosts'
    // CURVE keys and the ZAP guard, daemons/transport.hpp), creates every daemon, binds all,
    // connects all, starts all. Throws std::runtime_error naming the daemon that failed, after
    // stopping whatever had started.
    void start();
    // Drains in order: gateways stop accepting first, then routers, sessions, the rest.
    // Idempotent.
    void stop();

    // SIGHUP: hands each running daemon its entry of `fresh` (it applies its reloadable
    // limits on its own thread and logs them). Returns what differs but needs a restart
    // (endpoints, slots, daemons added or removed), one line each.
    std::vector<std::string> reload(const topology::Topology& fresh);
    // Daemons whose loop has not published (its heartbeat) within `max_age_ms`, counting a
    // daemon that never published from the time the system started.
    std::vector<std::string> silent_daemons(std::uint64_t max_age_ms) const;

    // Waits until every running daemon serves clients (Daemon::serving: a gateway holds the
    // profile daemon's revocation list), at most `timeout`. Returns the daemons that still do
    // not (empty: all serve).
    std::vector<std::string> wait_serving(std::chrono::milliseconds timeout) const;

    // instance name -> role -> bound address (e.g. "ws-1" -> "listen" -> "127.0.0.1:40211").
    std::map<std::string, std::map<std::string, std::string>> bound_endpoints() const;
    const topology::Topology& topology() const { return topology_; }
    const AccessKeys& access_keys() const { return *access_keys_; }

private:
    topology::Topology topology_;
    std::string host_;
    std::string instance_;
    SystemClock clock_;
    std::unique_ptr<zmq::context_t> zmq_;
    std::unique_ptr<Transport> transport_;                // after zmq_: its sockets close first
    std::unique_ptr<AccessKeys> access_keys_;
    std::vector<const topology::DaemonSpec*> specs_;
    std::vector<std::unique_ptr<DaemonContext>> contexts_;
    std::vector<std::unique_ptr<metrics::Board>> boards_; // one per daemon, same order
    std::vector<std::unique_ptr<EventLoop>> loops_;       // [system] threads; outlive daemons_' joins
    std::vector<std::unique_ptr<Daemon>> daemons_;
    std::unique_ptr<OpsServer> ops_;                      // control sockets, metrics ports
    std::uint64_t started_ms_ = 0;
    std::size_t running_ = 0; // daemons_[0, running_) have started threads
    bool started_ = false;
};

} // namespace vartalap
