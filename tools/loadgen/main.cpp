// vartalap-loadgen: measures delivered-and-acked messages per second and send→deliver
// latency through a running server, as real clients: it logs in over REST, opens one
// WebSocket per user, and keeps `--window` messages in flight per sender. Each receiver
// acknowledges every message with a CLIENT_ACK (to "server"), so the server's full
// delivery path runs: parse, route, store, deliver, ack, delete.
//
//   vartalap-loadgen --pairs 50 --seconds 10 [--window 8] [--rate 0 (unlimited)]
//
// Prints throughput and latency percentiles (p50/p99/max). Thread: one io_context thread.
#include <CLI/CLI.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <iostream>
#include <memory>
#include <unordered_set>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string login(const std::string& host, const std::string& port, const std::string& user) {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(tcp::resolver(io).resolve(host, port));
    http::request<http::string_body> request(http::verb::post, "/login", 11);
    request.set(http::field::host, host);
    request.body() = json{{"username", user}, {"authToken", "loadgen"}}.dump();
    request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    if (response.result() != http::status::ok) throw std::runtime_error("login failed for " + user);
    return json::parse(response.body()).at("accesskey").get<std::string>();
}

struct Stats {
    std::uint64_t delivered = 0;
    std::uint64_t duplicates = 0;
    std::vector<std::uint32_t> latency_us;
    bool measuring = false;
};

class Client : public std::enable_shared_from_this<Client> {
public:
    Client(asio::io_context& io, std::string user, Stats& stats)
        : ws_(io), user_(std::move(user)), stats_(stats) {}

    void connect(const std::string& host, const std::string& port, const std::string& key) {
        beast::get_lowest_layer(ws_).connect(tcp::resolver(ws_.get_executor()).resolve(host, port));
        beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
        ws_.set_option(websocket::stream_base::decorator([&](websocket::request_type& r) {
            r.set("user", user_);
            r.set("accesskey", key);
        }));
        ws_.handshake(host, "/wss");
    }

    void start(Client* peer, int window) {
        peer_ = peer;
        do_read();
        for (int i = 0; i < window; ++i) send_next();
    }

    // Called by the peer when one of our messages arrived: keep the window full. A message
    // delivered twice (a retry whose ack crossed it) counts once and sends no extra message,
    // so the window stays what was asked for.
    void on_delivered(const std::string& id, Clock::time_point sent) {
        if (outstanding_.erase(id) == 0) {
            ++stats_.duplicates;
            return;
        }
        if (stats_.measuring) {
            ++stats_.delivered;
            stats_.latency_us.push_back(static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent).count()));
        }
        if (!stopping_) send_next();
    }
    void stop() { stopping_ = true; }

private:
    void send_next() {
        const auto sent = Clock::now();
        const std::string id = user_ + "-" + std::to_string(++sequence_);
        outstanding_.insert(id);
        write(json{{"_v", 2.1}, {"id", id},
                   {"head", {{"type", "individual"}, {"to", peer_->user_}, {"chatid", user_},
                             {"contentType", "text"}, {"action", "message"}}},
                   {"body", {{"text", "load"}, {"sent", sent.time_since_epoch().count()}}}}
                  .dump());
    }

    void write(std::string frame) {
        queue_.push_back(std::move(frame));
        if (queue_.size() == 1) do_write();
    }
    void do_write() {
        ws_.async_write(asio::buffer(queue_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            self->queue_.pop_front();
            if (!self->queue_.empty()) self->do_write();
        });
    }

    void do_read() {
        ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            self->on_frame(beast::buffers_to_string(self->buffer_.data()));
            self->buffer_.consume(self->buffer_.size());
            self->do_read();
        });
    }

    void on_frame(const std::string& text) {
        json frame = json::parse(text, nullptr, false);
        if (!frame.is_array()) frame = json::array({frame});
        for (const auto& m : frame) {
            if (!m.is_object() || !m.contains("body") || !m["body"].contains("sent")) continue;
            write(json{{"_v", 2.1}, {"id", m["id"]},
                       {"head", {{"type", "individual"}, {"to", "server"}, {"contentType", "CLIENT_ACK"}}}}
                      .dump());
            peer_->on_delivered(m["id"].get<std::string>(),
                                Clock::time_point(Clock::duration(m["body"]["sent"].get<Clock::rep>())));
        }
    }

    websocket::stream<beast::tcp_stream> ws_;
    std::string user_;
    Stats& stats_;
    Client* peer_ = nullptr;
    std::uint64_t sequence_ = 0;
    std::deque<std::string> queue_;
    std::unordered_set<std::string> outstanding_; // sent, not yet seen by the peer
    beast::flat_buffer buffer_;
    bool stopping_ = false;
};

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalap-loadgen: throughput and latency through a running Vartalap server"};
    std::string host = "127.0.0.1";
    int ws_port = 8080, http_port = 8081, pairs = 20, window = 8;
    double seconds = 10, warmup = 2;
    app.add_option("--host", host);
    app.add_option("--ws-port", ws_port);
    app.add_option("--http-port", http_port);
    app.add_option("--pairs", pairs, "sender/receiver pairs (each user sends to its peer)");
    app.add_option("--window", window, "messages in flight per sender");
    app.add_option("--seconds", seconds, "measured duration");
    app.add_option("--warmup", warmup, "unmeasured seconds first");
    CLI11_PARSE(app, argc, argv);

    asio::io_context io(1);
    Stats stats;
    // Fresh users each run: messages a previous run left unacked would otherwise arrive.
    const std::string run_prefix =
        "load-" + std::to_string(Clock::now().time_since_epoch().count() % 1000000007) + "-";
    std::vector<std::shared_ptr<Client>> clients;
    try {
        for (int i = 0; i < 2 * pairs; ++i) {
            const std::string user = run_prefix + std::to_string(i);
            const std::string key = login(host, std::to_string(http_port), user);
            auto client = std::make_shared<Client>(io, user, stats);
            client->connect(host, std::to_string(ws_port), key);
            clients.push_back(client);
        }
    } catch (const std::exception& e) {
        std::cerr << "vartalap-loadgen: " << e.what() << '\n';
        return 1;
    }
    for (int i = 0; i < pairs; ++i) {
        clients[2 * i]->start(clients[2 * i + 1].get(), window);
        clients[2 * i + 1]->start(clients[2 * i].get(), window);
    }
    asio::steady_timer timer(io);
    timer.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup)));
    timer.async_wait([&](beast::error_code) { stats.measuring = true; });
    io.run_for(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup + seconds)));
    stats.measuring = false;

    auto& l = stats.latency_us;
    std::sort(l.begin(), l.end());
    auto pct = [&](double p) { return l.empty() ? 0u : l[std::min(l.size() - 1, static_cast<std::size_t>(p * l.size()))]; };
    std::cout << "pairs " << pairs << ", window " << window << ", " << seconds << " s measured\n"
              << "delivered+acked: " << stats.delivered << " (" << static_cast<double>(stats.delivered) / seconds
              << " msg/s)\n"
              << "duplicate deliveries (not counted): " << stats.duplicates << '\n'
              << "send->deliver latency us: p50 " << pct(0.5) << ", p99 " << pct(0.99) << ", max "
              << (l.empty() ? 0u : l.back()) << '\n';
    return 0;
}
