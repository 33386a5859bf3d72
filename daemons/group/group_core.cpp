// GroupCore: applying operations (create, add, remove) to the store, the group events they
// stage, and replies. Parsing and reads are group_requests.cpp.
// Thread: the group daemon's thread (see group_core.hpp).
#include "daemons/group/group_core.hpp"

#include "daemons/group/group_views.hpp"
#include "common/wire/builders.hpp"
#include "common/wire/client_message.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <unordered_set>

namespace vartalap::group {
namespace {

using nlohmann::json;
using views::dump;
using views::group_json;
using views::members_json;
using views::kNotMember;
using group_store::GroupRecord;
using group_store::Member;
using group_store::Role;

constexpr std::size_t kMaxUnknownListed = 10;            // names quoted in one error

bool full(int rc) { return lmdb::out_of_space(rc); }

// Refusals that the same request would get again: recorded for async operations so a
// resend is answered the same way. Transient ones (overloaded, internal) are not.
bool permanent(Status status) {
    return status == Status::ok || status == Status::refused || status == Status::bad_request ||
           status == Status::not_found || status == Status::unauthorized;
}

} // namespace

std::string random_group_id() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40); // version 4
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80); // RFC 4122 variant
    char text[37];
    std::snprintf(text, sizeof text,
                  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                  bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                  bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
    return text;
}

GroupCore::GroupCore(lmdb::Env& env, std::size_t shard_count, FanoutOutbox::ShardOf shard_of,
                     const Clock& clock, IdGenerator new_group_id, GroupConfig config)
    : env_(env), clock_(clock), new_group_id_(std::move(new_group_id)), config_(config),
      outbox_(env, shard_count, std::move(shard_of), clock, config_.events) {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    groups_ = lmdb::Db::open(txn, group_store::kGroupsDb);
    user_groups_ = lmdb::Db::open(txn, group_store::kUserGroupsDb);
    applied_ops_ = lmdb::Db::open(txn, group_store::kAppliedOpsDb);
    meta_ = lmdb::Db::open(txn, group_store::kMetaDb);
    std::string_view stored;
    if (meta_.get(txn, "next_change", stored) == 0) next_change_ = lmdb::read_u64_be(stored);
    lmdb::check(txn.commit(), "group: open store");
}

// ---------------------------------------------------------------------------------------
// Applying

Envelope GroupCore::handle(const Envelope& request, const IsRegistered& is_registered) {
    Prepared prepared = prepare(request);
    if (prepared.reply) return std::move(*prepared.reply);
    return apply(request, prepared.op, is_registered);
}

Envelope GroupCore::apply(const Envelope& request, const GroupOp& op, const IsRegistered& is_registered) {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    full_rc_ = 0;
    if (op.async) {
        // Another copy of this operation may have been applied while this one waited for
        // the profile daemon.
        group_store::pair_key(key_, op.actor, op.op_id);
        std::string_view stored;
        Status status;
        std::string group_id, error;
        if (applied_ops_.get(txn, key_, stored) == 0 && group_store::decode_applied(stored, status, group_id, error)) {
            ++counters_.replayed;
            return reply(request, Outcome{status, error, group_id,
                                          status == Status::ok ? dump(json{{"groupId", group_id}})
                                                               : std::string{}});
        }
    }
    const std::uint64_t change_before = next_change_;
    Outcome outcome;
    switch (op.type) {
    case GroupOpType::create: outcome = create(txn, op, is_registered); break;
    case GroupOpType::add: outcome = add(txn, op, is_registered); break;
    case GroupOpType::remove: outcome = remove(txn, op); break;
    default: outcome = Outcome{Status::bad_request, "not a change", {}, {}}; break;
    }
    if (full_rc_ == 0 && next_change_ != change_before) {
        std::string counter;
        lmdb::append_u64_be(counter, next_change_);
        if (full(meta_.put(txn, "next_change", counter))) full_rc_ = MDB_MAP_FULL;
    }
    if (full_rc_ == 0 && op.async && permanent(outcome.status)) {
        group_store::pair_key(key_, op.actor, op.op_id);
        if (full(applied_ops_.put(txn, key_, group_store::encode_applied(outcome.status, outcome.group_id, outcome.error))))
            full_rc_ = MDB_MAP_FULL;
    }
    if (full_rc_ == 0 && (outcome.status == Status::ok || op.async) && txn.commit() == 0) {
        outbox_.committed();
    } else if (full_rc_ != 0 || outcome.status == Status::ok || op.async) {
        // Out of space: nothing of the operation happened; the caller may retry later.
        txn.abort();
        outbox_.aborted();
        next_change_ = change_before;
        spdlog::error("group: store is full; {} by {} refused", request.method.empty() ? "operation" : request.method,
                      op.actor);
        outcome = Outcome{Status::overloaded, "group store is full", {}, {}};
    } else {
        txn.abort(); // a refusal of a REST request changes nothing
        outbox_.aborted();
        next_change_ = change_before;
    }
    if (outcome.status != Status::ok) ++counters_.refused;
    return reply(request, outcome);
}

