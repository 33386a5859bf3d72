// message-router: decodes client messages and routes them (docs/INTERNAL_PROTOCOL.md,
// "Routing by the message-router" and "Groups"). RouterCore is the socket-free decision;
// the daemon in message_router.cpp owns the PULL socket, one PUSH per session shard and
// one PUSH connected to every group-router (ZeroMQ round-robins across them).
// Thread-safety: RouterCore belongs to the daemon's thread.
#pragma once

#include "common/envelope.hpp"
#include "topology/shard_map.hpp"

#include <cstdint>
#include <functional>

namespace vartalap {

struct RouterCounters {
    std::uint64_t routed = 0;     // deliver envelopes emitted
    std::uint64_t acks = 0;       // ack envelopes emitted
    std::uint64_t group = 0;      // group messages and operations handed to a group-router
    std::uint64_t dropped = 0;    // messages this router cannot route (logged)
};

class RouterCore {
public:
    // `send(shard_index, envelope)` hands an envelope to the session shard at that index of
    // shards.instances(). It is called synchronously from route().
    using SendToShard = std::function<void(std::size_t, Envelope&)>;
    // `send_group(envelope)` hands a group_message to a group-router. Empty when the
    // topology runs none: group traffic is then dropped and logged (acks still apply).
    using SendToGroupRouter = std::function<void(Envelope&)>;

    RouterCore(const topology::ShardMap& shards, SendToShard send, SendToGroupRouter send_group = {});

    // Routes one client_message (consumed). Anything else is dropped and counted.
    // Group traffic (flag_group): CLIENT_ACKs are applied here like any ack; a receipt's
    // ack part is applied here and the receipt itself goes to a group-router, as do group
    // chat messages and group operations (kind group_message).
    void route(Envelope& message);
    const RouterCounters& counters() const { return counters_; }

private:
    void send_ack(const Envelope& message);

    const topology::ShardMap& shards_;
    SendToShard send_;
    SendToGroupRouter send_group_;
    RouterCounters counters_;
    Envelope scratch_ack_;
};

} // namespace vartalap
