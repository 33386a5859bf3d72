// The one HTTP connection base of the project's Beast servers: reads a request within
// header/body limits and a deadline, writes a response, and hands the outcome to the
// derived class (ws-gateway's upgrade session, rest-gateway's API session, the ops
// thread's metrics session).
//
// Thread: the io_context's thread only (one strand: the io_context runs on one thread).
// Ownership: sessions are shared; each pending read or write holds the session alive. A
// session holds its ConnectionCount::Token (see listener.hpp) until it is destroyed.
// Errors: none thrown; a failed read reaches on_read_failed classified as:
//   closed     the peer closed, reset, or the deadline passed: nothing to answer
//   too_large  the body is over max_body_bytes
//   malformed  any other HTTP parse error (bad syntax, headers over max_header_bytes)
// and a failed write reaches on_written with its error code.
#pragma once

#include "common/http/listener.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>

namespace vartalap {

struct HttpLimits {
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_body_bytes = 1024;
    // For the whole request, the wait for its first byte included (the idle timeout of a
    // keep-alive connection).
    std::chrono::steady_clock::duration read_timeout = std::chrono::seconds(10);
};

enum class ReadFailure { closed, too_large, malformed };

ReadFailure classify_read_error(boost::beast::error_code ec);

template <class RequestBody>
class HttpSessionBase : public std::enable_shared_from_this<HttpSessionBase<RequestBody>> {
public:
    using Request = boost::beast::http::request<RequestBody>;

    HttpSessionBase(const HttpSessionBase&) = delete;
    HttpSessionBase& operator=(const HttpSessionBase&) = delete;
    virtual ~HttpSessionBase() = default;

protected:
    // `max_buffer_bytes` bounds the read buffer (headers plus read-ahead).
    HttpSessionBase(boost::asio::ip::tcp::socket&& socket, ConnectionCount::Token token,
                    std::size_t max_buffer_bytes = std::numeric_limits<std::size_t>::max())
        : stream_(std::move(socket)), buffer_(max_buffer_bytes), token_(std::move(token)) {}

    // Reads the next request; then on_request() or on_read_failed(). With `check_header`,
    // on_header() sees the header before the body is read.
    void read_request(const HttpLimits& limits, bool check_header = false) {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(
            std::min<std::size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
        parser_->body_limit(limits.max_body_bytes);
        stream_.expires_after(limits.read_timeout);
        if (check_header) {
            boost::beast::http::async_read_header(
                stream_, buffer_, *parser_,
                [self = this->shared_from_this()](boost::beast::error_code ec, std::size_t) {
                    self->on_header_read(ec);
                });
            return;
        }
        read_rest();
    }

    // Writes `response`, which the derived class keeps alive until on_written(). With a
    // `timeout` the write gets a new deadline; without, the read's deadline still runs.
    template <class Response>
    void write_response(Response& response,
                        std::optional<std::chrono::steady_clock::duration> timeout) {
        if (timeout) stream_.expires_after(*timeout);
        boost::beast::http::async_write(
            stream_, response,
            [self = this->shared_from_this()](boost::beast::error_code ec, std::size_t) {
                self->on_written(ec);
            });
    }

    // With read_request(limits, true): the header is read (the body is not yet); false stops
    // the read (the derived class answers, e.g. 503 when a budget is spent).
    virtual bool on_header(const boost::beast::http::request_parser<RequestBody>&) { return true; }
    virtual void on_request(Request&& request) = 0;
    virtual void on_read_failed(ReadFailure failure, boost::beast::error_code ec) = 0;
    virtual void on_written(boost::beast::error_code ec) = 0;

    // Sends our FIN (the socket itself closes when the session goes away).
    void shutdown(boost::asio::ip::tcp::socket::shutdown_type what) {
        boost::beast::error_code ignored;
        stream_.socket().shutdown(what, ignored);
    }
    // Shuts down both directions and closes the socket now.
    void close() {
        shutdown(boost::asio::ip::tcp::socket::shutdown_both);
        stream_.close();
    }

    boost::beast::tcp_stream& stream() { return stream_; }

private:
    void read_rest() {
        boost::beast::http::async_read(
            stream_, buffer_, *parser_,
            [self = this->shared_from_this()](boost::beast::error_code ec, std::size_t) {
                self->on_read(ec);
            });
    }
    void on_header_read(boost::beast::error_code ec) {
        if (ec) return on_read_failed(classify_read_error(ec), ec);
        if (!on_header(*parser_)) return;
        if (parser_->is_done()) return on_request(parser_->release());
        read_rest();
    }
    void on_read(boost::beast::error_code ec) {
        if (ec) return on_read_failed(classify_read_error(ec), ec);
        on_request(parser_->release());
    }

    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    std::optional<boost::beast::http::request_parser<RequestBody>> parser_;
    ConnectionCount::Token token_;
};

} // namespace vartalap
