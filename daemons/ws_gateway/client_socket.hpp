// ws-gateway: the TCP socket under each client WebSocket, with a correct closing teardown.
//
// Thread: the ws-gateway's io thread (like the WebsocketSession that owns it).
//
// Why a type of our own: after the close frames, Beast "tears down" the TCP connection. A
// server must first drain what the peer still sends (until its FIN): closing a socket with
// unread data makes the kernel answer with RST, and an RST can make the peer lose our close
// frame. Boost 1.74's teardown for TCP sockets stops draining after the first 2 KiB (it
// tests a bytes_transferred it never sets), so a client that is still sending, typically the
// rest of a frame above max_frame_bytes, got RST and saw 1006 instead of 1009. Beast finds
// teardown functions by argument-dependent lookup on the stream type; this overload is an
// exact match for ClientSocket and so replaces Beast's.
//
// The drain is bounded in time by the WebSocket close timeout (handshake_timeout_seconds):
// when it fires Beast closes the socket and the pending wait below ends with an error.
#pragma once

#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>

#include <cstdint>
#include <utility>

namespace vartalap::ws_gateway {

class ClientSocket : public boost::asio::ip::tcp::socket {
public:
    explicit ClientSocket(boost::asio::ip::tcp::socket&& socket)
        : boost::asio::ip::tcp::socket(std::move(socket)) {}

    // Beast reads through this (it hides the base's). A read is started only once the one
    // before it returned, so a count that moved since a previous look means bytes arrived
    // (or the socket failed): the gateway's keep-alive sweep needs no timer per connection.
    template <class MutableBufferSequence, class ReadHandler>
    decltype(auto) async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
        ++reads_;
        return boost::asio::ip::tcp::socket::async_read_some(buffers,
                                                             std::forward<ReadHandler>(handler));
    }
    std::uint32_t reads() const { return reads_; }

private:
    std::uint32_t reads_ = 0;
};

namespace detail {

// Shut down our sending side (server role), read and discard until the peer's EOF, close.
class TeardownOp {
public:
    TeardownOp(ClientSocket& socket, boost::beast::role_type role) : socket_(socket), role_(role) {}

    template <class Self>
    void operator()(Self& self, boost::beast::error_code ec = {}) {
        namespace net = boost::asio;
        if (!started_) {
            started_ = true;
            // Never complete inside the initiating call: continue from the io_context.
            net::post(socket_.get_executor(), std::move(self));
            return;
        }
        if (!prepared_) {
            prepared_ = true;
            socket_.non_blocking(true, ec);
            if (!ec && role_ == boost::beast::role_type::server)
                socket_.shutdown(net::socket_base::shutdown_send, ec);
            if (ec) return self.complete(ec);
        } else if (ec) {
            return self.complete(ec); // the wait failed: the close timeout closed the socket
        }
        for (;;) {
            char discard[2048]; // what the peer sends after our close frame is not read
            socket_.read_some(net::buffer(discard), ec);
            if (ec == net::error::would_block) {
                socket_.async_wait(net::socket_base::wait_read, std::move(self));
                return;
            }
            if (ec == net::error::eof) break; // the peer finished sending: safe to close
            if (ec) return self.complete(ec);
        }
        if (role_ == boost::beast::role_type::client)
            socket_.shutdown(net::socket_base::shutdown_send, ec);
        socket_.close(ec);
        self.complete(ec);
    }

private:
    ClientSocket& socket_;
    boost::beast::role_type role_;
    bool started_ = false;
    bool prepared_ = false;
};

} // namespace detail

// Found by Beast (websocket close and failure paths) through argument-dependent lookup.
template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, ClientSocket& socket,
                    TeardownHandler&& handler) {
    boost::asio::async_compose<TeardownHandler, void(boost::beast::error_code)>(
        detail::TeardownOp(socket, role), handler, socket);
}

} // namespace vartalap::ws_gateway
