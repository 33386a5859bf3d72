// `vartalapctl up FILE --spawn`: one vartalapd process per daemon instance, supervised.
//
// Two parts, as everywhere in this project:
//   - Supervision: the policy (when to start, restart, terminate and kill which child, and
//     the exit code), a plain class with no processes, pipes or signals. It takes events
//     (a child exited, a child is ready, a stop was asked for) with the time they happened
//     and hands back actions; tests drive it with a fake clock
//     (tests/unit/vartalapctl/).
//   - run_supervisor(): the adapter. It forks/execs the children, relays their stdout,
//     takes signals synchronously from a signalfd in its one poll() loop, and performs what
//     Supervision decides.
//
// Policy (RestartPolicy holds the numbers):
//   - A child that crashes (non-zero exit, or killed by a signal) after a healthy run (it
//     reported ready and then stayed up for 2 s) is restarted at once: a killed daemon
//     serves again as soon as it has started. Backoff only stops crash loops: a child that
//     crashes before that (or whose spawn failed) is restarted after a delay that starts at
//     1 s and doubles per consecutive unhealthy run up to 30 s; a healthy run starts the
//     count again. A child that exits 0 on its own (someone sent it SIGTERM directly) was
//     stopped on purpose: not restarted.
//   - "ready" (and READY=1 under systemd) once every child has reported ready once.
//   - Stop (first SIGINT/SIGTERM): STOPPING=1, pending restarts are cancelled, and the
//     children are terminated in drain order, as System::stop() does inside one process:
//     gateways first, then routers, sessions, the rest (persistence, profile, group, push);
//     each rank is signalled once the ranks before it have exited, so what accepts client
//     traffic stops before what it feeds. Exit 0 when every child exited 0.
//   - A second signal, or 10 s after the first, every child left is sent SIGKILL and the
//     supervisor exits 1.
//
// Output on stdout, one line each (tests and scripts parse them):
//   spawned <instance> pid <pid>
//   <every line the child prints, as is>   e.g. "listening ws-1 listen 127.0.0.1:8080"
//   ready <instance>                       the child's own "ready" line, named
//   exited <instance> pid <pid> <status>   e.g. "exited session-2 pid 4242 killed by signal 9 (SIGKILL)"
//   ready                                  once, when every child has been ready
// Logs (restart decisions, the drain) go to stderr through spdlog, as the children's do.
//
// Thread: main only. Supervision is not thread-safe; run_supervisor() must be called with
// no other thread running (it changes the process's signal mask).
#pragma once

