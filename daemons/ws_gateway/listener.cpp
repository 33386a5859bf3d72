// Thread: see listener.hpp (bind on the controlling thread, the rest on the io thread).
#include "daemons/ws_gateway/listener.hpp"

#include "daemons/ws_gateway/http_session.hpp"

#include <boost/asio/socket_base.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <spdlog/spdlog.h>

namespace vartalap::ws_gateway {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
// Pause after a failed accept (EMFILE, ENFILE, ENOBUFS): the condition needs other
// connections to close first, and retrying at once would spin.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
} // namespace

Listener::Listener(net::io_context& io, const tcp::endpoint& endpoint, ServerState& state)
    : io_(io), acceptor_(io), retry_timer_(io), state_(state) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
}

void Listener::run() { do_accept(); }

void Listener::stop() {
    beast::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
}

void Listener::do_accept() {
    acceptor_.async_accept(io_, beast::bind_front_handler(&Listener::on_accept,
                                                          shared_from_this()));
}

void Listener::on_accept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open() || state_.stopping) return;
    if (ec) {
        spdlog::warn("ws-gateway: accept failed: {}; retrying in {} ms", ec.message(),
                     kAcceptRetryDelay.count());
        retry_timer_.expires_after(kAcceptRetryDelay);
        retry_timer_.async_wait(beast::bind_front_handler(&Listener::on_retry,
                                                          shared_from_this()));
        return;
    }
    if (state_.http_sessions >= kMaxPendingHandshakes) {
        beast::error_code ignored;
        socket.close(ignored);
    } else {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored); // small frames, latency matters
        std::make_shared<HttpSession>(std::move(socket), state_)->run();
    }
    do_accept();
}

void Listener::on_retry(beast::error_code ec) {
    if (ec || !acceptor_.is_open()) return;
    do_accept();
}

} // namespace vartalap::ws_gateway
