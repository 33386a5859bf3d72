// Thread: main (see supervisor.hpp).
#include "tools/vartalapctl/supervisor.hpp"

#include "common/access_key.hpp"
#include "common/lifecycle.hpp"
#include "common/log.hpp"
#include "topology/catalog.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <limits>
#include <poll.h>
#include <set>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" char** environ;

namespace vartalap::ctl {

// ---------------------------------------------------------------------------------------
// ExitStatus

ExitStatus ExitStatus::from_wait_status(int status) {
    if (WIFSIGNALED(status)) return {true, WTERMSIG(status)};
    return {false, WIFEXITED(status) ? WEXITSTATUS(status) : 1};
}

std::string ExitStatus::describe() const {
    if (!signaled) return "exit status " + std::to_string(value);
    const char* abbreviation = sigabbrev_np(value);
    return "killed by signal " + std::to_string(value) +
           (abbreviation ? std::string(" (SIG") + abbreviation + ")" : std::string());
}

// ---------------------------------------------------------------------------------------
// Supervision

Supervision::Supervision(std::vector<ChildSpec> children, RestartPolicy policy)
    : policy_(policy) {
    children_.reserve(children.size());
    for (auto& spec : children) {
        Child child;
        child.spec = std::move(spec);
        child.restart_at = SteadyTime::min(); // first start: due at once
        children_.push_back(std::move(child));
    }
}

void Supervision::spawned(std::size_t index, SteadyTime now) {
    Child& child = children_.at(index);
    child.alive = true;
    child.restart_at.reset();
    child.started_at = now;
    child.ready_at.reset();
    child.terminate_sent = false;
    child.kill_sent = false;
}

bool Supervision::became_ready(std::size_t index, SteadyTime now) {
    Child& ready = children_.at(index);
    ready.ever_ready = true;
    if (ready.alive && !ready.ready_at) ready.ready_at = now;
    if (announced_ready_ || stopping_) return false;
    for (const Child& child : children_)
        if (!child.ever_ready) return false;
    announced_ready_ = true;
    return true;
}

std::chrono::milliseconds Supervision::backoff(int consecutive_crashes) const {
    std::chrono::milliseconds delay = policy_.initial_delay;
    for (int i = 0; i < consecutive_crashes && delay < policy_.max_delay; ++i) delay *= 2;
    return std::min(delay, policy_.max_delay);
}

Supervision::ExitDecision Supervision::exited(std::size_t index, ExitStatus status,
                                              SteadyTime now) {
    Child& child = children_.at(index);
    // A failed spawn (fork or exec) never ran, so it never reported ready either.
    const bool healthy = child.alive && child.ready_at && now - *child.ready_at >= policy_.healthy_uptime;
    child.alive = false;
    child.restart_at.reset();
    if (stopping_) {
        if (!status.clean()) drain_failed_ = true;
        return {};
    }
    if (status.clean()) return {}; // stopped on purpose by someone: leave it stopped
    std::chrono::milliseconds delay{0};
    if (healthy) {
        child.consecutive_crashes = 0; // a healthy run: back at once, no backoff
    } else {
        delay = backoff(child.consecutive_crashes);
        ++child.consecutive_crashes;
    }
    ++child.restarts;
    child.restart_at = now + delay;
    return {true, delay, child.restarts};
}

Supervision::StopResult Supervision::request_stop(SteadyTime now) {
    if (stopping_) {
        forcing_ = true;
        return StopResult::forcing;
    }
    stopping_ = true;
    stop_deadline_ = now + policy_.stop_budget;
    for (Child& child : children_) child.restart_at.reset();
    return StopResult::draining;
}

std::vector<Supervision::Action> Supervision::take_actions(SteadyTime now) {
    std::vector<Action> actions;
    if (!stopping_) {
        for (std::size_t i = 0; i < children_.size(); ++i) {
            Child& child = children_[i];
            if (child.alive || !child.restart_at || *child.restart_at > now) continue;
            child.restart_at.reset(); // the adapter reports spawned() or exited() next
            actions.push_back({Action::Type::spawn, i});
        }
        return actions;
    }
    if (!forcing_ && now >= stop_deadline_) forcing_ = true;
    if (forcing_) {
        for (std::size_t i = 0; i < children_.size(); ++i) {
            Child& child = children_[i];
            if (!child.alive || child.kill_sent) continue;
            child.kill_sent = true;
            drain_failed_ = true; // a child that had to be killed did not drain
            actions.push_back({Action::Type::kill, i});
        }
        return actions;
    }
    // Drain order: the lowest rank that still has live children is the one being stopped.
    int rank = -1;
    for (const Child& child : children_)
        if (child.alive && (rank < 0 || child.spec.stop_rank < rank)) rank = child.spec.stop_rank;
    if (rank < 0) return actions;
    for (std::size_t i = 0; i < children_.size(); ++i) {
        Child& child = children_[i];
        if (!child.alive || child.spec.stop_rank != rank || child.terminate_sent) continue;
        child.terminate_sent = true;
        actions.push_back({Action::Type::terminate, i});
    }
    return actions;
}

std::optional<SteadyTime> Supervision::next_wakeup() const {
    if (stopping_) {
        if (forcing_) return std::nullopt;
        return stop_deadline_;
    }
    std::optional<SteadyTime> earliest;
    for (const Child& child : children_)
        if (!child.alive && child.restart_at && (!earliest || *child.restart_at < *earliest))
            earliest = child.restart_at;
    return earliest;
}

bool Supervision::finished() const {
    for (const Child& child : children_) {
        if (child.alive) return false;
        if (!stopping_ && child.restart_at) return false;
    }
    return true;
}

int Supervision::exit_code() const { return drain_failed_ ? 1 : 0; }

// ---------------------------------------------------------------------------------------
// The process adapter

namespace {

constexpr int kExitFailure = 1;
// What a forked child exits with when execve fails (the shell's convention).
constexpr int kExecFailed = 127;
// A child line longer than this is cut and relayed in pieces, so a child that never prints
// a newline cannot make the supervisor buffer without bound.
constexpr std::size_t kMaxLineBytes = 64 * 1024;
// Pipe reads per child per loop turn (4 KiB each). Children print a few lines per start;
// the bound only matters for one that floods its stdout.
constexpr std::size_t kMaxReadsPerTurn = 16;

// Environment a child must not inherit: the service manager's notification socket and
// watchdog belong to the supervisor (NotifyAccess=main), and so do socket-activated fds.
bool inherited_from_service_manager(std::string_view entry) {
    for (std::string_view name : {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
                                  "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES="})
        if (entry.substr(0, name.size()) == name) return true;
    return false;
}

// The inproc:// endpoints the selected daemons bind, and those of other daemons they
// connect to.
std::vector<std::string> inproc_uses(const topology::Topology& topology,
                                     const std::set<std::string>& selected) {
    std::vector<std::string> found;
    for (const auto& spec : topology.daemons)
        if (selected.count(spec.name))
            for (const auto& [role, endpoint] : spec.endpoints)
                if (endpoint.rfind("inproc://", 0) == 0)
                    found.push_back(spec.name + " " + role + " " + endpoint);
    for (const auto& link : topology::links(topology))
        if (selected.count(link.from) && !selected.count(link.to) &&
            link.endpoint.rfind("inproc://", 0) == 0)
            found.push_back(link.from + " -> " + link.to + " " + link.endpoint);
    return found;
}

std::string default_vartalapd() {
    std::error_code error;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
    if (error) return "vartalapd";
    return (self.parent_path() / "vartalapd").string();
}

struct ChildProcess {
    std::string kind;
    std::string name;
    pid_t pid = -1;
    int out = -1;         // read end of the child's stdout pipe (non-blocking), or -1
    std::string partial;  // bytes after the last newline
};

class ProcessSupervisor {
public:
    ProcessSupervisor(std::vector<ChildProcess> children, Supervision supervision,
                      std::vector<std::string> common_args, std::string vartalapd)
        : children_(std::move(children)), supervision_(std::move(supervision)),
          common_args_(std::move(common_args)), vartalapd_(std::move(vartalapd)) {
        for (char** entry = environ; *entry; ++entry)
            if (!inherited_from_service_manager(*entry)) environment_.emplace_back(*entry);
    }

