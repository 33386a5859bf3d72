// vartalap-loadgen: measures delivered-and-acked messages per second and send→deliver
// latency through a running server, as real clients: it logs in over REST, opens one
// WebSocket per user, and keeps `--window` messages in flight per sender. Each receiver
// acknowledges every message with a CLIENT_ACK (to "server"), so the server's full
// delivery path runs: parse, route, store, deliver, ack, delete.
//
//   vartalap-loadgen --pairs 50 --seconds 10 [--window 8] [--rate 0] [--server-pid PID]
//
// Closed loop (--rate 0, the default): each sender sends its next message as soon as one of
// its messages is delivered, keeping `--window` in flight. Open loop (--rate N): N messages
// per second in total, message k due at start + k/N (a deadline schedule, so late timer
// wake-ups do not drift), dealt round-robin over the senders; `--window` stays a cap on the
// messages in flight per sender, and a message due while its sender is at the cap waits for
// a slot (counted as "deferred", and its wait shows in the due->deliver latency).
//
// Prints throughput and latency percentiles (p50/p99/max), the client's CPU and, with
// --server-pid, the server process's CPU over the measured window and per message.
// Thread: one io_context thread.
#include <CLI/CLI.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "tools/bench/measure.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <unordered_map>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace bench = vartalap::bench;

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

using bench::Stats;

class Client : public std::enable_shared_from_this<Client> {
public:
    // `frame_bytes`: set to the size of the first message frame any client sends.
    Client(asio::io_context& io, std::string user, Stats& stats, std::size_t& frame_bytes)
        : ws_(io), user_(std::move(user)), frame_bytes_(frame_bytes),
          flow_(stats, [this](Clock::time_point due) { send_next(due); }) {}

    void connect(const std::string& host, const std::string& port, const std::string& key) {
        beast::get_lowest_layer(ws_).connect(tcp::resolver(ws_.get_executor()).resolve(host, port));
        beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
        ws_.set_option(websocket::stream_base::decorator([&](websocket::request_type& r) {
            r.set("user", user_);
            r.set("accesskey", key);
        }));
        ws_.handshake(host, "/wss");
    }

    // Closed loop (paced == false): sends `window` messages now and one more per delivery.
    // Open loop: sends only what offer() hands it, at most `window` in flight.
    void start(Client* peer, int window, bool paced) {
        peer_ = peer;
        do_read();
        flow_.start(window, paced);
    }
    void offer(Clock::time_point due) { flow_.offer(due); }
    void on_delivered(const std::string& id, Clock::time_point sent) { flow_.delivered(id, sent); }
    void stop() { flow_.stop(); }

private:
    void send_next(Clock::time_point due) {
        const auto sent = Clock::now();
        const std::string id = user_ + "-" + std::to_string(++sequence_);
        flow_.sent(id, due);
        write(json{{"_v", 2.1}, {"id", id},
                   {"head", {{"type", "individual"}, {"to", peer_->user_}, {"chatid", user_},
                             {"contentType", "text"}, {"action", "message"}}},
                   {"body", {{"text", "load"}, {"sent", sent.time_since_epoch().count()}}}}
                  .dump());
        if (frame_bytes_ == 0) frame_bytes_ = queue_.back().size();
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
    std::size_t& frame_bytes_;
    Client* peer_ = nullptr;
    std::uint64_t sequence_ = 0;
    bench::Flow<std::string> flow_;
    std::deque<std::string> queue_;
    beast::flat_buffer buffer_;
};

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalap-loadgen: throughput and latency through a running Vartalap server"};
    std::string host = "127.0.0.1";
    int ws_port = 8080, http_port = 8081, pairs = 20, window = 8, server_pid = 0;
    double seconds = 10, warmup = 2, rate = 0;
    app.add_option("--host", host);
    app.add_option("--ws-port", ws_port);
    app.add_option("--http-port", http_port);
    app.add_option("--pairs", pairs, "sender/receiver pairs (each user sends to its peer)");
    app.add_option("--window", window, "messages in flight per sender");
    app.add_option("--seconds", seconds, "measured duration");
    app.add_option("--warmup", warmup, "unmeasured seconds first");
    app.add_option("--rate", rate,
                   "open loop: messages per second in total, evenly paced (0: closed loop, as fast as "
                   "--window allows)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--server-pid", server_pid, "also report this process's CPU (/proc/PID/stat) over the measured window");
    CLI11_PARSE(app, argc, argv);
    if (window < 1 || pairs < 1) {
        std::cerr << "vartalap-loadgen: --pairs and --window must be at least 1\n";
        return 2;
    }
    const bool paced = rate > 0;
    if (paced) bench::precise_timers();

    asio::io_context io(1);
    Stats stats;
    std::size_t frame_bytes = 0;
    // Fresh users each run: messages a previous run left unacked would otherwise arrive.
    const std::string run_prefix =
        "load-" + std::to_string(Clock::now().time_since_epoch().count() % 1000000007) + "-";
    std::vector<std::shared_ptr<Client>> clients;
    try {
        for (int i = 0; i < 2 * pairs; ++i) {
            const std::string user = run_prefix + std::to_string(i);
            const std::string key = login(host, std::to_string(http_port), user);
            auto client = std::make_shared<Client>(io, user, stats, frame_bytes);
            client->connect(host, std::to_string(ws_port), key);
            clients.push_back(client);
        }
    } catch (const std::exception& e) {
        std::cerr << "vartalap-loadgen: " << e.what() << '\n';
        return 1;
    }
    bench::start_pairs(clients, window, paced);
    using bench::to_duration;
    const auto start = Clock::now();
    bench::CpuWindow cpu(server_pid);
    asio::steady_timer timer(io);
    timer.expires_at(start + to_duration(warmup));
    timer.async_wait([&](beast::error_code) {
        stats.measuring = true;
        cpu.begin();
    });

    // Open loop: one timer, rearmed for the next message's due time after sending every
    // message already due.
    const bench::Schedule schedule(start, rate);
    std::uint64_t next = 0;
    asio::steady_timer pacer(io);
    std::function<void()> pace = [&] {
        const auto now = Clock::now();
        for (; schedule.due(next) <= now; ++next) clients[next % clients.size()]->offer(schedule.due(next));
        pacer.expires_at(schedule.due(next));
        pacer.async_wait([&](beast::error_code ec) {
            if (!ec) pace();
        });
    };
    if (paced) pace();

    io.run_until(start + to_duration(warmup + seconds));
    stats.measuring = false;
    cpu.end();

    bench::print_report(std::cout, stats, pairs, window, seconds, paced, rate);
    std::cout << "message frame: " << frame_bytes << " bytes\n";
    cpu.print(std::cout, stats.delivered);
    return 0;
}
