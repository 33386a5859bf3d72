// group-router: expands group messages into one copy per member and forwards group
// operations to the group daemon (docs/INTERNAL_PROTOCOL.md, "Groups").
//
// GroupRouterCore is the socket-free logic. It reads membership through a group_store::Membership (the
// group store, LMDB, opened read-only: group_store::Reader), talks to sessions, the group daemon
// and gateways through GroupRouterOutbox, and keeps its durable point in a FanoutOutbox in
// its own LMDB environment:
//
//   drain a batch → one read transaction on the group store: check that each sender is a
//   member, expand the recipients (one pass over the member list, grouped by session
//   shard) → one write transaction on the outbox: the message + its per-shard recipient
//   lists (and deletions of what earlier turns had confirmed) → commit → SERVER_ACK to
//   the senders that asked → send the copies, batched per shard → the sessions confirm
//   the copies they committed (copies_stored, on_copies_stored) → confirmed batches are
//   deleted in a later transaction.
//
// A crash after the SERVER_ACK loses no copy, nor does a session that dies with copies in
// its queue: a copy stays in the outbox until its session confirmed it, is sent again when
// no confirmation came within confirm_timeout_ms, and on restart the outbox sends every
// copy not confirmed again (sessions dedupe by (recipient, sender, id) and confirm again).
//
// What arrives (kind group_message, from the message-router), by Envelope::method and the
// client JSON's top-level "action" (the gateway's legacy copy of head.action):
//   - chat, action create/add/remove: a group operation → group_op to the group daemon;
//     its reply becomes the SERVER_ACK (ok) or an error (a refusal) for the sender;
//   - chat otherwise: a group message → one copy per member except the sender (`to` =
//     member, payload unchanged, flag_wants_server_ack cleared); ephemeral ones (typing)
//     are sent at once and never stored; a sender who is not a member gets a server_ack
//     with status refused and error "not a member of this group", and nothing is sent;
//   - receipt: delivered (durably, like a message) to `to`, the original sender; a receipt
//     addressed to a group id is not delivered (the group id does not say who the original
//     sender is; its ack part was already applied by the message-router) and is answered
//     with an ok server_ack.
//
// Thread: the group-router daemon's thread. Not thread-safe. Ownership: references to the
// Env, Membership, links and Clock, which must outlive the core.
// Errors: invalid envelopes are counted and dropped; a full outbox (its LMDB map, or the
// disk) refuses the batch's messages (no SERVER_ACK; a server_ack with status storage_full,
// "server storage full", so the senders resend; logged at most every 10 s); LMDB failures
// otherwise throw lmdb::Error.
#pragma once

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/wire/envelope.hpp"
#include "common/store/lmdb.hpp"
#include "common/store/fanout_outbox.hpp"
#include "common/store/group_store_reader.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vartalap::group_router {

// Where the core's messages go. The daemon implements it over its sockets; tests record.
class GroupRouterOutbox {
public:
    virtual ~GroupRouterOutbox() = default;
    // A copy (kind deliver) to session shard `shard`. False: not accepted now (retried).
    virtual bool to_session(std::size_t shard, const Envelope& copy) = 0;
    // A group_op to the group daemon. False: not queued (the operation is dropped, unacked).
    virtual bool to_group(const Envelope& operation) = 0;
    // A server_ack (ok, or a refusal with status and error) to the sender's gateway. Best
    // effort: a lost ack makes the client resend.
    virtual void to_gateway(std::string_view gateway, const Envelope& ack) = 0;
};

// The top-level "action" of a client JSON object (the legacy key the gateway stamps), read
// with simdjson On-Demand up to that key, no tree built. "" if absent or not a string.
std::string peek_action(std::string_view payload);
// Whether an action names a group operation ("create", "add", "remove").
bool is_group_operation(std::string_view action);

struct GroupRouterConfig {
    // Copies in the outbox (waiting for a shard that is down, or for confirmations) before
    // the router stops reading new messages (backpressure to the message-routers). ~100
    // bytes each in memory.
    std::size_t max_pending_copies = 1u << 20;
    // Confirmations: the instance name the sessions confirm to (the daemon's own), the
    // confirmation timeout and the bound on unconfirmed copies per session shard.
    FanoutOutbox::Options outbox;
    std::size_t max_pending_ops = 10000;     // operations waiting for the group daemon
    std::uint64_t op_timeout_ms = 10000;     // an operation not answered by then: no ack (resend)
    // Sent batches are deleted with the next batch's transaction, or after this delay when
    // no batch comes: one commit per turn under load.
    std::uint64_t deletion_delay_ms = 100;
};

