// vartalap-mqtt-bench: vartalap-loadgen's scenarios against an MQTT broker (mosquitto), the
// baseline DESIGN.md and issue 10 measure the server against. Benchmark only; built when
// libmosquitto is installed (see BENCHMARKS.md). Three modes, as the loadgen's:
//
//   pairs (default)  vartalap-mqtt-bench --port 18830 --pairs 20 --seconds 10 [--window 8]
//                        [--rate 0] [--receipts] [--payload-bytes 200] [--server-pid PID] [--perf-stat]
//   idle             vartalap-mqtt-bench --idle 10000 --server-pid PID       (idle_drain.cpp)
//   drain            vartalap-mqtt-bench --drain-users 1000 --drain-messages 100 (idle_drain.cpp)
//
// Pairs: 2 × pairs clients, one MQTT connection each (clean session, TCP_NODELAY). Client i
// subscribes QoS 1 to its own topic; each client publishes QoS 1 to its peer's topic. A
// message is in flight from its PUBLISH until the peer's client receives it (the broker's
// PUBACK to the sender and the receiver's PUBACK to the broker are part of QoS 1, as the
// SERVER_ACK and CLIENT_ACK are in the loadgen's run), or with --receipts until the peer's
// receipt (a QoS 1 publish back to the sender's topic) reaches the sender, the workload of
// issue 10. The payload carries a sequence number; the rest is filler.
//
// Closed loop (--rate 0): each sender keeps --window messages in flight. Open loop (--rate
// N): N messages per second in total, message k due at start + k/N, dealt round-robin over
// the senders, --window a cap on each sender's messages in flight; the same schedule and
// output (with its RESULT line) as vartalap-loadgen. Thread: one, polling every client's
// socket (mqtt_client.hpp).
#include <CLI/CLI.hpp>

#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "tools/bench/kernel_counters.hpp"
#include "tools/bench/measure.hpp"
#include "tools/mqtt-bench/mqtt_client.hpp"

namespace bench = vartalap::bench;
namespace mb = vartalap::mqtt_bench;
using Clock = bench::Clock;

namespace {

class PairClient : public bench::PairMember<PairClient, std::uint64_t> {
public:
    PairClient(std::string id, bench::Stats& stats, std::size_t payload_bytes)
        : PairMember(stats), client_(id, "vartalap/" + id), payload_(payload_bytes, 'x') {
        client_.on_message([this](const mosquitto_message& m) { on_message(m); });
    }
    mb::Client& client() { return client_; }
    mosquitto* handle() { return client_.handle(); }
    bool ready() const { return client_.ready(); }

    void send_next(Clock::time_point due) {
        flow_.sent(++sequence_, due);
        publish(peer_->client_.topic(), sequence_, 0);
    }

private:
    void publish(const std::string& topic, std::uint64_t sequence, std::uint64_t kind) {
        const mb::Payload head{sequence, kind};
        std::memcpy(payload_.data(), &head, sizeof head);
        client_.publish(topic, payload_);
    }

    void on_message(const mosquitto_message& m) {
        if (!peer_ || m.payloadlen < static_cast<int>(sizeof(mb::Payload))) return;
        mb::Payload head;
        std::memcpy(&head, m.payload, sizeof head);
        if (head.kind == 1) { // the peer's receipt for our message
            flow_.completed(head.sequence);
            return;
        }
        if (receipts()) publish(peer_->client_.topic(), head.sequence, 1); // (libmosquitto PUBACKs it)
        peer_message_arrived(head.sequence);
    }

