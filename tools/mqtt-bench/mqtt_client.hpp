// The MQTT side that vartalap-mqtt-bench's modes share (pairs in main.cpp, idle and drain
// in idle_drain.cpp): one libmosquitto connection per client (TCP_NODELAY, QoS 1 to its own
// topic once connected), driven by one thread through libmosquitto's external-loop API
// (mosquitto_loop_read/write/misc) over poll(), and the options of every mode.
// Header-only. Thread: one.
#pragma once

#include <mosquitto.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace vartalap::mqtt_bench {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string host = "127.0.0.1";
    int port = 18830;
    std::vector<int> server_pids;
    bool perf_stat = false;
    // pairs
    int pairs = 20, window = 8;
    std::size_t payload_bytes = 200;
    double seconds = 10, warmup = 2, rate = 0;
    bool receipts = false;
    // idle
    int idle = 0;
    // drain
    int drain_users = 0, drain_messages = 100, drain_senders = 10;
    double drain_timeout = 120;
};

int run_idle(const Options& options);
int run_drain(const Options& options);

// At the front of every payload; the rest is filler.
struct Payload {
    std::uint64_t sequence; // the sender's message number (a receipt: the number it confirms)
    std::uint64_t kind;     // 0 a message, 1 a receipt
};

class Client {
public:
    using MessageHandler = std::function<void(const mosquitto_message&)>;

    // `clean_session` false: the broker keeps the subscription and queues QoS 1 messages
    // while the client is away (an MQTT persistent session).
    Client(std::string id, std::string topic, bool clean_session = true)
        : id_(std::move(id)), topic_(std::move(topic)) {
        mosq_ = mosquitto_new(id_.c_str(), clean_session, this);
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
            if (auto& handler = static_cast<Client*>(self)->on_message_) handler(*m);
        });
        mosquitto_publish_callback_set(mosq_, [](mosquitto*, void* self, int) {
            ++static_cast<Client*>(self)->published_;
        });
    }
    ~Client() { mosquitto_destroy(mosq_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    void on_message(MessageHandler handler) { on_message_ = std::move(handler); }
    // Starts a non-blocking connect; the CONNECT goes out when the loop finds the socket
    // writable (so many clients connect at once, as many WebSockets do in the loadgen).
    void connect(const std::string& host, int port) {
        const int rc = mosquitto_connect_async(mosq_, host.c_str(), port, 60);
        if (rc != MOSQ_ERR_SUCCESS) throw std::runtime_error(id_ + ": connect: " + mosquitto_strerror(rc));
    }
    bool connected() const { return connected_; } // CONNACK received
    bool ready() const { return subscribed_; }
    mosquitto* handle() { return mosq_; }
    const std::string& topic() const { return topic_; }
    // PUBACKs received for this client's QoS 1 publishes.
    std::uint64_t published() const { return published_; }

    void publish(const std::string& topic, const std::string& payload) {
        const int rc = mosquitto_publish(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                                         payload.data(), 1, false);
        if (rc != MOSQ_ERR_SUCCESS) ++publish_errors;
    }

    static inline std::uint64_t publish_errors = 0; // mosquitto_publish failures, all clients

private:
    void on_connect(mosquitto* m, int rc) {
        if (rc != 0) {
            std::cerr << id_ << ": CONNACK " << rc << '\n';
            return;
        }
        connected_ = true;
        mosquitto_subscribe(m, nullptr, topic_.c_str(), 1);
    }

    mosquitto* mosq_ = nullptr;
    std::string id_, topic_;
    bool connected_ = false, subscribed_ = false;
    std::uint64_t published_ = 0;
    MessageHandler on_message_;
};

// One pass of the external loop over `clients` (each Clients element dereferences to a
// Client; closed sockets are skipped): wait for socket activity until `deadline` at the
// latest, then read and write what is ready. Returns false when a connection failed.
template <class Clients>
bool poll_once(Clients& clients, std::vector<pollfd>& fds, Clock::time_point deadline) {
    fds.resize(clients.size());
    for (std::size_t i = 0; i < clients.size(); ++i) {
        mosquitto* m = clients[i]->handle();
        fds[i].fd = mosquitto_socket(m);
        fds[i].events = static_cast<short>(POLLIN | (mosquitto_want_write(m) ? POLLOUT : 0));
        fds[i].revents = 0;
    }
    const auto wait = std::max(Clock::duration::zero(), deadline - Clock::now());
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    const timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    if (ppoll(fds.data(), fds.size(), &timeout, nullptr) < 0 && errno != EINTR) return false;
    for (std::size_t i = 0; i < clients.size(); ++i) {
        if (fds[i].fd < 0) continue;
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

// Runs the loop until `done()` or `deadline`; keep-alives every 100 ms. False on a failed
// connection or a passed deadline.
template <class Clients, class Done>
bool run_until(Clients& clients, std::vector<pollfd>& fds, Clock::time_point deadline, Done&& done) {
    auto misc_at = Clock::now();
    while (!done()) {
        const auto now = Clock::now();
        if (now >= deadline) return false;
        if (now >= misc_at) {
            for (auto& c : clients) mosquitto_loop_misc(c->handle());
            misc_at = now + std::chrono::milliseconds(100);
        }
        if (!poll_once(clients, fds, std::min(deadline, misc_at))) return false;
    }
    return true;
}

} // namespace vartalap::mqtt_bench