    ~ProcessSupervisor() {
        for (auto& child : children_)
            if (child.out >= 0) ::close(child.out);
        if (signal_fd_ >= 0) ::close(signal_fd_);
        if (dev_null_ >= 0) ::close(dev_null_);
    }

    int run() {
        // SIGCHLD joins the signals the daemons handle: all are taken from a signalfd in the
        // poll loop below, never by a handler. Blocked before the first fork, so no exit
        // is missed.
        sigset_t set;
        sigemptyset(&set);
        for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&set, signal);
        if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return fail("sigprocmask");
        std::signal(SIGPIPE, SIG_IGN); // a closed stdout is an error code, not an exit
        signal_fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (signal_fd_ < 0) return fail("signalfd");
        dev_null_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (dev_null_ < 0) return fail("/dev/null");
        // A child starts with exactly the daemons' signals blocked: a SIGTERM that arrives
        // before vartalapd has set up its own handling stays pending until its serve loop
        // takes it, instead of killing it half-started.
        sigemptyset(&child_mask_);
        for (int signal : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&child_mask_, signal);

        const std::optional<std::chrono::milliseconds> watchdog = watchdog_ping_interval();
        auto next_watchdog = std::chrono::steady_clock::now();
        perform(supervision_.take_actions(std::chrono::steady_clock::now()));
        while (!supervision_.finished()) {
            auto now = std::chrono::steady_clock::now();
            int timeout_ms = -1;
            auto wake_at = [&](SteadyTime when) {
                const auto left = std::chrono::ceil<std::chrono::milliseconds>(when - now);
                const int ms = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 60'000));
                timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
            };
            if (auto wakeup = supervision_.next_wakeup()) wake_at(*wakeup);
            if (watchdog) wake_at(next_watchdog);

            std::vector<pollfd> fds;
            std::vector<std::size_t> owners;
            fds.push_back({signal_fd_, POLLIN, 0});
            for (std::size_t i = 0; i < children_.size(); ++i)
                if (children_[i].out >= 0) {
                    fds.push_back({children_[i].out, POLLIN, 0});
                    owners.push_back(i);
                }
            if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR)
                return fail("poll");

