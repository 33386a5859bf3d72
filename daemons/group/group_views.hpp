// The JSON the group daemon answers with: a group as clients read it, a member list, and the
// one dump setting (invalid UTF-8 replaced, never thrown). Used by GroupCore's parsing and
// applying halves (group_requests.cpp, group_core.cpp).
// Thread-safety: pure functions.
#pragma once

#include "common/store/group_store.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace vartalap::group::views {

using nlohmann::json;

inline constexpr std::string_view kNotMember = "no such group"; // also for non-members: no leak

inline std::string dump(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

inline json group_json(std::string_view group_id, const group_store::GroupRecord& record) {
    json members = json::array();
    for (const group_store::Member& member : record.members)
        members.push_back({{"username", member.username}, {"role", group_store::to_string(member.role)}});
    return {{"groupId", group_id},
            {"name", record.name},
            {"members", std::move(members)},
            {"profilePic", record.has_profile_pic ? json(record.profile_pic) : json(nullptr)}};
}

inline json members_json(const std::vector<group_store::Member>& members) {
    json out = json::array();
    for (const group_store::Member& member : members)
        out.push_back({{"username", member.username}, {"role", group_store::to_string(member.role)}});
    return out;
}

} // namespace vartalap::group::views
