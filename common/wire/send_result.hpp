// The outcome of a non-blocking send to a peer, as socket-free cores see it: the ZeroMQ
// adapters (common/zmq/socket.hpp) produce it, cores decide their queue's policy from it.
// Thread-safety: a plain value.
#pragma once

namespace vartalap {

enum class SendResult {
    ok,
    would_block, // peer at its high-water mark (or no peer for PUSH/DEALER yet)
    unroutable,  // ROUTER: no peer with that routing id (EHOSTUNREACH)
};

} // namespace vartalap
