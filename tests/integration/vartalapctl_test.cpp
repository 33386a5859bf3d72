// `vartalapctl up` as a real child process: it serves, and SIGTERM drains and exits 0.
#include "tests/integration/support/child_process.hpp"
#include "tests/integration/support/system_fixture.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <regex>
#include <sstream>
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

TEST(VartalapctlTest, SighupReloadsTheLogLevelAndSaysSo) {
    TempDir dir;
    const auto file = dir.path() / "test.toml";
    write_local_topology(file, dir.path() / "data");
    Child child({VARTALAPCTL_PATH, "up", file.string()}, /*merge_stderr=*/true);
    bool ready = false;
    while (auto l = child.line(20s))
        if (*l == "ready") {
            ready = true;
            break;
        }
    ASSERT_TRUE(ready);
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    std::ofstream(file) << std::regex_replace(text.str(), std::regex(R"(log_level\s*=\s*"[a-z]+")"),
                                              "log_level = \"debug\"");
    child.signal(SIGHUP);
    bool reloaded = false;
    while (auto l = child.line(10s))
        if (l->find("SIGHUP: reloaded") != std::string::npos && l->find("-> debug") != std::string::npos) {
            reloaded = true;
            break;
        }
    EXPECT_TRUE(reloaded) << "no reload line for the new log level";
    child.signal(SIGTERM);
    auto status = child.wait_exit(5s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 0);
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
