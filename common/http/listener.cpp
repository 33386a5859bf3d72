// Thread: see listener.hpp (bind on the controlling thread, the rest on the io thread).
#include "common/http/listener.hpp"

#include <boost/asio/socket_base.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <spdlog/spdlog.h>

namespace vartalap {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Pause after a failed accept (EMFILE, ENFILE, ENOBUFS): the condition needs other
// connections to close first, and retrying at once would spin (the pending connection
// stays in the backlog, so the next accept fails at once again).

HttpListener::HttpListener(net::io_context& io, const tcp::endpoint& endpoint, std::string name,
                           ConnectionCount& count, std::size_t max_connections, Handler accept,
                           Handler refuse)
    : io_(io), acceptor_(io), retry_timer_(io), name_(std::move(name)), count_(count),
      max_connections_(max_connections), accept_(std::move(accept)), refuse_(std::move(refuse)) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
}

void HttpListener::run() { do_accept(); }

void HttpListener::stop() {
    beast::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
}

void HttpListener::do_accept() {
    acceptor_.async_accept(io_, beast::bind_front_handler(&HttpListener::on_accept,
                                                          shared_from_this()));
}

void HttpListener::on_accept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open() || ec == net::error::operation_aborted) return;
    if (ec) {
        ++accept_failures_;
        const auto now_ms = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now().time_since_epoch()).count());
        if (accept_log_.allow(now_ms))
            spdlog::warn("{}: accept failed: {}; pausing accepts for {} ms ({} failed accepts "
                         "not logged since the last line, {} in all)",
                         name_, ec.message(), kAcceptRetryDelay.count(),
                         accept_log_.take_suppressed(), accept_failures_);
        retry_timer_.expires_after(kAcceptRetryDelay);
        retry_timer_.async_wait(beast::bind_front_handler(&HttpListener::on_retry,
                                                          shared_from_this()));
        return;
    }
    if (count_.live() >= max_connections_) {
        if (refuse_) {
            refuse_(std::move(socket));
        } else {
            beast::error_code ignored;
            socket.close(ignored);
        }
    } else {
        accept_(std::move(socket));
    }
    do_accept();
}

void HttpListener::on_retry(beast::error_code ec) {
    if (ec || !acceptor_.is_open()) return;
    do_accept();
}

} // namespace vartalap
