#include "daemons/rest_gateway/rest_http.hpp"

#include <algorithm>

#include "common/http/http_auth.hpp"

namespace vartalap::rest_gateway {

namespace http = boost::beast::http;

RestRequest to_rest_request(http::request<http::string_body>& request) {
    RestRequest r;
    r.method = std::string(request.method_string());
    r.target = std::string(request.target());
    r.body = std::move(request.body());
    Credentials credentials = extract_credentials(request);
    r.user = std::move(credentials.user);
    r.access_key = std::move(credentials.access_key);
    r.cookie_auth = credentials.from_cookie;
    if (auto it = request.find("token"); it != request.end()) r.token = std::string(it->value());
    r.origin = header_value(request, http::field::origin);
    r.host = header_value(request, http::field::host);
    r.content_type = header_value(request, http::field::content_type);
    return r;
}

void to_http_response(RestResponse&& response, unsigned version, bool keep_alive,
                      http::response<http::string_body>& out) {
    out = {};
    out.version(version ? version : 11);
    out.result(static_cast<unsigned>(response.status));
    out.set(http::field::server, "vartalap");
    out.set(http::field::content_type, response.content_type);
    if (!response.allow.empty()) out.set(http::field::allow, response.allow);
    for (const auto& [name, value] : response.headers) out.set(name, value);
    // Every 503 is "busy, draining or at a cap": worth a retry in a second.
    if (response.status == HttpStatus::service_unavailable) out.set(http::field::retry_after, "1");
    // A 429 says when the user's bucket holds enough again.
    if (response.status == HttpStatus::too_many_requests)
        out.set(http::field::retry_after, std::to_string(std::max<std::uint64_t>(response.retry_after_s, 1)));
    out.keep_alive(keep_alive);
    out.body() = std::move(response.body);
    out.prepare_payload();
}

} // namespace vartalap::rest_gateway
