// The request target of an HTTP request: path, query, and query parameters. The one parser
// of the project's HTTP servers (ws-gateway's ?ack=true, rest-gateway's ?limit=&cursor=,
// the metrics port's path).
//
// Thread-safety: pure functions over string views (the results view into the input).
// Values are returned undecoded: no server here takes a parameter that needs
// percent-decoding (flags, numbers, opaque cursors).
#pragma once

#include <optional>
#include <string_view>

namespace vartalap {

struct RequestTarget {
    std::string_view path;  // before the first '?'
    std::string_view query; // after it, "" when there is none
};

// "/wss?ack=true" -> {"/wss", "ack=true"}.
RequestTarget split_target(std::string_view target);

// The value of the first parameter named `key` in `query` ("a=1&b=2"): "" for "key" or
// "key=", nullopt when no parameter has that name.
std::optional<std::string_view> query_param(std::string_view query, std::string_view key);

// Whether some parameter of `query` is exactly key=value (any occurrence, not only the
// first).
bool query_has(std::string_view query, std::string_view key, std::string_view value);

} // namespace vartalap
