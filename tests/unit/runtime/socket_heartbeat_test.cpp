// ZMTP heartbeats as make_socket sets them (common/zmq/socket.hpp): a peer that goes silent
// without closing its TCP connection (a host that lost power, a cut link) leaves a PUSH's
// round-robin, so messages go to the live peers instead of vanishing onto that connection.
// The silent peer is a PULL behind a TCP relay that stops moving bytes but keeps its sockets
// open: no FIN, no RST, as when the power goes.
// Thread: the test's thread owns the ZeroMQ sockets; the relay runs on its own thread.
#include "common/zmq/socket.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <atomic>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace vartalap {
namespace {

using namespace std::chrono_literals;

// Listens on 127.0.0.1 (a kernel port) and relays one connection to `target_port` both ways
// until freeze(): from then on it neither reads nor writes, and closes nothing until
// destroyed.
class FreezingRelay {
public:
    explicit FreezingRelay(int target_port) : target_port_(target_port) {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof(address);
        if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
            ::listen(listener_, 4) != 0 ||
            ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
            throw std::runtime_error("relay: cannot listen");
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~FreezingRelay() {
        stop_ = true;
        thread_.join();
        for (int fd : {listener_, client_, upstream_})
            if (fd >= 0) ::close(fd);
    }
    int port() const { return port_; }
    void freeze() { frozen_ = true; }

private:
    void run() {
        while (!stop_) {
            if (frozen_) {
                std::this_thread::sleep_for(10ms); // holds the sockets, moves nothing
                continue;
            }
            pollfd fds[3] = {{listener_, POLLIN, 0}, {client_, POLLIN, 0}, {upstream_, POLLIN, 0}};
            if (::poll(fds, 3, 10) <= 0) continue;
            if ((fds[0].revents & POLLIN) && client_ < 0) {
                client_ = ::accept(listener_, nullptr, nullptr);
                upstream_ = ::socket(AF_INET, SOCK_STREAM, 0);
                sockaddr_in target{};
                target.sin_family = AF_INET;
                target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                target.sin_port = htons(static_cast<std::uint16_t>(target_port_));
                if (::connect(upstream_, reinterpret_cast<sockaddr*>(&target), sizeof(target)) != 0) return;
            }
            if (fds[1].revents & POLLIN) forward(client_, upstream_);
            if (fds[2].revents & POLLIN) forward(upstream_, client_);
        }
    }
    static void forward(int from, int to) {
        char buffer[16384];
        const ssize_t n = ::read(from, buffer, sizeof(buffer));
        for (ssize_t done = 0; n > 0 && done < n;) {
            const ssize_t w = ::write(to, buffer + done, static_cast<std::size_t>(n - done));
            if (w <= 0) return;
            done += w;
        }
    }

    int target_port_;
    int listener_ = -1, client_ = -1, upstream_ = -1;
    int port_ = 0;
    std::atomic<bool> frozen_{false}, stop_{false};
    std::thread thread_;
};

int port_of(zmq::socket_t& socket) {
    const std::string endpoint = last_endpoint(socket);
    return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

// Sends `count` messages through `push` (ZMQ_IMMEDIATE), then counts what `live` receives
// within a short wait.
int sent_and_received(zmq::socket_t& push, zmq::socket_t& live, int count) {
    for (int i = 0; i < count; ++i)
        if (!push.send(zmq::str_buffer("m"), zmq::send_flags::dontwait)) return -1;
    int received = 0;
    const auto until = std::chrono::steady_clock::now() + test::scaled(300ms);
    while (received < count && std::chrono::steady_clock::now() < until) {
        zmq::message_t message;
        if (live.recv(message, zmq::recv_flags::dontwait)) ++received;
        else std::this_thread::sleep_for(1ms);
    }
    return received;
}

// A PUSH connected to a live PULL and, through the relay, to one that goes silent; whether,
// within `deadline` after the freeze, a round of 10 messages all reaches the live one.
bool silent_peer_left_the_round_robin(const SocketOptions& options, std::chrono::milliseconds deadline) {
    zmq::context_t context;
    zmq::socket_t live = make_socket(context, zmq::socket_type::pull);
    zmq::socket_t silent = make_socket(context, zmq::socket_type::pull);
    live.bind("tcp://127.0.0.1:*");
    silent.bind("tcp://127.0.0.1:*");
    FreezingRelay relay(port_of(silent));
    zmq::socket_t push = make_socket(context, zmq::socket_type::push, options);
    push.set(zmq::sockopt::immediate, 1);
    push.connect(last_endpoint(live));
    push.connect("tcp://127.0.0.1:" + std::to_string(relay.port()));

    // Both peers take messages (the round-robin has both) before the freeze.
    bool silent_got_one = false;
    const auto both_until = std::chrono::steady_clock::now() + test::scaled(5s);
    while (!silent_got_one && std::chrono::steady_clock::now() < both_until) {
        push.send(zmq::str_buffer("m"), zmq::send_flags::dontwait);
        zmq::message_t message;
        while (live.recv(message, zmq::recv_flags::dontwait)) {
        }
        silent_got_one = silent.recv(message, zmq::recv_flags::dontwait).has_value();
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(silent_got_one) << "the relayed peer never connected";
    zmq::message_t message;
    while (live.recv(message, zmq::recv_flags::dontwait)) {
    }

    relay.freeze();
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until)
        if (sent_and_received(push, live, 10) == 10) return true;
    return false;
}

TEST(SocketHeartbeat, APeerThatGoesSilentWithoutClosingLeavesThePushRoundRobin) {
    SocketOptions fast;
    fast.heartbeat_ivl_ms = 100;
    fast.heartbeat_timeout_ms = 300;
    EXPECT_TRUE(silent_peer_left_the_round_robin(fast, test::scaled(5s)));
}

TEST(SocketHeartbeat, WithoutHeartbeatsTheSilentPeerKeepsTakingMessages) {
    // The control: what the heartbeat changes. Every other message still goes to the frozen
    // connection, so no round of 10 reaches the live peer whole.
    SocketOptions none;
    none.heartbeat_ivl_ms = 0;
    EXPECT_FALSE(silent_peer_left_the_round_robin(none, 1500ms));
}

TEST(SocketHeartbeat, MakeSocketSetsTheDefaults) {
    zmq::context_t context;
    zmq::socket_t push = make_socket(context, zmq::socket_type::push);
    EXPECT_EQ(push.get(zmq::sockopt::heartbeat_ivl), SocketOptions{}.heartbeat_ivl_ms);
    EXPECT_EQ(push.get(zmq::sockopt::heartbeat_timeout), SocketOptions{}.heartbeat_timeout_ms);
}

} // namespace
} // namespace vartalap
