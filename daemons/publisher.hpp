// Publishing a daemon's metrics from its own loop (INTERNAL_PROTOCOL.md, "Operations"): the
// first tick publishes at once, then one publish per metrics::kPublishPeriodMs. A publish is
// also the loop's heartbeat, which health and the systemd watchdog look at.
// Thread-safety: belongs to the daemon's thread.
#pragma once

#include "common/clock.hpp"
#include "common/store/background_sync.hpp"
#include "common/metrics.hpp"

#include <fmt/format.h>

#include <string_view>

namespace vartalap {

class Publisher {
public:
    Publisher(metrics::Board* board, const Clock& clock) : board_(board), clock_(clock) {}

    // Call from every loop iteration (it returns at once when nothing is due); `build`
    // fills a metrics::Snapshot& with the daemon's metrics.
    template <class Build>
    void tick(Build&& build) {
        if (board_ == nullptr) return;
        const std::uint64_t now = clock_.monotonic_ms();
        if (started_ && !schedule_.due(now)) return;
        if (!started_) {
            started_ = true;
            schedule_.start(now);
        }
        metrics::Snapshot snapshot;
        build(snapshot);
        board_->publish(std::move(snapshot), now);
    }

private:
    metrics::Board* board_;
    const Clock& clock_;
    Periodic schedule_{metrics::kPublishPeriodMs};
    bool started_ = false;
};

// The uniform "in"/"out" pair every kind reports (what they count: INTERNAL_PROTOCOL.md).
inline void add_messages_in_out(metrics::Snapshot& s, double in, double out) {
    s.counter("vartalap_messages_in_total", "messages this daemon accepted", in);
    s.counter("vartalap_messages_out_total", "messages this daemon passed on", out);
}

// A gauge vartalap_queue_depth{queue="<queue>"}.
inline void add_queue_depth(metrics::Snapshot& s, std::string_view queue, double depth) {
    s.gauge("vartalap_queue_depth", "items waiting in the daemon's queues", depth,
            metrics::label("queue", queue));
}

// vartalap_lmdb_map_used_bytes / _size_bytes{env="<name>"} of an LMDB environment.
// `background`: the store's BackgroundSync (`process` durability), if it has one.
inline void add_lmdb_use(metrics::Snapshot& s, std::string_view env_name, const lmdb::Env& env,
                         const lmdb::BackgroundSync* background = nullptr) {
    const std::string labels = metrics::label("env", env_name);
    s.gauge("vartalap_lmdb_map_used_bytes", "bytes of the LMDB map in use",
            static_cast<double>(env.used_bytes()), labels);
    s.gauge("vartalap_lmdb_map_size_bytes", "size of the LMDB map",
            static_cast<double>(env.map_size()), labels);
    s.counter("vartalap_lmdb_disk_full_total",
              "writes refused for lack of disk (a reservation or a commit that hit ENOSPC)",
              static_cast<double>(env.disk_full_count()), labels);
    if (background == nullptr) return;
    s.counter("vartalap_lmdb_background_syncs_total",
              "syncs of a process-durability store done off the event loop",
              static_cast<double>(background->syncs()), labels);
    s.counter("vartalap_lmdb_background_sync_failures_total",
              "failed background syncs (each logged, sampled; the next one tries again)",
              static_cast<double>(background->failures()), labels);
}

// vartalap_store_full_refusals_total{reason="map_full"|"disk_full"}: new messages a store
// refused (not taken, no SERVER_ACK) because its LMDB map or its disk was full.
inline void add_store_full_refusals(metrics::Snapshot& s, std::uint64_t map_full,
                                    std::uint64_t disk_full) {
    const char* help = "new messages refused because a store's LMDB map or disk was full";
    s.counter("vartalap_store_full_refusals_total", help, static_cast<double>(map_full),
              metrics::label("reason", "map_full"));
    s.counter("vartalap_store_full_refusals_total", help, static_cast<double>(disk_full),
              metrics::label("reason", "disk_full"));
}

// A kind's own counters, as vartalap_<kind>_<name>_total ("session", "stored" ->
// vartalap_session_stored_total); the help text names the counter.
template <class Rows>
void add_counters(metrics::Snapshot& s, std::string_view kind, const Rows& rows) {
    for (const auto& [name, value] : rows)
        s.counter(fmt::format("vartalap_{}_{}_total", kind, name),
                  fmt::format("{} counter '{}' (see the daemon's counters)", kind, name),
                  static_cast<double>(value));
}

} // namespace vartalap
