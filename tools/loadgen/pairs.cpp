// Pairs mode: 2 × pairs users, each sending to its peer with `window` messages in flight
// (closed loop) or at a total `rate` (open loop). The recipient answers each message with a
// CLIENT_ACK (the message completes on delivery) or, with --receipts, with a `delivered`
// receipt to the sender (action "state", body.ids: also the recipient's ack to the server;
// the message completes when the receipt reaches the sender), the workload of issue 10.
#include "tools/bench/kernel_counters.hpp"
#include "tools/bench/ws_client.hpp"
#include "tools/loadgen/modes.hpp"

#include <boost/asio/steady_timer.hpp>

#include <iostream>

namespace vartalap::loadgen {
namespace {

namespace bench = vartalap::bench;
namespace ws = vartalap::bench::ws;
namespace asio = boost::asio;
using bench::Clock;

class PairClient : public bench::PairMember<PairClient, std::string> {
public:
    PairClient(asio::io_context& io, std::string user, bench::Stats& stats, const std::string& text,
               std::size_t& frame_bytes)
        : PairMember(stats), connection_(std::make_shared<ws::Connection>(io, std::move(user))), text_(text),
          frame_bytes_(frame_bytes) {
        connection_->on_text([this](std::string_view frame) { on_frame(frame); });
    }
    const std::shared_ptr<ws::Connection>& connection() const { return connection_; }

    void send_next(Clock::time_point due) {
        const std::string& me = connection_->user();
        std::string id = me + "-" + std::to_string(++sequence_);
        std::string frame = ws::chat_frame(id, me, peer_->connection_->user(), text_);
        if (frame_bytes_ == 0) frame_bytes_ = frame.size();
        flow_.sent(std::move(id), due);
        connection_->send(std::move(frame));
    }

private:
    void on_frame(std::string_view text) {
        ws::for_each_message(text, [&](const ws::json& m) {
            const auto id_it = m.find("id");
            if (id_it == m.end() || !id_it->is_string()) return;
            const std::string& id = id_it->get_ref<const std::string&>();
            const std::string action = ws::head_field(m, "action");
            if (action == "state") { // a receipt for messages of ours
                const auto& body = m.value("body", ws::json::object());
                for (const auto& acked : body.value("ids", ws::json::array()))
                    if (acked.is_string()) flow_.completed(acked.get<std::string>());
            } else if (action == "message" && peer_) { // the peer's message to us
                const std::string& me = connection_->user();
                connection_->send(receipts() ? ws::receipt_frame(me + "-r" + std::to_string(++receipt_sequence_), me,
                                                                 peer_->connection_->user(), id)
                                             : ws::client_ack_frame(id));
                peer_message_arrived(id);
            }
        });
    }

    std::shared_ptr<ws::Connection> connection_;
    const std::string& text_;
    std::size_t& frame_bytes_;
    std::uint64_t sequence_ = 0, receipt_sequence_ = 0;
};

} // namespace

int run_pairs(const Options& o) {
    const bool paced = o.rate > 0;
    if (paced) bench::precise_timers();
    asio::io_context io(1);
    bench::Stats stats;
    stats.receipts = o.receipts;
    std::size_t frame_bytes = 0;
    const std::string text(o.text_bytes, 'x');
    const std::string prefix = run_prefix("load");
    std::vector<std::unique_ptr<PairClient>> clients;
    std::vector<std::shared_ptr<ws::Connection>> connections;
    std::vector<std::string> keys;
    try {
        ws::Login login(o.host, o.http_port);
        for (int i = 0; i < 2 * o.pairs; ++i) {
            const std::string user = prefix + std::to_string(i);
            keys.push_back(login.key(user));
            clients.push_back(std::make_unique<PairClient>(io, user, stats, text, frame_bytes));
            connections.push_back(clients.back()->connection());
        }
    } catch (const std::exception& e) {
        std::cerr << "vartalap-loadgen: " << e.what() << '\n';
        return 1;
    }
    if (ws::open_all(io, connections, keys, o.ws_endpoints(), "/wss", o.parallel, Clock::now() + std::chrono::seconds(30)) !=
        connections.size()) {
        std::cerr << "vartalap-loadgen: not every WebSocket opened\n";
        return 1;
    }

    bench::MeasuredWindow measured(stats, o.server_pids, o.perf_stat);
    bench::start_pairs(clients, o.window, paced);
    using bench::to_duration;
    const auto start = Clock::now();
    asio::steady_timer timer(io);
    timer.expires_at(start + to_duration(o.warmup));
    timer.async_wait([&](boost::system::error_code) { measured.begin(); });

    // Open loop: one timer, rearmed for the next message's due time after sending every
    // message already due.
    const bench::Schedule schedule(start, o.rate);
    std::uint64_t next = 0;
    asio::steady_timer pacer(io);
    std::function<void()> pace = [&] {
        const auto now = Clock::now();
        for (; schedule.due(next) <= now; ++next) clients[next % clients.size()]->offer(schedule.due(next));
        pacer.expires_at(schedule.due(next));
        pacer.async_wait([&](boost::system::error_code ec) {
            if (!ec) pace();
        });
    };
    if (paced) pace();

    io.run_until(start + to_duration(o.warmup + o.seconds));
    measured.end();
    for (auto& c : clients) c->stop();
    return measured.report(std::cout, o.pairs, o.window, o.seconds, paced, o.rate,
                           "message frame: " + std::to_string(frame_bytes) + " bytes (text " +
                               std::to_string(o.text_bytes) + " bytes), " +
                               (o.receipts ? "a delivered receipt per message" : "a CLIENT_ACK per message"));
}

} // namespace vartalap::loadgen
