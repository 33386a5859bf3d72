// `vartalapctl up --spawn` (or any command that ends in it, such as `ip netns exec NS
// vartalapctl up ...`) as a child process whose stdout the test reads line by line: how
// multiprocess_test and three_hosts_test run the supervisor. Thread: the test's.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace vartalap::testing {

class Supervisor {
public:
    // Runs args[0] (a path) with `args`. The child gets SIGTERM if the test process dies
    // (PR_SET_PDEATHSIG), so a crashed test leaves no supervisor behind.
    explicit Supervisor(std::vector<std::string> args);
    // A failed test: stops the children the way an operator would (SIGTERM), then insists.
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // The next stdout line, or nullopt at the deadline or at EOF. Remembers the latest
    // "spawned <instance> pid <pid>" of every instance.
    std::optional<std::string> line(std::chrono::milliseconds deadline);
    // Reads lines until one matches `pattern`; its groups, or nullopt at the deadline.
    std::optional<std::vector<std::string>> wait_for(const std::string& pattern,
                                                     std::chrono::milliseconds deadline);
    // The exit status (128 + signal if killed), or nullopt if still running at the deadline.
    // Keeps reading stdout meanwhile, so the supervisor never blocks on a full pipe.
    std::optional<int> wait_exit(std::chrono::milliseconds deadline);

    void signal(int sig);
    pid_t pid() const { return pid_; }
    int pid_of(const std::string& instance) const;
    const std::map<std::string, int>& pids() const { return pids_; }

private:
    // Appends what the pipe has within `deadline`; false at EOF or when nothing came.
    bool fill(std::chrono::milliseconds deadline);

    pid_t pid_ = -1;
    int out_ = -1;
    int pidfd_ = -1;
    bool eof_ = false;
    std::string buffer_;
    std::map<std::string, int> pids_;
    std::optional<int> exit_status_;
};

} // namespace vartalap::testing
