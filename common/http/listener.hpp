// The one TCP listener of the project's HTTP servers (ws-gateway, rest-gateway, the ops
// thread's metrics ports): accepts connections and hands each to a handler, unless the
// server is at its connection cap.
//
// Thread: constructed (and its acceptor bound) on the controlling thread; after that,
// run(), stop() and set_max_connections() execute on the io_context's thread only.
// ConnectionCount is likewise touched only on that thread (plain counter, no locking).
//
// Cap: a connection counts while its session holds a ConnectionCount::Token (HttpSessionBase
// takes one). When `count.live() >= max_connections`, a new connection goes to `refuse`
// (default: closed at once, so a flood of idle sockets cannot exhaust descriptors);
// otherwise to `accept`.
// Errors: accept errors such as EMFILE/ENFILE (out of descriptors) pause accepting for
// 100 ms instead of spinning, are counted (accept_failures(), published by the gateways as
// vartalap_<kind>_accept_failures_total) and logged at most once per 10 s with the number
// not logged since; the constructor throws boost::system::system_error when the
// endpoint cannot be bound.
// Ownership: the listener is shared (its pending operations hold it); the ConnectionCount
// must outlive every session holding a token (declare it before the io_context).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include <chrono>

#include "common/log.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

namespace vartalap {

// Live connections of one server (or of several listeners that share a cap).
class ConnectionCount {
public:
    // Held by a session while it lives; the count drops when the token goes. An empty
    // token (default-constructed) counts nothing.
    class Token {
    public:
        Token() = default;
        Token(Token&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
        Token& operator=(Token&& other) noexcept {
            if (this != &other) {
                release();
                count_ = std::exchange(other.count_, nullptr);
            }
            return *this;
        }
        Token(const Token&) = delete;
        Token& operator=(const Token&) = delete;
        ~Token() { release(); }

    private:
        friend class ConnectionCount;
        explicit Token(ConnectionCount* count) : count_(count) { ++count_->live_; }
        void release() {
            if (count_) --count_->live_;
            count_ = nullptr;
        }
        ConnectionCount* count_ = nullptr;
    };

    Token enter() { return Token(this); }
    std::size_t live() const { return live_; }

private:
    std::size_t live_ = 0;
};

class HttpListener final : public std::enable_shared_from_this<HttpListener> {
public:
    using Handler = std::function<void(boost::asio::ip::tcp::socket&&)>;

    // Opens, binds and listens on `endpoint`. `name` prefixes log lines ("ws-gateway w1").
    // Throws boost::system::system_error.
    HttpListener(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
                 std::string name, ConnectionCount& count, std::size_t max_connections,
                 Handler accept, Handler refuse = {});

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    void run();
    // Stops accepting: closes the acceptor (the pending accept ends with operation_aborted).
    void stop();
    void set_max_connections(std::size_t max) { max_connections_ = max; }
    // Failed accepts so far (EMFILE, ENFILE, ENOBUFS...), each followed by a pause.
    std::uint64_t accept_failures() const { return accept_failures_; }

    // The pause after a failed accept, and the least time between two of its log lines.
    static constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
    static constexpr std::uint64_t kAcceptLogPeriodMs = 10'000;

private:
    void do_accept();
    void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);
    void on_retry(boost::beast::error_code ec);

    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    std::string name_;
    ConnectionCount& count_;
    std::size_t max_connections_;
    Handler accept_;
    Handler refuse_;
    std::uint64_t accept_failures_ = 0;
    LogLimiter accept_log_{kAcceptLogPeriodMs};
};

} // namespace vartalap
