// Thread: the ws-gateway's io thread (see http_session.hpp).
#include "daemons/ws_gateway/http_session.hpp"

#include "common/http_auth.hpp"
#include "daemons/ws_gateway/gateway_core.hpp"
#include "daemons/ws_gateway/websocket_session.hpp"

#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
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

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
    const auto question = target.find('?');
    if (question == std::string_view::npos) return {target, {}};
    return {target.substr(0, question), target.substr(question + 1)};
}

bool wants_server_ack(std::string_view query) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair == "ack=true" || pair == "ack=1") return true;
    }
    return false;
}

HttpSession::HttpSession(net::ip::tcp::socket&& socket, ServerState& state)
    : stream_(std::move(socket)), buffer_(kMaxBufferBytes), state_(state) {
    ++state_.http_sessions;
}

HttpSession::~HttpSession() { --state_.http_sessions; }

void HttpSession::run() { do_read(); }

void HttpSession::do_read() {
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(kMaxBodyBytes);
    stream_.expires_after(std::chrono::seconds(state_.core->options().handshake_timeout_seconds));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
}

void HttpSession::on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted) {
        return; // the socket closes with this object
    }
    if (ec) {
        // A malformed request (bad syntax, over a limit): say so, then close.
        spdlog::debug("ws-gateway: bad HTTP request: {}", ec.message());
        do_respond(http::status::bad_request);
        return;
    }
    http::request<http::string_body> request = parser_->release();
    const auto [path, query] = split_target(request.target());
    if (path != "/wss" && path != "/") return do_respond(http::status::not_found);
    if (!beast::websocket::is_upgrade(request)) return do_respond(http::status::upgrade_required);
    if (state_.stopping) return do_respond(http::status::service_unavailable);
    std::optional<std::string> user = authenticate(request, *state_.access_keys);
    if (!user) return do_respond(http::status::unauthorized);
    if (state_.websockets >= state_.core->options().max_connections) {
        spdlog::warn("{}: at max_connections ({}): upgrade refused with 503", state_.core->name(),
                     state_.core->options().max_connections);
        return do_respond(http::status::service_unavailable);
    }
    upgrade(std::move(request), std::move(*user), wants_server_ack(query));
}

void HttpSession::upgrade(http::request<http::string_body>&& request, std::string user,
                          bool wants_ack) {
    // The WebSocket stream has its own timeouts; the socket leaves the tcp_stream (and its
    // timers) behind.
    stream_.expires_never();
    auto session = std::make_shared<WebsocketSession>(stream_.release_socket(), state_,
                                                      state_.core->next_connection_id(),
                                                      std::move(user), wants_ack);
    session->run(std::move(request));
}

void HttpSession::do_respond(http::status status) {
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
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&HttpSession::on_write, shared_from_this()));
}

void HttpSession::on_write(beast::error_code ec, std::size_t) {
    if (ec) return;
    // Send our FIN after the response; the socket closes when this object goes away.
    beast::error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
}

} // namespace vartalap::ws_gateway
