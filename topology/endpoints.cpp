// Thread: any. Endpoint syntax checks; see endpoints.hpp.
#include "topology/endpoints.hpp"

#include <algorithm>
#include <charconv>
#include <system_error>

namespace vartalap::topology {

namespace {

bool has_space(std::string_view text) {
    return std::any_of(text.begin(), text.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool wildcard_address(std::string_view host) {
    return host == "*" || host == "0.0.0.0" || host == "[::]";
}

} // namespace

std::optional<std::uint32_t> parse_decimal(std::string_view text, std::uint32_t max) {
    if (text.empty() || text.size() > 9) return std::nullopt;
    std::uint32_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size() || value > max)
        return std::nullopt;
    return value;
}

bool valid_host_name(std::string_view host) {
    if (host.empty()) return false;
    return std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '-' || c == '_';
    });
}

std::string parse_host_port(std::string_view text, bool allow_star_port, HostPort& out) {
    if (has_space(text)) return "it contains whitespace";
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return "expected [IPv6]:PORT";
        host = text.substr(0, close + 1);
        port = text.substr(close + 2);
        if (host.size() <= 2) return "empty IPv6 address";
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return "expected HOST:PORT";
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.empty()) return "missing host before ':'";
        if (host != "*" && !valid_host_name(host))
            return "host '" + std::string(host) + "' is not a host name or address";
    }
    if (port == "*" && allow_star_port) {
        out.host = std::string(host);
        out.port = -1;
        return {};
    }
    const auto number = parse_decimal(port, 65535);
    if (!number)
        return "port '" + std::string(port) + "' is not a number in 0-65535" +
               (allow_star_port ? " or *" : "");
    out.host = std::string(host);
    out.port = static_cast<int>(*number);
    return {};
}

std::string parse_zmq_endpoint(std::string_view text, ParsedEndpoint& out) {
    if (has_space(text)) return "it contains whitespace";
    const auto scheme_end = text.find("://");
    if (scheme_end == std::string_view::npos)
        return "expected inproc://NAME, ipc://PATH or tcp://HOST:PORT";
    const std::string_view scheme = text.substr(0, scheme_end);
    const std::string_view rest = text.substr(scheme_end + 3);
    if (scheme == "inproc") {
        if (rest.empty()) return "inproc:// needs a name";
        out = {Transport::inproc, std::string(rest), 0};
        return {};
    }
    if (scheme == "ipc") {
        if (rest.empty()) return "ipc:// needs a path";
        if (rest.size() > kMaxIpcPathBytes)
            return "ipc path is longer than " + std::to_string(kMaxIpcPathBytes) +
                   " bytes, the limit of a Unix socket address";
        out = {Transport::ipc, std::string(rest), 0};
        return {};
    }
    if (scheme == "tcp") {
        HostPort host_port;
        std::string error = parse_host_port(rest, true, host_port);
        if (!error.empty()) return error;
        out = {Transport::tcp, host_port.host, host_port.port};
        return {};
    }
    return "unknown transport '" + std::string(scheme) + "' (use inproc, ipc or tcp)";
}

bool same_binding(const ParsedEndpoint& a, const ParsedEndpoint& b) {
    if (a.transport != b.transport) return false;
    if (a.transport != Transport::tcp) return a.address == b.address;
    // Port 0 / * asks the kernel for a fresh port each time: never a clash.
    if (a.port <= 0 || a.port != b.port) return false;
    return a.address == b.address || wildcard_address(a.address) || wildcard_address(b.address);
}

bool is_tcp_endpoint(std::string_view text) { return text.rfind("tcp://", 0) == 0; }

} // namespace vartalap::topology
