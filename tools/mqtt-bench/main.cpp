// vartalap-mqtt-bench: the scenario of vartalap-loadgen against an MQTT broker (mosquitto),
// for the baseline DESIGN.md measures the server against. Benchmark only; built when
// libmosquitto is installed (see BENCHMARKS.md, "Against mosquitto").
//
//   vartalap-mqtt-bench --port 18830 --pairs 20 --seconds 10 [--window 8] [--rate 0]
//                       [--payload-bytes 200] [--server-pid PID]
//
// 2 × pairs clients, one MQTT connection each (clean session, TCP_NODELAY). Client i
// subscribes QoS 1 to its own topic; each client publishes QoS 1 to its peer's topic. A
// message is in flight from its PUBLISH until the peer's client receives it (the broker's
// PUBACK to the sender and the receiver's PUBACK to the broker are part of QoS 1, as the
// SERVER_ACK and CLIENT_ACK are in the loadgen's run). The payload (200 bytes by default)
// is about the size of the loadgen's message frame (which the loadgen prints) and carries
// the send time and a sequence number; the rest is filler.
//
// Closed loop (--rate 0): each sender keeps --window messages in flight. Open loop (--rate
// N): N messages per second in total, message k due at start + k/N, dealt round-robin over
// the senders, --window a cap on each sender's messages in flight; the same schedule and
// output as vartalap-loadgen. Thread: one, polling every client's socket (libmosquitto's
// external-loop API: mosquitto_loop_read/write/misc).
#include <CLI/CLI.hpp>
#include <mosquitto.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tools/bench/measure.hpp"

namespace bench = vartalap::bench;
using Clock = bench::Clock;

