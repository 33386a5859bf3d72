// ws-gateway: client messages pushed to a message-router whose server_ack has not come back.
//
// Why: the gateway's PUSH round-robins over every connected router. A router whose host just
// died (SIGKILL, power, a cut link) stays in that round robin until its TCP connection is
// seen to end, or until ZMTP heartbeats time out (10 s): what is pushed to it meanwhile
// vanishes without an answer. A client that resends what has no SERVER_ACK recovers; the
// app does not resend. So the gateway keeps a copy of each message that will be answered
// (a server_ack, ok or a refusal: everything but acks and ephemeral messages) until its
// answer comes, and pushes it again, with the same id, when none came within
// resend_after_ms. Sessions dedupe by (recipient, sender, id), group copies included, and
// the group daemon answers a repeated operation from its record, so a message that was not
// lost after all is stored once and acknowledged again. After
// max_resends pushes without an answer the gateway gives up: the client gets the error
// frame "server busy, retry" naming the message (as when no router takes it at once).
//
// Keyed by (connection id, message id): server_acks name the connection of the message
// they answer, and connection ids are unique within a gateway run. A connection that closes
// keeps its messages here until answered or given up: the app that went away does not
// resend either.
//
// Bounded: at most max_entries messages and max_bytes of their payloads; WsGatewayCore
// refuses new ones ("server busy, retry") while it is full.
//
// Thread: the gateway's thread. Not thread-safe. Socket-free (tests/unit/ws_gateway/).
#pragma once

#include "common/wire/envelope.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace vartalap::ws_gateway {

struct ResendOptions {
    std::uint32_t resend_after_ms = 5000; // no answer this long: push again (0: never resend)
    std::uint32_t max_resends = 3;        // pushes after the first before giving up
    std::size_t max_entries = 50000;      // messages kept at once
    std::size_t max_bytes = 64u << 20;    // their payloads' bytes kept at once
    bool enabled() const { return resend_after_ms != 0; }
};

class UnconfirmedMessages {
public:
    explicit UnconfirmedMessages(ResendOptions options = {}) : options_(options) {}

    // Whether `message` (a parsed client message) will be answered by a server_ack, and so
    // can be kept here: not an ack, not ephemeral.
    static bool answered(const Envelope& message);

    void set_options(const ResendOptions& options) { options_ = options; }
    const ResendOptions& options() const { return options_; }
    bool full() const {
        return entries_.size() >= options_.max_entries || bytes_ >= options_.max_bytes;
    }
    std::size_t size() const { return entries_.size(); }
    std::size_t bytes() const { return bytes_; } // payload bytes kept

    // `message` of `connection` was pushed to router `router` at now_ms: keep a copy. A
    // resend of the same id on the same connection (the client's own) starts its count again.
    void add(std::uint64_t connection, const Envelope& message, std::size_t router,
             std::uint64_t now_ms);
    // A server_ack (of any status) for message `id` of `connection` came: forget it.
    // Returns whether it was kept here.
    bool confirm(std::uint64_t connection, std::string_view id);

    // What sweep() does with one message. Neither may call add() or confirm().
    struct Due {
        // Push `message` again, to a router after `router` (the one that took it last),
        // updating `router` when one takes it (one not taken counts as a push all the same).
        std::function<void(const Envelope& message, std::size_t& router)> resend;
        // Its pushes are used up: tell `connection`'s client (if still here). It is forgotten.
        std::function<void(std::uint64_t connection, const Envelope& message)> give_up;
    };
    struct SweepResult {
        std::size_t resent = 0;
        std::size_t given_up = 0;
    };
    // Every message pushed at least resend_after_ms ago, in the order they were first
    // pushed: pushed again through due.resend while it has resends left, otherwise given
    // up. Nothing happens while resending is off.
    SweepResult sweep(std::uint64_t now_ms, const Due& due);

private:
    struct Entry {
        Envelope message;
        std::uint64_t connection = 0;
        std::size_t router = 0;  // the router that took it last
        std::uint64_t pushed_at_ms = 0;
        std::uint32_t resends = 0;
        std::uint64_t order = 0; // first push: resends keep the client's order
    };
    // The map key of (connection, id) into `out`: the connection's 8 bytes, then the id.
    static void make_key(std::string& out, std::uint64_t connection, std::string_view id);

    ResendOptions options_;
    std::unordered_map<std::string, Entry> entries_;
    std::uint64_t next_order_ = 0;
    std::size_t bytes_ = 0;
    std::string key_scratch_;
};

} // namespace vartalap::ws_gateway