GroupCore::Outcome GroupCore::create(lmdb::Txn& txn, const GroupOp& op, const IsRegistered& is_registered) {
    std::string group_id = op.group_id;
    std::string_view existing;
    if (group_id.empty()) {
        // A server id: 122 random bits never collide in practice; checking costs one read.
        for (int attempt = 0; attempt < 4; ++attempt) {
            group_id = new_group_id_();
            if (groups_.get(txn, group_id, existing) == MDB_NOTFOUND) break;
            group_id.clear();
        }
        if (group_id.empty()) return {Status::internal, "could not generate a group id", {}, {}};
    } else if (groups_.get(txn, group_id, existing) == 0) {
        return {Status::refused, "group already exists", group_id, {}};
    }
    if (auto unknown = unknown_users(op.members, is_registered); !unknown.empty())
        return {Status::bad_request, unknown, group_id, {}};
    if (op.members.size() + 1 > config_.max_group_members)
        return {Status::refused, "a group has at most " + std::to_string(config_.max_group_members) + " members",
                group_id, {}};

    GroupRecord record;
    record.name = op.name;
    record.has_profile_pic = op.has_profile_pic;
    record.profile_pic = op.profile_pic;
    record.created_at_ms = clock_.wall_ms();
    record.members.push_back({op.actor, Role::admin});
    for (const auto& username : op.members) record.members.push_back({username, Role::user});
    if (full(store(txn, group_id, record))) return {};
    for (const Member& member : record.members) {
        group_store::pair_key(key_, member.username, group_id);
        if (full(user_groups_.put(txn, key_, {}))) {
            full_rc_ = MDB_MAP_FULL;
            return {};
        }
    }
    // Members before the change: none; added: everyone (the creator too: other devices).
    json body = {{"added", members_json(record.members)}, {"name", record.name}};
    if (record.has_profile_pic) body["profilePic"] = record.profile_pic;
    std::vector<std::string_view> recipients;
    for (const Member& member : record.members) recipients.push_back(member.username);
    if (full(stage_event(txn, group_id, op.actor, "add", next_event_id(group_id), dump(body), recipients)))
        return {};
    ++counters_.created;
    counters_.added += record.members.size();
    return {Status::ok, {}, group_id, dump(json{{"groupId", group_id}})};
}

