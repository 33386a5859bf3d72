// ws-gateway: holds client WebSockets and turns their frames into envelopes
// (../shared/DESIGN.md "Daemons", docs/INTERNAL_PROTOCOL.md).
//
// Threads: bind() and connect() run on the controlling thread and create every socket;
// start() hands them to one io_context holding the Beast server (common/http/listener.*,
// http_session.cpp, websocket_session.cpp) and the ZeroMQ sockets (zmq_outbox.cpp; the ROUTER
// is read through ZmqAsioWatcher): the gateway's own thread, or, in one process, the
// EventLoop it shares with the ZeroMQ-loop daemons (`[system] threads`). From then on only
// that thread touches them. request_stop() may be called from any thread (it posts the
// drain); join() from the controlling thread (it returns when the drain has finished).
//
// Endpoints (topology): "listen" host:port of the WebSocket server (port 0 = kernel picks),
// "router" the ROUTER the sessions' DEALERs connect to. bound_endpoints() reports
// {"listen": "<address>:<port>", "router": <ZMQ last_endpoint>}.
//
// Options ([daemon.options]; a value out of range makes the factory throw
// std::invalid_argument naming it):
//   max_frame_bytes           65536  largest client frame; larger closes with 1009
//   write_queue_limit         256    frames queued per connection (full: `overloaded`)
//   overflow_close_after      =write_queue_limit  refusals without progress before 1008
//   idle_ping_seconds         30     ping this often; a peer silent for twice as long (not
//                                    even a pong) is closed; 0: no pings, no idle limit
//   max_connections           10000  WebSockets; upgrades above it get 503
//   handshake_timeout_seconds 10     to send the upgrade request, and for the close handshake
//   resend_after_ms           5000   a client message without a server_ack this long is pushed
//                                    to a router again (unconfirmed.hpp); 0: never
//   max_resends               3      pushes again before the client gets "server busy, retry"
//   max_unconfirmed           50000  messages kept for that; more are refused "server busy, retry"
//   max_unconfirmed_bytes     64 MiB and their payloads' bytes (at least 1 MiB)
//
// What a client sees:
//   - upgrade on /wss, /wss/, / and the same under /v1.0 (any query; ?ack=true asks for
//     SERVER_ACKs) with headers or cookies user + accesskey; otherwise 401 (empty body)
//     before any upgrade, 404 for other paths, 426 for a plain request, 503 at max_connections or while draining;
//   - "ping" -> "pong"; a JSON message -> pushed to a message-router (its SERVER_ACK comes
//     later, when a session has stored it); an invalid message -> an error frame, the socket
//     stays open; router busy -> error frame "server busy, retry" (resend);
//   - binary frames -> an error frame (the protocol is text; the socket stays open);
//   - close codes: 1001 draining, 1008 "slow consumer" (write queue refused
//     overflow_close_after frames in a row without one written), 1009 frame above
//     max_frame_bytes, 1013 the session shard could not take the connect event, 4000
//     "replaced" (the same user connected again here or elsewhere; an application code
//     rather than 1008 so that the client can tell it was superseded, not misbehaving).
// One socket per user per gateway: the newer connection wins; the replaced one sends no
// `disconnect` (it could only be stale), nor does one closed by a session's
// close_connection.
//
// Drain (request_stop): stop accepting, close every WebSocket with 1001 "going away" (each
// end sends its `disconnect`), and when all sockets are closed or after 2 s (then the
// remaining disconnects are sent at once) stop the loop; the thread then closes its ZeroMQ
// sockets (LINGER 1 s bounds the flush) and ends.
#pragma once

#include "daemons/daemon.hpp"

namespace vartalap {

std::unique_ptr<Daemon> make_ws_gateway(const DaemonContext& context);

} // namespace vartalap
