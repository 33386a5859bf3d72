// ws-gateway: reads one HTTP request on a new TCP connection and either upgrades it to a
// WebSocket (handing the socket to a WebsocketSession) or answers with an error and closes.
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

#include "daemons/ws_gateway/server_state.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>
#include <optional>

namespace vartalap::ws_gateway {

class HttpSession final : public std::enable_shared_from_this<HttpSession> {
public:
    HttpSession(boost::asio::ip::tcp::socket&& socket, ServerState& state);
    ~HttpSession();
    HttpSession(const HttpSession&) = delete;
    HttpSession& operator=(const HttpSession&) = delete;

    void run();

private:
    void do_read();
    void on_read(boost::beast::error_code ec, std::size_t bytes);
    void do_respond(boost::beast::http::status status);
    void on_write(boost::beast::error_code ec, std::size_t bytes);
    void upgrade(boost::beast::http::request<boost::beast::http::string_body>&& request,
                 std::string user, bool wants_server_ack);

    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    boost::beast::http::response<boost::beast::http::empty_body> response_;
    ServerState& state_;
};

// Path and query of a request target: "/wss?ack=true" -> ("/wss", "ack=true").
std::pair<std::string_view, std::string_view> split_target(std::string_view target);
// Whether the query asks for SERVER_ACKs: a parameter ack=true (or ack=1).
bool wants_server_ack(std::string_view query);

} // namespace vartalap::ws_gateway