GroupCore::Outcome GroupCore::add(lmdb::Txn& txn, const GroupOp& op, const IsRegistered& is_registered) {
    GroupRecord record;
    if (!load(txn, op.group_id, record) || record.find(op.actor) < 0)
        return {Status::not_found, std::string(kNotMember), op.group_id, {}};
    std::vector<std::string> fresh;
    for (const auto& username : op.members)
        if (record.find(username) < 0) fresh.push_back(username);
    if (fresh.empty()) // all are members already: nothing changes, no event
        return {Status::ok, {}, op.group_id, op.async ? dump(json{{"groupId", op.group_id}})
                                                      : dump(group_json(op.group_id, record))};
    if (auto unknown = unknown_users(fresh, is_registered); !unknown.empty())
        return {Status::bad_request, unknown, op.group_id, {}};
    if (record.members.size() + fresh.size() > config_.max_group_members)
        return {Status::refused, "a group has at most " + std::to_string(config_.max_group_members) + " members",
                op.group_id, {}};

    std::vector<std::string_view> before;
    for (const Member& member : record.members) before.push_back(member.username);
    std::vector<Member> added;
    for (const auto& username : fresh) added.push_back({username, Role::user});
    // `before` views the old member strings: grow a copy, keep the old ones alive.
    GroupRecord updated = record;
    updated.members.insert(updated.members.end(), added.begin(), added.end());
    if (full(store(txn, op.group_id, updated))) return {};
    for (const Member& member : added) {
        group_store::pair_key(key_, member.username, op.group_id);
        if (full(user_groups_.put(txn, key_, {}))) {
            full_rc_ = MDB_MAP_FULL;
            return {};
        }
    }
    // One event, two shapes: members before the change learn who joined; the new members
    // also get the whole member list, so their app can build the group without a fetch.
    const std::string event_id = next_event_id(op.group_id);
    json body = {{"added", members_json(added)}, {"name", updated.name}};
    if (updated.has_profile_pic) body["profilePic"] = updated.profile_pic;
    if (full(stage_event(txn, op.group_id, op.actor, "add", event_id, dump(body), before))) return {};
    body["members"] = members_json(updated.members);
    std::vector<std::string_view> newcomers;
    for (const Member& member : added) newcomers.push_back(member.username);
    if (full(stage_event(txn, op.group_id, op.actor, "add", event_id, dump(body), newcomers))) return {};
    counters_.added += added.size();
    return {Status::ok, {}, op.group_id, op.async ? dump(json{{"groupId", op.group_id}})
                                                  : dump(group_json(op.group_id, updated))};
}

GroupCore::Outcome GroupCore::remove(lmdb::Txn& txn, const GroupOp& op) {
    GroupRecord record;
    if (!load(txn, op.group_id, record)) return {Status::not_found, std::string(kNotMember), op.group_id, {}};
    const long actor_index = record.find(op.actor);
    if (actor_index < 0) return {Status::not_found, std::string(kNotMember), op.group_id, {}};
    for (const auto& username : op.members)
        if (record.find(username) < 0)
            return {Status::bad_request, username + " is not a member of this group", op.group_id, {}};
    const bool only_self = op.members.size() == 1 && op.members.front() == op.actor;
    if (!only_self && record.members[static_cast<std::size_t>(actor_index)].role != Role::admin)
        return {Status::refused, "only an admin can remove other members", op.group_id, {}};

    GroupRecord updated = record;
    std::erase_if(updated.members, [&](const Member& member) {
        return std::find(op.members.begin(), op.members.end(), member.username) != op.members.end();
    });
    json promoted = json::array();
    if (!updated.members.empty() &&
        std::none_of(updated.members.begin(), updated.members.end(),
                     [](const Member& m) { return m.role == Role::admin; })) {
        updated.members.front().role = Role::admin; // the last admin left
        promoted.push_back({{"username", updated.members.front().username}, {"role", "admin"}});
    }
    if (updated.members.empty()) {
        const int rc = groups_.del(txn, op.group_id);
        if (full(rc)) {
            full_rc_ = rc;
            return {};
        }
    } else if (full(store(txn, op.group_id, updated))) {
        return {};
    }
    for (const auto& username : op.members) {
        group_store::pair_key(key_, username, op.group_id);
        const int rc = user_groups_.del(txn, key_);
        if (full(rc)) {
            full_rc_ = rc;
            return {};
        }
    }
    // Recipients: the members before the change, the removed ones included.
    json body = {{"removed", op.members}};
    if (!promoted.empty()) body["promoted"] = std::move(promoted);
    std::vector<std::string_view> before;
    for (const Member& member : record.members) before.push_back(member.username);
    if (full(stage_event(txn, op.group_id, op.actor, "remove", next_event_id(op.group_id), dump(body), before)))
        return {};
    counters_.removed += op.members.size();
    json reply_body = updated.members.empty() ? json{{"groupId", op.group_id}, {"deleted", true}}
                                              : group_json(op.group_id, updated);
    return {Status::ok, {}, op.group_id, op.async ? dump(json{{"groupId", op.group_id}}) : dump(reply_body)};
}

// ---------------------------------------------------------------------------------------
// Helpers

