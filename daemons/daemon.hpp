// The interface every daemon implements, and what it is given to run.
//
// Start-up is three phases so that one-process mode over inproc:// works in any order of
// the file: every daemon binds (phase 1), then every daemon connects (phase 2), then each
// starts its own thread (phase 3). Sockets are created on the caller's thread in phases 1
// and 2 and handed to the daemon's thread in phase 3 (thread start is a full barrier), after
// which only that thread touches them.
// Thread-safety: bind/connect/start/join from one controlling thread; request_stop from any.
#pragma once

#include "common/access_key.hpp"
#include "common/clock.hpp"
#include "common/metrics.hpp"
#include "topology/topology.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <zmq.hpp>

namespace vartalap {

class EventLoop;
class Transport;

struct DaemonContext {
    zmq::context_t& zmq;                  // the process's one context (inproc needs one)
    const topology::Topology& topology;
    const topology::DaemonSpec& self;
    std::filesystem::path data_dir;       // this instance's own directory (created on demand)
    const AccessKeys& access_keys;
    const Clock& clock;
    // Where the daemon's loop publishes its metrics and heartbeat (null: nowhere, in tests
    // that run a daemon alone).
    metrics::Board* board = nullptr;
    // The event-loop thread a ZeroMQ-loop daemon runs on (`[system] threads`); null: a
    // thread of its own. Daemons with an Asio loop of their own (gateways, push) ignore it.
    EventLoop* loop = nullptr;
    // The process's internal transport (daemons/transport.hpp): CURVE on tcp:// when the
    // topology has host keys. Null: plain sockets (a daemon run alone by a test; refused for
    // a tcp:// endpoint of a topology with keys).
    Transport* transport = nullptr;
};

class Daemon {
public:
    virtual ~Daemon() = default;
    // Phase 1: create and bind the daemon's own sockets and listeners. Throws with a clear
    // message if an endpoint cannot be bound.
    virtual void bind() = 0;
    // Phase 2: connect to peers' endpoints.
    virtual void connect() = 0;
    // Phase 3: start the daemon's thread; returns at once.
    virtual void start() = 0;
    // Begin draining (stop accepting, finish or hand off in-flight work); returns at once.
    virtual void request_stop() = 0;
    // Wait until the thread has finished draining and closed its sockets.
    virtual void join() = 0;
    // SIGHUP: `fresh` is this daemon's entry of the re-read topology. The daemon's own thread
    // applies the limits it can change at run time and logs what changed (or that nothing
    // did); see INTERNAL_PROTOCOL.md, "Reload". Returns at once. Any thread.
    virtual void reload(const topology::DaemonSpec& fresh) {
        spdlog::info("{}: SIGHUP: a {} has no limits to reload", fresh.name, fresh.kind);
    }
    // Whether the daemon serves clients yet. A gateway answers authenticated requests only
    // once it holds the profile daemon's revocation list (until then it refuses them with
    // 503 "server starting, retry"); System::wait_serving waits for this before "ready".
    // Any thread.
    virtual bool serving() const { return true; }
    // Addresses actually bound after phase 1, by role ({"listen": "127.0.0.1:40123"}).
    virtual std::map<std::string, std::string> bound_endpoints() const { return {}; }
};

// Creates the daemon for ctx.self.kind. Throws std::invalid_argument for an unknown kind.
std::unique_ptr<Daemon> make_daemon(const DaemonContext& context);

} // namespace vartalap
