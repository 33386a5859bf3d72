// rest-gateway: the public HTTP API (Beast). This issue serves GET /alive, POST /login,
// GET /profile and POST /contactbook/sync (also /profile/user/sync), each also under
// /v1.0/. /login and the profile paths are forwarded to a profile daemon over ZeroMQ
// (DEALER → ROUTER, docs/INTERNAL_PROTOCOL.md "Request/reply").
//
// Routing of a request is a pure function (route_request) so it is unit-tested without
// sockets; the daemon in rest_gateway.cpp owns the listener, the connections and the
// DEALER, all on one thread.
#pragma once

#include <string>
#include <string_view>

namespace vartalap {

struct RestRoute {
    enum Target { alive, profile_daemon, not_found, method_not_allowed };
    Target target = not_found;
    std::string method;          // the profile request method ("login", ...)
    bool needs_auth = true;
    std::string allow;           // Allow header value for method_not_allowed
};

// Maps (HTTP method, path without query) to a route. Strips a "/v1.0" prefix.
RestRoute route_request(std::string_view http_method, std::string_view path);

} // namespace vartalap
