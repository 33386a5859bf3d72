// LoopDaemon and EventLoop: hooks run in order on one thread, messages wake a daemon
// without waiting for its tick, daemons sharing one event loop pass messages to each other,
// and stop ends each daemon once. Real ZeroMQ sockets over inproc://.
// Thread: the test's; the daemons' hooks on their event loop.
#include "common/zmq/socket.hpp"
#include "daemons/event_loop.hpp"
#include "daemons/loop_daemon.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

namespace vartalap {
namespace {

using namespace std::chrono_literals;

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds deadline = 5s) {
    const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(deadline);
    while (std::chrono::steady_clock::now() < until) {
        if (done()) return true;
        std::this_thread::yield();
    }
    return done();
}

// Receives on a PULL at `endpoint`; forwards each envelope to `next` if set.
class Relay final : public LoopDaemon {
public:
    Relay(zmq::context_t& zmq, const std::string& name, EventLoop* loop, std::chrono::milliseconds tick)
        : LoopDaemon(name, loop), zmq_(zmq), tick_(tick) {
        pull_ = make_socket(zmq_, zmq::socket_type::pull);
        pull_.bind("inproc://" + name);
    }
    void forward_to(const std::string& name) {
        push_ = make_socket(zmq_, zmq::socket_type::push);
        push_.connect("inproc://" + name);
    }
    void bind() override {}
    void connect() override {}

    std::atomic<int> received{0};
    std::atomic<int> turns{0};
    std::atomic<int> starts{0};
    std::atomic<int> stops{0};
    std::atomic<bool> wrong_thread{false};

protected:
    void on_start() override {
        thread_ = std::this_thread::get_id();
        ++starts;
        loop_.add({.socket = pull_});
    }
    std::chrono::milliseconds before_turn() override {
        check_thread();
        return tick_;
    }
    void on_turn(std::span<Incoming> batch) override {
        check_thread();
        ++turns;
        for (Incoming& incoming : batch) {
            ++received;
            if (push_) send_envelope(push_, incoming.envelope, scratch_);
        }
    }
    void on_stop() override {
        check_thread();
        ++stops;
        pull_.close();
        if (push_) push_.close();
    }

private:
    void check_thread() {
        if (std::this_thread::get_id() != thread_) wrong_thread = true;
    }
    zmq::context_t& zmq_;
    std::chrono::milliseconds tick_;
    zmq::socket_t pull_;
    zmq::socket_t push_;
    std::string scratch_;
    std::thread::id thread_;
};

Envelope message(int i) {
    Envelope envelope;
    envelope.kind = Kind::deliver;
    envelope.id = "m" + std::to_string(i);
    return envelope;
}

TEST(LoopDaemonTest, OwnThreadReceivesWithoutWaitingForItsTick) {
    zmq::context_t zmq(1);
    Relay relay(zmq, "own", nullptr, 10min); // only a message can end the wait
    zmq::socket_t push = make_socket(zmq, zmq::socket_type::push);
    push.connect("inproc://own");
    relay.start();
    std::string scratch;
    for (int i = 0; i < 500; ++i) ASSERT_EQ(send_envelope(push, message(i), scratch), SendResult::ok);
    EXPECT_TRUE(eventually([&] { return relay.received == 500; })) << relay.received;
    // A message after the loop went back to waiting wakes it too.
    EXPECT_TRUE(eventually([&] { return relay.turns > 0; }));
    ASSERT_EQ(send_envelope(push, message(500), scratch), SendResult::ok);
    EXPECT_TRUE(eventually([&] { return relay.received == 501; }));
    push.close();
    relay.request_stop();
    relay.join();
    EXPECT_EQ(relay.starts, 1);
    EXPECT_EQ(relay.stops, 1);
    EXPECT_FALSE(relay.wrong_thread);
}

TEST(LoopDaemonTest, DaemonsSharingOneLoopPassMessagesAndStopInAnyOrder) {
    zmq::context_t zmq(1);
    EventLoop loop("shared");
    Relay first(zmq, "first", &loop, 10min);
    Relay second(zmq, "second", &loop, 10min);
    first.forward_to("second");
    zmq::socket_t push = make_socket(zmq, zmq::socket_type::push);
    push.connect("inproc://first");
    loop.start();
    first.start();
    second.start();
    std::string scratch;
    for (int round = 0; round < 20; ++round) {
        // A burst, then a pause: the second daemon is woken by the first on the same thread.
        for (int i = 0; i < 50; ++i) ASSERT_EQ(send_envelope(push, message(i), scratch), SendResult::ok);
        EXPECT_TRUE(eventually([&] { return second.received == (round + 1) * 50; })) << second.received;
    }
    push.close();
    second.request_stop();
    second.join();
    first.request_stop();
    first.join();
    loop.stop();
    EXPECT_EQ(first.stops, 1);
    EXPECT_EQ(second.stops, 1);
    EXPECT_FALSE(first.wrong_thread);
    EXPECT_FALSE(second.wrong_thread);
}

TEST(LoopDaemonTest, TheTickRunsTurnsWithoutMessages) {
    zmq::context_t zmq(1);
    Relay relay(zmq, "ticking", nullptr, 1ms);
    relay.start();
    EXPECT_TRUE(eventually([&] { return relay.turns >= 20; })) << relay.turns;
    EXPECT_EQ(relay.received, 0);
    relay.request_stop();
    relay.join();
    EXPECT_EQ(relay.stops, 1);
}

TEST(LoopDaemonTest, StopBeforeTheFirstTurnSkipsStartAndStop) {
    zmq::context_t zmq(1);
    EventLoop loop("idle");
    Relay relay(zmq, "never", &loop, 10min);
    relay.start();        // posted, not yet run: the loop has not started
    relay.request_stop();
    loop.start();
    relay.join();
    loop.stop();
    EXPECT_EQ(relay.starts, 0);
    EXPECT_EQ(relay.stops, 0);
}

} // namespace
} // namespace vartalap
