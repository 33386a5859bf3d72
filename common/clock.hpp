// Time source injected into daemon logic so unit tests can drive time by hand.
// Thread-safety: SystemClock is stateless; a fake clock belongs to its test.
#pragma once

#include <chrono>
#include <cstdint>

namespace vartalap {

class Clock {
public:
    virtual ~Clock() = default;
    // Monotonic milliseconds, for timeouts and retries.
    virtual std::uint64_t monotonic_ms() const = 0;
    // Wall-clock milliseconds since the epoch, for timestamps that leave the process.
    virtual std::uint64_t wall_ms() const = 0;
};

class SystemClock final : public Clock {
public:
    std::uint64_t monotonic_ms() const override {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now().time_since_epoch()).count());
    }
    std::uint64_t wall_ms() const override {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch()).count());
    }
};

// A periodic duty's schedule on the monotonic clock: due() is true once per period.
// Not thread-safe: a schedule belongs to the loop that runs the duty.
class Periodic {
public:
    explicit Periodic(std::uint64_t period_ms) : period_ms_(period_ms) {}
    // Starts counting the first period at `now_ms`.
    void start(std::uint64_t now_ms) { next_ms_ = now_ms + period_ms_; }
    // True (and the next period scheduled) when `now_ms` has reached the due time.
    bool due(std::uint64_t now_ms) {
        if (now_ms < next_ms_) return false;
        next_ms_ = now_ms + period_ms_;
        return true;
    }

private:
    std::uint64_t period_ms_;
    std::uint64_t next_ms_ = 0;
};

} // namespace vartalap
