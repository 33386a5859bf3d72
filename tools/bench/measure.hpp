// Helpers the benchmark clients share (vartalap-loadgen, vartalap-mqtt-bench): what they
// count (Stats), each sender's flow control (Flow), the report, percentiles, a deadline
// schedule for open-loop pacing, and CPU time of this process and of a server process read
// from /proc/PID/stat. Header-only; Linux. Thread: each client's one thread.
#pragma once

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <unordered_map>
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

// What a run counts, over the measured window only (while `measuring`).
struct Stats {
    std::uint64_t delivered = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t sent = 0;
    std::uint64_t deferred = 0; // open loop: due while the sender was at its window
    std::vector<std::uint32_t> latency_us;          // actual send -> delivery
    std::vector<std::uint32_t> schedule_latency_us; // open loop: due time -> delivery
    bool measuring = false;
};

// One sender's flow control: at most `window` messages outstanding (sent, not yet seen by
// the peer). Closed loop: `window` at start, then one more per delivery. Open loop: what
// offer() hands it, holding back (and counting as deferred) what is due while at the cap.
// `send(due)` sends one message and calls sent() with its key.
template <class Key>
class Flow {
public:
    Flow(Stats& stats, std::function<void(Clock::time_point due)> send)
        : stats_(stats), send_(std::move(send)) {}

    void start(int window, bool paced) {
        window_ = static_cast<std::size_t>(window);
        paced_ = paced;
        if (!paced_)
            for (int i = 0; i < window; ++i) send_(Clock::now());
    }
    // Open loop: a message due at `due` (the schedule's time, not the timer's).
    void offer(Clock::time_point due) {
        if (outstanding_.size() < window_) {
            send_(due);
        } else {
            backlog_.push_back(due);
            if (stats_.measuring) ++stats_.deferred;
        }
    }
    void sent(Key key, Clock::time_point due) {
        outstanding_.emplace(std::move(key), due);
        if (stats_.measuring) ++stats_.sent;
    }
    // The peer received message `key`, sent at `sent_at`. A message seen twice (a retry
    // whose ack crossed it) counts once and sends nothing extra, so the window stays.
    void delivered(const Key& key, Clock::time_point sent_at) {
        const auto it = outstanding_.find(key);
        if (it == outstanding_.end()) {
            ++stats_.duplicates;
            return;
        }
        const Clock::time_point due = it->second;
        outstanding_.erase(it);
        if (stats_.measuring) {
            const auto now = Clock::now();
            ++stats_.delivered;
            stats_.latency_us.push_back(micros(now - sent_at));
            if (paced_) stats_.schedule_latency_us.push_back(micros(now - due));
        }
        if (stopping_) return;
        if (!paced_) {
            send_(Clock::now());
        } else if (!backlog_.empty()) {
            const auto next = backlog_.front();
            backlog_.pop_front();
            send_(next);
        }
    }
    void stop() { stopping_ = true; }

private:
    Stats& stats_;
    std::function<void(Clock::time_point)> send_;
    std::size_t window_ = 0;
    bool paced_ = false;
    bool stopping_ = false;
    std::unordered_map<Key, Clock::time_point> outstanding_; // -> due time
    std::deque<Clock::time_point> backlog_;                  // open loop: due while at the cap
};

inline Clock::duration to_duration(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Clients 2i and 2i+1 are peers: each sends to the other.
template <class Clients>
void start_pairs(Clients& clients, int window, bool paced) {
    for (std::size_t i = 0; i + 1 < clients.size(); i += 2) {
        clients[i]->start(&*clients[i + 1], window, paced);
        clients[i + 1]->start(&*clients[i], window, paced);
    }
}

// The report's common lines (sorts the latency vectors).
inline void print_report(std::ostream& out, Stats& stats, int pairs, int window, double seconds,
                         bool paced, double rate) {
    auto& l = stats.latency_us;
    std::sort(l.begin(), l.end());
    out << "pairs " << pairs << ", window " << window << ", " << seconds << " s measured";
    if (paced) out << ", open loop at " << rate << " msg/s offered";
    out << "\ndelivered+acked: " << stats.delivered << " ("
        << static_cast<double>(stats.delivered) / seconds << " msg/s)\n"
        << "duplicate deliveries (not counted): " << stats.duplicates << '\n'
        << "send->deliver latency us: p50 " << percentile(l, 0.5) << ", p99 "
        << percentile(l, 0.99) << ", max " << (l.empty() ? 0u : l.back()) << '\n';
    if (paced) {
        auto& s = stats.schedule_latency_us;
        std::sort(s.begin(), s.end());
        out << "achieved send rate: " << static_cast<double>(stats.sent) / seconds << " msg/s of "
            << rate << " offered (deferred by --window: " << stats.deferred << ")\n"
            << "due->deliver latency us: p50 " << percentile(s, 0.5) << ", p99 "
            << percentile(s, 0.99) << ", max " << (s.empty() ? 0u : s.back()) << '\n';
    }
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
