// What a browser may do with the cookie credentials it holds for this server (issue 12,
// "Cross-site use of cookie auth"). A page on another site can make a browser open a
// WebSocket or POST to this server, and the browser attaches the cookies `user` and
// `accesskey`; only the `Origin` header says who asked. The app itself authenticates with
// headers, which no other site can make a browser send, so these checks apply to
// cookie-authenticated requests only (http_auth.hpp: Credentials::from_cookie).
//
// Plain strings (in vartalap_common), so the socket-free cores use them.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vartalap {

// Whether a request carrying `origin` (its Origin header; empty when it has none) may be
// served with cookie credentials by a server reached as `host` (the Host header):
//   - no Origin header: yes (not a browser's cross-site request: browsers send Origin on
//     every WebSocket upgrade and every cross-origin POST);
//   - the server's own origin: the Origin's host[:port] equals the Host header, or its host
//     equals a Host without a port (a proxy such as the rendered nginx site passes `$host`);
//   - one of `allowed` (the `allowed_origins` option: "https://app.example.com"), compared
//     without regard to letter case;
//   - anything else, "null" included (sandboxed frames, file: pages): no.
bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed);

// "" if `origin` is a valid `allowed_origins` entry (scheme http or https, a host, an
// optional port, nothing after), else why not.
std::string origin_entry_error(std::string_view origin);

// Whether a Content-Type header value is JSON: the media type application/json, in any
// letter case, with or without parameters ("application/json; charset=utf-8", what the
// app's Dart http client sends).
bool json_content_type(std::string_view content_type);

} // namespace vartalap
