// The internal transport of one process: which socket is a CURVE server or client with which
// keys, and the guard (common/zmq/zap_guard.hpp) that authenticates CURVE clients. Every
// daemon binds and connects its ZeroMQ sockets through bind_socket() and connect_socket()
// below, so the rule lives here once (docs/SECURITY.md, "Internal transport"):
//
//   - inproc:// and ipc:// sockets are plain (one process; a directory only the daemons'
//     user may enter);
//   - with host keys in the topology, a socket bound at tcp:// is a CURVE server with the
//     key pair of its daemon's host, and a socket connecting to a tcp:// peer is a CURVE
//     client with its host's key pair expecting the peer host's public key; the guard
//     accepts exactly the topology's host keys;
//   - without keys, tcp:// is plain: the loader allows that only with [system]
//     insecure_tcp = true, and System warns at start.
//
// Thread-safety: made, stopped and destroyed by System on the controlling thread; prepare_*
// on the thread that owns the socket (bind and connect run on the controlling thread).
#pragma once

#include "daemons/daemon.hpp"

#include "common/zmq/curve.hpp"
#include "common/zmq/socket.hpp"
#include "common/zmq/zap_guard.hpp"
#include "topology/catalog.hpp"

#include <map>
#include <memory>
#include <set>
#include <string>

namespace vartalap {

class Transport {
public:
    // Reads the secret key file of every host in `hosts` (those whose daemons this process
    // runs) and checks it against the topology's public key; starts the guard. Does nothing
    // without host keys. Throws std::runtime_error naming the file or key that is wrong.
    // `thread_owner` names the guard's thread ("<owner>-zap", common/thread_name.hpp).
    Transport(zmq::context_t& context, const topology::Topology& topology,
              const std::set<std::string>& hosts, const std::string& thread_owner = "vartalap");
    ~Transport();
    Transport(const Transport&) = delete;
    Transport& operator=(const Transport&) = delete;

    // Before `socket` of `self` binds `endpoint`.
    void prepare_bind(zmq::socket_ref socket, const topology::DaemonSpec& self,
                      const std::string& endpoint);
    // Before `socket` of `self` connects to `peer`'s `endpoint`.
    void prepare_connect(zmq::socket_ref socket, const topology::DaemonSpec& self,
                         const topology::DaemonSpec& peer, const std::string& endpoint) const;
    // The refusal counters of `instance`'s CURVE server sockets; null without host keys.
    const ZapGuard::Refusals* refusals(const std::string& instance);
    // Stops the guard: after every socket of the context is closed (a CURVE server without
    // its ZAP handler would let any client with its public key in). Idempotent.
    void stop();

private:
    const topology::Topology& topology_;
    std::map<std::string, CurveKeyPair> own_; // by host
    std::unique_ptr<ZapGuard> guard_;
};

// A ZeroMQ socket of `context.self` made by make_socket and bound at its `role` endpoint
// (CURVE server on tcp:// with keys). Throws std::runtime_error naming the daemon and role
// when the endpoint is missing ("no `role` endpoint configured (why)") or cannot be bound.
zmq::socket_t bind_socket(const DaemonContext& context, zmq::socket_type type,
                          const std::string& role, const std::string& why = {},
                          const SocketOptions& options = {});

// Connects `socket` of `context.self` to `peer` (CURVE client on tcp:// with keys). Throws
// std::runtime_error naming both daemons when the endpoint is refused.
void connect_socket(const DaemonContext& context, zmq::socket_ref socket, const topology::Peer& peer);

} // namespace vartalap
