// Issue 12, "Resource exhaustion", the gateways' network part, against real daemons: each
// test holds a resource as an attacker would, sees the refusal, and checks that another
// user is unaffected. docs/SECURITY.md lists them ("Abuse cases").
//
// Thread: the test's. The attackers are plain blocking sockets with receive timeouts.
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <optional>
#include <thread>
#include <string>
#include <vector>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMiB = 1 << 20;

// A TCP connection from `source` (a loopback address) to 127.0.0.1:`port`, with a 5 s
// receive timeout (scaled); invalid (fd < 0) if the connect failed.
class RawConnection {
public:
    RawConnection(int port, const char* source = "127.0.0.1") {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) return;
        const auto timeout = test::scaled(std::chrono::milliseconds(5000));
        timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in from{};
        from.sin_family = AF_INET;
        ::inet_pton(AF_INET, source, &from.sin_addr);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(static_cast<std::uint16_t>(port));
        ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
            ::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    RawConnection(RawConnection&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;
    ~RawConnection() {
        if (fd_ >= 0) ::close(fd_);
    }
    bool ok() const { return fd_ >= 0; }
    bool send(const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }
    // The response head (up to the blank line), or nullopt on close or timeout first.
    std::optional<std::string> read_head() {
        std::string all;
        char byte = 0;
        while (all.find("\r\n\r\n") == std::string::npos) {
            if (::recv(fd_, &byte, 1, 0) != 1) return std::nullopt;
            all.push_back(byte);
        }
        return all;
    }
    // Everything the server sends until it closes (or the receive timeout passes: then
    // nullopt).
    std::optional<std::string> read_until_closed() {
        std::string all;
        char buffer[4096];
        for (;;) {
            const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n == 0) return all;
            if (n < 0) return errno == ECONNRESET ? std::optional<std::string>(all) : std::nullopt;
            all.append(buffer, static_cast<std::size_t>(n));
        }
    }

private:
    int fd_ = -1;
};

// The header of a POST /send whose body has `length` bytes.
std::string send_header(std::size_t length, const LoggedIn& who) {
    return "POST /send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "user: " + who.user + "\r\naccesskey: " + who.access_key +
           "\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
}

// The value of the first sample of `name` on the metrics port at `host_port`.
std::optional<double> metric(const std::string& host_port, const std::string& name) {
    const HttpResponse response = http_at(host_port, "GET", "/metrics");
    const std::string key = "\n" + name + "{";
    const auto at = response.body.find(key);
    if (response.status != 200 || at == std::string::npos) return std::nullopt;
    const auto value = response.body.find("} ", at) + 2;
    return std::stod(response.body.substr(value, response.body.find('\n', value) - value));
}

// Polls `name` (published about every 250 ms) until it equals `expected` or 10 s (scaled)
// pass.
bool wait_for_metric(const std::string& host_port, const std::string& name, double expected) {
    const auto deadline = std::chrono::steady_clock::now() + test::scaled(std::chrono::seconds(10));
    while (std::chrono::steady_clock::now() < deadline) {
        if (metric(host_port, name) == expected) return true;
        std::this_thread::sleep_for(10ms); // the poll's period, not a synchronisation
    }
    return false;
}

