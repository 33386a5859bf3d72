// A Beast HTTP(S) server on a thread for integration tests: plays an outside HTTPS endpoint
// (Google's token, FCM and certificate endpoints) with canned responses and records every
// request exactly. Used by push_test.cpp and identity_test.cpp.
// Thread: the server runs its own io_context on its own thread and shares only its records
// (under a mutex) with the test's thread.
#pragma once

#include "tests/unit/push/test_crypto.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace vartalap::testing_http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct RecordedRequest {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
    std::string sni;              // the TLS server name the client sent ("" for none / plain HTTP)
    std::size_t connection = 0;   // which TCP connection carried it
    Clock::time_point at;

    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
};

struct CannedResponse {
    unsigned status = 200;
    std::string body = "{}";
    std::map<std::string, std::string> headers;
};

class FakeHttpServer {
public:
    // Picks the response for the n-th request (0-based) to its target.
    using Handler = std::function<CannedResponse(const RecordedRequest&, std::size_t nth_for_target)>;

    // HTTPS with `tls` (certificate + key), plain HTTP without. Binds 127.0.0.1:0.
    explicit FakeHttpServer(Handler handler, const testing_crypto::Issued* tls = nullptr)
        : handler_(std::move(handler)) {
        if (tls) {
            tls_.emplace(ssl::context::tls_server);
            tls_->use_certificate_chain(asio::buffer(tls->certificate_pem));
            tls_->use_private_key(asio::buffer(tls->private_key_pem), ssl::context::pem);
        }
        acceptor_.open(tcp::v4());
        acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        do_accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~FakeHttpServer() {
        io_.stop();
        thread_.join();
    }

    int port() const { return port_; }

    std::vector<RecordedRequest> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    std::vector<RecordedRequest> requests_to(const std::string& target) const {
        std::lock_guard lock(mutex_);
        return filter(requests_, target);
    }
    std::size_t failed_handshakes() const {
        std::lock_guard lock(mutex_);
        return failed_handshakes_;
    }

    // Waits until `ready(requests, failed_handshakes)` holds, at most `deadline`. `ready`
    // runs under the records' lock, so no change can slip between a check and the wait.
    bool wait(const std::function<bool(const std::vector<RecordedRequest>&, std::size_t)>& ready,
              std::chrono::milliseconds deadline = 10s) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, deadline, [&] { return ready(requests_, failed_handshakes_); });
    }
    bool wait_for_requests(const std::string& target, std::size_t count, std::chrono::milliseconds deadline = 10s) {
        return wait([&](const auto& requests, std::size_t) { return filter(requests, target).size() >= count; },
                    deadline);
    }

private:
    static std::vector<RecordedRequest> filter(const std::vector<RecordedRequest>& requests, const std::string& target) {
        std::vector<RecordedRequest> out;
        for (const auto& request : requests)
            if (request.target == target) out.push_back(request);
        return out;
    }

    template <class Stream>
    class Session : public std::enable_shared_from_this<Session<Stream>> {
    public:
        Session(Stream stream, FakeHttpServer& server, std::size_t connection)
            : stream_(std::move(stream)), server_(server), connection_(connection) {}

        void run() {
            if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
                do_read();
            } else {
                stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
                    if (ec) return self->server_.count_failed_handshake();
                    const char* name = SSL_get_servername(self->stream_.native_handle(), TLSEXT_NAMETYPE_host_name);
                    self->sni_ = name ? name : "";
                    self->do_read();
                });
            }
        }

    private:
        void do_read() {
            request_ = {};
            http::async_read(stream_, buffer_, request_,
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                                 if (!ec) self->on_request();
                             });
        }

        void on_request() {
            RecordedRequest recorded;
            recorded.method = std::string(request_.method_string());
            recorded.target = std::string(request_.target());
            for (const auto& field : request_) {
                std::string name(field.name_string());
                for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                recorded.headers[name] = std::string(field.value());
            }
            recorded.body = request_.body();
            recorded.sni = sni_;
            recorded.connection = connection_;
            recorded.at = Clock::now();
            const CannedResponse canned = server_.record(recorded);

            response_ = {};
            response_.result(canned.status);
            response_.version(11);
            response_.set(http::field::content_type, "application/json");
            for (const auto& [name, value] : canned.headers) response_.set(name, value);
            response_.keep_alive(request_.keep_alive());
            response_.body() = canned.body;
            response_.prepare_payload();
            http::async_write(stream_, response_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                if (!ec && self->response_.keep_alive()) self->do_read();
            });
        }

        Stream stream_;
        FakeHttpServer& server_;
        std::size_t connection_;
        std::string sni_;
        beast::flat_buffer buffer_;
        http::request<http::string_body> request_;
        http::response<http::string_body> response_;
    };

    void do_accept() {
        acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
            if (ec) return;
            const std::size_t connection = ++connections_;
            if (tls_) {
                std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
                    beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *tls_), *this, connection)
                    ->run();
            } else {
                std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), *this, connection)
                    ->run();
            }
            do_accept();
        });
    }

    CannedResponse record(const RecordedRequest& request) {
        std::size_t nth = 0;
        {
            std::lock_guard lock(mutex_);
            for (const auto& earlier : requests_) nth += earlier.target == request.target;
            requests_.push_back(request);
        }
        CannedResponse response = handler_(request, nth);
        changed_.notify_all();
        return response;
    }

    void count_failed_handshake() {
        {
            std::lock_guard lock(mutex_);
            ++failed_handshakes_;
        }
        changed_.notify_all();
    }

    Handler handler_;
    // Declared before io_: sessions (owned by handlers inside io_) use the TLS context.
    std::optional<ssl::context> tls_;
    asio::io_context io_{1};
    tcp::acceptor acceptor_{io_};
    int port_ = 0;
    std::size_t connections_ = 0; // server thread only
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<RecordedRequest> requests_;
    std::size_t failed_handshakes_ = 0;
    std::thread thread_;
};

} // namespace vartalap::testing_http
