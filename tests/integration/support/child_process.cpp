#include "tests/integration/support/child_process.hpp"
#include "tests/support/deadline.hpp"

#include <csignal>
#include <poll.h>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace vartalap::testing {

Child::Child(std::vector<std::string> args, bool merge_stderr) {
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

Child::~Child() {
    if (pid_ > 0 && !exited_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    close(out_);
}

std::optional<std::string> Child::line(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + test::scaled(deadline);
    while (true) {
        if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
            std::string l = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return l;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{out_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char chunk[4096];
        const ssize_t n = read(out_, chunk, sizeof chunk);
        if (n <= 0) return std::nullopt;
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

std::string Child::output(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + test::scaled(deadline);
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{out_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char chunk[4096];
        const ssize_t n = read(out_, chunk, sizeof chunk);
        if (n <= 0) break;
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
    std::string all = std::move(buffer_);
    buffer_.clear();
    return all;
}

std::optional<int> Child::wait_exit(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + test::scaled(deadline);
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

void Child::signal(int sig) { kill(pid_, sig); }

} // namespace vartalap::testing
