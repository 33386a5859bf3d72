// `vartalapctl up` as a real child process: it serves, and SIGTERM drains and exits 0.
#include "tests/integration/support/child_process.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <memory>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <regex>
#include <sstream>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;

TEST(VartalapctlTest, UpServesAndSigtermDrainsWithinFiveSeconds) {
    TempDir dir;
    const auto file = dir.path() / "test.toml";
    write_local_topology(file, dir.path() / "data");
    Child child({VARTALAPCTL_PATH, "up", file.string()});
    int ws_port = 0, rest_port = 0;
    while (auto l = child.line(20s)) {
        std::smatch m;
        if (std::regex_match(*l, m, std::regex(R"(listening (\S+) listen 127\.0\.0\.1:(\d+))"))) {
            (m[1].str().rfind("ws", 0) == 0 ? ws_port : rest_port) = std::stoi(m[2]);
        }
        if (*l == "ready") break;
    }
    ASSERT_NE(ws_port, 0);
    ASSERT_NE(rest_port, 0);
    auto alive = http_request("127.0.0.1", rest_port, "GET", "/alive", "", {});
    EXPECT_EQ(alive.status, 200);

    // A connected client is closed with 1001 (going away) by the drain.
    auto login = http_request("127.0.0.1", rest_port, "POST", "/login",
                              R"({"username":"dora","authToken":"x"})", {});
    ASSERT_EQ(login.status, 200);
    const auto key = nlohmann::json::parse(login.body)["accesskey"].get<std::string>();
    auto ws = WsClient::connect("127.0.0.1", ws_port, "/wss", {{"user", "dora"}, {"accesskey", key}});
    ASSERT_TRUE(std::holds_alternative<WsClient>(ws));

    const auto started = std::chrono::steady_clock::now();
    child.signal(SIGTERM);
    EXPECT_FALSE(std::get<WsClient>(ws).read_text(5s));
    EXPECT_EQ(std::get<WsClient>(ws).close_code(), 1001);
    auto status = child.wait_exit(5s);
    ASSERT_TRUE(status) << "vartalapctl did not exit within 5 s of SIGTERM";
    EXPECT_EQ(*status, 0);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

// Starts `vartalapctl up FILE` and waits for its "ready" line.
std::unique_ptr<Child> start_up(const std::filesystem::path& file) {
    auto child = std::make_unique<Child>(std::vector<std::string>{VARTALAPCTL_PATH, "up", file.string()},
                                         /*merge_stderr=*/true);
    while (auto l = child->line(20s))
        if (*l == "ready") return child;
    ADD_FAILURE() << "vartalapctl up did not become ready";
    return nullptr;
}

void rewrite(const std::filesystem::path& file, const std::vector<std::pair<std::string, std::string>>& edits) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    std::string toml = text.str();
    for (const auto& [pattern, replacement] : edits) toml = std::regex_replace(toml, std::regex(pattern), replacement);
    std::ofstream(file) << toml;
}

TEST(VartalapctlTest, SighupReloadsTheLogLevelAndLimitsAndSaysWhatNeedsARestart) {
    TempDir dir;
    const auto file = dir.path() / "test.toml";
    write_local_topology(file, dir.path() / "data");
    auto child = start_up(file);
    ASSERT_TRUE(child);
    rewrite(file, {{R"(log_level\s*=\s*"[a-z]+")", "log_level = \"debug\""},
                   {R"(# ack_timeout_ms = 10000)", "ack_timeout_ms = 5000"},
                   {R"(# window = 64)", "window = 16"},
                   {R"(# write_queue_limit = 256)", "write_queue_limit = 128"},
                   {R"(pull = "inproc://router-1")", R"(pull = "inproc://router-1b")"}});
    child->signal(SIGHUP);
    // Each expected line, in any order.
    std::vector<std::string> expected = {
        "SIGHUP: reloaded",                                      // and the level change
        "session-1: SIGHUP: ack_timeout_ms 10000 -> 5000, window 64 -> 16",
        "ws-1: SIGHUP: write_queue_limit 256 -> 128",
        "persistence-1: SIGHUP: no limit changed",
        "router-1: SIGHUP: a message-router has no limits to reload",
        "SIGHUP: router-1: endpoints changed: needs a restart to apply",
    };
    std::vector<std::string> seen;
    while (!expected.empty()) {
        auto l = child->line(10s);
        if (!l) break;
        seen.push_back(*l);
        std::erase_if(expected, [&](const std::string& want) {
            if (l->find(want) == std::string::npos) return false;
            return want != "SIGHUP: reloaded" || l->find("-> debug") != std::string::npos;
        });
    }
    for (const auto& missing : expected) ADD_FAILURE() << "no line with: " << missing;
    if (!expected.empty())
        for (const auto& line : seen) std::cerr << "  seen: " << line << '\n';
    child->signal(SIGTERM);
    auto status = child->wait_exit(5s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 0);
}

// Under systemd (NOTIFY_SOCKET and WATCHDOG_USEC set) the process says READY=1 and pings the
// watchdog at half its period while every daemon loop publishes its heartbeat.
TEST(VartalapctlTest, NotifiesReadyAndPingsTheWatchdog) {
    TempDir dir;
    const auto file = dir.path() / "test.toml";
    write_local_topology(file, dir.path() / "data");
    const std::string socket_path = (dir.path() / "notify").string();
    const int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(notify, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    ASSERT_LT(socket_path.size(), sizeof(address.sun_path));
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
    ASSERT_EQ(::bind(notify, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);

    ::setenv("NOTIFY_SOCKET", socket_path.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "1000000", 1); // pings every 500 ms
    auto child = start_up(file);
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ASSERT_TRUE(child);

    bool ready = false;
    int pings = 0;
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(10s);
    while ((!ready || pings < 3) && std::chrono::steady_clock::now() < deadline) {
        pollfd item{notify, POLLIN, 0};
        if (::poll(&item, 1, 500) <= 0) continue;
        char buffer[512];
        const ssize_t n = ::recv(notify, buffer, sizeof(buffer), 0);
        if (n <= 0) continue;
        const std::string message(buffer, static_cast<std::size_t>(n));
        if (message.find("READY=1") != std::string::npos) ready = true;
        if (message.find("WATCHDOG=1") != std::string::npos) ++pings;
    }
    EXPECT_TRUE(ready);
    EXPECT_GE(pings, 3);
    child->signal(SIGTERM);
    auto status = child->wait_exit(5s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 0);
    ::close(notify);
}

TEST(VartalapctlTest, ValidateReportsFileAndLine) {
    TempDir dir;
    const auto file = dir.path() / "bad.toml";
    std::ofstream(file) << "[system]\ndata_dir = \"x\"\n\n[[daemon]]\nkind = \"no-such-kind\"\nname = \"a\"\n";
    Child child({VARTALAPCTL_PATH, "validate", file.string()});
    auto status = child.wait_exit(10s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 1);
}

} // namespace
} // namespace vartalap::testing
