// SIGHUP reload of a daemon's limits (INTERNAL_PROTOCOL.md, "Reload"): the main thread posts
// the daemon's fresh topology entry; the daemon's own loop takes it and applies what it can.
//
// Thread-safety: PendingReload::post from any thread, take from the daemon's thread only;
// LimitChanges belongs to the thread applying a reload.
#pragma once

#include "topology/topology.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace vartalap {

class PendingReload {
public:
    void post(const topology::DaemonSpec& fresh) {
        std::lock_guard lock(mutex_);
        pending_ = fresh;
        posted_.store(true, std::memory_order_release);
    }
    // The posted entry, once; empty (one atomic load) when nothing was posted.
    std::optional<topology::DaemonSpec> take() {
        if (!posted_.load(std::memory_order_acquire)) return std::nullopt;
        std::lock_guard lock(mutex_);
        posted_.store(false, std::memory_order_relaxed);
        return std::exchange(pending_, std::nullopt);
    }

private:
    std::mutex mutex_;
    std::optional<topology::DaemonSpec> pending_;
    std::atomic<bool> posted_{false};
};

// Applies fresh limit values and remembers what changed, to log it in one line.
class LimitChanges {
public:
    template <class T>
    void apply(std::string_view key, T& current, T fresh) {
        if (current == fresh) return;
        changes_.push_back(fmt::format("{} {} -> {}", key, current, fresh));
        current = fresh;
    }
    bool empty() const { return changes_.empty(); }
    // "<instance>: SIGHUP: k 1 -> 2, ..." or "<instance>: SIGHUP: no limit changed".
    void log(std::string_view instance) const {
        if (changes_.empty())
            spdlog::info("{}: SIGHUP: no limit changed", instance);
        else
            spdlog::info("{}: SIGHUP: {}", instance, fmt::join(changes_, ", "));
    }

private:
    std::vector<std::string> changes_;
};

} // namespace vartalap
