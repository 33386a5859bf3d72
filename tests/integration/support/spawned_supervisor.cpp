#include "tests/integration/support/spawned_supervisor.hpp"
#include "tests/support/deadline.hpp"

#include <csignal>
#include <poll.h>
#include <regex>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vartalap::testing {

using namespace std::chrono_literals;

Supervisor::Supervisor(std::vector<std::string> args) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(127); // the test died before prctl
        ::dup2(fds[1], STDOUT_FILENO);
        ::close(fds[0]);
        ::close(fds[1]);
        std::vector<char*> argv;
        for (auto& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
    // Readable when the process exits: lets wait_exit() block with a deadline.
    // (The raw syscall: Debian 12's <sys/pidfd.h> lacks extern "C".)
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd_ < 0) throw std::runtime_error("pidfd_open");
}

Supervisor::~Supervisor() {
    if (pid_ > 0 && !exit_status_) {
        signal(SIGTERM);
        if (!wait_exit(15s)) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    ::close(out_);
    ::close(pidfd_);
}

std::optional<std::string> Supervisor::line(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(deadline);
    while (true) {
        if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
            std::string text = buffer_.substr(0, newline);
            buffer_.erase(0, newline + 1);
            std::smatch m;
            if (std::regex_match(text, m, std::regex(R"(spawned (\S+) pid (\d+))")))
                pids_[m[1]] = std::stoi(m[2]);
            return text;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !fill(left)) return std::nullopt;
    }
}

std::optional<std::vector<std::string>> Supervisor::wait_for(const std::string& pattern,
                                                             std::chrono::milliseconds deadline) {
    const std::regex re(pattern);
    const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(deadline);
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        auto text = line(left);
        if (!text) return std::nullopt;
        std::smatch m;
        if (std::regex_match(*text, m, re)) return std::vector<std::string>(m.begin(), m.end());
    }
}

std::optional<int> Supervisor::wait_exit(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(deadline);
    while (!exit_status_) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd fds[2] = {{pidfd_, POLLIN, 0}, {out_, static_cast<short>(eof_ ? 0 : POLLIN), 0}};
        if (::poll(fds, 2, static_cast<int>(left.count())) > 0 && (fds[1].revents & (POLLIN | POLLHUP)))
            fill(0ms);
    }
    return exit_status_;
}

void Supervisor::signal(int sig) { ::kill(pid_, sig); }

int Supervisor::pid_of(const std::string& instance) const {
    auto it = pids_.find(instance);
    return it == pids_.end() ? 0 : it->second;
}

bool Supervisor::fill(std::chrono::milliseconds deadline) {
    if (eof_) return false;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(deadline.count())) <= 0) return false;
    char chunk[4096];
    const ssize_t n = ::read(out_, chunk, sizeof chunk);
    if (n <= 0) {
        eof_ = true;
        return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
}

} // namespace vartalap::testing