            for (std::size_t k = 1; k < fds.size(); ++k)
                if (fds[k].revents != 0) relay_output(owners[k - 1]);
            if (fds[0].revents & POLLIN) take_signals();

            now = std::chrono::steady_clock::now();
            perform(supervision_.take_actions(now));
            if (watchdog && now >= next_watchdog) {
                notify("WATCHDOG=1");
                next_watchdog = now + *watchdog;
            }
            std::cout.flush();
        }
        const int code = supervision_.exit_code();
        if (supervision_.stopping())
            spdlog::info("all children have exited; {}", code == 0 ? "clean stop" : "stop was not clean");
        else
            spdlog::info("every child exited by itself; nothing left to supervise");
        std::cout.flush();
        return code;
    }

private:
    int fail(const char* what) {
        spdlog::error("supervisor: {}: {}", what, std::strerror(errno));
        for (auto& child : children_)
            if (child.pid > 0) ::kill(child.pid, SIGKILL);
        return kExitFailure;
    }

    void perform(const std::vector<Supervision::Action>& actions) {
        for (const auto& action : actions) {
            ChildProcess& child = children_[action.child];
            // Only live children get terminate/kill; the guard keeps a bookkeeping slip from
            // ever becoming kill(-1, ...), which would signal every process we may signal.
            if (action.type != Supervision::Action::Type::spawn && child.pid <= 0) continue;
            switch (action.type) {
            case Supervision::Action::Type::spawn: spawn(action.child); break;
            case Supervision::Action::Type::terminate:
                spdlog::info("stopping {} (pid {})", child.name, child.pid);
                ::kill(child.pid, SIGTERM);
                break;
            case Supervision::Action::Type::kill:
                if (!kill_reason_logged_ && !forced_by_signal_)
                    spdlog::warn("the children did not stop within {} ms: killing them",
                                 supervision_.policy().stop_budget.count());
                kill_reason_logged_ = true;
                spdlog::warn("killing {} (pid {})", child.name, child.pid);
                ::kill(child.pid, SIGKILL);
                break;
            }
        }
    }