namespace {

using bench::Stats;

struct Payload { // at the front of every payload; the rest is filler
    std::int64_t sent;  // steady_clock ticks at the sender's publish
    std::uint64_t sequence;
};

class Client {
public:
    Client(std::string id, std::string topic, Stats& stats, std::size_t payload_bytes)
        : id_(std::move(id)), topic_(std::move(topic)), payload_(payload_bytes, 'x'),
          flow_(stats, [this](Clock::time_point due) { send_next(due); }) {
        mosq_ = mosquitto_new(id_.c_str(), true, this);
        if (!mosq_) throw std::runtime_error("mosquitto_new failed");
        mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
        mosquitto_int_option(mosq_, MOSQ_OPT_SEND_MAXIMUM, 65535); // the window is ours to cap
        mosquitto_connect_callback_set(mosq_, [](mosquitto* m, void* self, int rc) {
            static_cast<Client*>(self)->on_connect(m, rc);
        });
        mosquitto_subscribe_callback_set(mosq_, [](mosquitto*, void* self, int, int, const int*) {
            static_cast<Client*>(self)->subscribed_ = true;
        });
        mosquitto_message_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m) {
            static_cast<Client*>(self)->on_message(m);
        });
    }
    ~Client() { mosquitto_destroy(mosq_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    void connect(const std::string& host, int port) {
        const int rc = mosquitto_connect(mosq_, host.c_str(), port, 60);
        if (rc != MOSQ_ERR_SUCCESS) throw std::runtime_error(id_ + ": connect: " + mosquitto_strerror(rc));
    }
    bool ready() const { return subscribed_; }
    mosquitto* handle() { return mosq_; }

    void start(Client* peer, int window, bool paced) {
        peer_ = peer;
        flow_.start(window, paced);
    }
    void offer(Clock::time_point due) { flow_.offer(due); }
    // The peer received our message `sequence`, sent at `sent`.
    void on_delivered(std::uint64_t sequence, Clock::time_point sent) { flow_.delivered(sequence, sent); }
    void stop() { flow_.stop(); }

private:
    void on_connect(mosquitto* m, int rc) {
        if (rc != 0) {
            std::cerr << id_ << ": CONNACK " << rc << '\n';
            return;
        }
        mosquitto_subscribe(m, nullptr, topic_.c_str(), 1);
    }

    void send_next(Clock::time_point due) {
        const Payload head{Clock::now().time_since_epoch().count(), ++sequence_};
        std::memcpy(payload_.data(), &head, std::min(sizeof head, payload_.size()));
        flow_.sent(head.sequence, due);
        const int rc = mosquitto_publish(mosq_, nullptr, peer_->topic_.c_str(), static_cast<int>(payload_.size()),
                                         payload_.data(), 1, false);
        if (rc != MOSQ_ERR_SUCCESS) ++publish_errors;
    }

    void on_message(const mosquitto_message* m) {
        if (!peer_ || m->payloadlen < static_cast<int>(sizeof(Payload))) return;
        Payload head;
        std::memcpy(&head, m->payload, sizeof head);
        peer_->on_delivered(head.sequence, Clock::time_point(Clock::duration(head.sent)));
    }

    mosquitto* mosq_ = nullptr;
    std::string id_, topic_;
    std::string payload_;
    Client* peer_ = nullptr;
    std::uint64_t sequence_ = 0;
    bool subscribed_ = false;
    bench::Flow<std::uint64_t> flow_;

public:
    static inline std::uint64_t publish_errors = 0; // mosquitto_publish failures, all clients
};

// One pass of the external loop: wait for socket activity until `deadline` at the latest,
// then read and write what is ready. Returns false when a connection failed.
bool poll_once(std::vector<std::unique_ptr<Client>>& clients, std::vector<pollfd>& fds, Clock::time_point deadline) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
        fds[i].fd = mosquitto_socket(clients[i]->handle());
        fds[i].events = static_cast<short>(POLLIN | (mosquitto_want_write(clients[i]->handle()) ? POLLOUT : 0));
        fds[i].revents = 0;
    }
    auto wait = std::max(Clock::duration::zero(), deadline - Clock::now());
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    const timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    if (ppoll(fds.data(), fds.size(), &timeout, nullptr) < 0 && errno != EINTR) return false;
    for (std::size_t i = 0; i < clients.size(); ++i) {
        mosquitto* m = clients[i]->handle();
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (const int rc = mosquitto_loop_read(m, 1); rc != MOSQ_ERR_SUCCESS) {
                std::cerr << "vartalap-mqtt-bench: read: " << mosquitto_strerror(rc) << '\n';
                return false;
            }
        }
        if (mosquitto_want_write(m)) {
            if (const int rc = mosquitto_loop_write(m, 1); rc != MOSQ_ERR_SUCCESS) {
                std::cerr << "vartalap-mqtt-bench: write: " << mosquitto_strerror(rc) << '\n';
                return false;
            }
        }
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalap-mqtt-bench: the loadgen's one-to-one scenario against an MQTT broker (QoS 1)"};
    std::string host = "127.0.0.1";
    int port = 18830, pairs = 20, window = 8, server_pid = 0;
    std::size_t payload_bytes = 200;
    double seconds = 10, warmup = 2, rate = 0;
    app.add_option("--host", host);
    app.add_option("--port", port);
    app.add_option("--pairs", pairs, "sender/receiver pairs (each user publishes to its peer's topic)");
    app.add_option("--window", window, "messages in flight per sender (until the peer receives them)");
    app.add_option("--seconds", seconds, "measured duration");
    app.add_option("--warmup", warmup, "unmeasured seconds first");
    app.add_option("--rate", rate, "open loop: messages per second in total, evenly paced (0: closed loop)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--payload-bytes", payload_bytes,
                   "payload size (default 200: about vartalap-loadgen's message frame, whose size it prints)");
    app.add_option("--server-pid", server_pid, "also report this process's CPU (/proc/PID/stat) over the measured window");
    CLI11_PARSE(app, argc, argv);
    if (window < 1 || pairs < 1 || payload_bytes < sizeof(Payload)) {
        std::cerr << "vartalap-mqtt-bench: --pairs and --window must be at least 1, --payload-bytes at least "
                  << sizeof(Payload) << '\n';
        return 2;
    }
    const bool paced = rate > 0;
    if (paced) bench::precise_timers();

    mosquitto_lib_init();
    Stats stats;
    const std::string run_prefix =
        "bench-" + std::to_string(Clock::now().time_since_epoch().count() % 1000000007) + "-";
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<pollfd> fds(2 * static_cast<std::size_t>(pairs));
    try {
        for (int i = 0; i < 2 * pairs; ++i) {
            const std::string id = run_prefix + std::to_string(i);
            clients.push_back(std::make_unique<Client>(id, "vartalap/" + id, stats, payload_bytes));
            clients.back()->connect(host, port);
        }
    } catch (const std::exception& e) {
        std::cerr << "vartalap-mqtt-bench: " << e.what() << '\n';
        return 1;
    }
    // Every client connected and subscribed before the first message.
    const auto setup_deadline = Clock::now() + std::chrono::seconds(10);
    while (!std::all_of(clients.begin(), clients.end(), [](const auto& c) { return c->ready(); })) {
        if (Clock::now() > setup_deadline || !poll_once(clients, fds, Clock::now() + std::chrono::milliseconds(10))) {
            std::cerr << "vartalap-mqtt-bench: clients did not connect and subscribe\n";
            return 1;
        }
    }

    bench::start_pairs(clients, window, paced);
    using bench::to_duration;
    const auto start = Clock::now();
    const auto measure_from = start + to_duration(warmup);
    const auto end = start + to_duration(warmup + seconds);
    const bench::Schedule schedule(start, rate);
    std::uint64_t next = 0;
    bench::CpuWindow cpu(server_pid);
    auto misc_at = start;

    for (;;) {
        auto now = Clock::now();
        if (!stats.measuring && now >= measure_from) {
            stats.measuring = true;
            cpu.begin();
        }
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
        if (!poll_once(clients, fds, deadline)) return 1;
    }
    stats.measuring = false;
    cpu.end();
    for (auto& c : clients) {
        c->stop();
        mosquitto_disconnect(c->handle());
    }

    bench::print_report(std::cout, stats, pairs, window, seconds, paced, rate);
    std::cout << "message payload: " << payload_bytes << " bytes, QoS 1\n";
    if (Client::publish_errors) std::cout << "publish errors: " << Client::publish_errors << '\n';
    cpu.print(std::cout, stats.delivered);
    clients.clear();
    mosquitto_lib_cleanup();
    return 0;
}
