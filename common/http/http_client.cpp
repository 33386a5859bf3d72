// Thread: the push daemon's io thread (the io_context given to HttpClient).
//
// One Exchange is one request/response: take an idle connection for the origin or open a
// new one (resolve → connect → TLS handshake), write, read, then give the connection back
// if both sides keep it alive. A reused connection may have been closed by the server while
// idle; such a failure is retried once on a fresh connection (a duplicate push is harmless,
// a lost one is not).
#include "common/http/http_client.hpp"

#include "common/thread_name.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <optional>
#include <stdexcept>

namespace vartalap {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace detail {

constexpr std::uint32_t kMaxResponseHeaderBytes = 16 * 1024;

class Connection {
public:
    Connection(asio::io_context& io, ssl::context* tls, std::string origin) : origin_(std::move(origin)) {
        if (tls)
            secure_.emplace(io, *tls);
        else
            plain_.emplace(io);
    }

    beast::tcp_stream& tcp() { return secure_ ? beast::get_lowest_layer(*secure_) : *plain_; }
    bool tls() const { return secure_.has_value(); }
    beast::ssl_stream<beast::tcp_stream>& secure() { return *secure_; }
    // Runs `f` with the stream requests are written to and responses read from.
    template <class F>
    void with_stream(F&& f) {
        if (secure_)
            f(*secure_);
        else
            f(*plain_);
    }
    void close() {
        // No TLS close_notify: the peer learns from the TCP close, and waiting for its
        // answer would hold a slot for nothing. Requests are complete by then, so a
        // truncation attack gains nothing.
        beast::error_code ignored;
        tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
        tcp().close();
    }

    const std::string& origin() const { return origin_; }
    std::chrono::steady_clock::time_point idle_since;

private:
    std::string origin_;
    std::optional<beast::tcp_stream> plain_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure_;
};

class Exchange : public std::enable_shared_from_this<Exchange> {
public:
    Exchange(HttpClient& client, HttpRequest request, std::function<void(HttpResponse)> done)
        : client_(client), request_(std::move(request)), done_(std::move(done)), resolver_(client.io_) {
        const bool get = request_.method == HttpRequest::Method::get;
        message_.method(get ? http::verb::get : http::verb::post);
        message_.target(request_.url.target);
        message_.version(11);
        message_.set(http::field::host, request_.url.host_header());
        message_.set(http::field::user_agent, "vartalap");
        if (!get) message_.set(http::field::content_type, request_.content_type);
        if (!request_.authorization.empty()) message_.set(http::field::authorization, request_.authorization);
        message_.keep_alive(true);
        if (!get) {
            message_.body() = std::move(request_.body);
            message_.prepare_payload();
        }
    }

    void start() {
        connection_ = client_.take_idle(request_.url.origin());
        if (connection_) {
            reused_ = true;
            do_write();
        } else {
            open_fresh();
        }
    }

private:
    void open_fresh() {
        reused_ = false;
        connection_ = std::make_shared<Connection>(client_.io_, request_.url.tls ? &client_.tls_ : nullptr,
                                                   request_.url.origin());
        // One deadline for the whole exchange: connect, handshake, write and read.
        connection_->tcp().expires_after(client_.options_.request_timeout);
        resolver_.async_resolve(request_.url.host, request_.url.port,
                                beast::bind_front_handler(&Exchange::on_resolve, shared_from_this()));
        // The first async_resolve on the io_context started Asio's resolver thread, named
        // after this one: it becomes "<name>-dns" (thread_name.hpp).
        if (!client_.resolver_thread_named_) client_.resolver_thread_named_ = name_threads_started_here("-dns") > 0;
    }

    void on_resolve(beast::error_code ec, const tcp::resolver::results_type& results) {
        if (ec) return fail(ec);
        connection_->tcp().async_connect(results,
                                         beast::bind_front_handler(&Exchange::on_connect, shared_from_this()));
    }

    void on_connect(beast::error_code ec, const tcp::endpoint&) {
        if (ec) return fail(ec);
        if (!connection_->tls()) return do_write();
        auto& stream = connection_->secure();
        const std::string& host = request_.url.host;
        beast::error_code not_an_address;
        asio::ip::make_address(host, not_an_address);
        // SNI carries names only (RFC 6066 §3): an IP literal is checked against the
        // certificate's IP addresses by the verification below instead.
        if (not_an_address && !SSL_set_tlsext_host_name(stream.native_handle(), host.c_str()))
            return fail(beast::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()));
        stream.set_verify_mode(ssl::verify_peer);
        stream.set_verify_callback(ssl::host_name_verification(host));
        stream.async_handshake(ssl::stream_base::client,
                               beast::bind_front_handler(&Exchange::on_handshake, shared_from_this()));
    }

