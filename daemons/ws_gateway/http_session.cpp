// Thread: the ws-gateway's io thread (see http_session.hpp).
#include "daemons/ws_gateway/http_session.hpp"

#include "common/http/http_auth.hpp"
#include "common/http/target.hpp"
#include "daemons/ws_gateway/ws_gateway_core.hpp"
#include "daemons/ws_gateway/websocket_session.hpp"

#include <boost/beast/websocket/rfc6455.hpp>
#include <spdlog/spdlog.h>

namespace vartalap::ws_gateway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;

namespace {

constexpr std::size_t kMaxHeaderBytes = 8 * 1024;  // cookies + access key fit many times over
constexpr std::size_t kMaxBodyBytes = 1024;        // an upgrade request has no body
constexpr std::size_t kMaxBufferBytes = 16 * 1024; // read buffer bound (headers + slack)

} // namespace

bool wants_server_ack(std::string_view query) {
    return query_has(query, "ack", "true") || query_has(query, "ack", "1");
}

HttpSession::HttpSession(net::ip::tcp::socket&& socket, ServerState& state)
    : HttpSessionBase(std::move(socket), state.handshakes.enter(), kMaxBufferBytes),
      state_(state) {}

void HttpSession::run() {
    read_request({kMaxHeaderBytes, kMaxBodyBytes,
                  std::chrono::seconds(state_.core->options().handshake_timeout_seconds)});
}

void HttpSession::on_read_failed(ReadFailure failure, beast::error_code ec) {
    if (failure == ReadFailure::closed) return; // the socket closes with this object
    // A malformed request (bad syntax, over a limit): say so, then close.
    spdlog::debug("ws-gateway: bad HTTP request: {}", ec.message());
    respond(http::status::bad_request);
}

void HttpSession::on_request(Request&& request) {
    const auto [path, query] = split_target(request.target());
    if (path != "/wss" && path != "/") return respond(http::status::not_found);
    if (!beast::websocket::is_upgrade(request)) return respond(http::status::upgrade_required);
    if (state_.stopping) return respond(http::status::service_unavailable);
    std::optional<std::string> user = authenticate(request, *state_.access_keys);
    if (!user) return respond(http::status::unauthorized);
    if (state_.websockets >= state_.core->options().max_connections) {
        spdlog::warn("{}: at max_connections ({}): upgrade refused with 503", state_.core->name(),
                     state_.core->options().max_connections);
        return respond(http::status::service_unavailable);
    }
    upgrade(std::move(request), std::move(*user), wants_server_ack(query));
}

void HttpSession::upgrade(Request&& request, std::string user, bool wants_ack) {
    // The WebSocket stream has its own timeouts; the socket leaves the tcp_stream (and its
    // timers) behind.
    stream().expires_never();
    auto session = std::make_shared<WebsocketSession>(stream().release_socket(), state_,
                                                      state_.core->next_connection_id(),
                                                      std::move(user), wants_ack);
    session->run(std::move(request));
}

void HttpSession::respond(http::status status) {
    response_ = {};
    response_.version(11);
    response_.result(status);
    response_.set(http::field::server, "vartalap-ws-gateway");
    if (status == http::status::upgrade_required) {
        response_.set(http::field::upgrade, "websocket");
        response_.set(http::field::connection, "Upgrade, close");
    } else {
        response_.keep_alive(false);
    }
    response_.content_length(0);
    write_response(response_, std::nullopt); // within the handshake deadline
}

void HttpSession::on_written(beast::error_code ec) {
    if (ec) return;
    // Send our FIN after the response; the socket closes when this object goes away.
    shutdown(net::ip::tcp::socket::shutdown_send);
}

} // namespace vartalap::ws_gateway
