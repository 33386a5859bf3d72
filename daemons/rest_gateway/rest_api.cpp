// The socket-free parts of the rest-gateway: routing, send bodies, per-message results.
// Thread: any (pure functions and a value type).
#include "daemons/rest_gateway/rest_api.hpp"

#include <nlohmann/json.hpp>

namespace vartalap::rest_gateway {

namespace {

// Splits "/a/b/c" into {"a","b","c"}; empty segments are kept so "//" does not match.
std::vector<std::string_view> segments(std::string_view path) {
    std::vector<std::string_view> out;
    if (path.empty() || path.front() != '/') return out;
    path.remove_prefix(1);
    while (true) {
        const auto slash = path.find('/');
        out.push_back(path.substr(0, slash));
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return out;
}

bool valid_group_id(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    for (unsigned char c : id)
        if (c <= ' ' || c == '/' || c == '?' || c == '#' || c == 0x7f) return false;
    return true;
}

} // namespace

RestRoute route_request(std::string_view http_method, std::string_view path) {
    if (path.substr(0, 5) == "/v1.0" && (path.size() == 5 || path[5] == '/'))
        path.remove_prefix(5);
    if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    RestRoute route;
    // One entry per (path, method); `allow` collects the methods a path has for 405s.
    auto offer = [&](std::string_view wanted, RestRoute::Target target, std::string kind,
                     std::string method, bool needs_auth) {
        if (route.target != RestRoute::not_found && route.target != RestRoute::method_not_allowed)
            return;
        route.allow += route.allow.empty() ? std::string(wanted) : ", " + std::string(wanted);
        if (http_method != wanted) {
            route.target = RestRoute::method_not_allowed;
            return;
        }
        route.target = target;
        route.daemon_kind = std::move(kind);
        route.method = std::move(method);
        route.needs_auth = needs_auth;
    };
    const auto parts = segments(path);
    if (path == "/alive") {
        offer("GET", RestRoute::alive, "", "", false);
    } else if (path == "/" || path == "/app" || path.starts_with("/app/")) {
        offer("GET", RestRoute::web, "", "", false);
    } else if (path == "/login") {
        offer("POST", RestRoute::daemon, "profile", "login", false);
        offer("DELETE", RestRoute::daemon, "profile", "logout", true);
    } else if (path == "/logout") {
        offer("POST", RestRoute::daemon, "profile", "logout", true);
    } else if (path == "/profile" || path == "/profile/get") {
        // /profile/get: the original's deprecated alias (chat-server v2.8.3,
        // services/profile-ms/profile-ms.js, route '/get' behind nginx's /profile/ prefix).
        offer("GET", RestRoute::daemon, "profile", "profile", true);
    } else if (path == "/contactbook/sync" || path == "/profile/user/sync") {
        offer("POST", RestRoute::daemon, "profile", "contactbook_sync", true);
    } else if (path == "/send") {
        offer("POST", RestRoute::send_objects, "", "", true);
    } else if (path == "/messages") {
        offer("GET", RestRoute::daemon, "persistence", "messages", true);
        offer("POST", RestRoute::send_strings, "", "", true);
    } else if (path == "/group/create") {
        offer("POST", RestRoute::daemon, "group", "group_create", true);
        route.app_group = true;
    } else if (path == "/group/get" || path == "/groups") {
        offer("GET", RestRoute::daemon, "group", "group_list", true);
        if (path == "/groups") offer("POST", RestRoute::daemon, "group", "group_create", true);
        route.app_group = path == "/group/get";
    } else if (parts.size() >= 2 && (parts[0] == "group" || parts[0] == "groups") &&
               valid_group_id(parts[1])) {
        const bool plural = parts[0] == "groups";
        route.group_id = std::string(parts[1]);
        if (parts.size() == 2) {
            offer("GET", RestRoute::daemon, "group", "group_get", true);
        } else if (parts.size() == 3 && !plural && parts[2] == "add") {
            offer("POST", RestRoute::daemon, "group", "group_add", true);
        } else if (parts.size() == 3 && !plural && parts[2] == "remove") {
            offer("POST", RestRoute::daemon, "group", "group_remove", true);
        } else if (parts.size() == 3 && plural && parts[2] == "members") {
            offer("POST", RestRoute::daemon, "group", "group_add", true);
            offer("DELETE", RestRoute::daemon, "group", "group_remove", true);
        }
        if (route.target == RestRoute::not_found) route.group_id.clear();
        route.app_group = !plural;
        route.group_change = !plural && parts.size() == 3;
    }
    if (route.target == RestRoute::not_found || route.target == RestRoute::method_not_allowed)
        route.app_group = route.group_change = false;
    return route;
}

std::string app_group_body(bool ok, bool group_change, std::string_view payload,
                           std::string_view error) {
    using nlohmann::json;
    if (ok && !group_change) return std::string(payload);
    json body;
    if (ok) {
        body = json::parse(payload.begin(), payload.end(), nullptr, false);
        if (body.is_discarded() || !body.is_object()) body = json::object();
        body["status"] = true;
    } else {
        body = {{"status", false}, {"error", error}};
    }
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<std::vector<std::string>> split_send_body(RestRoute::Target target,
                                                        std::string_view body,
                                                        std::size_t max_messages,
                                                        std::string& error) {
    using nlohmann::json;
    json parsed = json::parse(body.begin(), body.end(), nullptr, false);
    if (parsed.is_discarded()) {
        error = "body is not valid JSON";
        return std::nullopt;
    }
    std::vector<std::string> out;
    if (target == RestRoute::send_objects) {
        if (parsed.is_object()) {
            out.push_back(std::string(body));
            return out;
        }
        if (!parsed.is_array()) {
            error = "body must be a message object or an array of them";
            return std::nullopt;
        }
    } else if (!parsed.is_array()) {
        error = "body must be an array of serialized messages";
        return std::nullopt;
    }
    if (parsed.size() > max_messages) {
        error = "too many messages in one request (at most " + std::to_string(max_messages) + ")";
        return std::nullopt;
    }
    out.reserve(parsed.size());
    for (auto& item : parsed) {
        if (target == RestRoute::send_strings) {
            // Not every element need be a string: the per-message parse reports what is
            // wrong with each one, so one bad element does not refuse the others.
            out.push_back(item.is_string() ? item.get<std::string>() : item.dump());
        } else {
            out.push_back(item.dump());
        }
    }
    return out;
}

void SendResults::resolve(std::size_t index, bool accepted, std::string reason) {
    Entry& entry = entries_[index];
    if (entry.resolved) return;
    entry.resolved = true;
    entry.accepted = accepted;
    entry.reason = std::move(reason);
    --unresolved_;
}

std::vector<std::string_view> SendResults::accepted_ids() const {
    std::vector<std::string_view> ids;
    for (const auto& e : entries_)
        if (e.accepted) ids.push_back(e.id);
    return ids;
}

std::string SendResults::to_json(std::string_view error,
                                 const std::vector<std::string>* acks) const {
    using nlohmann::json;
    json results = json::array();
    for (const auto& e : entries_) {
        json item = {{"id", e.id.empty() ? json(nullptr) : json(e.id)},
                     {"status", e.accepted ? "accepted" : "refused"}};
        if (!e.accepted) item["reason"] = e.resolved ? e.reason : "not confirmed";
        results.push_back(std::move(item));
    }
    json body = {{"results", std::move(results)}};
    if (!error.empty()) body["error"] = error;
    if (acks) body["acks"] = *acks;
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace vartalap::rest_gateway