    mb::Client client_;
    std::string payload_;
    std::uint64_t sequence_ = 0;
};

int run_pairs(const mb::Options& o) {
    const bool paced = o.rate > 0;
    if (paced) bench::precise_timers();
    bench::Stats stats;
    stats.receipts = o.receipts;
    const std::string run_prefix =
        "bench-" + std::to_string(Clock::now().time_since_epoch().count() % 1000000007) + "-";
    std::vector<std::unique_ptr<PairClient>> clients;
    std::vector<pollfd> fds;
    try {
        for (int i = 0; i < 2 * o.pairs; ++i) {
            clients.push_back(std::make_unique<PairClient>(run_prefix + std::to_string(i), stats, o.payload_bytes));
            clients.back()->client().connect(o.host, o.port);
        }
    } catch (const std::exception& e) {
        std::cerr << "vartalap-mqtt-bench: " << e.what() << '\n';
        return 1;
    }
    // Every client connected and subscribed before the first message.
    if (!mb::run_until(clients, fds, Clock::now() + std::chrono::seconds(10), [&] {
            return std::all_of(clients.begin(), clients.end(), [](const auto& c) { return c->ready(); });
        })) {
        std::cerr << "vartalap-mqtt-bench: clients did not connect and subscribe\n";
        return 1;
    }

    bench::MeasuredWindow measured(stats, o.server_pids, o.perf_stat);
    bench::start_pairs(clients, o.window, paced);
    using bench::to_duration;
    const auto start = Clock::now();
    const auto measure_from = start + to_duration(o.warmup);
    const auto end = start + to_duration(o.warmup + o.seconds);
    const bench::Schedule schedule(start, o.rate);
    std::uint64_t next = 0;
    auto misc_at = start;

    for (;;) {
        auto now = Clock::now();
        if (!stats.measuring && now >= measure_from) measured.begin();
        if (now >= end) break;
        if (paced)
            for (; schedule.due(next) <= now; ++next) clients[next % clients.size()]->offer(schedule.due(next));
        if (now >= misc_at) { // keep-alive and retries, about every 100 ms
            for (auto& c : clients) mosquitto_loop_misc(c->handle());
            misc_at = now + std::chrono::milliseconds(100);
        }
        auto deadline = std::min(end, misc_at);
        if (!stats.measuring) deadline = std::min(deadline, measure_from);
        if (paced) deadline = std::min(deadline, schedule.due(next));
        if (!mb::poll_once(clients, fds, deadline)) return 1;
    }
    measured.end();
    for (auto& c : clients) {
        c->stop();
        mosquitto_disconnect(c->handle());
    }
    if (mb::Client::publish_errors) std::cout << "publish errors: " << mb::Client::publish_errors << '\n';
    return measured.report(std::cout, o.pairs, o.window, o.seconds, paced, o.rate,
                           "message payload: " + std::to_string(o.payload_bytes) + " bytes, QoS 1" +
                               (o.receipts ? ", a receipt publish per message" : ""));
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalap-mqtt-bench: the loadgen's scenarios against an MQTT broker (QoS 1)"};
    mb::Options o;
    app.add_option("--host", o.host);
    app.add_option("--port", o.port);
    app.add_option("--pairs", o.pairs, "sender/receiver pairs (each user publishes to its peer's topic)");
    app.add_option("--window", o.window, "messages in flight per sender");
    app.add_option("--seconds", o.seconds, "measured duration");
    app.add_option("--warmup", o.warmup, "unmeasured seconds first");
    app.add_option("--rate", o.rate, "open loop: messages per second in total, evenly paced (0: closed loop)")
        ->check(CLI::NonNegativeNumber);
    app.add_flag("--receipts", o.receipts,
                 "the recipient publishes a receipt back to the sender; the sender counts the message when it arrives");
    app.add_option("--payload-bytes", o.payload_bytes, "payload size (default 200)");
    app.add_option("--server-pid", o.server_pids, "the broker's process: CPU (/proc/PID/stat) and RSS")->delimiter(',');
    app.add_flag("--perf-stat", o.perf_stat, "system calls and context switches of the server pids (perf stat)");
    app.add_option("--idle", o.idle, "idle mode: open this many subscribed connections and report broker RSS per connection");
    app.add_option("--drain-users", o.drain_users, "drain mode: this many persistent sessions receive queued messages");
    app.add_option("--drain-messages", o.drain_messages, "drain mode: queued messages per session");
    app.add_option("--drain-senders", o.drain_senders, "drain mode: clients publishing the queued messages");
    app.add_option("--drain-timeout", o.drain_timeout, "drain mode: seconds allowed for the fill and for the drain");
    CLI11_PARSE(app, argc, argv);
    if (o.window < 1 || o.pairs < 1 || o.payload_bytes < sizeof(mb::Payload)) {
        std::cerr << "vartalap-mqtt-bench: --pairs and --window must be at least 1, --payload-bytes at least "
                  << sizeof(mb::Payload) << '\n';
        return 2;
    }
    mosquitto_lib_init();
    int rc = 0;
    if (o.idle > 0) rc = mb::run_idle(o);
    else if (o.drain_users > 0) rc = mb::run_drain(o);
    else rc = run_pairs(o);
    mosquitto_lib_cleanup();
    return rc;
}
