// Thread: any (pure functions).
#include "common/http/url.hpp"

#include <algorithm>

namespace vartalap {

std::string Url::host_header() const {
    const bool ipv6 = host.find(':') != std::string::npos;
    std::string out = ipv6 ? "[" + host + "]" : host;
    if (port != (tls ? "443" : "80")) out += ":" + port;
    return out;
}

std::string Url::origin() const {
    return std::string(tls ? "https://" : "http://") + host + ":" + port;
}

std::optional<Url> parse_url(std::string_view text) {
    Url url;
    if (text.starts_with("https://")) {
        url.tls = true;
        text.remove_prefix(8);
    } else if (text.starts_with("http://")) {
        text.remove_prefix(7);
    } else {
        return std::nullopt;
    }
    if (text.find('#') != std::string_view::npos) return std::nullopt;
    const std::size_t path_at = std::min(text.find('/'), text.find('?'));
    std::string_view authority = text.substr(0, path_at);
    if (authority.find('@') != std::string_view::npos || authority.empty()) return std::nullopt;
    if (path_at != std::string_view::npos) {
        url.target = std::string(text.substr(path_at));
        if (url.target.front() == '?') url.target.insert(0, "/");
    } else {
        url.target = "/";
    }
    std::string_view port;
    if (authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        url.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (!authority.empty()) {
            if (authority.front() != ':') return std::nullopt;
            port = authority.substr(1);
        }
    } else {
        const std::size_t colon = authority.rfind(':');
        url.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port = authority.substr(colon + 1);
        if (url.host.find(':') != std::string::npos) return std::nullopt;
    }
    if (url.host.empty()) return std::nullopt;
    if (port.empty()) {
        url.port = url.tls ? "443" : "80";
    } else {
        if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            std::stoul(std::string(port)) > 65535 || std::stoul(std::string(port)) == 0)
            return std::nullopt;
        url.port = std::string(port);
    }
    for (unsigned char c : url.target)
        if (c <= ' ' || c == 0x7f) return std::nullopt; // no spaces or controls in a request line
    return url;
}

} // namespace vartalap
