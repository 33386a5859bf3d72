// `vartalapctl up` as a real child process: it serves, and SIGTERM drains and exits 0.
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

// local.toml with kernel-chosen ports and a temporary data dir, written to `file`.
void write_test_topology(const std::filesystem::path& file, const std::filesystem::path& data_dir) {
    std::ifstream in(std::filesystem::path(VARTALAP_SOURCE_DIR) / "topology/local.toml");
    std::stringstream text;
    text << in.rdbuf();
    std::string toml = std::regex_replace(text.str(), std::regex(R"(127\.0\.0\.1:\d+)"), "127.0.0.1:0");
    toml = std::regex_replace(toml, std::regex(R"(data_dir\s*=\s*"[^"]*")"),
                              "data_dir = \"" + data_dir.string() + "\"");
    std::ofstream(file) << toml;
}

class Child {
public:
    explicit Child(std::vector<std::string> args, bool merge_stderr = false) {
        int fds[2];
        if (pipe(fds) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ == 0) {
            dup2(fds[1], STDOUT_FILENO);
            if (merge_stderr) dup2(fds[1], STDERR_FILENO);
            close(fds[0]);
            close(fds[1]);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execv(argv[0], argv.data());
            _exit(127);
        }
        close(fds[1]);
        out_ = fds[0];
    }
    ~Child() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        close(out_);
    }
    // Next stdout line, or nullopt at the deadline or EOF.
    std::optional<std::string> line(std::chrono::milliseconds deadline) {
        const auto until = std::chrono::steady_clock::now() + deadline;
        while (true) {
            if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string l = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return l;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{out_, POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char chunk[4096];
            const ssize_t n = read(out_, chunk, sizeof chunk);
            if (n <= 0) return std::nullopt;
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }
    // Exit status, or nullopt if the child is still running at the deadline.
    std::optional<int> wait_exit(std::chrono::milliseconds deadline) {
        const auto until = std::chrono::steady_clock::now() + deadline;
        while (std::chrono::steady_clock::now() < until) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            // waitpid has no timeout; poll the pipe briefly instead of sleeping blind.
            pollfd p{out_, POLLIN, 0};
            poll(&p, 1, 20);
            char sink[4096];
            if (p.revents & POLLIN) (void)!read(out_, sink, sizeof sink);
        }
        return std::nullopt;
    }
    void signal(int sig) { kill(pid_, sig); }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    bool exited_ = false;
    std::string buffer_;
};

TEST(VartalapctlTest, UpServesAndSigtermDrainsWithinFiveSeconds) {
    TempDir dir;
    const auto file = dir.path() / "test.toml";
    write_test_topology(file, dir.path() / "data");
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
    write_test_topology(file, dir.path() / "data");
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
