// profile core: ProfileCore and the development identity provider (profile_core.hpp).
// Thread: the profile daemon's thread.
#include "daemons/profile/profile_core.hpp"

#include "common/log.hpp"
#include "common/names.hpp"
#include "common/wire/builders.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace vartalap::profile {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxTokenBytes = 4096;   // an ID token (JWT) with headroom
constexpr std::size_t kMaxSyncUsers = 5000;    // one contact book sync request

// The stored login fields and their limits (issue 12): an FCM registration token is about
// 160 bytes, the app's device id a short string. A longer value, or one of another type,
// is refused with 400 naming the field (it would be stored in every login's record).
struct FieldLimit {
    const char* name;
    std::size_t max_bytes;
};
constexpr FieldLimit kStoredFields[] = {{"notificationToken", kMaxNotificationTokenBytes},
                                        {"deviceId", kMaxDeviceIdBytes}};

Envelope reply_to(const Envelope& request, Status status, const json& body) {
    return make_reply(request, status, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

Envelope error_reply(const Envelope& request, Status status, std::string_view reason) {
    return make_reply(request, status, {}, reason);
}

} // namespace

bool DevelopmentIdentityProvider::verify(std::string_view, std::string_view token,
                                         Identity& identity, std::string& reason) const {
    if (token.empty()) {
        reason = "empty identity token";
        return false;
    }
    identity = {};
    return true;
}

ProfileCore::ProfileCore(lmdb::Env& env, const IdentityProvider& identity,
                         const AccessKeys& keys, const Clock& clock)
    : env_(env), revocations_(env), identity_(identity), keys_(keys), clock_(clock) {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    users_ = lmdb::Db::open(txn, "users");
    lmdb::check(txn.commit(), "profile: create users db");
}

Envelope ProfileCore::handle(const Envelope& request) {
    if (request.method == "login") return login(request);
    if (request.method == "logout") return logout(request);
    if (request.method == "revocations") return revocation_list(request);
    if (request.method == "profile") return profile(request);
    if (request.method == "contactbook_sync") return contactbook_sync(request);
    if (request.method == "notification_token") return notification_token_request(request);
    if (request.method == "remove_token") return remove_token(request);
    return error_reply(request, Status::not_found, "unknown method");
}

Envelope ProfileCore::login(const Envelope& request) {
    const json body = json::parse(request.payload, nullptr, false);
    if (body.is_discarded() || !body.is_object())
        return error_reply(request, Status::bad_request, "body must be a JSON object");
    auto string_field = [&](const char* key) -> std::string {
        auto it = body.find(key);
        return it != body.end() && it->is_string() ? it->get<std::string>() : std::string{};
    };
    const std::string username = string_field("username");
    const std::string token = string_field("authToken");
    // A name the protocol gives a meaning (server, ~..., a group-id shape), or one with
    // characters no address may hold, is the client's error: 400, not 401.
    if (const NameProblem problem = check_username(username); problem != NameProblem::none) {
        ++counters_.refused_logins;
        if (count_sampled(counters_.invalid_usernames))
            spdlog::info("profile: login refused: username {} ({} such so far)", describe(problem),
                         counters_.invalid_usernames);
        return reply_to(request, Status::bad_request,
                        json{{"error", "invalid username: " + std::string(describe(problem))}});
    }
    for (const FieldLimit& field : kStoredFields) {
        const auto it = body.find(field.name);
        if (it == body.end() || it->is_null()) continue;
        std::string error;
        if (!it->is_string())
            error = std::string(field.name) + " must be a string";
        else if (it->get_ref<const std::string&>().size() > field.max_bytes)
            error = std::string(field.name) + " too long (at most " +
                    std::to_string(field.max_bytes) + " bytes)";
        if (error.empty()) continue;
        ++counters_.refused_logins;
        if (count_sampled(counters_.invalid_fields))
            spdlog::info("profile: login refused: {} ({} such so far)", error, counters_.invalid_fields);
        return reply_to(request, Status::bad_request, json{{"error", error}});
    }
    if (const auto it = body.find("messageVersion");
        it != body.end() && !it->is_null() && !it->is_number()) {
        ++counters_.refused_logins;
        ++counters_.invalid_fields;
        return reply_to(request, Status::bad_request, json{{"error", "messageVersion must be a number"}});
    }
    if (token.size() > kMaxTokenBytes) {
        ++counters_.refused_logins;
        return reply_to(request, Status::unauthorized, json{{"error", "identity token too long"}});
    }
    std::string reason;
    Identity identity;
    if (!identity_.verify(username, token, identity, reason)) {
        ++counters_.refused_logins;
        spdlog::info("profile: login refused for {}: {}", username, reason);
        return reply_to(request, Status::unauthorized,
                        json{{"error", "invalid identity token: " + reason}});
    }

    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    std::string_view existing;
    const bool is_new = users_.get(txn, username, existing) == MDB_NOTFOUND;
    json record = is_new ? json::object() : json::parse(existing, nullptr, false);
    if (record.is_discarded() || !record.is_object()) record = json::object();
    // The first login with an identity binds the username to its `sub`; another `sub`
    // later is someone else.
    if (!identity.sub.empty()) {
        auto bound = record.find("sub");
        if (bound != record.end() && bound->is_string() && *bound != identity.sub) {
            ++counters_.refused_logins;
            ++counters_.sub_mismatches;
            spdlog::warn("profile: login refused for {}: username is bound to another identity",
                         username);
            return reply_to(request, Status::unauthorized,
                            json{{"error", "username is bound to another identity"}});
        }
        record["sub"] = identity.sub;
    }
    if (is_new) record["createdAt"] = clock_.wall_ms();
    const std::string notification_token = string_field("notificationToken");
    if (!notification_token.empty()) record["notificationToken"] = notification_token;
    const std::string device = string_field("deviceId");
    record["deviceId"] = device.empty() ? "default" : device;
    if (auto it = body.find("messageVersion"); it != body.end() && it->is_number())
        record["messageVersion"] = *it;
    record["lastLoginAt"] = clock_.wall_ms();
    if (lmdb::out_of_space(users_.put(txn, username, record.dump())) ||
        lmdb::out_of_space(txn.commit())) {
        spdlog::error("profile: store full (LMDB map or disk); login of {} refused", username);
        return error_reply(request, Status::storage_full, "profile store is full");
    }
    ++counters_.logins;
    if (is_new) ++counters_.new_users;
    return reply_to(request, Status::ok,
                    json{{"status", true},
                         {"username", username},
                         {"accesskey", keys_.issue(username, clock_.wall_ms() / 1000)},
                         {"isNew", is_new}});
}

// From a rest-gateway that checked `from` + the key: {"accesskey"} -> ok {"status": true}.
Envelope ProfileCore::logout(const Envelope& request) {
    const json body = json::parse(request.payload, nullptr, false);
    const json* key = nullptr;
    if (body.is_object())
        if (auto it = body.find("accesskey"); it != body.end() && it->is_string()) key = &*it;
    const std::uint64_t now_s = clock_.wall_ms() / 1000;
    if (!key || request.from.empty() ||
        !keys_.verify(request.from, key->get_ref<const std::string&>(), now_s))
        return reply_to(request, Status::unauthorized, json{{"error", "invalid access key"}});
    const std::string& accesskey = key->get_ref<const std::string&>();
    switch (revocations_.revoke(request.from, accesskey, keys_.expires_at(accesskey))) {
    case RevocationStore::Result::full:
        spdlog::error("profile: store full (LMDB map or disk); logout of {} refused", request.from);
        return error_reply(request, Status::storage_full, "profile store is full");
    case RevocationStore::Result::revoked:
        ++counters_.logouts;
        spdlog::info("profile: {} logged out (key revoked, revocation {})", request.from,
                     revocations_.version());
        break;
    case RevocationStore::Result::already:
        break;
    }
    return reply_to(request, Status::ok, json{{"status", true}});
}

// The gateways' poll: {"epoch", "since"} -> ok {"epoch","version","entries","complete"}.
Envelope ProfileCore::revocation_list(const Envelope& request) {
    constexpr std::size_t kMaxPerReply = 1000;
    const json body = json::parse(request.payload, nullptr, false);
    std::string epoch;
    std::uint64_t since = 0;
    if (body.is_object()) {
        if (auto it = body.find("epoch"); it != body.end() && it->is_string()) epoch = *it;
        if (auto it = body.find("since"); it != body.end() && it->is_number_unsigned())
            since = it->get<std::uint64_t>();
    }
    const RevocationStore::Page page = revocations_.since(epoch, since, kMaxPerReply);
    json entries = json::array();
    for (const Revocation& r : page.entries)
        entries.push_back({{"seq", r.seq}, {"user", r.user}, {"key", r.key}, {"expires", r.expires}});
    return reply_to(request, Status::ok,
                    json{{"epoch", page.epoch}, {"version", page.version},
                         {"entries", std::move(entries)}, {"complete", page.complete}});
}

void ProfileCore::prune_revocations() {
    counters_.revocations_pruned += revocations_.prune(clock_.wall_ms() / 1000, 1000);
}

Envelope ProfileCore::profile(const Envelope& request) {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    std::string_view existing;
    if (users_.get(txn, request.from, existing) == MDB_NOTFOUND)
        return error_reply(request, Status::not_found, "no such user");
    const json record = json::parse(existing, nullptr, false);
    std::string name = request.from;
    if (record.is_object())
        if (auto it = record.find("name"); it != record.end() && it->is_string()) name = *it;
    return reply_to(request, Status::ok, json{{"name", name}, {"username", request.from}});
}

Envelope ProfileCore::contactbook_sync(const Envelope& request) {
    const json body = json::parse(request.payload, nullptr, false);
    const json* users = nullptr;
    if (body.is_object())
        if (auto it = body.find("users"); it != body.end() && it->is_array()) users = &*it;
    if (!users) return error_reply(request, Status::bad_request, "body must be {\"users\": [...]}");
    if (users->size() > kMaxSyncUsers)
        return error_reply(request, Status::bad_request, "too many users in one sync");
    json result = json::object();
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    std::string_view ignored;
    for (const auto& user : *users) {
        if (!user.is_string()) continue;
        const auto& name = user.get_ref<const std::string&>();
        if (valid_username(name) && users_.get(txn, name, ignored) == 0) result[name] = true;
    }
    return reply_to(request, Status::ok, result);
}

std::string ProfileCore::notification_token(std::string_view username) {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    std::string_view existing;
    if (users_.get(txn, username, existing) == MDB_NOTFOUND) return {};
    const json record = json::parse(existing, nullptr, false);
    if (!record.is_object()) return {};
    auto it = record.find("notificationToken");
    return it != record.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

// Push daemon: {"username"} -> ok {"token"}, or not_found when the user has no token.
Envelope ProfileCore::notification_token_request(const Envelope& request) {
    const json body = json::parse(request.payload, nullptr, false);
    const json* username = nullptr;
    if (body.is_object())
        if (auto it = body.find("username"); it != body.end() && it->is_string()) username = &*it;
    if (!username || !valid_username(username->get_ref<const std::string&>()))
        return error_reply(request, Status::bad_request, "body must be {\"username\"}");
    std::string token = notification_token(username->get_ref<const std::string&>());
    if (token.empty()) return error_reply(request, Status::not_found, "no notification token");
    return reply_to(request, Status::ok, json{{"token", std::move(token)}});
}

// Push daemon, after the provider called a token unregistered: {"username","token"} -> ok
// {"removed": bool}. Removes the token only if it is still the stored one: the user may have
// logged in again with a fresh token while the push that failed was in flight.
Envelope ProfileCore::remove_token(const Envelope& request) {
    const json body = json::parse(request.payload, nullptr, false);
    const json* username = nullptr;
    const json* token = nullptr;
    if (body.is_object()) {
        if (auto it = body.find("username"); it != body.end() && it->is_string()) username = &*it;
        if (auto it = body.find("token"); it != body.end() && it->is_string()) token = &*it;
    }
    if (!username || !token || !valid_username(username->get_ref<const std::string&>()))
        return error_reply(request, Status::bad_request, "body must be {\"username\", \"token\"}");
    const std::string& name = username->get_ref<const std::string&>();
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    std::string_view existing;
    if (users_.get(txn, name, existing) == MDB_NOTFOUND)
        return reply_to(request, Status::ok, json{{"removed", false}});
    json record = json::parse(existing, nullptr, false);
    if (!record.is_object()) return reply_to(request, Status::ok, json{{"removed", false}});
    auto stored = record.find("notificationToken");
    if (stored == record.end() || !stored->is_string() || *stored != *token)
        return reply_to(request, Status::ok, json{{"removed", false}});
    record.erase(stored);
    if (lmdb::out_of_space(users_.put(txn, name, record.dump())) ||
        lmdb::out_of_space(txn.commit())) {
        spdlog::error("profile: store full (LMDB map or disk); token removal for {} refused", name);
        return error_reply(request, Status::storage_full, "profile store is full");
    }
    return reply_to(request, Status::ok, json{{"removed", true}});
}

} // namespace vartalap::profile
