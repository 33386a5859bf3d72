// Thread: the group daemon's thread (see group_core.hpp).
#include "daemons/group/group_core.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <unordered_set>

namespace vartalap {
namespace {

using nlohmann::json;
using group_store::GroupRecord;
using group_store::Member;
using group_store::Role;

constexpr std::string_view kNotMember = "no such group"; // also for non-members: no leak
constexpr std::size_t kMaxUnknownListed = 10;            // names quoted in one error

std::string dump(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

json group_json(std::string_view group_id, const GroupRecord& record) {
    json members = json::array();
    for (const Member& member : record.members)
        members.push_back({{"username", member.username}, {"role", group_store::to_string(member.role)}});
    return {{"groupId", group_id},
            {"name", record.name},
            {"members", std::move(members)},
            {"profilePic", record.has_profile_pic ? json(record.profile_pic) : json(nullptr)}};
}

json members_json(const std::vector<Member>& members) {
    json out = json::array();
    for (const Member& member : members)
        out.push_back({{"username", member.username}, {"role", group_store::to_string(member.role)}});
    return out;
}

// Reads a list of usernames: strings, or objects {"username": ...} (the shape of a group
// event's "added", which an app may send back as an operation). Deduplicates in order.
bool read_usernames(const json& list, std::size_t max, std::vector<std::string>& out,
                    std::string& error) {
    if (!list.is_array()) {
        error = "members must be an array of usernames";
        return false;
    }
    if (list.size() > max * 4) { // before reading: bounds the work on hostile input
        error = "too many members (at most " + std::to_string(max) + ")";
        return false;
    }
    std::unordered_set<std::string> seen;
    for (const auto& item : list) {
        const json* name = &item;
        if (item.is_object()) {
            auto it = item.find("username");
            if (it == item.end()) {
                error = "a member object needs a username";
                return false;
            }
            name = &*it;
        }
        if (!name->is_string() || !group_store::valid_username(name->get_ref<const std::string&>())) {
            error = "invalid username in members";
            return false;
        }
        const auto& username = name->get_ref<const std::string&>();
        if (seen.insert(username).second) out.push_back(username);
    }
    if (out.size() > max) {
        error = "too many members (at most " + std::to_string(max) + ")";
        return false;
    }
    return true;
}

// Optional string member; false if present and not a string (or null), or too long.
bool optional_string(const json& body, const char* key, std::size_t max, bool& present,
                     std::string& out) {
    present = false;
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return true;
    if (!it->is_string() || it->get_ref<const std::string&>().size() > max) return false;
    present = true;
    out = it->get<std::string>();
    return true;
}

bool full(int rc) { return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL; }

// Stored outcome of an async operation: [u8 status][u16 len][group id][error].
std::string encode_applied(Status status, std::string_view group_id, std::string_view error) {
    std::string out;
    out.push_back(static_cast<char>(status));
    out.push_back(static_cast<char>(group_id.size() >> 8));
    out.push_back(static_cast<char>(group_id.size() & 0xff));
    out += group_id;
    out += error;
    return out;
}

bool decode_applied(std::string_view bytes, Status& status, std::string& group_id, std::string& error) {
    if (bytes.size() < 3) return false;
    status = static_cast<Status>(static_cast<unsigned char>(bytes[0]));
    const std::size_t n = (static_cast<unsigned char>(bytes[1]) << 8) | static_cast<unsigned char>(bytes[2]);
    if (bytes.size() - 3 < n) return false;
    group_id.assign(bytes.substr(3, n));
    error.assign(bytes.substr(3 + n));
    return true;
}

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
      outbox_(env, shard_count, std::move(shard_of)) {
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
// Parsing

std::optional<Envelope> GroupCore::parse(const Envelope& request, GroupOp& op) {
    op = GroupOp{};
    op.actor = request.from;
    if (!group_store::valid_username(request.from))
        return reply(request, Status::unauthorized, "{}", "not authenticated");

    json body = request.payload.empty() ? json::object()
                                        : json::parse(request.payload, nullptr, false);
    if (body.is_discarded() || !body.is_object())
        return reply(request, Status::bad_request, {}, "body must be a JSON object");

    // The group id: `to` (a rest-gateway puts the id of the path there) or body.groupId.
    auto group_id = [&]() -> std::optional<std::string> {
        std::string from_body;
        if (auto it = body.find("groupId"); it != body.end() && it->is_string()) from_body = *it;
        if (!request.to.empty() && !from_body.empty() && request.to != from_body) return std::nullopt;
        std::string id = request.to.empty() ? from_body : request.to;
        if (!group_store::valid_group_id(id)) return std::nullopt;
        return id;
    };
    std::string error;
    const std::string& method = request.method;
    if (method == "group_create") {
        op.type = GroupOpType::create;
        bool present = false;
        if (!optional_string(body, "name", group_store::kMaxNameBytes, present, op.name) || !present ||
            op.name.empty())
            return reply(request, Status::bad_request, {}, "name must be a non-empty string");
        if (!optional_string(body, "profilePic", group_store::kMaxProfilePicBytes,
                             op.has_profile_pic, op.profile_pic))
            return reply(request, Status::bad_request, {}, "profilePic must be a string");
        auto members = body.find("members");
        if (members != body.end() &&
            !read_usernames(*members, config_.max_members_at_create + 1, op.members, error))
            return reply(request, Status::bad_request, {}, error);
        std::erase(op.members, op.actor); // the creator is a member anyway
        if (op.members.size() > config_.max_members_at_create)
            return reply(request, Status::bad_request, {},
                         "too many members (at most " + std::to_string(config_.max_members_at_create) + ")");
        return std::nullopt;
    }
    if (method == "group_list") {
        op.type = GroupOpType::list;
        return std::nullopt;
    }
    if (method != "group_get" && method != "group_add" && method != "group_remove")
        return reply(request, Status::not_found, {}, "unknown method");
    auto id = group_id();
    if (!id) return reply(request, Status::bad_request, {}, "missing or invalid groupId");
    op.group_id = std::move(*id);
    if (method == "group_get") {
        op.type = GroupOpType::get;
        return std::nullopt;
    }
    if (method == "group_add") {
        op.type = GroupOpType::add;
        auto members = body.find("members");
        if (members == body.end() || !read_usernames(*members, config_.max_members_per_add, op.members, error))
            return reply(request, Status::bad_request, {}, error.empty() ? "members is required" : error);
        if (op.members.empty()) return reply(request, Status::bad_request, {}, "members is empty");
        return std::nullopt;
    }
    if (method == "group_remove") {
        op.type = GroupOpType::remove;
        auto member = body.find("member");
        if (member == body.end() || !member->is_string() ||
            !group_store::valid_username(member->get_ref<const std::string&>()))
            return reply(request, Status::bad_request, {}, "member must be a username");
        op.members.push_back(*member);
        return std::nullopt;
    }
    return reply(request, Status::not_found, {}, "unknown method");
}

// The shapes of group operations sent as messages (docs/INTERNAL_PROTOCOL.md, "Groups").
std::optional<Envelope> GroupCore::parse_async(const Envelope& request, GroupOp& op, lmdb::Txn& txn) {
    op = GroupOp{};
    op.async = true;
    op.actor = request.from;
    op.op_id = request.id;
    op.group_id = request.to;
    if (!group_store::valid_username(request.from))
        return reply(request, Status::unauthorized, "{}", "not authenticated");
    if (request.id.empty() || request.id.size() > group_store::kMaxOpIdBytes)
        return reply(request, Status::bad_request, {}, "invalid operation id");
    if (!group_store::valid_group_id(request.to))
        return reply(request, Status::bad_request, {}, "invalid group id in head.to");

    const json message = json::parse(request.payload, nullptr, false);
    const json* head = nullptr;
    const json* body = nullptr;
    if (message.is_object()) {
        if (auto it = message.find("head"); it != message.end() && it->is_object()) head = &*it;
        if (auto it = message.find("body"); it != message.end() && it->is_object()) body = &*it;
    }
    if (!head) return reply(request, Status::bad_request, {}, "invalid group operation");
    static const json empty = json::object();
    if (!body) body = &empty;
    std::string action;
    if (auto it = head->find("action"); it != head->end() && it->is_string()) action = *it;

    std::string error;
    auto read_create = [&]() -> std::optional<Envelope> {
        op.type = GroupOpType::create;
        bool present = false;
        if (!optional_string(*body, "name", group_store::kMaxNameBytes, present, op.name) ||
            !present || op.name.empty())
            return reply(request, Status::bad_request, {}, "a group create needs body.name");
        if (!optional_string(*body, "profilePic", group_store::kMaxProfilePicBytes,
                             op.has_profile_pic, op.profile_pic))
            return reply(request, Status::bad_request, {}, "profilePic must be a string");
        auto members = body->find("members");
        if (members == body->end()) members = body->find("added");
        if (members != body->end() &&
            !read_usernames(*members, config_.max_members_at_create + 1, op.members, error))
            return reply(request, Status::bad_request, {}, error);
        std::erase(op.members, op.actor);
        if (op.members.size() > config_.max_members_at_create)
            return reply(request, Status::bad_request, {},
                         "too many members (at most " + std::to_string(config_.max_members_at_create) + ")");
        return std::nullopt;
    };

    if (action == "create") return read_create();
    if (action == "add") {
        std::string_view existing;
        if (groups_.get(txn, op.group_id, existing) == MDB_NOTFOUND && body->contains("name"))
            return read_create(); // the app made the group locally and announces it
        op.type = GroupOpType::add;
        auto members = body->find("added");
        if (members == body->end()) members = body->find("members");
        if (members == body->end() ||
            !read_usernames(*members, config_.max_members_per_add, op.members, error))
            return reply(request, Status::bad_request, {},
                         error.empty() ? "a group add needs body.added" : error);
        if (op.members.empty()) return reply(request, Status::bad_request, {}, "body.added is empty");
        return std::nullopt;
    }
    if (action == "remove") {
        op.type = GroupOpType::remove;
        auto members = body->find("removed");
        if (members != body->end()) {
            if (!read_usernames(*members, config_.max_removed_per_op, op.members, error))
                return reply(request, Status::bad_request, {}, error);
        } else if (auto member = body->find("member");
                   member != body->end() && member->is_string() &&
                   group_store::valid_username(member->get_ref<const std::string&>())) {
            op.members.push_back(*member);
        }
        if (op.members.empty())
            return reply(request, Status::bad_request, {}, "a group remove needs body.removed");
        return std::nullopt;
    }
    return reply(request, Status::bad_request, {}, "unknown group operation '" + action + "'");
}

Prepared GroupCore::prepare(const Envelope& request) {
    Prepared prepared;
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    if (request.kind == Kind::group_op) {
        // A resend is answered from the record before anything else (even before parsing:
        // the answer must not change if the rules did).
        if (group_store::valid_username(request.from) && !request.id.empty() &&
            request.id.size() <= group_store::kMaxOpIdBytes) {
            group_store::pair_key(key_, request.from, request.id);
            std::string_view stored;
            Status status;
            std::string group_id, error;
            if (applied_ops_.get(txn, key_, stored) == 0 &&
                decode_applied(stored, status, group_id, error)) {
                ++counters_.replayed;
                Outcome outcome{status, error, group_id,
                                status == Status::ok ? dump(json{{"groupId", group_id}}) : std::string{}};
                prepared.reply = reply(request, outcome);
                return prepared;
            }
        }
        prepared.reply = parse_async(request, prepared.op, txn);
    } else if (request.kind == Kind::request) {
        prepared.reply = parse(request, prepared.op);
    } else {
        prepared.reply = reply(request, Status::bad_request, {}, "unexpected envelope kind");
    }
    if (prepared.reply) {
        if (prepared.reply->status != Status::ok) ++counters_.refused;
        return prepared;
    }
    const GroupOp& op = prepared.op;
    if (op.type == GroupOpType::get || op.type == GroupOpType::list) {
        txn.abort();
        prepared.reply = serve_read(request, op);
        return prepared;
    }
    if (op.type == GroupOpType::create) {
        prepared.to_check = op.members;
    } else if (op.type == GroupOpType::add) {
        GroupRecord record;
        if (load(txn, op.group_id, record))
            for (const auto& username : op.members)
                if (record.find(username) < 0) prepared.to_check.push_back(username);
    }
    return prepared;
}

Envelope GroupCore::serve_read(const Envelope& request, const GroupOp& op) {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    if (op.type == GroupOpType::get) {
        GroupRecord record;
        if (!load(txn, op.group_id, record) || record.find(op.actor) < 0) {
            ++counters_.refused;
            return reply(request, Status::not_found, {}, kNotMember);
        }
        return reply(request, Status::ok, dump(group_json(op.group_id, record)));
    }
    json groups = json::array();
    group_store::pair_key(key_, op.actor, {});
    const std::string prefix = key_;
    lmdb::Cursor cursor(txn, user_groups_);
    for (bool more = cursor.seek(prefix); more && cursor.key().starts_with(prefix); more = cursor.next()) {
        const std::string group_id(cursor.key().substr(prefix.size()));
        GroupRecord record;
        if (load(txn, group_id, record)) groups.push_back(group_json(group_id, record));
    }
    return reply(request, Status::ok, dump(groups));
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
        if (applied_ops_.get(txn, key_, stored) == 0 && decode_applied(stored, status, group_id, error)) {
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
        if (full(applied_ops_.put(txn, key_, encode_applied(outcome.status, outcome.group_id, outcome.error))))
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
    // change. Sessions dedupe by (recipient, id), so a resent event is stored once.
    return std::string(group_id) + ":" + std::to_string(next_change_++);
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
    return group_reply(request, status, std::move(body), error);
}

Envelope group_reply(const Envelope& request, Status status, std::string body, std::string_view error) {
    Envelope out;
    out.kind = Kind::reply;
    out.id = request.id;
    out.from = request.from;
    out.to = request.to;
    out.request_id = request.request_id;
    out.method = request.method;
    out.status = status;
    out.error = std::string(error);
    out.payload = status == Status::ok || !body.empty() ? std::move(body) : dump(json{{"error", error}});
    return out;
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

} // namespace vartalap
