// Thread: the test's (see ws_client.hpp).
#include "tests/integration/support/ws_client.hpp"
#include "tests/support/deadline.hpp"

#include <deque>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace vartalap::testing {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Runs `io` until `done()` or the deadline. The io_context must have work pending while
// `done()` is false (the caller started an operation whose handler sets it).
template <class Done>
bool run_until(net::io_context& io, Done done, Clock::time_point deadline) {
    while (!done()) {
        const auto now = Clock::now();
        if (now >= deadline) return false;
        if (io.stopped()) io.restart();
        io.run_one_for(deadline - now);
    }
    return true;
}

// Resolves and connects `stream`'s socket; false on failure or deadline.
bool connect_tcp(net::io_context& io, beast::tcp_stream& stream, const std::string& host,
                 int port, Clock::time_point deadline) {
    tcp::resolver resolver(io);
    beast::error_code ec;
    const auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return false;
    bool done = false;
    stream.expires_at(deadline);
    stream.async_connect(results, [&](beast::error_code e, const tcp::endpoint&) {
        ec = e;
        done = true;
    });
    if (!run_until(io, [&] { return done; }, deadline + std::chrono::milliseconds(100)))
        return false;
    return !ec;
}

} // namespace

struct WsClient::Impl {
    net::io_context io{1};
    websocket::stream<beast::tcp_stream> ws{io};
    beast::flat_buffer buffer;
    std::deque<nlohmann::json> unread; // elements of an array frame after the one returned
    std::deque<nlohmann::json> kept;   // messages read that no call has matched yet
    bool read_pending = false;
    bool read_done = false;
    beast::error_code read_ec;
    bool closed = false;
    int close_code = 0;
    std::string close_reason;

    void mark_closed(const beast::error_code& ec) {
        if (closed) return;
        closed = true;
        if (ec == websocket::error::closed || ws.reason().code != 0) {
            close_code = ws.reason().code;
            close_reason = std::string(ws.reason().reason.data(), ws.reason().reason.size());
            if (close_code == 0) close_code = 1005; // a close frame without a code
        } else {
            close_code = 1006; // ended without a close frame
        }
    }

    void abort() {
        beast::error_code ignored;
        beast::get_lowest_layer(ws).socket().shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(ws).socket().close(ignored);
    }
};

WsClient::WsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WsClient::WsClient(WsClient&&) noexcept = default;
WsClient& WsClient::operator=(WsClient&&) noexcept = default;

WsClient::~WsClient() {
    if (impl_) impl_->abort();
}

std::variant<WsClient, int> WsClient::connect(const std::string& host, int port,
                                               const std::string& path, const Headers& headers,
                                               std::chrono::milliseconds deadline) {
    auto impl = std::make_unique<Impl>();
    const auto until = Clock::now() + test::scaled(deadline);
    auto& stream = beast::get_lowest_layer(impl->ws);
    if (!connect_tcp(impl->io, stream, host, port, until)) return 0;

    impl->ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& r) {
        for (const auto& [name, value] : headers) r.set(name, value);
    }));
    websocket::response_type response;
    beast::error_code ec;
    bool done = false;
    impl->ws.async_handshake(response, host + ":" + std::to_string(port), path,
                             [&](beast::error_code e) {
                                 ec = e;
                                 done = true;
                             });
    if (!run_until(impl->io, [&] { return done; }, until + std::chrono::milliseconds(100))) {
        impl->abort();
        run_until(impl->io, [&] { return done; }, Clock::now() + std::chrono::seconds(1));
        return 0;
    }
    if (ec == websocket::error::upgrade_declined) return static_cast<int>(response.result_int());
    if (ec) return 0; // no usable HTTP answer
    stream.expires_never();
    websocket::stream_base::timeout timeout =
        websocket::stream_base::timeout::suggested(beast::role_type::client);
    timeout.handshake_timeout = std::chrono::seconds(2); // bounds close()
    impl->ws.set_option(timeout);
    impl->ws.read_message_max(64u << 20);
    return WsClient(std::move(impl));
}

bool WsClient::send_text(const std::string& text, std::chrono::milliseconds deadline) {
    return send(text, true, deadline);
}

bool WsClient::send_binary(const std::string& bytes, std::chrono::milliseconds deadline) {
    return send(bytes, false, deadline);
}

bool WsClient::send(const std::string& data, bool text, std::chrono::milliseconds deadline) {
    Impl& c = *impl_;
    if (c.closed) return false;
    beast::error_code ec;
    bool done = false;
    c.ws.text(text);
    c.ws.async_write(net::buffer(data), [&](beast::error_code e, std::size_t) {
        ec = e;
        done = true;
    });
    if (!run_until(c.io, [&] { return done; }, Clock::now() + test::scaled(deadline))) {
        // A write that cannot finish leaves the stream unusable: end it.
        c.abort();
        run_until(c.io, [&] { return done; }, Clock::now() + std::chrono::seconds(1));
        return false;
    }
    return !ec;
}

