// Metrics a daemon publishes about itself (docs/INTERNAL_PROTOCOL.md, "Operations").
//
// A daemon's own loop fills a Snapshot from its single-threaded counters once a second and
// publishes it to its Board; the process's ops thread reads the Board to answer the control
// socket (JSON) and the metrics port (Prometheus text format 0.0.4). Counting itself stays
// plain uint64 arithmetic on the daemon's thread: nothing on the message path is atomic.
//
// Thread-safety: Histogram and Snapshot are values owned by one thread. Board is shared:
// publish() from the daemon's thread, the readers from any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::metrics {

// A latency histogram with fixed bucket bounds (seconds), from 1 ms to 60 s.
class Histogram {
public:
    static constexpr std::array<double, 15> kBoundsSeconds{
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

    void observe_ms(std::uint64_t ms);
    // Per bucket (not cumulative); the last entry counts observations above the last bound.
    const std::array<std::uint64_t, kBoundsSeconds.size() + 1>& buckets() const { return buckets_; }
    std::uint64_t count() const { return count_; }
    double sum_seconds() const { return static_cast<double>(sum_ms_) / 1000.0; }

private:
    std::array<std::uint64_t, kBoundsSeconds.size() + 1> buckets_{};
    std::uint64_t count_ = 0;
    std::uint64_t sum_ms_ = 0;
};

enum class Type { counter, gauge, histogram };

struct Sample {
    std::string labels; // Prometheus label text without braces: `queue="write"`, or empty
    double value = 0;
};

// One metric name with its samples.
struct Family {
    std::string name; // full Prometheus name: "vartalap_session_stored_total"
    std::string help;
    Type type = Type::counter;
    std::vector<Sample> samples;
    Histogram histogram; // Type::histogram only
};

class Snapshot {
public:
    // Adds a sample; a second call with the same name adds a sample to that family (use
    // distinct `labels`). `name` must be a valid Prometheus name, `labels` valid label text.
    Snapshot& counter(std::string_view name, std::string_view help, double value,
                      std::string_view labels = {});
    Snapshot& gauge(std::string_view name, std::string_view help, double value,
                    std::string_view labels = {});
    Snapshot& histogram(std::string_view name, std::string_view help, const Histogram& histogram);

    const std::vector<Family>& families() const { return families_; }

private:
    Family& family(std::string_view name, std::string_view help, Type type);
    std::vector<Family> families_;
};

// The labels every sample of a daemon carries.
struct Identity {
    std::string instance;
    std::string kind;
    std::string host;
};

// Prometheus text exposition (format 0.0.4) of `snapshot`, every sample labelled with
// `identity`. Label values are escaped as the format requires.
std::string render_prometheus(const Snapshot& snapshot, const Identity& identity);

// {"name" or "name{labels}": value} of the counters (into "counters") and gauges (into
// "gauges") of `snapshot`, names without the "vartalap_" prefix. Histograms are left out.
void add_to_json(const Snapshot& snapshot, nlohmann::json& counters, nlohmann::json& gauges);

// "label=\"value\"" with the value escaped (backslash, double quote, newline).
std::string label(std::string_view name, std::string_view value);

// A daemon's published snapshot and heartbeat.
class Board {
public:
    // Daemon thread: replaces the snapshot and records `now_ms` (monotonic) as the heartbeat.
    void publish(Snapshot snapshot, std::uint64_t now_ms);
    // Any thread: monotonic ms of the last publish, empty before the first.
    std::optional<std::uint64_t> last_publish_ms() const;
    // Any thread: a copy of the last snapshot (empty before the first publish).
    Snapshot snapshot() const;

private:
    mutable std::mutex mutex_;
    Snapshot snapshot_;
    std::atomic<std::uint64_t> last_publish_ms_{0};
    std::atomic<bool> published_{false};
};

// How often daemon loops publish.
inline constexpr std::uint64_t kPublishPeriodMs = 1000;

// Health from the heartbeat (see INTERNAL_PROTOCOL.md): a loop that published within
// kStalledAfterMs is ok; one that never did is "starting" for kStartingGraceMs after start.
inline constexpr std::uint64_t kStalledAfterMs = 5000;
inline constexpr std::uint64_t kStartingGraceMs = 10000;
enum class Health { ok, starting, stalled, draining };
std::string_view to_string(Health health);
Health health_of(std::optional<std::uint64_t> last_publish_ms, std::uint64_t started_ms,
                 std::uint64_t now_ms, bool draining);

} // namespace vartalap::metrics
