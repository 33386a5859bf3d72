// Helpers the benchmark clients share (vartalap-loadgen, vartalap-mqtt-bench): what they
// count (Stats), each sender's flow control (Flow), the report and its machine-readable
// RESULT line, percentiles, a deadline schedule for open-loop pacing, CPU time of this
// process and of the server's processes (/proc/PID/stat), and their RSS (/proc/PID/status).
// Header-only; Linux. Thread: each client's one thread.
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
#include <thread>
#include <string>
#include <unordered_map>
#include <unordered_set>
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
    std::uint64_t delivered = 0; // completed: acked by the peer (or, with receipts, receipt back)
    std::uint64_t duplicates = 0;
    std::uint64_t sent = 0;
    std::uint64_t deferred = 0; // open loop: due while the sender was at its window
    std::vector<std::uint32_t> latency_us;          // actual send -> delivery to the peer
    std::vector<std::uint32_t> schedule_latency_us; // open loop: due time -> delivery
    std::vector<std::uint32_t> round_trip_us;       // receipts: send -> the peer's receipt back
    bool receipts = false;                          // the run completes messages by receipt
    bool measuring = false;
};

// One sender's flow control: at most `window` messages outstanding (sent, not yet
// completed). A message is completed when the peer received it (CLIENT_ACK workload:
// delivered()) or when the peer's receipt for it came back (receipt workload: seen() at the
// peer, then completed() at the sender). Closed loop: `window` at start, then one more per
// completion. Open loop: what offer() hands it, holding back (and counting as deferred)
// what is due while at the cap. `send(due)` sends one message and calls sent() with its key.
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
        outstanding_.emplace(std::move(key), Outstanding{due, Clock::now(), false});
        if (stats_.measuring) ++stats_.sent;
    }
    // The peer received message `key`: its send->deliver latency. A message seen twice (a
    // retry whose ack crossed it) counts once.
    void seen(const Key& key) {
        const auto it = outstanding_.find(key);
        if (it == outstanding_.end() || it->second.seen) {
            ++stats_.duplicates;
            return;
        }
        it->second.seen = true;
        if (!stats_.measuring) return;
        const auto now = Clock::now();
        stats_.latency_us.push_back(micros(now - it->second.sent));
        if (paced_) stats_.schedule_latency_us.push_back(micros(now - it->second.due));
    }
    // Message `key` is done: its window slot frees and the next message goes out. A second
    // completion of the same message is ignored.
    void completed(const Key& key) {
        const auto it = outstanding_.find(key);
        if (it == outstanding_.end()) return;
        if (stats_.measuring) {
            ++stats_.delivered;
            if (stats_.receipts) stats_.round_trip_us.push_back(micros(Clock::now() - it->second.sent));
        }
        outstanding_.erase(it);
        if (stopping_) return;
        if (!paced_) {
            send_(Clock::now());
        } else if (!backlog_.empty()) {
            const auto next = backlog_.front();
            backlog_.pop_front();
            send_(next);
        }
    }
    // CLIENT_ACK workload: delivery to the peer completes the message.
    void delivered(const Key& key) {
        seen(key);
        completed(key);
    }
    void stop() { stopping_ = true; }
    bool receipts() const { return stats_.receipts; }

private:
    struct Outstanding {
        Clock::time_point due, sent;
        bool seen;
    };
    Stats& stats_;
    std::function<void(Clock::time_point)> send_;
    std::size_t window_ = 0;
    bool paced_ = false;
    bool stopping_ = false;
    std::unordered_map<Key, Outstanding> outstanding_;
    std::deque<Clock::time_point> backlog_; // open loop: due while at the cap
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

// One user of a pair (loadgen and mqtt-bench): its Flow and its peer. Derived supplies
// send_next(due), which sends one message to peer_ and calls flow_.sent().
template <class Derived, class Key>
class PairMember {
public:
    explicit PairMember(Stats& stats)
        : flow_(stats, [this](Clock::time_point due) { static_cast<Derived*>(this)->send_next(due); }) {}
    PairMember(const PairMember&) = delete;
    PairMember& operator=(const PairMember&) = delete;

    void start(Derived* peer, int window, bool paced) {
        peer_ = peer;
        flow_.start(window, paced);
    }
    void offer(Clock::time_point due) { flow_.offer(due); }
    void stop() { flow_.stop(); }

protected:
    // The peer's message `key` arrived here (after the derived class answered it with a
    // receipt or an ack): with receipts it is delivered, else also complete.
    void peer_message_arrived(const Key& key) {
        if (receipts()) peer_->flow_.seen(key);
        else peer_->flow_.delivered(key);
    }
    bool receipts() const { return flow_.receipts(); }

