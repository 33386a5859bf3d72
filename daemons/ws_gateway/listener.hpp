// ws-gateway: accepts TCP connections and hands each to an HttpSession.
//
// Thread: constructed (and its acceptor bound) on the controlling thread in bind(); after
// start, run() and stop() execute on the ws-gateway's io thread only.
//
// Accept errors such as EMFILE (out of descriptors) are retried after a pause instead of
// spinning. Beyond kMaxPendingHandshakes unauthenticated connections, new ones are closed
// at once.
#pragma once

#include "daemons/ws_gateway/server_state.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <memory>

namespace vartalap::ws_gateway {

class Listener final : public std::enable_shared_from_this<Listener> {
public:
    // Opens, binds and listens on `endpoint`. Throws boost::system::system_error.
    Listener(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
             ServerState& state);

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    void run();
    // Stops accepting: closes the acceptor (the pending accept ends with operation_aborted).
    void stop();

private:
    void do_accept();
    void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);
    void on_retry(boost::beast::error_code ec);

    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    ServerState& state_;
};

} // namespace vartalap::ws_gateway
