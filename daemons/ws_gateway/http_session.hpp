// ws-gateway: reads one HTTP request on a new TCP connection and either upgrades it to a
// WebSocket (handing the socket to a WebsocketSession) or answers with an error and closes.
// Built on the common HTTP session base (common/http/session.hpp); Beast's chat-multi shape
// otherwise.
//
// Thread: the ws-gateway's io thread only.
//
// Answers (all with an empty body and `Connection: close`):
//   404  a path other than /wss or / (a query string is allowed)
//   426  a plain request (no WebSocket upgrade) on /wss or /
//   401  missing or invalid credentials (headers user + accesskey, or those cookies):
//        sent before any upgrade, as PROTOCOL.md requires
//   503  the gateway is at max_connections or draining
//   400  a malformed request (from the parser)
// The whole request must arrive within handshake_timeout_seconds; headers are limited to
// 8 KiB and a body (an upgrade has none) to 1 KiB.
#pragma once

#include "common/http/session.hpp"
#include "daemons/ws_gateway/server_state.hpp"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string_view>

namespace vartalap::ws_gateway {

class HttpSession final : public HttpSessionBase<boost::beast::http::string_body> {
public:
    HttpSession(boost::asio::ip::tcp::socket&& socket, ServerState& state);

    void run();

private:
    void on_request(Request&& request) override;
    void on_read_failed(ReadFailure failure, boost::beast::error_code ec) override;
    void on_written(boost::beast::error_code ec) override;
    void respond(boost::beast::http::status status);
    void upgrade(Request&& request, std::string user, bool wants_server_ack);

    boost::beast::http::response<boost::beast::http::empty_body> response_;
    ServerState& state_;
};

// Whether the query asks for SERVER_ACKs: a parameter ack=true (or ack=1).
bool wants_server_ack(std::string_view query);

} // namespace vartalap::ws_gateway
