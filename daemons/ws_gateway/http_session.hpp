// ws-gateway: reads one HTTP request on a new TCP connection and either upgrades it to a
// WebSocket (handing the socket to a WebsocketSession) or answers with an error and closes.
// Built on the common HTTP session base (common/http/session.hpp); Beast's chat-multi shape
// otherwise.
//
// Thread: the ws-gateway's io thread only.
//
// Answers (all with `Connection: close`, and an empty body unless said otherwise):
//   404  a path other than /wss, /wss/, /v1.0/wss, /v1.0/wss/, / or /v1.0/ (a query string
//        is allowed on any of them; is_websocket_path)
//   426  a plain request (no WebSocket upgrade) on one of those paths
//   403  {"error":"origin not allowed"}: credentials from cookies on a request whose Origin
//        is neither the server's own nor in allowed_origins (common/http/cross_site.hpp):
//        another site's page cannot open a socket with the user's cookies
//   401  missing or invalid credentials (headers user + accesskey, or those cookies):
//        sent before any upgrade, as PROTOCOL.md requires
//   503  the gateway is at max_connections or draining
//   400  a malformed request (from the parser)
// The whole request must arrive within handshake_timeout_seconds; headers are limited to
// 8 KiB and a body (an upgrade has none) to 1 KiB.
//
// check_upgrade holds the decisions on a parsed request without a socket, so the fuzz target
// tests/fuzz/ws_gateway_http.cpp drives them with raw bytes in memory.
#pragma once

#include "common/access_key.hpp"
#include "common/revocations.hpp"
#include "common/http/session.hpp"
#include "daemons/ws_gateway/server_state.hpp"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::ws_gateway {

inline constexpr std::size_t kUpgradeMaxHeaderBytes = 8 * 1024;  // cookies + access key fit many times over
inline constexpr std::size_t kUpgradeMaxBodyBytes = 1024;        // an upgrade request has no body
inline constexpr std::size_t kUpgradeMaxBufferBytes = 16 * 1024; // read buffer bound (headers + slack)

// The answer to an upgrade request: `status` is switching_protocols to upgrade (then `user`
// is the authenticated user), else the refusal to send.
struct UpgradeVerdict {
    boost::beast::http::status status = boost::beast::http::status::switching_protocols;
    std::string user;
    std::string access_key; // the key it authenticated with (a revocation closes its socket)
    bool wants_server_ack = false;
    // A refusal's JSON error body ("" for none).
    std::string_view error;
};

// The decisions of HttpSession::on_request, in its order (404, 426, 503 draining, 403 (cookie
// credentials from an Origin not allowed), 401 (a bad key), 503 "server starting, retry"
// while `revoked` has not had its first complete answer from the profile daemon (until then
// a revoked key could not be told from a good one) or while no message-router is connected
// (`routable` false: a message would be refused at once, and an app that never resends
// would lose it), 401 (a key on `revoked`), 503 full).
// Pure: reads the request, the flags and `allowed_origins` only.
UpgradeVerdict check_upgrade(const boost::beast::http::request<boost::beast::http::string_body>& request,
                             const AccessKeys& access_keys, bool stopping, bool at_capacity,
                             const RevocationList* revoked = nullptr,
                             const std::vector<std::string>& allowed_origins = {},
                             bool routable = true);

class HttpSession final : public HttpSessionBase<boost::beast::http::string_body> {
public:
    // `source`: the connection's count for its source address, held until the upgrade.
    HttpSession(boost::asio::ip::tcp::socket&& socket, ServerState& state, SourceCount::Token source);

    void run();

private:
    void on_request(Request&& request) override;
    void on_read_failed(ReadFailure failure, boost::beast::error_code ec) override;
    void on_written(boost::beast::error_code ec) override;
    void respond(boost::beast::http::status status, std::string body = {});
    void upgrade(Request&& request, UpgradeVerdict&& verdict);

    boost::beast::http::response<boost::beast::http::string_body> response_;
    ServerState& state_;
    SourceCount::Token source_;
};

// Whether `path` (without the query) is one the gateway upgrades: /wss, /wss/, / and the
// same under /v1.0.
bool is_websocket_path(std::string_view path);

// Whether the query asks for SERVER_ACKs: a parameter ack=true (or ack=1).
bool wants_server_ack(std::string_view query);

} // namespace vartalap::ws_gateway
