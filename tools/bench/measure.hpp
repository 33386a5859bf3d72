// Helpers the benchmark clients share (vartalap-loadgen, vartalap-mqtt-bench): percentiles,
// a deadline schedule for open-loop pacing, and CPU time of this process and of a server
// process read from /proc/PID/stat. Header-only; Linux.
#pragma once

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace vartalap::bench {

using Clock = std::chrono::steady_clock;

// Value at quantile p of an ascending vector (nearest rank, lower); 0 when empty.
inline std::uint32_t percentile(const std::vector<std::uint32_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(p * static_cast<double>(sorted.size())))];
}

inline std::uint32_t micros(Clock::duration d) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    return us < 0 ? 0u : static_cast<std::uint32_t>(us);
}

// Message k of an open-loop run is due at start + k / rate, computed from k each time, so
// late wake-ups never shift the schedule (no drift): a late timer sends every message that
// is due, then sleeps until the next one.
class Schedule {
public:
    Schedule(Clock::time_point start, double rate) : start_(start), rate_(rate) {}
    Clock::time_point due(std::uint64_t k) const {
        return start_ + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(static_cast<double>(k) / rate_));
    }

private:
    Clock::time_point start_;
    double rate_;
};

// Open loop: wake-ups as close to the due time as the kernel can (the default timer slack
// of 50 us would add up to that much to every due->deliver latency).
inline void precise_timers() { prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); }

// utime + stime of a process in seconds, from /proc/PID/stat; nullopt if it cannot be read.
inline std::optional<double> process_cpu_seconds(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto paren = line.rfind(')'); // the command name may hold spaces and parentheses
    if (paren == std::string::npos) return std::nullopt;
    std::istringstream fields(line.substr(paren + 1));
    std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
    if (f.size() < 13) return std::nullopt; // f[0] is field 3 (state); utime is field 14, stime 15
    const double ticks = std::stod(f[11]) + std::stod(f[12]);
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU time (user + system) of this process so far, in seconds.
inline double self_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto sec = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
    return sec(usage.ru_utime) + sec(usage.ru_stime);
}

// CPU of this process and, optionally, of the server process over the measured window.
class CpuWindow {
public:
    explicit CpuWindow(int server_pid) : server_pid_(server_pid) {}
    void begin() {
        self_begin_ = self_cpu_seconds();
        wall_begin_ = Clock::now();
        if (server_pid_ > 0) server_begin_ = process_cpu_seconds(server_pid_);
    }
    void end() {
        self_end_ = self_cpu_seconds();
        wall_end_ = Clock::now();
        if (server_pid_ > 0) server_end_ = process_cpu_seconds(server_pid_);
    }
    double wall() const { return std::chrono::duration<double>(wall_end_ - wall_begin_).count(); }
    double self() const { return self_end_ - self_begin_; }
    std::optional<double> server() const {
        if (!server_begin_ || !server_end_) return std::nullopt;
        return *server_end_ - *server_begin_;
    }

    // "client CPU: ..." and, with a server pid, "server CPU (pid N): ...", per message too.
    void print(std::ostream& out, std::uint64_t messages) const {
        const double w = wall() > 0 ? wall() : 1;
        out << "client CPU: " << self() << " s (" << self() / w << " cores)\n";
        if (server_pid_ <= 0) return;
        if (const auto s = server()) {
            out << "server CPU (pid " << server_pid_ << "): " << *s << " s (" << *s / w << " cores), "
                << (messages ? *s * 1e6 / static_cast<double>(messages) : 0.0) << " us per message\n";
        } else {
            out << "server CPU (pid " << server_pid_ << "): unreadable\n";
        }
    }

private:
    int server_pid_;
    double self_begin_ = 0, self_end_ = 0;
    Clock::time_point wall_begin_{}, wall_end_{};
    std::optional<double> server_begin_, server_end_;
};

} // namespace vartalap::bench
