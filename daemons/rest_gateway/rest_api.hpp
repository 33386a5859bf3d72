// rest-gateway: the route table of the public HTTP API, PROTOCOL.md's REST paths, each
// also under /v1.0/:
//   GET  /alive                                   "OK"
//   POST /login                                   → profile
//   GET  /profile, POST /contactbook/sync (/profile/user/sync)            → profile
//   POST /send (object or array), POST /messages (array of JSON strings)  → message-router,
//        answered when each message is durable (a session's server_ack) or refused
//   GET  /messages?limit=&cursor=                 → persistence (the caller's shard)
//   /group/... and /groups/...                    → group
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
    enum Target { alive, daemon, send_objects, send_strings, not_found, method_not_allowed };
    Target target = not_found;
    std::string daemon_kind;     // "profile", "persistence", "group" for Target::daemon
    std::string method;          // the request method for that daemon ("login", ...)
    bool needs_auth = true;
    std::string allow;           // Allow header value for method_not_allowed
    std::string group_id;        // from /group/{id}/... paths
};

// Maps (HTTP method, path without query) to a route. Strips a "/v1.0" prefix.
RestRoute route_request(std::string_view http_method, std::string_view path);

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
    // {"results":[{"id":"m1","status":"accepted"},{"id":"m2","status":"refused","reason":"..."}]},
    // with "error": `error` first when it is not empty.
    std::string to_json(std::string_view error = {}) const;

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
