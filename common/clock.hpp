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

} // namespace vartalap
