// message-router: decodes client messages and routes them (docs/INTERNAL_PROTOCOL.md,
// "Routing by the message-router" and "Groups"). MessageRouterCore is the socket-free
// decision; the daemon in message_router_daemon.cpp owns the PULL socket, one PUSH per session shard and
// one PUSH connected to every group-router (ZeroMQ round-robins across them).
// Thread-safety: MessageRouterCore belongs to the daemon's thread.
#pragma once

#include "common/wire/envelope.hpp"
#include "topology/shard_map.hpp"

#include <cstdint>

namespace vartalap::message_router {

struct MessageRouterCounters {
    std::uint64_t routed = 0;     // deliver envelopes emitted
    std::uint64_t acks = 0;       // ack envelopes emitted
    std::uint64_t group = 0;      // group messages and operations handed to a group-router
    std::uint64_t dropped = 0;    // messages this router cannot route (logged)
};

// Where the core's envelopes go. The daemon implements it over its PUSH sockets; tests
// record the calls. Implementations may wait briefly for a full peer (backpressure) but
// never block forever.
class MessageRouterOutbox {
public:
    virtual ~MessageRouterOutbox() = default;
    // Hands `envelope` to the session shard at index `shard` of the ShardMap's instances().
    virtual void to_session(std::size_t shard, Envelope& envelope) = 0;
    // Whether the topology runs group-routers; without, group traffic is dropped and logged
    // (acks still apply).
    virtual bool has_group_router() const = 0;
    // Hands a group_message to a group-router.
    virtual void to_group_router(Envelope& envelope) = 0;
};

class MessageRouterCore {
public:
    MessageRouterCore(const topology::ShardMap& shards, MessageRouterOutbox& outbox);

    // Routes one client_message (consumed). Anything else is dropped and counted.
    // Group traffic (flag_group): CLIENT_ACKs are applied here like any ack; a receipt's
    // ack part is applied here and the receipt itself goes to a group-router, as do group
    // chat messages and group operations (kind group_message).
    void route(Envelope& message);
    const MessageRouterCounters& counters() const { return counters_; }

private:
    void send_ack(const Envelope& message);

    const topology::ShardMap& shards_;
    MessageRouterOutbox& outbox_;
    MessageRouterCounters counters_;
    Envelope scratch_ack_;
};

} // namespace vartalap::message_router
