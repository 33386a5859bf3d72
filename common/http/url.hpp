// The absolute http:// and https:// URLs the daemons call out to (push providers, the
// identity certificates): configured, so trusted more than traffic, but still checked so a
// typo fails at start instead of at first use.
// Thread-safety: plain values and a pure function.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vartalap {

struct Url {
    bool tls = false;      // https
    std::string host;      // name or IP literal, IPv6 without brackets
    std::string port;      // "443"/"80" when absent
    std::string target;    // path + query, "/" when absent

    // The Host header value: host[:port] (IPv6 in brackets, default port left out).
    std::string host_header() const;
    // "https://host:port": connections to one origin may be reused for each other.
    std::string origin() const;
};

// nullopt unless `text` is http(s)://host[:port][/path][?query] with a non-empty host and a
// numeric port; userinfo and fragments are refused (they have no use here).
std::optional<Url> parse_url(std::string_view text);

} // namespace vartalap
