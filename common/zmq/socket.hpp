// ZeroMQ socket helpers shared by every daemon (the Asio integration is asio_watcher.hpp).
//
// Every socket is made by make_socket, which sets the high-water marks, LINGER (so
// shutdown is bounded), the largest frame it takes (ZMQ_MAXMSGSIZE), ZMTP heartbeats and,
// for ROUTER, router_mandatory (so an unroutable send fails with EHOSTUNREACH instead of
// being dropped silently).
//
// Heartbeats: a peer whose host lost power, or whose link was cut, never closes its TCP
// connections, and TCP alone notices only after its retransmissions give up (about 15
// minutes). Until then a PUSH (even with ZMQ_IMMEDIATE) keeps round-robining messages onto
// that connection, where they vanish. With ZMQ_HEARTBEAT_IVL every connection over tcp://
// sends a PING each interval once idle, and one that carries no traffic (PONG included) for
// ZMQ_HEARTBEAT_TIMEOUT is closed: its pipe goes, and the messages go to the live peers.
// PONGs come from the peer's ZeroMQ I/O thread, so a peer whose daemon thread is busy (a
// long fsync) is not dropped; the timeout covers a starved machine with margin. Sends and receives here never block:
// a full peer is reported to the caller, who applies its queue's stated policy.
//
// Thread-safety: a socket belongs to one thread; these functions touch only the socket and
// buffers passed in.
#pragma once

#include "common/wire/envelope.hpp"
#include "common/wire/send_result.hpp"

#include <cstdint>
#include <string>
#include <zmq.hpp>

namespace vartalap {

// Bound on every internal message frame a socket accepts (ZMQ_MAXMSGSIZE): the envelope
// decoder's frame limit (DecodeLimits::max_frame_bytes, 4 MiB: above the largest legal
// envelope, a persistence `fetched` reply of about 2 MiB plus one stored message) plus 1 KiB
// for CURVE's per-frame box (33 bytes). A bigger frame makes ZeroMQ drop the connection that
// sent it before buffering it.
inline constexpr std::int64_t kMaxInternalFrameBytes =
    static_cast<std::int64_t>(DecodeLimits{}.max_frame_bytes) + 1024;

struct SocketOptions {
    int send_hwm = 10000;    // messages queued per peer before sends report would_block
    int receive_hwm = 10000;
    int linger_ms = 1000;    // bound on flushing at close; drain waits at most this long
    std::string routing_id;  // identity a DEALER presents to a ROUTER ("" = random)
    int heartbeat_ivl_ms = 1000;      // ZMQ_HEARTBEAT_IVL (0: no heartbeats)
    int heartbeat_timeout_ms = 10000; // ZMQ_HEARTBEAT_TIMEOUT: silent this long, dropped
};

zmq::socket_t make_socket(zmq::context_t& context, zmq::socket_type type,
                          const SocketOptions& options = {});

// The endpoint a socket actually bound (resolves tcp://127.0.0.1:* to the kernel's port).
std::string last_endpoint(zmq::socket_ref socket);

// A daemon binds its sockets with bind_socket (daemons/transport.hpp), which adds CURVE on
// tcp:// when the topology has host keys.

// Sends [routing_id if non-empty] [header] [envelope] without blocking. `scratch` is a
// reusable buffer so the hot path does not allocate per message. Never leaves a partly
// sent multipart message: the first frame decides, later frames cannot would_block.
SendResult send_envelope(zmq::socket_ref socket, const Envelope& envelope,
                         std::string& scratch, std::string_view routing_id = {});
// The same for an envelope of `kind` already encoded (encode_envelope): one encoding for
// several attempts on different sockets.
SendResult send_encoded(zmq::socket_ref socket, Kind kind, std::string_view encoded,
                        std::string_view routing_id = {});

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

} // namespace vartalap
