// Credentials of an HTTP request or WebSocket upgrade: headers `user` + `accesskey`, or,
// for browsers that cannot set WebSocket headers, cookies `user=...; accesskey=...`.
// Headers win over cookies. Thread-safety: pure functions.
#pragma once

#include "common/access_key.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace vartalap {

struct Credentials {
    std::string user;
    std::string access_key;
    // Either came from a cookie: a browser attaches cookies to requests other sites make it
    // send, so such a request is checked for its Origin (cross_site.hpp).
    bool from_cookie = false;
};

// The value of header `field` (a beast::http::field or a name), empty when absent.
template <class Fields, class Field>
std::string_view header_value(const Fields& fields, Field field) {
    const auto it = fields.find(field);
    if (it == fields.end()) return {};
    return std::string_view(it->value().data(), it->value().size());
}

// Value of cookie `name` in a Cookie header value ("a=1; b=2"), or nullopt.
std::optional<std::string_view> cookie_value(std::string_view cookie_header, std::string_view name);

template <class Fields>
Credentials extract_credentials(const Fields& fields) {
    Credentials c;
    if (auto it = fields.find("user"); it != fields.end()) c.user = std::string(it->value());
    if (auto it = fields.find("accesskey"); it != fields.end())
        c.access_key = std::string(it->value());
    if (c.user.empty() || c.access_key.empty()) {
        if (auto it = fields.find(boost::beast::http::field::cookie); it != fields.end()) {
            const std::string_view cookies(it->value().data(), it->value().size());
            if (c.user.empty())
                if (auto v = cookie_value(cookies, "user")) {
                    c.user = std::string(*v);
                    c.from_cookie = true;
                }
            if (c.access_key.empty())
                if (auto v = cookie_value(cookies, "accesskey")) {
                    c.access_key = std::string(*v);
                    c.from_cookie = true;
                }
        }
    }
    return c;
}

// The authenticated user, or nullopt if the pair is missing or does not verify.
template <class Fields>
std::optional<std::string> authenticate(const Fields& fields, const AccessKeys& keys) {
    Credentials c = extract_credentials(fields);
    if (c.user.empty() || !keys.verify(c.user, c.access_key)) return std::nullopt;
    return std::move(c.user);
}

} // namespace vartalap
