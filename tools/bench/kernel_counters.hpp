// System calls and context switches of the server's processes over a measured window, for
// the benchmark clients (--perf-stat). With perf (Debian's linux-perf):
//
//   perf stat -x, -e raw_syscalls:sys_enter,context-switches -p PID,... -D -1 --control fifo:CTL,ACK
//
// started before the window with its events disabled, switched on by begin() and off by
// end() through the control FIFO (each waits for perf's "ack"), so the counts cover exactly
// the window; every thread of every process is counted. When perf is missing or refuses
// (perf_event_paranoid, no tracefs), the fallback is /proc: context switches as the sum of
// voluntary_ctxt_switches + nonvoluntary_ctxt_switches of /proc/PID/task/*/status, and no
// system call count (source() says which). MeasuredWindow puts them together with the CPU
// and the report of a pairs run. Header-only; Linux. Thread: the client's one.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/bench/measure.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace vartalap::bench {

// voluntary + nonvoluntary context switches of every thread of `pids` so far.
inline double proc_context_switches(const std::vector<int>& pids) {
    double total = 0;
    for (const int pid : pids) {
        std::error_code ec;
        for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
            std::ifstream in(task.path() / "status");
            for (std::string line; std::getline(in, line);)
                if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
                    total += std::stod(line.substr(line.find(':') + 1));
        }
    }
    return total;
}

class KernelCounters {
public:
    // Starts perf (events disabled) when `use_perf`; otherwise, or if that fails, /proc.
    KernelCounters(std::vector<int> pids, bool use_perf) : pids_(std::move(pids)) {
        if (use_perf && !pids_.empty()) start_perf();
    }
    ~KernelCounters() {
        stop_perf();
        std::error_code ec;
        if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
    }
    KernelCounters(const KernelCounters&) = delete;
    KernelCounters& operator=(const KernelCounters&) = delete;

    void begin() {
        proc_begin_ = proc_context_switches(pids_);
        if (perf_pid_ > 0 && !command("enable")) stop_perf();
    }
    void end() {
        proc_end_ = proc_context_switches(pids_);
        if (perf_pid_ <= 0) return;
        const bool disabled = command("disable");
        stop_perf();
        if (disabled) read_perf_output();
    }

    // "perf" when the counts came from perf, else "proc" (context switches only).
    std::string source() const { return syscalls_ ? "perf" : "proc"; }
    std::optional<double> syscalls() const { return syscalls_; }
    double context_switches() const { return perf_context_switches_ ? *perf_context_switches_ : proc_end_ - proc_begin_; }

private:
    void start_perf() {
        char pattern[] = "/tmp/vartalap-perf.XXXXXX";
        if (!mkdtemp(pattern)) return;
        dir_ = pattern;
        const std::string ctl = dir_ + "/ctl", ack = dir_ + "/ack";
        if (mkfifo(ctl.c_str(), 0600) != 0 || mkfifo(ack.c_str(), 0600) != 0) return;
        std::string pid_list;
        for (const int pid : pids_) pid_list += (pid_list.empty() ? "" : ",") + std::to_string(pid);
        const std::string control = "fifo:" + ctl + "," + ack, output = dir_ + "/out";
        perf_pid_ = fork();
        if (perf_pid_ == 0) {
            const int null = open("/dev/null", O_WRONLY);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            execlp("perf", "perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,context-switches", "-p",
                   pid_list.c_str(), "-D", "-1", "--control", control.c_str(), "-o", output.c_str(),
                   static_cast<char*>(nullptr));
            _exit(127);
        }
        // O_RDWR: a FIFO opened this way does not wait for the other end.
        ctl_ = open(ctl.c_str(), O_RDWR);
        ack_ = open(ack.c_str(), O_RDWR);
    }