bool GroupCore::load(lmdb::Txn& txn, std::string_view group_id, GroupRecord& out) {
    std::string_view bytes;
    if (groups_.get(txn, group_id, bytes) != 0) return false;
    if (!group_store::decode(bytes, out)) {
        spdlog::error("group: corrupt record for group {}; treated as absent", group_id);
        return false;
    }
    return true;
}

int GroupCore::store(lmdb::Txn& txn, std::string_view group_id, const GroupRecord& record) {
    group_store::encode(record, value_);
    const int rc = groups_.put(txn, group_id, value_);
    if (full(rc)) full_rc_ = rc;
    return rc;
}

std::string GroupCore::next_event_id(std::string_view group_id) {
    // Unique per recipient forever: one counter for the whole store, persisted with the
    // change. Sessions dedupe by (recipient, sender, id), so a resent event is stored once;
    // the prefix is the server's namespace, which gateways refuse in client ids, so no
    // member can pre-send an event's id to hide it.
    std::string id(kServerIdPrefix);
    id.append(group_id).append(":").append(std::to_string(next_change_++));
    return id;
}

int GroupCore::stage_event(lmdb::Txn& txn, std::string_view group_id, std::string_view actor,
                           std::string_view action, const std::string& event_id,
                           const std::string& body_json, std::span<const std::string_view> recipients) {
    const std::uint64_t now_ms = clock_.wall_ms();
    json body = json::parse(body_json);
    body["ts"] = now_ms / 1000;
    // The same shape as a client message after client_message.cpp: head.from is the actor,
    // body.ts the server time, plus the flat legacy keys old app versions read.
    const json event = {
        {"_v", 2.1},
        {"id", event_id},
        {"head",
         {{"type", "group"},
          {"to", group_id},
          {"from", actor},
          {"chatid", group_id},
          {"contentType", "notification"},
          {"action", action},
          {"category", "system"},
          {"ephemeral", false}}},
        {"meta", {{"createdAt", now_ms}}},
        {"body", std::move(body)},
        {"from", actor},
        {"to", group_id},
        {"msgId", event_id},
        {"type", "notification"},
        {"chatId", group_id},
        {"module", "system"},
        {"action", action},
        {"chatType", "group"}};
    Envelope copy;
    copy.kind = Kind::deliver;
    copy.id = event_id;
    copy.channel = "group";
    copy.from = std::string(actor);
    copy.created_at_ms = now_ms;
    // System category: the socket write is the ack (as for receipts), so an app that never
    // acks notifications is not retried forever; offline recipients get it on connect.
    copy.flags = flag_group | flag_system;
    copy.payload = dump(event);
    const int rc = outbox_.stage(txn, copy, recipients);
    if (full(rc)) {
        full_rc_ = rc;
        return rc;
    }
    counters_.events += recipients.size();
    return 0;
}

std::string GroupCore::unknown_users(const std::vector<std::string>& candidates,
                                     const IsRegistered& is_registered) const {
    std::string listed;
    std::size_t count = 0;
    for (const auto& username : candidates) {
        if (is_registered(username)) continue;
        if (count++ < kMaxUnknownListed) listed += (listed.empty() ? "" : ", ") + username;
    }
    if (count == 0) return {};
    if (count > kMaxUnknownListed) listed += " and " + std::to_string(count - kMaxUnknownListed) + " more";
    return "unknown users (not registered): " + listed;
}

Envelope GroupCore::reply(const Envelope& request, Status status, std::string body, std::string_view error) {
    return make_reply(request, status, std::move(body), error);
}

Envelope GroupCore::reply(const Envelope& request, const Outcome& outcome) {
    return reply(request, outcome.status, outcome.body, outcome.error);
}

std::optional<group_store::GroupRecord> GroupCore::find(std::string_view group_id) {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    GroupRecord record;
    if (!load(txn, group_id, record)) return std::nullopt;
    return record;
}

std::vector<std::string> GroupCore::groups_of(std::string_view user) {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    std::vector<std::string> out;
    group_store::pair_key(key_, user, {});
    const std::string prefix = key_;
    lmdb::Cursor cursor(txn, user_groups_);
    for (bool more = cursor.seek(prefix); more && cursor.key().starts_with(prefix); more = cursor.next())
        out.emplace_back(cursor.key().substr(prefix.size()));
    return out;
}

} // namespace vartalap::group