    Derived* peer_ = nullptr;
    Flow<Key> flow_;
};

// The report's common lines (sorts the latency vectors).
inline void print_report(std::ostream& out, Stats& stats, int pairs, int window, double seconds,
                         bool paced, double rate) {
    auto& l = stats.latency_us;
    std::sort(l.begin(), l.end());
    out << "pairs " << pairs << ", window " << window << ", " << seconds << " s measured";
    if (paced) out << ", open loop at " << rate << " msg/s offered";
    out << (stats.receipts ? "\ncompleted (receipt back): " : "\ndelivered+acked: ") << stats.delivered
        << " (" << static_cast<double>(stats.delivered) / seconds << " msg/s)\n"
        << "duplicate deliveries (not counted): " << stats.duplicates << '\n'
        << "send->deliver latency us: p50 " << percentile(l, 0.5) << ", p99 "
        << percentile(l, 0.99) << ", max " << (l.empty() ? 0u : l.back()) << '\n';
    if (stats.receipts) {
        auto& r = stats.round_trip_us;
        std::sort(r.begin(), r.end());
        out << "send->receipt latency us: p50 " << percentile(r, 0.5) << ", p99 " << percentile(r, 0.99)
            << ", max " << (r.empty() ? 0u : r.back()) << '\n';
    }
    if (paced) {
        auto& s = stats.schedule_latency_us;
        std::sort(s.begin(), s.end());
        out << "achieved send rate: " << static_cast<double>(stats.sent) / seconds << " msg/s of "
            << rate << " offered (deferred by --window: " << stats.deferred << ")\n"
            << "due->deliver latency us: p50 " << percentile(s, 0.5) << ", p99 "
            << percentile(s, 0.99) << ", max " << (s.empty() ? 0u : s.back()) << '\n';
    }
}

// The one line a driver script parses (tools/bench/run.sh): "RESULT key=value ...", values
// numbers or single words. Collected with add(), printed by print().
class ResultLine {
public:
    template <class T>
    ResultLine& add(const std::string& key, const T& value) {
        fields_ << ' ' << key << '=' << value;
        return *this;
    }
    void print(std::ostream& out) const { out << "RESULT" << fields_.str() << std::endl; }
    // The run's common fields: throughput and latency percentiles (after print_report sorted them).
    ResultLine& add_stats(const Stats& stats, double seconds) {
        add("msgs_per_s", static_cast<double>(stats.delivered) / seconds);
        add("p50_us", percentile(stats.latency_us, 0.5)).add("p99_us", percentile(stats.latency_us, 0.99));
        if (stats.receipts)
            add("rtt_p50_us", percentile(stats.round_trip_us, 0.5)).add("rtt_p99_us", percentile(stats.round_trip_us, 0.99));
        return *this;
    }

private:
    std::ostringstream fields_;
};

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

// Resident set size of a process in KiB (VmRSS of /proc/PID/status); nullopt if unreadable.
inline std::optional<long> rss_kib(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return std::nullopt;
}

// The sum of rss_kib over `pids`; nullopt if any is unreadable.
inline std::optional<long> total_rss_kib(const std::vector<int>& pids) {
    long total = 0;
    for (const int pid : pids) {
        const auto rss = rss_kib(pid);
        if (!rss) return std::nullopt;
        total += *rss;
    }
    return total;
}

// The sum of process_cpu_seconds over `pids`; nullopt if any is unreadable.
inline std::optional<double> total_cpu_seconds(const std::vector<int>& pids) {
    double total = 0;
    for (const int pid : pids) {
        const auto cpu = process_cpu_seconds(pid);
        if (!cpu) return std::nullopt;
        total += *cpu;
    }
    return total;
}

// Waits until the server's processes are quiet (less than `threshold` of a core over each of
// two consecutive 100 ms samples), so what a previous phase queued (handoffs, connects,
// syncs) has been done; false if `deadline` passes first. The samples poll /proc: a wait on
// a condition with a deadline, not a fixed sleep.
inline bool wait_until_quiet(const std::vector<int>& pids, Clock::time_point deadline, double threshold = 0.03) {
    int quiet_samples = 0;
    auto before = total_cpu_seconds(pids);
    while (Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const auto now = total_cpu_seconds(pids);
        if (!before || !now) return false;
        quiet_samples = (*now - *before) < threshold * 0.1 ? quiet_samples + 1 : 0;
        if (quiet_samples >= 2) return true;
        before = now;
    }
    return false;
}

