// rest-gateway: the public HTTP API (PROTOCOL.md's REST paths, each also under /v1.0/; the
// route table is rest_api.hpp, the logic RestGatewayCore in rest_gateway_core.hpp).
//
// Threads: bind() and connect() run on the controlling thread and create every socket;
// start() starts the gateway's one thread, which runs one io_context holding the HTTP
// server (common/http: listener and sessions), the PUSH to the message-routers, the ROUTER
// that receives server_acks, one DEALER per owner daemon kind (profile, group; one per
// shard for persistence) and the timeout sweep. From then on only that thread touches
// them. request_stop() may be called from any thread (it posts the drain); join() from the
// controlling thread.
//
// Endpoints (topology): "listen" host:port of the HTTP server (port 0 = kernel picks),
// "router" the ROUTER sessions and group-routers send server_acks to. bound_endpoints()
// reports {"listen": "<address>:<port>", "router": <ZMQ last_endpoint>}.
//
// Options ([daemon.options]; bad values fall back to the defaults with a warning; SIGHUP
// applies new values): max_body_bytes (1 MiB: 413 above), max_connections (10000: 503
// "too many connections" above), max_messages_per_request (1000), request_timeout_ms
// (5000: 504), send_timeout_ms (10000: "not confirmed"), idle_timeout_seconds (60),
// max_message_bytes (64 KiB). Headers are limited to 16 KiB (400 above).
//
// Drain (request_stop): stop accepting, answer every waiting request 503 and every send
// with what was confirmed, close every connection, and end the loop when all are gone or
// after 2 s.
#pragma once

#include "daemons/daemon.hpp"

namespace vartalap {

std::unique_ptr<Daemon> make_rest_gateway(const DaemonContext& context);

} // namespace vartalap
