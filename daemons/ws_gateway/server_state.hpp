// ws-gateway: what the listener, HTTP sessions and WebSocket sessions share.
//
// Thread: the ws-gateway's io thread only. Plain counters and flags, no locking.
// Ownership: owned by the daemon (ws_gateway_daemon.cpp) and declared before its io_context, so it
// outlives every session object (sessions left pending at shutdown are destroyed with the
// io_context, and their destructors touch only these counters).
#pragma once

#include "common/http/listener.hpp"
#include "common/http/source_count.hpp"
#include "common/log.hpp"
#include "common/revocations.hpp"

#include <boost/beast/core/flat_buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vartalap {
class AccessKeys;
}

namespace vartalap::ws_gateway {

class WsGatewayCore;

// Upgrade requests still being read (before authentication). Each costs a socket and a
// 16 KiB-bounded buffer for at most handshake_timeout_seconds; past this many, new TCP
// connections are closed at once so a flood of idle sockets cannot exhaust descriptors.
// Of these, one source address may hold at most the option max_handshakes_per_source
// (default 32): beyond it its new connections are closed at once, so one peer cannot hold
// them all and lock everyone else out.
inline constexpr std::size_t kMaxPendingHandshakes = 1024;

// Read buffers lent to connections for one message at a time, so that an idle connection
// holds none (WebsocketSession::do_read) and a busy gateway allocates none per message: a
// buffer returns here once its message is handled, unless it grew past
// kKeptReadBufferBytes or kMaxSpareReadBuffers are already waiting.
inline constexpr std::size_t kKeptReadBufferBytes = 4096;
inline constexpr std::size_t kMaxSpareReadBuffers = 64;

class ReadBufferPool {
public:
    boost::beast::flat_buffer take() {
        if (spare_.empty()) return boost::beast::flat_buffer{};
        boost::beast::flat_buffer buffer = std::move(spare_.back());
        spare_.pop_back();
        return buffer;
    }
    void give_back(boost::beast::flat_buffer& buffer) {
        buffer.clear();
        if (buffer.capacity() > 0 && buffer.capacity() <= kKeptReadBufferBytes &&
            spare_.size() < kMaxSpareReadBuffers)
            spare_.push_back(std::move(buffer));
        buffer = boost::beast::flat_buffer{}; // frees what was not kept
    }
    std::size_t spare() const { return spare_.size(); }

private:
    std::vector<boost::beast::flat_buffer> spare_;
};

struct ServerState {
    WsGatewayCore* core = nullptr;
    const AccessKeys* access_keys = nullptr;
    const RevocationList* revocations = nullptr; // keys revoked at the profile daemon
    // Whether the PUSH to the message-routers has had a connected router (the daemon checks
    // from start until it has; not reset later: then a refused send is "server busy, retry").
    bool routable = false;
    ConnectionCount handshakes;    // HttpSession objects alive (the listener's cap)
    SourceCount handshakes_by_source; // the same per source address (max_handshakes_per_source)
    std::uint64_t source_refused = 0; // connections closed at once: their source at its cap
    LogLimiter source_refused_log{10'000};
    std::size_t websockets = 0;    // WebsocketSession objects alive (handshaking, open, closing)
    bool stopping = false;         // drain started: refuse upgrades, close new WebSockets
    std::uint64_t origin_refused = 0; // cookie-authenticated upgrades from a foreign Origin (403)
    std::uint64_t starting_refused = 0; // upgrades refused before the first revocation list or router (503)
    ReadBufferPool read_buffers;
};

} // namespace vartalap::ws_gateway