// CPU of this process and, optionally, of the server's processes (summed: a multi-process
// topology is one server) over the measured window.
class CpuWindow {
public:
    explicit CpuWindow(std::vector<int> server_pids) : server_pids_(std::move(server_pids)) {}
    void begin() {
        self_begin_ = self_cpu_seconds();
        wall_begin_ = Clock::now();
        if (!server_pids_.empty()) server_begin_ = total_cpu_seconds(server_pids_);
    }
    void end() {
        self_end_ = self_cpu_seconds();
        wall_end_ = Clock::now();
        if (!server_pids_.empty()) server_end_ = total_cpu_seconds(server_pids_);
    }
    double wall() const { return std::chrono::duration<double>(wall_end_ - wall_begin_).count(); }
    double self() const { return self_end_ - self_begin_; }
    std::optional<double> server() const {
        if (!server_begin_ || !server_end_) return std::nullopt;
        return *server_end_ - *server_begin_;
    }

    // "client CPU: ..." and, with server pids, "server CPU (N processes): ...", per message too.
    void print(std::ostream& out, std::uint64_t messages) const {
        const double w = wall() > 0 ? wall() : 1;
        out << "client CPU: " << self() << " s (" << self() / w << " cores)\n";
        if (server_pids_.empty()) return;
        out << "server CPU (" << server_pids_.size() << " process" << (server_pids_.size() == 1 ? "" : "es") << "): ";
        if (const auto s = server()) {
            out << *s << " s (" << *s / w << " cores), "
                << (messages ? *s * 1e6 / static_cast<double>(messages) : 0.0) << " us per message\n";
        } else {
            out << "unreadable\n";
        }
    }
    // client_cores, server_cores, server_us_per_msg (when known) onto the result line.
    void add_to(ResultLine& result, std::uint64_t messages) const {
        const double w = wall() > 0 ? wall() : 1;
        result.add("client_cores", self() / w);
        if (const auto s = server()) {
            result.add("server_cores", *s / w);
            if (messages) result.add("server_us_per_msg", *s * 1e6 / static_cast<double>(messages));
        }
    }

private:
    std::vector<int> server_pids_;
    double self_begin_ = 0, self_end_ = 0;
    Clock::time_point wall_begin_{}, wall_end_{};
    std::optional<double> server_begin_, server_end_;
};

// What a drain run counts (loadgen and mqtt-bench): distinct messages per recipient (a
// redelivery counts once) and when the last one arrived; its report and RESULT line.
template <class Key>
class DrainCount {
public:
    DrainCount(std::size_t recipients, std::size_t expected) : received_(recipients), expected_(expected) {}
    void arrived(std::size_t recipient, const Key& key) {
        if (received_[recipient].insert(key).second) {
            ++arrived_;
            last_ = Clock::now();
        } else {
            ++duplicates_;
        }
    }
    bool done() const { return arrived_ >= expected_; }

    // "drain: <how>; N of M messages arrived in S s (R msg/s)", the CPU lines and the RESULT
    // line; 0 if every message arrived.
    int report(std::ostream& out, const std::string& how, CpuWindow& cpu, Clock::time_point start,
               double fill_msgs_per_s) const {
        const double s = std::chrono::duration<double>((arrived_ ? last_ : Clock::now()) - start).count();
        const double n = static_cast<double>(arrived_);
        out << "drain: " << how << "; " << arrived_ << " of " << expected_ << " messages arrived in " << s << " s ("
            << n / s << " msg/s); duplicates " << duplicates_ << '\n';
        cpu.print(out, arrived_);
        ResultLine result;
        result.add("fill_msgs_per_s", fill_msgs_per_s).add("drain_msgs", arrived_).add("drain_s", s).add("drain_msgs_per_s", n / s);
        cpu.add_to(result, arrived_);
        result.print(out);
        return done() ? 0 : 1;
    }

private:
    std::vector<std::unordered_set<Key>> received_;
    std::size_t expected_, arrived_ = 0, duplicates_ = 0;
    Clock::time_point last_{};
};

} // namespace vartalap::bench
