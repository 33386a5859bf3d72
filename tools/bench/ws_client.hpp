// The WebSocket client side that vartalap-loadgen's modes share (pairs, idle, drain): REST
// login over one keep-alive connection, an asynchronous WebSocket connection that writes
// queued frames in order and hands every received text frame to its owner, opening many
// connections with a bounded number of handshakes in flight, and the v2.1 frames the
// benchmarks send (docs: /work/shared/PROTOCOL.md; the server's side in common/wire).
// Header-only. Thread: one io_context thread (the login's own io_context runs inline).
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::bench::ws {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

// POST /login for many users over one keep-alive connection (reopened when the server
// closes it). Throws std::runtime_error when a login fails twice.
class Login {
public:
    Login(std::string host, int port) : host_(std::move(host)), port_(port) {}

    std::string key(const std::string& user) {
        try {
            return attempt(user);
        } catch (const std::exception&) {
            stream_.reset(); // the server may have closed the idle connection: once more, anew
            return attempt(user);
        }
    }

private:
    std::string attempt(const std::string& user) {
        if (!stream_) {
            stream_.emplace(io_);
            stream_->connect(tcp::endpoint(asio::ip::make_address(host_), static_cast<unsigned short>(port_)));
            stream_->socket().set_option(tcp::no_delay(true));
        }
        http::request<http::string_body> request(http::verb::post, "/login", 11);
        request.set(http::field::host, host_);
        request.set(http::field::content_type, "application/json");
        request.keep_alive(true);
        request.body() = json{{"username", user}, {"authToken", "loadgen"}}.dump();
        request.prepare_payload();
        http::write(*stream_, request);
        http::response<http::string_body> response;
        http::read(*stream_, buffer_, response);
        if (!response.keep_alive()) stream_.reset();
        if (response.result() != http::status::ok) throw std::runtime_error("login failed for " + user);
        return json::parse(response.body()).at("accesskey").get<std::string>();
    }

    std::string host_;
    int port_;
    asio::io_context io_;
    std::optional<beast::tcp_stream> stream_;
    beast::flat_buffer buffer_;
};

// One user's WebSocket. open() connects, upgrades on `target` with the user/accesskey
// headers and starts reading; every text frame received goes to the handler set with
// on_text(); send() queues a frame (written in order, one write at a time). When the
// socket ends (the server closed it, or the connection broke) the handler set with
// on_closed() gets the close code (0 without a close frame), once.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    using TextHandler = std::function<void(std::string_view)>;
    using ClosedHandler = std::function<void(int close_code)>;

    Connection(asio::io_context& io, std::string user) : ws_(io), user_(std::move(user)) {}

    const std::string& user() const { return user_; }
    void on_text(TextHandler handler) { on_text_ = std::move(handler); }
    void on_closed(ClosedHandler handler) { on_closed_ = std::move(handler); }

    // `done(true)` once open (and reading), `done(false)` on any failure. `source`: the
    // local address to connect from (unspecified: the kernel's choice).
    void open(const tcp::endpoint& at, std::string key, std::string target, std::function<void(bool)> done,
              const asio::ip::address& source = {}) {
        key_ = std::move(key);
        target_ = std::move(target);
        auto self = shared_from_this();
        if (!source.is_unspecified()) {
            beast::error_code ec;
            auto& socket = beast::get_lowest_layer(ws_).socket();
            socket.open(at.protocol(), ec);
            if (!ec) socket.bind(tcp::endpoint(source, 0), ec);
            if (ec) return done(false);
        }
        beast::get_lowest_layer(ws_).async_connect(at, [self, done](beast::error_code ec) {
            if (ec) return done(false);
            beast::get_lowest_layer(self->ws_).socket().set_option(tcp::no_delay(true));
            self->ws_.set_option(websocket::stream_base::decorator([user = self->user_, key = self->key_](websocket::request_type& r) {
                r.set("user", user);
                r.set("accesskey", key);
            }));
            self->ws_.async_handshake("127.0.0.1", self->target_, [self, done](beast::error_code ec2) {
                if (ec2) return done(false);
                self->open_ = true;
                self->do_read();
                done(true);
            });
        });
    }
    bool is_open() const { return open_; }

    void send(std::string frame) {
        queue_.push_back(std::move(frame));
        if (queue_.size() == 1) do_write();
    }

    void close() {
        if (!open_) return;
        open_ = false;
        ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code) {});
    }

