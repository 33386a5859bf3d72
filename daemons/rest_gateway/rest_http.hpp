// rest-gateway: the HTTP side's conversions, socket-free: a request Beast parsed as the
// core's RestRequest, and the core's RestResponse as a Beast response. HttpSession
// (rest_gateway_daemon.cpp) uses them on every request; the fuzz target
// tests/fuzz/rest_gateway_http.cpp on requests parsed from raw bytes in memory.
//
// Thread-safety: pure functions.
#pragma once

#include "daemons/rest_gateway/rest_gateway_core.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace vartalap::rest_gateway {

// The request as the core reads it: method, target, credentials (headers, else cookies),
// the `token` header. The body is moved out of `request`.
RestRequest to_rest_request(boost::beast::http::request<boost::beast::http::string_body>& request);

// `response` as the HTTP response to a request of HTTP `version` (0 when the request is
// unknown: answered as 1.1), with Connection: keep-alive or close.
void to_http_response(RestResponse&& response, unsigned version, bool keep_alive,
                      boost::beast::http::response<boost::beast::http::string_body>& out);

} // namespace vartalap::rest_gateway
