// Thread: any (pure functions; see cross_site.hpp).
#include "common/http/cross_site.hpp"

#include <boost/algorithm/string/predicate.hpp>

namespace vartalap {
namespace {

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// The authority (host[:port]) of "scheme://authority" for http and https, or "" when
// `origin` is not such a serialized origin (a path, user info or query is not one).
std::string_view authority_of(std::string_view origin) {
    std::string_view rest;
    if (boost::algorithm::istarts_with(origin, "https://")) rest = origin.substr(8);
    else if (boost::algorithm::istarts_with(origin, "http://")) rest = origin.substr(7);
    else return {};
    if (rest.empty() || rest.find_first_of("/?#@ \t") != std::string_view::npos) return {};
    return rest;
}

// The host of an authority: "[::1]:8080" -> "[::1]", "example.org:443" -> "example.org".
std::string_view host_of(std::string_view authority) {
    const auto bracket = authority.rfind(']');
    const auto colon = authority.rfind(':');
    if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket))
        return authority;
    return authority.substr(0, colon);
}

} // namespace

bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed) {
    origin = trim(origin);
    if (origin.empty()) return true;
    for (const std::string& entry : allowed)
        if (boost::algorithm::iequals(origin, entry)) return true;
    const std::string_view authority = authority_of(origin);
    host = trim(host);
    if (authority.empty() || host.empty()) return false;
    if (boost::algorithm::iequals(authority, host)) return true;
    return host_of(host) == host && boost::algorithm::iequals(host_of(authority), host);
}

std::string origin_entry_error(std::string_view origin) {
    if (authority_of(origin).empty())
        return "'" + std::string(origin) + "' is not an origin like \"https://app.example.com\" "
               "(http or https, a host, an optional port, no path)";
    return {};
}

bool json_content_type(std::string_view content_type) {
    const auto semicolon = content_type.find(';');
    return boost::algorithm::iequals(trim(content_type.substr(0, semicolon)), "application/json");
}

} // namespace vartalap