#include "topology/topology.hpp"

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace vartalap::ctl {

using SteadyTime = std::chrono::steady_clock::time_point;

struct RestartPolicy {
    // First restart delay after a short run; doubled per consecutive short run. Long enough
    // that a daemon that cannot start (port taken, bad data dir) does not spin the CPU.
    std::chrono::milliseconds initial_delay{1000};
    // Ceiling of the doubling: a permanently broken daemon is retried twice a minute.
    std::chrono::milliseconds max_delay{30000};
    // A child that reported ready and then stayed up this long before crashing was healthy:
    // it is restarted at once and its backoff starts from initial_delay again. Readiness
    // shows it got through its start-up (what fails in a crash loop: a port taken, a bad data
    // dir); the time after it, that it did not die of the first thing it read.
    std::chrono::milliseconds healthy_uptime{2000};
    // From the first stop signal until the remaining children are killed. Each vartalapd
    // drains within its own 5 s budget; 10 s leaves room for the drain ranks to follow
    // each other.
    std::chrono::milliseconds stop_budget{10000};
};

// How a child ended, from waitpid()'s status.
struct ExitStatus {
    bool signaled = false; // killed by a signal (value = signal number) or exited (value = code)
    int value = 0;

    static ExitStatus from_wait_status(int status);
    bool clean() const { return !signaled && value == 0; }
    // "exit status 1", "killed by signal 9 (SIGKILL)"
    std::string describe() const;
};

class Supervision {
public:
    struct ChildSpec {
        std::string name;
        int stop_rank = 0; // lower ranks are terminated first (topology::stop_rank)
    };

    struct Action {
        enum class Type {
            spawn,     // start the child (first start or restart); then report spawned/exited
            terminate, // send it SIGTERM (it drains)
            kill,      // send it SIGKILL
        };
        Type type;
        std::size_t child;
        bool operator==(const Action&) const = default;
    };

    // What happens after a child exited.
    struct ExitDecision {
        bool restart = false;
        std::chrono::milliseconds delay{0};
        int restart_count = 0; // how many times this child will have been restarted
    };

    enum class StopResult {
        draining, // first request: children are terminated in drain order
        forcing,  // second request: everything left is killed
    };

    explicit Supervision(std::vector<ChildSpec> children, RestartPolicy policy = {});

    // Events from the adapter, with the time they happened.
    //
    // The child's process exists (after a spawn action). A spawn that failed (fork or exec)
    // is reported as exited() with a failure status instead.
    void spawned(std::size_t child, SteadyTime now);
    // The child reported ready (at `now`: its healthy run counts from then). Returns true
    // exactly once: when this makes every child ready at least once (time to print "ready"
    // and send READY=1).
    bool became_ready(std::size_t child, SteadyTime now);
    // The child's process has ended (reaped).
    ExitDecision exited(std::size_t child, ExitStatus status, SteadyTime now);
    // SIGINT/SIGTERM arrived.
    StopResult request_stop(SteadyTime now);

    // What to do now: spawns whose time has come, terminations for the next drain rank,
    // kills once forcing. Each action is handed out once; the adapter performs all of them.
    std::vector<Action> take_actions(SteadyTime now);
    // When take_actions() may have something new without another event: the earliest
    // pending restart, or the stop deadline. nullopt: only events can change anything.
    std::optional<SteadyTime> next_wakeup() const;

    const RestartPolicy& policy() const { return policy_; }
    bool stopping() const { return stopping_; }
    bool forcing() const { return forcing_; }
    // Nothing runs and nothing will be started again: the adapter returns exit_code().
    bool finished() const;
    // 0: every child stopped exited 0 (or, without a stop, every child exited 0 by itself);
    // 1: a child had to be killed, or one failed while draining.
    int exit_code() const;

    bool alive(std::size_t child) const { return children_.at(child).alive; }
    std::size_t size() const { return children_.size(); }
    const std::string& name(std::size_t child) const { return children_.at(child).spec.name; }

private:
    struct Child {
        ChildSpec spec;
        bool alive = false;
        // Not alive: a start or restart is due at restart_at (nullopt: never again).
        std::optional<SteadyTime> restart_at;
        SteadyTime started_at{};
        int consecutive_crashes = 0; // unhealthy runs since the last healthy one; sets the backoff
        int restarts = 0;
        bool ever_ready = false;
        std::optional<SteadyTime> ready_at; // this run's "ready"; nullopt until then
        bool terminate_sent = false;
        bool kill_sent = false;
    };

    std::chrono::milliseconds backoff(int consecutive_crashes) const;

    RestartPolicy policy_;
    std::vector<Child> children_;
    bool announced_ready_ = false;
    bool stopping_ = false;
    bool forcing_ = false;
    bool drain_failed_ = false;
    SteadyTime stop_deadline_{};
};

struct SupervisorOptions {
    std::string topology_file;
    std::string host;       // "": every daemon of the file
    std::string vartalapd;  // "": vartalapd next to this executable
    std::string log_level;  // "": the file's; otherwise passed on as --log-level
};

// Runs the supervisor until it is stopped or every child is gone; returns the exit code.
// Errors before any child starts (bad file, inproc:// endpoints, no vartalapd) are printed
// on stderr and return 1.
int run_supervisor(const SupervisorOptions& options);

} // namespace vartalap::ctl
