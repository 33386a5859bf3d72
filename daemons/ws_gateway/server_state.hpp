// ws-gateway: what the listener, HTTP sessions and WebSocket sessions share.
//
// Thread: the ws-gateway's io thread only. Plain counters and flags, no locking.
// Ownership: owned by the daemon (ws_gateway_daemon.cpp) and declared before its io_context, so it
// outlives every session object (sessions left pending at shutdown are destroyed with the
// io_context, and their destructors touch only these counters).
#pragma once

#include "common/http/listener.hpp"

#include <cstddef>

namespace vartalap {
class AccessKeys;
}

namespace vartalap::ws_gateway {

class WsGatewayCore;

// Upgrade requests still being read (before authentication). Each costs a socket and a
// 16 KiB-bounded buffer for at most handshake_timeout_seconds; past this many, new TCP
// connections are closed at once so a flood of idle sockets cannot exhaust descriptors.
inline constexpr std::size_t kMaxPendingHandshakes = 1024;

struct ServerState {
    WsGatewayCore* core = nullptr;
    const AccessKeys* access_keys = nullptr;
    ConnectionCount handshakes;    // HttpSession objects alive (the listener's cap)
    std::size_t websockets = 0;    // WebsocketSession objects alive (handshaking, open, closing)
    bool stopping = false;         // drain started: refuse upgrades, close new WebSockets
};

} // namespace vartalap::ws_gateway