    void spawn(std::size_t index) {
        ChildProcess& child = children_[index];
        std::vector<std::string> args{vartalapd_, child.kind, "--instance", child.name};
        args.insert(args.end(), common_args_.begin(), common_args_.end());
        // Everything execve needs is built before fork: after it only async-signal-safe
        // calls are allowed in the child.
        std::vector<char*> argv;
        for (auto& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        std::vector<char*> envp;
        for (auto& entry : environment_) envp.push_back(entry.data());
        envp.push_back(nullptr);
        static constexpr char kExecError[] = "vartalapctl: cannot execute vartalapd\n";

        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return spawn_failed(index, "pipe");
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) {
            const int fork_error = errno;
            ::close(pipe_fds[0]);
            ::close(pipe_fds[1]);
            errno = fork_error;
            return spawn_failed(index, "fork");
        }
        if (pid == 0) {
            // Its own process group: a terminal's Ctrl-C reaches only the supervisor, which
            // stops the children in drain order (a second SIGINT would force them).
            ::setpgid(0, 0);
            // If the supervisor dies (even by SIGKILL), the child drains and exits.
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(kExecFailed);
            ::dup2(pipe_fds[1], STDOUT_FILENO); // the copy loses O_CLOEXEC; the originals close at exec
            ::dup2(dev_null_, STDIN_FILENO);
            ::sigprocmask(SIG_SETMASK, &child_mask_, nullptr);
            ::execve(argv[0], argv.data(), envp.data());
            (void)!::write(STDERR_FILENO, kExecError, sizeof kExecError - 1);
            ::_exit(kExecFailed);
        }
        ::close(pipe_fds[1]);
        ::fcntl(pipe_fds[0], F_SETFL, ::fcntl(pipe_fds[0], F_GETFL) | O_NONBLOCK);
        child.pid = pid;
        child.out = pipe_fds[0];
        child.partial.clear();
        supervision_.spawned(index, std::chrono::steady_clock::now());
        std::cout << "spawned " << child.name << " pid " << pid << '\n';
    }

    void spawn_failed(std::size_t index, const char* what) {
        spdlog::error("cannot start {}: {}: {}", children_[index].name, what, std::strerror(errno));
        report_exit(index, -1, ExitStatus{false, kExecFailed});
    }

    // Reads what the child wrote so far (until EAGAIN or EOF, at most `max_reads` chunks so
    // that one chatty child cannot starve the loop) and relays complete lines.
    void relay_output(std::size_t index, std::size_t max_reads = kMaxReadsPerTurn) {
        ChildProcess& child = children_[index];
        char chunk[4096];
        for (std::size_t reads = 0; child.out >= 0 && reads < max_reads; ++reads) {
            const ssize_t n = ::read(child.out, chunk, sizeof chunk);
            if (n > 0) {
                child.partial.append(chunk, static_cast<std::size_t>(n));
                std::size_t start = 0;
                for (std::size_t newline; (newline = child.partial.find('\n', start)) != std::string::npos;
                     start = newline + 1)
                    relay_line(index, std::string_view(child.partial).substr(start, newline - start));
                child.partial.erase(0, start);
                if (child.partial.size() > kMaxLineBytes) {
                    relay_line(index, child.partial);
                    child.partial.clear();
                }
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return;
            // EOF (or a broken pipe): the child closed its stdout, normally by exiting.
            if (!child.partial.empty()) relay_line(index, child.partial);
            child.partial.clear();
            ::close(child.out);
            child.out = -1;
        }
    }

    void relay_line(std::size_t index, std::string_view line) {
        if (line != "ready") {
            std::cout << line << '\n';
            return;
        }
        std::cout << "ready " << children_[index].name << '\n';
        if (supervision_.became_ready(index, std::chrono::steady_clock::now())) {
            std::cout << "ready" << std::endl;
            notify("READY=1");
            spdlog::info("all {} daemons are ready", children_.size());
        }
    }

    void take_signals() {
        signalfd_siginfo info{};
        while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            const int signal = static_cast<int>(info.ssi_signo);
            if (signal == SIGCHLD) {
                reap();
            } else if (signal == SIGHUP) {
                spdlog::info("SIGHUP: passing it on to every child");
                for (const auto& child : children_)
                    if (child.pid > 0) ::kill(child.pid, SIGHUP);
            } else {
                const auto result = supervision_.request_stop(std::chrono::steady_clock::now());
                if (result == Supervision::StopResult::draining) {
                    notify("STOPPING=1");
                    spdlog::info("SIG{}: stopping the children in drain order (a second signal, "
                                 "or {} ms, kills them)",
                                 sigabbrev_np(signal), supervision_.policy().stop_budget.count());
                } else {
                    forced_by_signal_ = true;
                    spdlog::warn("SIG{} again: killing the children", sigabbrev_np(signal));
                }
            }
        }
    }

