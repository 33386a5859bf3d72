// rest-gateway: the route table of the public HTTP API, PROTOCOL.md's REST paths, each
// also under /v1.0/:
//   GET  /alive                                   "OK"
//   POST /login                                   → profile
//   POST /logout, DELETE /login                   → profile (revokes the request's key)
//   GET  /profile (/profile/get), POST /contactbook/sync (/profile/user/sync)  → profile
//   POST /send (object or array), POST /messages (array of JSON strings)  → message-router,
//        answered when each message is durable (a session's server_ack) or refused
//   GET  /messages?limit=&cursor=                 → persistence (the caller's shard)
//   /group/... and /groups/...                    → group
//   GET  /, /app/, /app/<file>                    the web client's static files (web_files.hpp)
// The app's own paths answer in the original server's shapes (docs/REST_API.md): /group/...
// with a `status` field (app_group_body), POST /messages?ack=true with `acks`.
//
// The pure parts RestGatewayCore (rest_gateway_core.hpp) builds on: routing a request,
// splitting a send body, collecting per-message results. Thread-safety: pure functions and
// a value type.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::rest_gateway {

struct RestRoute {
    enum Target { alive, daemon, send_objects, send_strings, web, not_found, method_not_allowed };
    Target target = not_found;
    std::string daemon_kind;     // "profile", "persistence", "group" for Target::daemon
    std::string method;          // the request method for that daemon ("login", ...)
    bool needs_auth = true;
    std::string allow;           // Allow header value for method_not_allowed
    std::string group_id;        // from /group/{id}/... paths
    // The app's /group/... paths (not /groups/...): answers carry `status` as the original
    // server's did (app_group_body); `group_change` for /group/{id}/add and /remove.
    bool app_group = false;
    bool group_change = false;
};

// Maps (HTTP method, path without query) to a route. Strips a "/v1.0" prefix.
RestRoute route_request(std::string_view http_method, std::string_view path);

// The body of an answer on the app's /group/... paths, in the shapes the original server
// (chat-server v2.8.3, services/group-ms/group-ms.js) gave and the app reads (vartalap
// v2.5.17, lib/services/api_service.dart: addMembersToGroup and removeMemberToGroup return
// resp["status"], a bool, and the app rolls back its local change on anything else):
//   success of /group/{id}/add or /remove: the daemon's object with "status": true added
//     (an object payload; anything else becomes {"status": true});
//   success of another /group/... route: the daemon's payload unchanged ({"groupId"} for
//     create, the group for GET, the list for /group/get);
//   a failure: {"status": false, "error": `error`}.
// The status code is the caller's: 200 for a refused operation (the original's 200
// {"status": false} for a non-admin removing someone else), the mapped code otherwise.
std::string app_group_body(bool ok, bool group_change, std::string_view payload,
                           std::string_view error);

// The client messages in a send body, each as JSON text for parse_client_message.
// send_objects: one object or an array of objects; send_strings: an array of strings (the
// app's background path). Returns nullopt and a reason for a malformed body or more than
// `max_messages` messages.
std::optional<std::vector<std::string>> split_send_body(RestRoute::Target target,
                                                        std::string_view body,
                                                        std::size_t max_messages,
                                                        std::string& error);

// Per-message outcome of one POST /send or /messages, in request order.
class SendResults {
public:
    explicit SendResults(std::size_t count) : entries_(count), unresolved_(count) {}
    void set_id(std::size_t index, std::string id) { entries_[index].id = std::move(id); }
    // The first outcome of an entry wins (a late server_ack after a timeout is ignored).
    void resolve(std::size_t index, bool accepted, std::string reason = {});
    bool done() const { return unresolved_ == 0; }
    std::size_t size() const { return entries_.size(); }
    bool resolved(std::size_t index) const { return entries_[index].resolved; }
    // The ids of the accepted messages, in order.
    std::vector<std::string_view> accepted_ids() const;
    // {"results":[{"id":"m1","status":"accepted"},{"id":"m2","status":"refused","reason":"..."}]},
    // with "error": `error` when it is not empty, and "acks": the strings of `acks` (the
    // original's POST /messages?ack=true answer) when `acks` is given.
    std::string to_json(std::string_view error = {},
                        const std::vector<std::string>* acks = nullptr) const;

private:
    struct Entry {
        std::string id;
        bool resolved = false;
        bool accepted = false;
        std::string reason;
    };
    std::vector<Entry> entries_;
    std::size_t unresolved_;
};

} // namespace vartalap::rest_gateway
