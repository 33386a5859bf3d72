// Deadlines of the tests' waits, scaled for sanitized builds. Binaries built with ASan +
// UBSan or TSan run 2-10x slower, so `make test SANITIZE=1` and `make tsan-test` set
// VARTALAP_TEST_TIME_SCALE (a whole number, default 1) and every helper that waits for a
// condition with a deadline multiplies that deadline by it: one knob, not one per test.
// The daemons' own timeouts (a session's ack timeout, ...) are not scaled.
// Thread: any (the scale is read once).
#pragma once

#include <chrono>
#include <cstdlib>

namespace vartalap::test {

inline int time_scale() {
    static const int scale = [] {
        const char* text = std::getenv("VARTALAP_TEST_TIME_SCALE");
        const int value = text != nullptr ? std::atoi(text) : 1;
        return value > 0 ? value : 1;
    }();
    return scale;
}

inline std::chrono::milliseconds scaled(std::chrono::milliseconds deadline) {
    return deadline * time_scale();
}

} // namespace vartalap::test
