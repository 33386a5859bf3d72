// GroupCore: parsing requests (synchronous REST ones and asynchronous group_op ones),
// answering resends from the applied-operations record, and serving reads (get, list).
// Applying is group_core.cpp.
// Thread: the group daemon's thread (see group_core.hpp).
#include "daemons/group/group_core.hpp"

#include "daemons/group/group_views.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <unordered_set>
#include <vector>

namespace vartalap::group {
namespace {

using nlohmann::json;
using views::dump;
using views::group_json;
using views::kNotMember;
using group_store::GroupRecord;

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

} // namespace

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
                group_store::decode_applied(stored, status, group_id, error)) {
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

} // namespace vartalap::group
