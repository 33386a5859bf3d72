// ZeroMQ helpers shared by every daemon.
//
// Every socket is made by make_socket, which sets the high-water marks and LINGER (so
// shutdown is bounded) and, for ROUTER, router_mandatory (so an unroutable send fails with
// EHOSTUNREACH instead of being dropped silently). Sends and receives here never block:
// a full peer is reported to the caller, who applies its queue's stated policy.
//
// Thread-safety: a socket belongs to one thread; these functions touch only the socket and
// buffers passed in.
#pragma once

#include "common/envelope.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <string>
#include <zmq.hpp>

namespace vartalap {

struct SocketOptions {
    int send_hwm = 10000;    // messages queued per peer before sends report would_block
    int receive_hwm = 10000;
    int linger_ms = 1000;    // bound on flushing at close; drain waits at most this long
    std::string routing_id;  // identity a DEALER presents to a ROUTER ("" = random)
};

zmq::socket_t make_socket(zmq::context_t& context, zmq::socket_type type,
                          const SocketOptions& options = {});

// The endpoint a socket actually bound (resolves tcp://127.0.0.1:* to the kernel's port).
std::string last_endpoint(zmq::socket_ref socket);

enum class SendResult {
    ok,
    would_block, // peer at its high-water mark (or no peer for PUSH/DEALER yet)
    unroutable,  // ROUTER: no peer with that routing id (EHOSTUNREACH)
};

// Sends [routing_id if non-empty] [header] [envelope] without blocking. `scratch` is a
// reusable buffer so the hot path does not allocate per message. Never leaves a partly
// sent multipart message: the first frame decides, later frames cannot would_block.
SendResult send_envelope(zmq::socket_ref socket, const Envelope& envelope,
                         std::string& scratch, std::string_view routing_id = {});

struct Incoming {
    std::string routing_id; // set for ROUTER sockets
    Envelope envelope;
};

enum class ReceiveResult { ok, empty, malformed };

// Receives one whole multipart message without blocking. `router` says whether the
// socket prepends a routing id frame. A malformed message is consumed entirely and
// reported (with the reason in *error) so the caller can count and log it.
ReceiveResult receive_envelope(zmq::socket_ref socket, bool router, Incoming& incoming,
                               std::string* error = nullptr);

// Watches a ZeroMQ socket from an Asio io_context. ZMQ_FD is edge-triggered: it signals
// when the socket's state changes, and reading ZMQ_EVENTS (which every send and receive
// does implicitly) can consume the edge. So the watcher re-checks ZMQ_EVENTS after each
// wakeup and whenever the owner calls poke() after a send on the socket.
// `on_readable` must receive a bounded batch (e.g. up to 256 messages) and return; the
// watcher re-posts itself while messages remain, so one busy socket cannot starve others.
// Runs on the io_context's thread only. Pending handlers refer to the watcher: destroy it
// only after stop() and once the io_context no longer runs them (stopped, or destroyed).
// stop() then start() may be repeated.
class ZmqAsioWatcher {
public:
    ZmqAsioWatcher(boost::asio::io_context& io, zmq::socket_ref socket,
                   std::function<void()> on_readable);
    ~ZmqAsioWatcher();
    ZmqAsioWatcher(const ZmqAsioWatcher&) = delete;
    ZmqAsioWatcher& operator=(const ZmqAsioWatcher&) = delete;

    void start();
    void stop();
    // Call after sending on the socket from outside on_readable.
    void poke();

private:
    void check();
    void arm();

    boost::asio::io_context& io_;
    zmq::socket_ref socket_;
    std::function<void()> on_readable_;
    boost::asio::posix::stream_descriptor descriptor_;
    bool armed_ = false;
    bool check_posted_ = false;
    bool stopped_ = true;
    // Bumped by stop(): a cancelled wait's handler, which runs later, must not touch the
    // state of the waits started after a restart.
    std::uint64_t generation_ = 0;
};

} // namespace vartalap