bool WsClient::send_text_fragmented(const std::string& text, std::size_t fragment_bytes,
                                    std::chrono::milliseconds deadline) {
    Impl& c = *impl_;
    if (c.closed || fragment_bytes == 0) return false;
    c.ws.text(true);
    const auto until = Clock::now() + test::scaled(deadline);
    for (std::size_t at = 0; at < text.size() || at == 0; at += fragment_bytes) {
        const std::size_t n = std::min(fragment_bytes, text.size() - at);
        const bool fin = at + n >= text.size();
        beast::error_code ec;
        bool done = false;
        c.ws.async_write_some(fin, net::buffer(text.data() + at, n), [&](beast::error_code e, std::size_t) {
            ec = e;
            done = true;
        });
        if (!run_until(c.io, [&] { return done; }, until)) {
            c.abort();
            run_until(c.io, [&] { return done; }, Clock::now() + std::chrono::seconds(1));
            return false;
        }
        if (ec) return false;
        if (fin) break;
    }
    return true;
}

std::optional<std::string> WsClient::read_text(std::chrono::milliseconds deadline) {
    return read_text_until(Clock::now() + test::scaled(deadline));
}

std::optional<std::string> WsClient::read_text_until(Clock::time_point until) {
    Impl& c = *impl_;
    if (c.closed) return std::nullopt;
    if (!c.read_pending) {
        c.read_pending = true;
        c.read_done = false;
        c.ws.async_read(c.buffer, [&c](beast::error_code e, std::size_t) {
            c.read_ec = e;
            c.read_done = true;
        });
    }
    if (!run_until(c.io, [&] { return c.read_done; }, until))
        return std::nullopt; // still pending: the next call continues it
    c.read_pending = false;
    if (c.read_ec) {
        c.mark_closed(c.read_ec);
        return std::nullopt;
    }
    std::string text = beast::buffers_to_string(c.buffer.data());
    c.buffer.consume(c.buffer.size());
    return text;
}

std::optional<nlohmann::json> WsClient::read_json_matching(
    const std::function<bool(const nlohmann::json&)>& predicate,
    std::chrono::milliseconds deadline) {
    Impl& c = *impl_;
    const auto until = Clock::now() + test::scaled(deadline);
    // Messages kept by earlier calls first, in the order they arrived.
    for (auto it = c.kept.begin(); it != c.kept.end(); ++it)
        if (predicate(*it)) {
            nlohmann::json found = std::move(*it);
            c.kept.erase(it);
            return found;
        }
    while (true) {
        while (!c.unread.empty()) {
            nlohmann::json element = std::move(c.unread.front());
            c.unread.pop_front();
            if (predicate(element)) return element;
            c.kept.push_back(std::move(element));
        }
        if (Clock::now() >= until) return std::nullopt;
        auto text = read_text_until(until);
        if (!text) return std::nullopt;
        auto frame = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
        if (frame.is_discarded()) continue;
        if (frame.is_array()) {
            for (auto& element : frame) c.unread.push_back(std::move(element));
        } else if (predicate(frame)) {
            return frame;
        } else {
            c.kept.push_back(std::move(frame));
        }
    }
}

int WsClient::close_code() const { return impl_->closed ? impl_->close_code : 0; }
std::string WsClient::close_reason() const { return impl_->close_reason; }
bool WsClient::is_open() const { return !impl_->closed; }

void WsClient::close() {
    Impl& c = *impl_;
    if (c.closed) return;
    bool done = false;
    beast::error_code ec;
    c.ws.async_close(websocket::close_code::normal, [&](beast::error_code e) {
        ec = e;
        done = true;
    });
    // A pending read ends too (with `closed`); wait for both so no handler outlives us.
    const auto until = Clock::now() + std::chrono::seconds(2);
    if (!run_until(c.io, [&] { return done && (!c.read_pending || c.read_done); }, until)) {
        c.abort();
        run_until(c.io, [&] { return done && (!c.read_pending || c.read_done); },
                  Clock::now() + std::chrono::seconds(1));
    }
    c.read_pending = false;
    c.closed = true;
    c.close_code = 1000;
    c.abort();
}

HttpResponse http_request(const std::string& host, int port, const std::string& method,
                          const std::string& target, const std::string& body,
                          const std::map<std::string, std::string>& headers,
                          std::chrono::milliseconds deadline) {
    net::io_context io{1};
    beast::tcp_stream stream(io);
    const auto until = Clock::now() + test::scaled(deadline);
    if (!connect_tcp(io, stream, host, port, until)) return {};

    http::request<http::string_body> request;
    request.method_string(method);
    request.target(target);
    request.version(11);
    request.set(http::field::host, host + ":" + std::to_string(port));
    request.keep_alive(false);
    // As the app's Dart http client sends a JSON body; a test may override it (or send "").
    if (!body.empty()) request.set(http::field::content_type, "application/json; charset=utf-8");
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = body;
    request.prepare_payload();

    beast::error_code ec;
    bool done = false;
    stream.expires_at(until);
    http::async_write(stream, request, [&](beast::error_code e, std::size_t) {
        ec = e;
        done = true;
    });
    if (!run_until(io, [&] { return done; }, until + std::chrono::milliseconds(100)) || ec)
        return {};

    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    done = false;
    http::async_read(stream, buffer, response, [&](beast::error_code e, std::size_t) {
        ec = e;
        done = true;
    });
    if (!run_until(io, [&] { return done; }, until + std::chrono::milliseconds(100)) || ec)
        return {};
    return {static_cast<int>(response.result_int()), std::move(response.body())};
}

} // namespace vartalap::testing