// REST: slow uploads that declare big bodies hold the process's body budget; beyond it a
// big request gets 503 "server busy, retry" with Retry-After at once, while another
// user's small send still passes; once the uploads go, big requests pass again.
TEST(ExhaustionTest, RestBodyBudgetRefusesBigUploadsButNotSmallSends) {
    TempDir dir;
    RunningSystem system(local_topology(dir.path(), [](topology::Topology& t) {
        for (auto& daemon : t.daemons)
            if (daemon.kind == "rest-gateway")
                daemon.options.insert_or_assign("max_buffered_body_bytes",
                                                static_cast<std::int64_t>(4 * kMiB));
    }));
    const std::string metrics = system.endpoint("rest-1", "metrics");
    const std::string buffered = "vartalap_rest_gateway_buffered_body_bytes";
    const LoggedIn mallory = system.login("+911000000301");
    const LoggedIn alice = system.login("+911000000302");
    const LoggedIn bob = system.login("+911000000303");

    // Three uploads of 1 MiB each that never finish: 3 of the 3.5 MiB big bodies may use.
    std::vector<RawConnection> uploads;
    for (int i = 0; i < 3; ++i) {
        uploads.emplace_back(system.rest_port());
        ASSERT_TRUE(uploads.back().ok());
        ASSERT_TRUE(uploads.back().send(send_header(kMiB, mallory) + "[{\"id\":"));
    }
    ASSERT_TRUE(wait_for_metric(metrics, buffered, 3.0 * kMiB));

    // A fourth is refused before its body is read.
    RawConnection refused(system.rest_port());
    ASSERT_TRUE(refused.ok());
    ASSERT_TRUE(refused.send(send_header(kMiB, mallory)));
    const auto answer = refused.read_until_closed();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->rfind("HTTP/1.1 503", 0), 0u) << *answer;
    EXPECT_NE(answer->find("\r\nRetry-After: 1\r\n"), std::string::npos) << *answer;
    EXPECT_NE(answer->find("{\"error\":\"server busy, retry\"}"), std::string::npos) << *answer;

    // Another user's small send passes.
    const HttpResponse small =
        system.http("POST", "/send", text_message("ex-1", bob.user, "hi").dump(), auth(alice));
    EXPECT_EQ(small.status, 200) << small.body;
    EXPECT_TRUE(wait_for_metric(metrics, "vartalap_rest_gateway_body_budget_refused_total", 1.0));

    // The uploads go: a big body is read again (and refused for what it is, not for room).
    uploads.clear();
    ASSERT_TRUE(wait_for_metric(metrics, buffered, 0.0));
    const HttpResponse big = system.http("POST", "/send", std::string(kMiB, ' '), auth(alice));
    EXPECT_EQ(big.status, 400) << big.body;
}

// ws-gateway: one source address opens many connections and never sends an upgrade; past
// max_handshakes_per_source its connections are closed at once, and a client from another
// address (127.0.0.2) still upgrades.
TEST(ExhaustionTest, OneSourceCannotHoldAllPendingHandshakes) {
    constexpr int kCap = 8;
    TempDir dir;
    RunningSystem system(local_topology(dir.path(), [](topology::Topology& t) {
        for (auto& daemon : t.daemons)
            if (daemon.kind == "ws-gateway")
                daemon.options.insert_or_assign("max_handshakes_per_source",
                                                static_cast<std::int64_t>(kCap));
    }));
    const LoggedIn alice = system.login("+911000000311");

    // kCap + 4 half-open connections from 127.0.0.1; accepts are in order, so the last
    // four are the ones closed.
    std::vector<RawConnection> idle;
    for (int i = 0; i < kCap + 4; ++i) {
        idle.emplace_back(system.ws_port());
        ASSERT_TRUE(idle.back().ok()) << i;
    }
    for (int i = kCap; i < kCap + 4; ++i) {
        const auto closed = idle[static_cast<std::size_t>(i)].read_until_closed();
        ASSERT_TRUE(closed) << "connection " << i << " was not closed";
        EXPECT_EQ(*closed, "");
    }
    EXPECT_TRUE(wait_for_metric(system.endpoint("ws-1", "metrics"),
                                "vartalap_ws_gateway_handshakes_refused_per_source_total", 4.0));

    // Another address upgrades.
    RawConnection other(system.ws_port(), "127.0.0.2");
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE(other.send("GET /wss HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                           "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nuser: " + alice.user +
                           "\r\naccesskey: " + alice.access_key + "\r\n\r\n"));
    const auto head = other.read_head();
    ASSERT_TRUE(head);
    EXPECT_EQ(head->rfind("HTTP/1.1 101", 0), 0u) << *head;

    // The idle ones go: 127.0.0.1 connects and upgrades again.
    idle.clear();
    const auto deadline = std::chrono::steady_clock::now() + test::scaled(std::chrono::seconds(10));
    int status = 0;
    while (status != 101 && std::chrono::steady_clock::now() < deadline) {
        auto client = WsClient::connect("127.0.0.1", system.ws_port(), "/wss", auth(alice));
        status = std::holds_alternative<WsClient>(client) ? 101 : std::get<int>(client);
    }
    EXPECT_EQ(status, 101);
}

} // namespace
} // namespace vartalap::testing
