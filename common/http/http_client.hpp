// A small asynchronous HTTP/1.1 client for outbound calls (the push daemon's providers, the
// profile daemon's certificate fetch): POST a body or GET, get the status, the body,
// Retry-After and Cache-Control. HTTPS verifies the server: certificate chain against the system
// trust store (or `ca_file`), host name (or IP) against the certificate, SNI sent for names.
// Connections are kept alive and reused per origin, because a TLS handshake per push would
// cost more than the push (FCM asks senders to reuse connections).
//
// Thread: the io_context's thread only (everything here, including the completion
// callbacks, which are always invoked later from the io_context, never from within post()).
// Ownership: destroy the client only after the io_context has stopped running: in-flight
// exchanges refer to it. Pending exchanges that never complete (the io_context stopped)
// do not call their callback.
// Errors: a transport failure (resolve, connect, TLS, timeout, a malformed or oversized
// response) is reported in HttpResponse::error; the constructor throws
// std::invalid_argument if `ca_file` cannot be loaded.
// Bounds: one request per connection at a time; at most max_idle_per_origin idle
// connections are kept; response bodies over max_response_body bytes are an error
// (providers answer with small JSON documents).
#pragma once

#include "common/http/url.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace vartalap {

struct HttpClientOptions {
    std::string ca_file;                                 // PEM CAs trusted instead of the system store
    std::chrono::milliseconds request_timeout{10000};    // connect + TLS + write + read, per request
    std::size_t max_idle_per_origin = 32;                // = the default max_in_flight
    std::chrono::milliseconds idle_timeout{30000};       // servers close idle connections; reuse young ones
    std::uint64_t max_response_body = 64 * 1024;
};

struct HttpRequest {
    enum class Method : std::uint8_t { post, get };
    Method method = Method::post; // a GET sends no body and no Content-Type
    Url url;
    std::string content_type;
    std::string body;
    std::string authorization; // the Authorization header value, "" for none; a secret
};

struct HttpResponse {
    boost::system::error_code error; // set on a transport failure; status is 0 then
    unsigned status = 0;
    std::string body;
    std::string retry_after;         // the Retry-After header, "" if absent
    std::string cache_control;       // the Cache-Control header, "" if absent
};

namespace detail {
class Connection;
class Exchange;
} // namespace detail

class HttpClient {
public:
    HttpClient(boost::asio::io_context& io, HttpClientOptions options);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Sends `request` (a POST, or a GET by its method); `done` is called exactly once with
    // the outcome, unless the io_context stops first.
    void post(HttpRequest request, std::function<void(HttpResponse)> done);
    // Periodic duty: close idle connections older than idle_timeout.
    void close_expired_idle();
    // At shutdown: close every idle connection.
    void close_all_idle();
    std::size_t in_flight() const { return in_flight_; }

private:
    friend class detail::Exchange;
    std::shared_ptr<detail::Connection> take_idle(const std::string& origin);
    void give_back(std::shared_ptr<detail::Connection> connection);

    boost::asio::io_context& io_;
    HttpClientOptions options_;
    boost::asio::ssl::context tls_;
    std::unordered_map<std::string, std::vector<std::shared_ptr<detail::Connection>>> idle_;
    std::size_t in_flight_ = 0;
    bool resolver_thread_named_ = false; // Asio's resolver thread renamed "-dns" (once)
};

} // namespace vartalap
