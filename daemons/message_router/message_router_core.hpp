// message-router: decodes client messages and routes them (docs/INTERNAL_PROTOCOL.md,
// "Routing by the message-router" and "Groups"). MessageRouterCore is the socket-free
// decision; the daemon in message_router_daemon.cpp owns the PULL socket, one PUSH per session shard and
// one PUSH connected to every group-router (ZeroMQ round-robins across them).
// Thread-safety: MessageRouterCore belongs to the daemon's thread.
#pragma once

#include "common/wire/client_message.hpp"
#include "common/wire/envelope.hpp"
#include "topology/shard_map.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

namespace vartalap::message_router {

struct MessageRouterCounters {
    std::uint64_t routed = 0;     // deliver envelopes emitted
    std::uint64_t acks = 0;       // ack envelopes emitted
    std::uint64_t group = 0;      // group messages and operations handed to a group-router
    std::uint64_t dropped = 0;    // messages this router cannot route (logged)
};

// What the daemon does with a message a peer did not take (a session shard that is down,
// not connected: ZMQ_IMMEDIATE; or at its high-water mark): it is held here, in order per
// peer, and sent before anything newer for that peer. A message held longer than
// `hold_timeout_ms` is given up: a client message is refused to its sender (refusal_for:
// a `server_ack` with status overloaded, "server busy, retry", which the gateway turns into
// an error frame the client resends on), an ack is dropped (the copy is delivered and acked
// again). So nothing waits in memory unboundedly and nothing vanishes without a word while
// the router runs; a router killed meanwhile takes at most hold_timeout_ms of one shard's
// messages, none of them SERVER_ACKed, along.
// Thread-safety: belongs to the daemon's thread.
class HeldMessages {
public:
    struct Held {
        Envelope envelope;
        std::uint64_t since_ms = 0; // monotonic time it was first refused by its peer
    };

    HeldMessages(std::size_t peers, std::uint64_t hold_timeout_ms)
        : queues_(peers), hold_timeout_ms_(hold_timeout_ms) {}

    bool holding(std::size_t peer) const { return !queues_.at(peer).empty(); }
    std::size_t size() const { return size_; }
    void hold(std::size_t peer, const Envelope& envelope, std::uint64_t now_ms);
    // Sends each peer's held messages in order through `send` until one is refused; returns
    // how many were sent.
    std::size_t send(const std::function<bool(std::size_t peer, const Envelope&)>& send);
    // Gives up every message held longer than the timeout, peer by peer in order, each handed to
    // `give_up`; returns how many.
    std::size_t expire(std::uint64_t now_ms, const std::function<void(const Envelope&)>& give_up);
    std::uint64_t hold_timeout_ms() const { return hold_timeout_ms_; }
    void set_hold_timeout_ms(std::uint64_t ms) { hold_timeout_ms_ = ms; }

private:
    std::vector<std::deque<Held>> queues_;
    std::uint64_t hold_timeout_ms_;
    std::size_t size_ = 0;
};

// The refusal for a message `held` gave up on: a `server_ack` (status overloaded, error
// kBusyRetry) to the sender's gateway and connection, in `out`. False when there is nobody
// to tell: acks, ephemeral messages (typing), envelopes without an origin gateway.
bool refusal_for(const Envelope& held, Envelope& out);

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