struct GroupRouterCounters {
    std::uint64_t messages = 0;          // group messages committed to the outbox
    std::uint64_t copies = 0;            // copies staged (durable)
    std::uint64_t copies_sent = 0;       // copies accepted by session shards (resends included)
    std::uint64_t copies_confirmed = 0;  // copies the sessions confirmed (then deleted)
    std::uint64_t confirmations = 0;     // copies_stored envelopes received
    std::uint64_t ephemeral_copies = 0;  // typing copies sent without storing
    std::uint64_t not_member = 0;        // refused: the sender is not a member
    std::uint64_t receipts = 0;          // receipts delivered to the original sender
    std::uint64_t receipts_to_group = 0; // receipts addressed to a group id: not delivered
    std::uint64_t operations = 0;        // forwarded to the group daemon
    std::uint64_t operations_refused = 0;// answered with a refusal
    std::uint64_t operations_lost = 0;   // not queued, or no answer in time (senders resend)
    std::uint64_t store_unavailable = 0; // messages dropped: group store not open
    std::uint64_t store_full = 0;        // messages refused: outbox map or disk full
    std::uint64_t invalid = 0;
};

class GroupRouterCore {
public:
    // Opens (creating) the outbox in `outbox_env` and reloads what was not sent.
    GroupRouterCore(lmdb::Env& outbox_env, group_store::Membership& membership, GroupRouterOutbox& links,
                    std::size_t shard_count, FanoutOutbox::ShardOf shard_of, const Clock& clock,
                    GroupRouterConfig config = {});

    // Whether to read more messages (the outbox and the operation table have room).
    bool accepting() const;
    // Handles group_message envelopes (see the top of this file). May modify the batch.
    void handle_batch(std::span<Envelope> batch);
    // A reply of the group daemon to a group_op.
    void on_reply(const Envelope& reply);
    // A session's copies_stored: the copies of outbox entry `request_id` to `ids` are
    // committed there. Confirmed copies are deleted with the next deletion.
    void on_copies_stored(const Envelope& confirmation);
    // Periodic duties, about every 100 ms (20 ms while copies wait): send pending copies and
    // those whose confirmation is overdue, delete confirmed ones, expire operations the
    // group daemon did not answer.
    void on_timer();

    const GroupRouterCounters& counters() const { return counters_; }
    const FanoutOutbox& outbox() const { return outbox_; }
    std::size_t pending_operations() const { return operations_.size(); }

private:
    struct PendingOperation {
        std::string id;
        std::string from;
        std::string origin_gateway;
        std::uint64_t connection = 0;
        std::uint64_t request_id = 0; // the gateway's, echoed in the server_ack
        bool wants_ack = false;
        std::uint64_t deadline_ms = 0;
    };
    enum class After : std::uint8_t { nothing, ack, refuse_not_member, refuse_full, forward };

    void server_ack(const Envelope& message, Status status, std::string_view error);
    void server_ack(const PendingOperation& operation, Status status, std::string_view error);
    void forward(Envelope& operation);
    void send_copies();
    void make_copy_template(const Envelope& message);

    lmdb::Env& env_;
    group_store::Membership& membership_;
    GroupRouterOutbox& links_;
    const Clock& clock_;
    GroupRouterConfig config_;
    FanoutOutbox::ShardOf shard_of_;
    FanoutOutbox outbox_;
    GroupRouterCounters counters_;
    std::unordered_map<std::uint64_t, PendingOperation> operations_;
    std::uint64_t next_operation_id_;
    std::uint64_t deletions_since_ms_ = 0; // 0: no deletion waiting
    LogLimiter full_log_{10000};           // a full outbox: one line per 10 s

    // Reused per batch.
    std::vector<After> after_;
    std::vector<std::string_view> members_;
    std::vector<std::string_view> recipients_;
    Envelope copy_;
    Envelope ack_;
};

} // namespace vartalap::group_router