private:
    void do_write() {
        ws_.async_write(asio::buffer(queue_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            self->queue_.pop_front();
            if (!self->queue_.empty()) self->do_write();
        });
    }
    void do_read() {
        ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {
                self->open_ = false;
                if (auto closed = std::move(self->on_closed_)) closed(static_cast<int>(self->ws_.reason().code));
                return;
            }
            const auto data = self->buffer_.cdata();
            if (self->on_text_) self->on_text_(std::string_view(static_cast<const char*>(data.data()), data.size()));
            self->buffer_.consume(self->buffer_.size());
            self->do_read();
        });
    }

    websocket::stream<beast::tcp_stream> ws_;
    std::string user_, key_, target_;
    TextHandler on_text_;
    ClosedHandler on_closed_;
    std::deque<std::string> queue_;
    beast::flat_buffer buffer_;
    bool open_ = false;
};

// How many loopback source addresses open_all spreads connections over (127.0.0.1 to
// 127.0.0.16): the ws-gateway admits at most max_handshakes_per_source (default 32) pending
// handshakes per source address, as it would from real clients on many addresses, so 256
// handshakes in flight from one address would be refused.
inline constexpr unsigned kLoopbackSources = 16;

// Opens every connection of `connections` (keys[i] for connections[i], endpoint
// `endpoints[i % endpoints.size()]`; to a loopback IPv4 endpoint from 127.0.0.(1 + i % 16)),
// at most `parallel` handshakes at once, running `io` until all have finished or `deadline`
// passed. Returns how many opened.
inline std::size_t open_all(asio::io_context& io, const std::vector<std::shared_ptr<Connection>>& connections,
                            const std::vector<std::string>& keys, const std::vector<tcp::endpoint>& endpoints,
                            const std::string& target, std::size_t parallel,
                            std::chrono::steady_clock::time_point deadline) {
    std::size_t next = 0, finished = 0, opened = 0;
    std::function<void()> start_one = [&] {
        if (next >= connections.size()) return;
        const std::size_t i = next++;
        const tcp::endpoint& at = endpoints[i % endpoints.size()];
        asio::ip::address source;
        if (at.address().is_v4() && at.address().is_loopback())
            source = asio::ip::address_v4((127u << 24) | (1u + static_cast<unsigned>(i % kLoopbackSources)));
        connections[i]->open(at, keys[i], target, [&](bool ok) {
            ++finished;
            if (ok) ++opened;
            start_one();
        }, source);
    };
    for (std::size_t k = 0; k < parallel; ++k) start_one();
    while (finished < connections.size() && std::chrono::steady_clock::now() < deadline)
        if (io.run_one_until(deadline) == 0) break;
    return opened;
}

// Calls `each` for every message object of a frame (the server may send one object or an
// array of objects per frame); anything else is ignored.
template <class Each>
void for_each_message(std::string_view text, Each&& each) {
    const json frame = json::parse(text, nullptr, false);
    if (frame.is_array()) {
        for (const auto& m : frame)
            if (m.is_object()) each(m);
    } else if (frame.is_object()) {
        each(frame);
    }
}

// A field of a message as a string ("" when absent or not a string): head fields by name.
inline std::string head_field(const json& message, const char* name) {
    const auto head = message.find("head");
    if (head == message.end() || !head->is_object()) return {};
    const auto it = head->find(name);
    return it != head->end() && it->is_string() ? it->get<std::string>() : std::string{};
}

// The v2.1 frames the benchmarks send.
inline std::string chat_frame(const std::string& id, const std::string& from, const std::string& to, const std::string& text) {
    return json{{"_v", 2.1}, {"id", id},
                {"head", {{"type", "individual"}, {"to", to}, {"chatid", from}, {"contentType", "text"}, {"action", "message"}}},
                {"body", {{"text", text}}}}
        .dump();
}
// A `delivered` receipt for message `acked` to its sender `to`; it is also the ack of `acked`.
inline std::string receipt_frame(const std::string& id, const std::string& from, const std::string& to, const std::string& acked) {
    return json{{"_v", 2.1}, {"id", id},
                {"head", {{"type", "individual"}, {"to", to}, {"chatid", from}, {"contentType", "text"}, {"action", "state"}}},
                {"body", {{"ids", json::array({acked})}, {"state", "delivered"}}}}
        .dump();
}
inline std::string client_ack_frame(const std::string& acked) {
    return json{{"_v", 2.1}, {"id", acked}, {"head", {{"type", "individual"}, {"to", "server"}, {"contentType", "CLIENT_ACK"}}}}
        .dump();
}

} // namespace vartalap::bench::ws
