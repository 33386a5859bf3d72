// The connection cap of the one HTTP listener (common/http/listener.hpp), over loopback.
#include "common/http/listener.hpp"
#include "tests/support/deadline.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <filesystem>
#include <vector>

namespace vartalap {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Runs the io_context until `done` or 5 s.
template <class Done>
void run_until(net::io_context& io, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(std::chrono::seconds(5));
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_for(std::chrono::milliseconds(10));
    }
}

// Whether the server closed `client` (a read ends with EOF or a reset) within 5 s.
bool closed_by_server(net::io_context& io, tcp::socket& client) {
    bool closed = false;
    char byte = 0;
    client.async_read_some(net::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
        closed = ec == net::error::eof || ec == net::error::connection_reset;
    });
    run_until(io, [&] { return closed; });
    return closed;
}

TEST(HttpListenerTest, ConnectionsOverTheCapAreRefused) {
    net::io_context io;
    ConnectionCount count;
    std::vector<ConnectionCount::Token> held;   // the "sessions" of accepted connections
    std::vector<tcp::socket> accepted;
    accepted.reserve(8);
    std::size_t refused = 0;
    auto listener = std::make_shared<HttpListener>(
        io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0), "test", count, 2,
        [&](tcp::socket&& socket) {
            held.push_back(count.enter());
            accepted.push_back(std::move(socket));
        },
        [&](tcp::socket&& socket) {
            ++refused;
            socket.close();
        });
    listener->run();
    const tcp::endpoint endpoint = listener->local_endpoint();

    std::vector<tcp::socket> clients;
    clients.reserve(8); // pending reads hold references into it
    for (int i = 0; i < 3; ++i) {
        clients.emplace_back(io);
        clients.back().connect(endpoint);
        run_until(io, [&] { return accepted.size() + refused == static_cast<std::size_t>(i + 1); });
    }
    EXPECT_EQ(accepted.size(), 2u);
    EXPECT_EQ(count.live(), 2u);
    EXPECT_EQ(refused, 1u);
    EXPECT_TRUE(closed_by_server(io, clients[2]));

    // One session ends: the next connection is accepted again.
    held.pop_back();
    EXPECT_EQ(count.live(), 1u);
    clients.emplace_back(io);
    clients.back().connect(endpoint);
    run_until(io, [&] { return accepted.size() == 3; });
    EXPECT_EQ(accepted.size(), 3u);
    EXPECT_EQ(refused, 1u);

    // A lower cap applies to the next accept; without a refuse handler the socket is closed.
    listener->set_max_connections(1);
    clients.emplace_back(io);
    clients.back().connect(endpoint);
    run_until(io, [&] { return refused == 2; });
    EXPECT_EQ(refused, 2u);
    EXPECT_TRUE(closed_by_server(io, clients.back()));
    EXPECT_EQ(accepted.size(), 3u);
    listener->stop();
}

TEST(HttpListenerTest, DefaultRefusalClosesAtOnce) {
    net::io_context io;
    ConnectionCount count;
    ConnectionCount::Token busy = count.enter(); // the one allowed connection is taken
    std::size_t accepted = 0;
    auto listener = std::make_shared<HttpListener>(
        io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0), "test", count, 1,
        [&](tcp::socket&&) { ++accepted; });
    listener->run();
    tcp::socket client(io);
    client.connect(listener->local_endpoint());
    EXPECT_TRUE(closed_by_server(io, client));
    EXPECT_EQ(accepted, 0u);
    listener->stop();
}

// The highest descriptor this process has open.
int highest_open_fd() {
    int highest = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        highest = std::max(highest, std::stoi(entry.path().filename().string()));
    return highest;
}

// Out of descriptors (EMFILE): the listener pauses between attempts instead of spinning,
// counts the failures, and accepts again once descriptors are free.
TEST(HttpListenerTest, OutOfDescriptorsPausesAcceptsAndResumes) {
#if defined(__SANITIZE_ADDRESS__)
    // UBSan's vptr check probes memory through a pipe (sanitizer_common's
    // IsAccessibleMemoryRange); with every descriptor taken the probe fails and it reports
    // Asio's own executor type_info as an "invalid vptr". The Release run covers this test.
    GTEST_SKIP() << "needs free descriptors for the sanitizer's own checks";
#endif
    net::io_context io;
    ConnectionCount count;
    std::vector<tcp::socket> accepted;
    accepted.reserve(8);
    auto listener = std::make_shared<HttpListener>(
        io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0), "test", count, 100,
        [&](tcp::socket&& socket) { accepted.push_back(std::move(socket)); });
    const tcp::endpoint endpoint = listener->local_endpoint();
    // Three connections wait in the backlog before the listener runs.
    std::vector<tcp::socket> clients;
    clients.reserve(3);
    for (int i = 0; i < 3; ++i) {
        clients.emplace_back(io);
        clients.back().connect(endpoint);
    }
    rlimit saved{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    // Room for exactly one more descriptor: a low limit, every free number under it taken
    // by a dup, then one of those closed.
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(highest_open_fd() + 4);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<int> fillers;
    for (int fd = ::dup(0); fd >= 0; fd = ::dup(0)) fillers.push_back(fd);
    ASSERT_EQ(errno, EMFILE);
    ASSERT_FALSE(fillers.empty());
    ::close(fillers.back());
    fillers.pop_back();
    listener->run();
    run_until(io, [&] { return listener->accept_failures() > 0; });
    // 500 ms out of descriptors: with a 100 ms pause about 5 attempts fail; a listener that
    // re-accepted at once would fail thousands of times.
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(500)) {
        io.restart();
        io.run_for(std::chrono::milliseconds(10));
    }
    const std::uint64_t failures = listener->accept_failures();
    for (const int fd : fillers) ::close(fd);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
    EXPECT_EQ(accepted.size(), 1u);
    EXPECT_GE(failures, 2u);
    EXPECT_LE(failures, 12u);
    // Descriptors again: the waiting connections are accepted.
    run_until(io, [&] { return accepted.size() == 3; });
    EXPECT_EQ(accepted.size(), 3u);
    listener->stop();
}

TEST(ConnectionCountTest, TokensCountWhileTheyLive) {
    ConnectionCount count;
    {
        auto a = count.enter();
        auto b = count.enter();
        EXPECT_EQ(count.live(), 2u);
        ConnectionCount::Token moved = std::move(a);
        EXPECT_EQ(count.live(), 2u);
        b = std::move(moved); // b's own count is released
        EXPECT_EQ(count.live(), 1u);
    }
    EXPECT_EQ(count.live(), 0u);
    ConnectionCount::Token empty;
    EXPECT_EQ(count.live(), 0u);
}

} // namespace
} // namespace vartalap
