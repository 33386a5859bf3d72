// message-router: decodes client messages and routes them (docs/INTERNAL_PROTOCOL.md,
// "Routing by the message-router"). RouterCore is the socket-free decision; the daemon
// in message_router.cpp owns the PULL socket and one PUSH per session shard.
// Thread-safety: RouterCore belongs to the daemon's thread.
#pragma once

#include "common/envelope.hpp"
#include "topology/topology.hpp"

#include <cstdint>
#include <functional>

namespace vartalap {

struct RouterCounters {
    std::uint64_t routed = 0;     // deliver envelopes emitted
    std::uint64_t acks = 0;       // ack envelopes emitted
    std::uint64_t dropped = 0;    // messages this router cannot route (logged)
};

class RouterCore {
public:
    // `send(shard_index, envelope)` hands an envelope to the session shard at that index of
    // shards.instances(). It is called synchronously from route().
    using SendToShard = std::function<void(std::size_t, Envelope&)>;

    RouterCore(const topology::ShardMap& shards, SendToShard send);

    // Routes one client_message (consumed). Anything else is dropped and counted.
    void route(Envelope& message);
    const RouterCounters& counters() const { return counters_; }

private:
    void send_ack(const Envelope& message);

    const topology::ShardMap& shards_;
    SendToShard send_;
    RouterCounters counters_;
    Envelope scratch_ack_;
};

} // namespace vartalap
