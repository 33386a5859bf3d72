// A child process whose stdout (optionally with stderr) a test reads line by line: how the
// integration tests run the real `vartalapctl`. Thread: the test's.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace vartalap::testing {

class Child {
public:
    // Runs args[0] (a path) with `args`. The destructor kills it (SIGKILL) if it still runs.
    explicit Child(std::vector<std::string> args, bool merge_stderr = false);
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    // Next stdout line, or nullopt at the deadline or EOF.
    std::optional<std::string> line(std::chrono::milliseconds deadline);
    // Everything it writes until it closes stdout (normally: exits), or what came before
    // the deadline; the lines not yet read by line() included.
    std::string output(std::chrono::milliseconds deadline);
    // Exit status (128 + signal if killed), or nullopt if still running at the deadline.
    // Output not yet read is discarded.
    std::optional<int> wait_exit(std::chrono::milliseconds deadline);
    void signal(int sig);

private:
    pid_t pid_ = -1;
    int out_ = -1;
    bool exited_ = false;
    std::string buffer_;
};

} // namespace vartalap::testing