    void on_handshake(beast::error_code ec) {
        if (ec) return fail(ec);
        do_write();
    }

    void do_write() {
        if (reused_) connection_->tcp().expires_after(client_.options_.request_timeout);
        connection_->with_stream([this](auto& stream) {
            http::async_write(stream, message_, beast::bind_front_handler(&Exchange::on_write, shared_from_this()));
        });
    }

    void on_write(beast::error_code ec, std::size_t) {
        if (ec) return fail(ec);
        parser_.emplace();
        parser_->body_limit(client_.options_.max_response_body);
        parser_->header_limit(kMaxResponseHeaderBytes);
        connection_->with_stream([this](auto& stream) {
            http::async_read(stream, buffer_, *parser_,
                             beast::bind_front_handler(&Exchange::on_read, shared_from_this()));
        });
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return fail(ec);
        auto& response = parser_->get();
        HttpResponse result;
        result.status = response.result_int();
        if (auto it = response.find(http::field::retry_after); it != response.end())
            result.retry_after = std::string(it->value());
        if (auto it = response.find(http::field::cache_control); it != response.end())
            result.cache_control = std::string(it->value());
        result.body = std::move(response.body());
        if (response.keep_alive() && buffer_.size() == 0) {
            connection_->tcp().expires_never();
            client_.give_back(std::move(connection_));
        } else {
            connection_->close();
        }
        finish(std::move(result));
    }

    void fail(beast::error_code ec) {
        if (connection_) connection_->close();
        if (reused_ && !retried_) {
            retried_ = true;
            buffer_.clear();
            return open_fresh();
        }
        HttpResponse result;
        result.error = ec;
        finish(std::move(result));
    }

    void finish(HttpResponse result) {
        --client_.in_flight_;
        auto done = std::move(done_);
        done(std::move(result));
    }

    HttpClient& client_;
    HttpRequest request_;
    std::function<void(HttpResponse)> done_;
    tcp::resolver resolver_;
    std::shared_ptr<Connection> connection_;
    http::request<http::string_body> message_;
    beast::flat_buffer buffer_;
    std::optional<http::response_parser<http::string_body>> parser_;
    bool reused_ = false;
    bool retried_ = false;
};

} // namespace detail

HttpClient::HttpClient(asio::io_context& io, HttpClientOptions options)
    : io_(io), options_(std::move(options)), tls_(ssl::context::tls_client) {
    // TLS 1.2 is the oldest version FCM and any sane webhook still speak.
    SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
    tls_.set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (options_.ca_file.empty())
        tls_.set_default_verify_paths(ec);
    else
        tls_.load_verify_file(options_.ca_file, ec);
    if (ec)
        throw std::invalid_argument("cannot load the trusted CAs" +
                                    (options_.ca_file.empty() ? std::string() : " from " + options_.ca_file) +
                                    ": " + ec.message());
}

HttpClient::~HttpClient() { close_all_idle(); }

void HttpClient::post(HttpRequest request, std::function<void(HttpResponse)> done) {
    ++in_flight_;
    auto exchange = std::make_shared<detail::Exchange>(*this, std::move(request), std::move(done));
    // Posted so that `done` never runs inside post() (callers may hold state mid-update).
    asio::post(io_, [exchange] { exchange->start(); });
}

std::shared_ptr<detail::Connection> HttpClient::take_idle(const std::string& origin) {
    auto it = idle_.find(origin);
    if (it == idle_.end()) return nullptr;
    auto& pool = it->second;
    const auto now = std::chrono::steady_clock::now();
    while (!pool.empty()) {
        auto connection = std::move(pool.back()); // the most recently used is the least likely closed
        pool.pop_back();
        if (now - connection->idle_since < options_.idle_timeout && connection->tcp().socket().is_open())
            return connection;
        connection->close();
    }
    return nullptr;
}

void HttpClient::give_back(std::shared_ptr<detail::Connection> connection) {
    auto& pool = idle_[connection->origin()];
    if (pool.size() >= options_.max_idle_per_origin) {
        connection->close();
        return;
    }
    connection->idle_since = std::chrono::steady_clock::now();
    pool.push_back(std::move(connection));
}

void HttpClient::close_expired_idle() {
    const auto now = std::chrono::steady_clock::now();
    for (auto& [origin, pool] : idle_)
        std::erase_if(pool, [&](const std::shared_ptr<detail::Connection>& connection) {
            if (now - connection->idle_since < options_.idle_timeout) return false;
            connection->close();
            return true;
        });
}

void HttpClient::close_all_idle() {
    for (auto& [origin, pool] : idle_)
        for (auto& connection : pool) connection->close();
    idle_.clear();
}

} // namespace vartalap