    // Sends "enable"/"disable" and waits (5 s at most) for perf's "ack".
    bool command(const std::string& what) {
        const std::string line = what + "\n";
        if (write(ctl_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return false;
        std::string got;
        for (int waited_ms = 0; got.find('\n') == std::string::npos;) {
            // In slices, so a perf that exited (not installed, not permitted) is noticed at once.
            if (waitpid(perf_pid_, nullptr, WNOHANG) == perf_pid_) {
                perf_pid_ = -1;
                return false;
            }
            pollfd fd{ack_, POLLIN, 0};
            const int ready = poll(&fd, 1, 20);
            if (ready < 0 || (ready == 0 && (waited_ms += 20) >= 5000)) return false;
            if (ready == 0) continue;
            char buffer[64];
            const ssize_t n = read(ack_, buffer, sizeof buffer);
            if (n <= 0) return false;
            got.append(buffer, static_cast<std::size_t>(n));
        }
        return got.rfind("ack", 0) == 0;
    }

    void stop_perf() {
        if (perf_pid_ > 0) {
            kill(perf_pid_, SIGINT);
            waitpid(perf_pid_, nullptr, 0);
            perf_pid_ = -1;
        }
        if (ctl_ >= 0) close(ctl_);
        if (ack_ >= 0) close(ack_);
        ctl_ = ack_ = -1;
    }

    // perf's CSV lines: "<count>,<unit>,<event>,..."; "<not counted>" leaves the value unset.
    void read_perf_output() {
        std::ifstream in(dir_ + "/out");
        for (std::string line; std::getline(in, line);) {
            std::istringstream fields(line);
            std::string count, unit, event;
            std::getline(fields, count, ',');
            std::getline(fields, unit, ',');
            std::getline(fields, event, ',');
            if (count.empty() || count.find_first_not_of("0123456789.") != std::string::npos) continue;
            if (event == "raw_syscalls:sys_enter") syscalls_ = std::stod(count);
            if (event == "context-switches") perf_context_switches_ = std::stod(count);
        }
        if (!syscalls_ || !perf_context_switches_) syscalls_.reset(), perf_context_switches_.reset();
    }

    std::vector<int> pids_;
    std::string dir_;
    pid_t perf_pid_ = -1;
    int ctl_ = -1, ack_ = -1;
    double proc_begin_ = 0, proc_end_ = 0;
    std::optional<double> syscalls_, perf_context_switches_;
};

// "server system calls per message ..." on `out` and syscalls_per_msg, cs_per_msg and
// counters=perf|proc on `result`, when the run had server pids.
inline void add_kernel_counters(std::ostream& out, ResultLine& result, const KernelCounters& kernel,
                                std::uint64_t messages, std::size_t server_processes) {
    if (server_processes == 0 || messages == 0) return;
    const double n = static_cast<double>(messages);
    out << "server kernel counters (" << kernel.source() << "): ";
    if (const auto calls = kernel.syscalls()) {
        out << *calls / n << " system calls per message, ";
        result.add("syscalls_per_msg", *calls / n);
    } else {
        out << "system calls not counted (no usable perf), ";
    }
    out << kernel.context_switches() / n << " context switches per message\n";
    result.add("cs_per_msg", kernel.context_switches() / n).add("counters", kernel.source());
}

// The measured window of a pairs run (loadgen and mqtt-bench): the kernel counters (first:
// begin() waits for perf's ack), the Stats' measuring flag and the CPU; then the report and
// its RESULT line. `note` is the client's own line (frame or payload size).
class MeasuredWindow {
public:
    MeasuredWindow(Stats& stats, const std::vector<int>& server_pids, bool perf_stat)
        : stats_(stats), cpu_(server_pids), kernel_(server_pids, perf_stat), processes_(server_pids.size()) {}

    void begin() {
        kernel_.begin();
        stats_.measuring = true;
        cpu_.begin();
    }
    void end() {
        stats_.measuring = false;
        cpu_.end();
        kernel_.end();
    }
    // 0 if any message completed in the window.
    int report(std::ostream& out, int pairs, int window, double seconds, bool paced, double rate, const std::string& note) {
        print_report(out, stats_, pairs, window, seconds, paced, rate);
        out << note << '\n';
        cpu_.print(out, stats_.delivered);
        ResultLine result;
        result.add_stats(stats_, seconds);
        cpu_.add_to(result, stats_.delivered);
        add_kernel_counters(out, result, kernel_, stats_.delivered, processes_);
        result.print(out);
        return stats_.delivered > 0 ? 0 : 1;
    }

private:
    Stats& stats_;
    CpuWindow cpu_;
    KernelCounters kernel_;
    std::size_t processes_;
};

} // namespace vartalap::bench