    // Collects every child that has exited (SIGCHLDs coalesce: one may stand for several).
    void reap() {
        while (true) {
            int status = 0;
            const pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid <= 0) return;
            for (std::size_t i = 0; i < children_.size(); ++i) {
                if (children_[i].pid != pid) continue;
                // Its last lines first, so "exited" follows everything it printed (the child
                // is gone: what is left in the pipe is finite).
                relay_output(i, std::numeric_limits<std::size_t>::max());
                if (children_[i].out >= 0) {
                    ::close(children_[i].out);
                    children_[i].out = -1;
                }
                children_[i].pid = -1;
                report_exit(i, pid, ExitStatus::from_wait_status(status));
                break;
            }
        }
    }

    void report_exit(std::size_t index, pid_t pid, ExitStatus status) {
        const std::string& name = children_[index].name;
        std::cout << "exited " << name << " pid " << pid << ' ' << status.describe() << '\n';
        const auto decision = supervision_.exited(index, status, std::chrono::steady_clock::now());
        if (decision.restart) {
            spdlog::warn("{} (pid {}) crashed: {}; restart #{} in {} ms", name, pid,
                         status.describe(), decision.restart_count, decision.delay.count());
        } else if (supervision_.stopping()) {
            if (status.clean())
                spdlog::info("{} stopped", name);
            else
                spdlog::warn("{} stopped badly: {}", name, status.describe());
        } else {
            spdlog::warn("{} (pid {}) exited cleanly without being asked to; not restarting it",
                         name, pid);
        }
    }

    std::vector<ChildProcess> children_;
    Supervision supervision_;
    std::vector<std::string> common_args_;
    std::string vartalapd_;
    std::vector<std::string> environment_;
    sigset_t child_mask_{};
    int signal_fd_ = -1;
    int dev_null_ = -1;
    bool forced_by_signal_ = false;
    bool kill_reason_logged_ = false;
};

} // namespace

int run_supervisor(const SupervisorOptions& options) {
    topology::LoadResult loaded = topology::load_file(options.topology_file);
    for (const auto& error : loaded.errors) std::cerr << error.str() << '\n';
    if (!loaded.topology) return kExitFailure;
    const topology::Topology& topology = *loaded.topology;
    const std::string& file = options.topology_file;

    std::vector<ChildProcess> children;
    std::vector<Supervision::ChildSpec> specs;
    std::set<std::string> selected;
    for (const auto& daemon : topology.daemons) {
        if (!options.host.empty() && daemon.host != options.host) continue;
        ChildProcess child;
        child.kind = daemon.kind;
        child.name = daemon.name;
        children.push_back(std::move(child));
        specs.push_back({daemon.name, topology::stop_rank(daemon.kind)});
        selected.insert(daemon.name);
    }
    if (children.empty()) {
        std::cerr << topology.unknown_host_error(options.host) << '\n';
        return kExitFailure;
    }
    if (auto inproc = inproc_uses(topology, selected); !inproc.empty()) {
        std::cerr << file << ": --spawn runs every daemon as its own process, but inproc:// "
                     "endpoints only connect daemons inside one process (use ipc:// or tcp://, "
                     "or run `vartalapctl up` without --spawn):\n";
        for (const auto& use : inproc) std::cerr << "  " << use << '\n';
        return kExitFailure;
    }
    const std::string vartalapd = options.vartalapd.empty() ? default_vartalapd() : options.vartalapd;
    if (::access(vartalapd.c_str(), X_OK) != 0) {
        std::cerr << "vartalapctl up --spawn: cannot execute " << vartalapd << ": "
                  << std::strerror(errno) << " (build it, or name it with --vartalapd PATH)\n";
        return kExitFailure;
    }

    init_logging(options.log_level.empty() ? topology.log_level : options.log_level);
    // Every daemon that signs or checks access keys must read the same secret. Each
    // vartalapd would create <data_dir>/secret.key on its first start if it is missing, and
    // several starting at once would each write their own; create it once here first.
    if (topology.secret.empty()) {
        try {
            load_or_create_secret(std::filesystem::path(topology.data_dir) / "secret.key");
        } catch (const std::exception& error) {
            std::cerr << "vartalapctl up --spawn: " << error.what() << '\n';
            return kExitFailure;
        }
    }

    std::vector<std::string> common_args{"--topology", file};
    if (!options.log_level.empty()) {
        common_args.push_back("--log-level");
        common_args.push_back(options.log_level);
    }
    spdlog::info("supervising {} daemons of {} ({})", children.size(), file, vartalapd);
    ProcessSupervisor supervisor(std::move(children), Supervision(std::move(specs)),
                                 std::move(common_args), vartalapd);
    return supervisor.run();
}

} // namespace vartalap::ctl
