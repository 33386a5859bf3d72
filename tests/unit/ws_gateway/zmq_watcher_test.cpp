// ZmqAsioWatcher (common/zmq_util.hpp) as the ws-gateway uses it: a ROUTER read from an
// Asio loop while replies are sent both inside the read callback and from other handlers.
// ZMQ_FD is edge-triggered, so a lost wakeup shows up here as a stalled exchange.
// Thread: the test's thread runs the io_context; a peer thread owns the DEALER.
#include "common/zmq/asio_watcher.hpp"
#include "common/zmq/socket.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>

namespace vartalap::ws_gateway {
namespace {

using namespace std::chrono_literals;

// A DEALER on its own thread sends `count` requests (keeping at most `window` unanswered)
// and counts replies; returns how many came back before the deadline.
std::size_t run_peer(zmq::context_t& context, const std::string& endpoint, std::size_t count,
                     std::size_t window) {
    zmq::socket_t dealer = make_socket(context, zmq::socket_type::dealer);
    dealer.connect(endpoint);
    std::string scratch;
    std::size_t sent = 0, received = 0;
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(20s);
    while (received < count && std::chrono::steady_clock::now() < deadline) {
        while (sent < count && sent - received < window) {
            Envelope e;
            e.kind = Kind::deliver;
            e.request_id = sent;
            if (send_envelope(dealer, e, scratch) != SendResult::ok) break;
            ++sent;
        }
        zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, 100ms);
        Incoming in;
        while (receive_envelope(dealer, false, in) == ReceiveResult::ok) ++received;
    }
    return received;
}

// Answers every request: half inside the callback, half from a posted handler (which must
// poke the watcher, as the gateway's write-completion replies do).
TEST(ZmqAsioWatcherTest, NoLostWakeupsUnderLoad) {
    zmq::context_t context;
    boost::asio::io_context io;
    zmq::socket_t router = make_socket(context, zmq::socket_type::router);
    router.bind("inproc://watcher-test");
    std::string scratch;
    std::unique_ptr<ZmqAsioWatcher> watcher;
    std::size_t answered = 0;
    constexpr std::size_t kCount = 20000;

    auto answer = [&](const Incoming& in) {
        Envelope reply;
        reply.kind = Kind::deliver_result;
        reply.request_id = in.envelope.request_id;
        ASSERT_EQ(send_envelope(router, reply, scratch, in.routing_id), SendResult::ok);
        ++answered;
    };
    watcher = std::make_unique<ZmqAsioWatcher>(io, router, [&] {
        for (int i = 0; i < 64; ++i) {
            Incoming in;
            if (receive_envelope(router, true, in) != ReceiveResult::ok) return;
            if (in.envelope.request_id % 2 == 0) {
                answer(in);
            } else {
                boost::asio::post(io, [&, in] {
                    answer(in);
                    watcher->poke();
                });
            }
        }
    });
    watcher->start();

    std::size_t received = 0;
    std::thread peer([&] { received = run_peer(context, "inproc://watcher-test", kCount, 50); });
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(25s);
    while (answered < kCount && std::chrono::steady_clock::now() < deadline)
        io.run_one_for(100ms);
    peer.join();
    watcher->stop();
    io.poll();
    EXPECT_EQ(answered, kCount);
    EXPECT_EQ(received, kCount);
}

// stop() then start() while a check is already posted: the watcher must still wake up for
// the next message (the cancelled wait's handler must not clear the new state).
TEST(ZmqAsioWatcherTest, RestartAfterStopStillWakesUp) {
    zmq::context_t context;
    boost::asio::io_context io;
    zmq::socket_t pull = make_socket(context, zmq::socket_type::pull);
    pull.bind("inproc://watcher-restart");
    zmq::socket_t push = make_socket(context, zmq::socket_type::push);
    push.connect("inproc://watcher-restart");
    std::size_t got = 0;
    ZmqAsioWatcher watcher(io, pull, [&] {
        Incoming in;
        while (receive_envelope(pull, false, in) == ReceiveResult::ok) ++got;
    });
    watcher.start();
    io.poll(); // armed: an async_wait is pending
    watcher.poke(); // a check is posted
    watcher.stop();
    watcher.start();
    io.poll(); // runs the posted check and the cancelled wait's handler
    std::string scratch;
    Envelope e;
    e.kind = Kind::deliver;
    ASSERT_EQ(send_envelope(push, e, scratch), SendResult::ok);
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(2s);
    while (got == 0 && std::chrono::steady_clock::now() < deadline) io.run_one_for(50ms);
    EXPECT_EQ(got, 1u);
    watcher.stop();
    io.poll();
}

} // namespace
} // namespace vartalap::ws_gateway
