// Logging: spdlog, one line per event. Under systemd (JOURNAL_STREAM set) each line starts
// with a syslog level prefix "<N>" that journald understands; secrets are never logged
// (access keys, tokens, message bodies).
// Thread-safety: spdlog's loggers are thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string_view>
#include <utility>

namespace vartalap {

// level: trace, debug, info, warn, error, critical, off. Unknown names fall back to info.
// `process` (e.g. the instance vartalapd runs) prefixes every line, so the interleaved
// output of several processes (vartalapctl up --spawn) says who wrote each line.
void init_logging(std::string_view level, std::string_view process = {});

// Sampling for events a peer can cause at any rate (drops, malformed or unexpected input):
// logging each would let a misbehaving peer flood the log, logging none would hide it.
inline constexpr std::uint64_t kLogSampleEvery = 1000;

// Counts one more event in `count` and says whether to log it: true for the first and then
// every `every`th, so the line can report the running count ("... N so far").
// Not thread-safe: a counter belongs to one thread (the daemon's).
template <class Counter>
bool count_sampled(Counter& count, std::uint64_t every = kLogSampleEvery) {
    return count++ % every == 0;
}

// The daemons' uniform drop line, sampled by count_sampled:
//   "<daemon>: dropped a <what> (<detail>); <count> dropped so far"
inline void warn_dropped(std::uint64_t& dropped, std::string_view daemon, std::string_view what,
                         std::string_view detail) {
    if (count_sampled(dropped))
        spdlog::warn("{}: dropped a {} ({}); {} dropped so far", daemon, what, detail, dropped);
}

// At most one line per period for a condition that repeats at the rate of traffic while it
// lasts (a full store refusing every batch): allow() says whether to log now, and the line
// reports how many were not logged since the last one (take_suppressed()).
// Not thread-safe: belongs to one thread (the daemon's).
class LogLimiter {
public:
    explicit LogLimiter(std::uint64_t period_ms) : period_ms_(period_ms) {}
    bool allow(std::uint64_t now_ms) {
        if (logged_ && now_ms - last_ms_ < period_ms_) {
            ++suppressed_;
            return false;
        }
        logged_ = true;
        last_ms_ = now_ms;
        return true;
    }
    std::uint64_t take_suppressed() { return std::exchange(suppressed_, 0); }

private:
    std::uint64_t period_ms_;
    std::uint64_t last_ms_ = 0;
    std::uint64_t suppressed_ = 0;
    bool logged_ = false;
};

} // namespace vartalap
