// group: creates and changes groups, owns the group store, emits group events
// (docs/INTERNAL_PROTOCOL.md, "Groups"; ../shared/PROTOCOL.md, "REST" and "Group messages").
//
// GroupCore is the socket-free logic. Requests come in two forms:
//   - Kind::request from a rest-gateway (method group_create / group_add / group_remove /
//     group_get / group_list, JSON body in payload, `from` = authenticated user, `to` = the
//     group id of the path if any);
//   - Kind::group_op from a group-router: a client's group operation sent as a message
//     (payload = the client JSON, `from` = actor, `to` = group id, `id` = op id). These are
//     idempotent: the outcome is recorded under (actor, op id) in the same transaction as
//     the change, and a resent operation gets the recorded answer and changes nothing.
// Every answer is a Kind::reply with the request's request_id.
//
// Registration ("unknown usernames are refused") is resolved by the caller: prepare() says
// which usernames need checking; the daemon asks the profile daemon (contactbook_sync) and
// then calls apply() with the answer. So the core stays synchronous and testable.
//
// Rules (PROTOCOL.md): the creator is admin, everyone else user; at most
// max_members_at_create usernames at creation and max_members_per_add per add; any member
// may add; a member may remove themself; only an admin removes others; when the last admin
// leaves, the first remaining member becomes admin; a group left empty is deleted.
// Non-members get not_found for every operation on a group (its existence is not revealed).
//
// Events: every change writes group event messages (head.type group, contentType
// notification, action add/remove) to the FanoutOutbox in the same transaction as the
// change, one copy per recipient: the members before the change plus the added ones. The
// daemon sends them after the commit (events().send_pending); the sessions confirm the
// copies they committed (copies_stored, events().confirm), and unconfirmed ones are sent
// again after a timeout and after a restart.
//
// Thread: the group daemon's thread. Not thread-safe. Ownership: references to the Env and
// Clock, which must outlive the core. Errors: bad input becomes a reply with a status;
// LMDB failures other than a full map throw lmdb::Error (restart is cheap).
#pragma once

#include "common/clock.hpp"
#include "common/wire/envelope.hpp"
#include "common/store/lmdb.hpp"
#include "common/store/fanout_outbox.hpp"
#include "common/store/group_store.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::group {

struct GroupConfig {
    std::size_t max_members_at_create = 100; // PROTOCOL.md: members of POST /group/create
    std::size_t max_members_per_add = 50;    // PROTOCOL.md: members of one add
    std::size_t max_removed_per_op = 50;     // async remove may name several members
    // Total size of a group. Bounds a record (~70 bytes a member) and one message's fan-out.
    std::size_t max_group_members = 1024;
    // The event outbox: the instance the sessions confirm event copies to (the daemon's
    // own name), the confirmation timeout, the bound on unconfirmed copies per shard.
    FanoutOutbox::Options events;
};

enum class GroupOpType : std::uint8_t { create, add, remove, get, list };

struct GroupOp {
    GroupOpType type = GroupOpType::get;
    bool async = false;             // a group_op: idempotent by (actor, op_id)
    std::string actor;
    std::string op_id;              // async only: the client's message id
    std::string group_id;           // "" for a REST create (the server generates it)
    std::string name;
    bool has_profile_pic = false;
    std::string profile_pic;
    std::vector<std::string> members; // create/add: usernames to add; remove: to remove
};

struct Prepared {
    std::optional<Envelope> reply;       // set: answer now, nothing to apply
    GroupOp op;                          // otherwise: apply this
    std::vector<std::string> to_check;   // usernames whose registration apply() will ask
};

struct GroupCounters {
    std::uint64_t created = 0;
    std::uint64_t added = 0;          // members added
    std::uint64_t removed = 0;        // members removed
    std::uint64_t refused = 0;        // requests answered with a non-ok status
    std::uint64_t replayed = 0;       // async operations answered from the applied-op record
    std::uint64_t events = 0;         // event copies staged
};

// A random UUID (version 4), the id of a group created over REST.
std::string random_group_id();

class GroupCore {
public:
    using IdGenerator = std::function<std::string()>;
    using IsRegistered = std::function<bool(std::string_view username)>;

    // Opens (creating) the store's databases and the event outbox. Throws lmdb::Error.
    GroupCore(lmdb::Env& env, std::size_t shard_count, FanoutOutbox::ShardOf shard_of,
              const Clock& clock, IdGenerator new_group_id = random_group_id,
              GroupConfig config = {});

    // Parses and validates a request or group_op. Reads only.
    Prepared prepare(const Envelope& request);
    // Applies a prepared operation in one write transaction. `is_registered` is asked only
    // about usernames being added that are not members.
    Envelope apply(const Envelope& request, const GroupOp& op, const IsRegistered& is_registered);
    // prepare + apply, for callers that can answer registration synchronously (tests).
    Envelope handle(const Envelope& request, const IsRegistered& is_registered);

    FanoutOutbox& events() { return outbox_; }
    const GroupConfig& config() const { return config_; }
    // SIGHUP: a new bound on group size (checked at each add from now on).
    void set_max_group_members(std::size_t max) { config_.max_group_members = max; }
    const GroupCounters& counters() const { return counters_; }

    // Inspection (tests, status): committed state.
    std::optional<group_store::GroupRecord> find(std::string_view group_id);
    std::vector<std::string> groups_of(std::string_view user);

private:
    struct Outcome {
        Status status = Status::ok;
        std::string error;
        std::string group_id;
        std::string body; // reply JSON for ok
    };

    std::optional<Envelope> parse(const Envelope& request, GroupOp& op);
    std::optional<Envelope> parse_async(const Envelope& request, GroupOp& op, lmdb::Txn& txn);
    Envelope serve_read(const Envelope& request, const GroupOp& op);

    // Inside the write transaction. Return the outcome; a write that ran out of space sets
    // full_rc_ (the caller then aborts and answers overloaded).
    Outcome create(lmdb::Txn& txn, const GroupOp& op, const IsRegistered& is_registered);
    Outcome add(lmdb::Txn& txn, const GroupOp& op, const IsRegistered& is_registered);
    Outcome remove(lmdb::Txn& txn, const GroupOp& op);

    bool load(lmdb::Txn& txn, std::string_view group_id, group_store::GroupRecord& out);
    int store(lmdb::Txn& txn, std::string_view group_id, const group_store::GroupRecord& record);
    int stage_event(lmdb::Txn& txn, std::string_view group_id, std::string_view actor,
                    std::string_view action, const std::string& event_id,
                    const std::string& body_json, std::span<const std::string_view> recipients);
    std::string next_event_id(std::string_view group_id);
    std::string unknown_users(const std::vector<std::string>& candidates,
                              const IsRegistered& is_registered) const;

    Envelope reply(const Envelope& request, Status status, std::string body,
                   std::string_view error = {});
    Envelope reply(const Envelope& request, const Outcome& outcome);

    lmdb::Env& env_;
    const Clock& clock_;
    IdGenerator new_group_id_;
    GroupConfig config_;
    GroupCounters counters_;
    lmdb::Db groups_;
    lmdb::Db user_groups_;
    lmdb::Db applied_ops_;
    lmdb::Db meta_;
    FanoutOutbox outbox_;
    std::uint64_t next_change_ = 1; // persisted with every change
    int full_rc_ = 0;               // set by a write that ran out of space
    std::string key_;
    std::string value_;
};

} // namespace vartalap::group
