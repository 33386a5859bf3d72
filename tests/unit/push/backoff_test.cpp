#include "daemons/push/backoff.hpp"

#include <gtest/gtest.h>

namespace vartalap::push {
namespace {

// A fake random source: returns the lowest, the highest, or the middle of the range, and
// records the bound it was asked for.
struct FakeRandom {
    enum Mode { lowest, highest, middle } mode = highest;
    std::uint64_t last_bound = 0;
    UniformRandom function() {
        return [this](std::uint64_t bound) {
            last_bound = bound;
            return mode == lowest ? 0 : mode == highest ? bound : bound / 2;
        };
    }
};

TEST(Backoff, FullJitterCeilingDoublesFromTheBaseUpToTheCap) {
    BackoffPolicy policy; // base 1 s, cap 5 min
    FakeRandom random;
    const std::uint64_t expected[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000};
    for (std::uint32_t attempt = 1; attempt <= 11; ++attempt) {
        EXPECT_EQ(backoff_delay_ms(policy, attempt, std::nullopt, random.function()), expected[attempt - 1])
            << "attempt " << attempt;
        EXPECT_EQ(random.last_bound, expected[attempt - 1]);
    }
    // Far beyond 64 doublings nothing overflows.
    EXPECT_EQ(backoff_delay_ms(policy, 1000, std::nullopt, random.function()), 300000u);
}

TEST(Backoff, JitterStaysWithinZeroAndTheCeiling) {
    BackoffPolicy policy;
    FakeRandom random;
    random.mode = FakeRandom::lowest;
    EXPECT_EQ(backoff_delay_ms(policy, 3, std::nullopt, random.function()), 0u);
    random.mode = FakeRandom::middle;
    EXPECT_EQ(backoff_delay_ms(policy, 3, std::nullopt, random.function()), 2000u);
    // A random source that misbehaves cannot push the delay past the ceiling.
    EXPECT_EQ(backoff_delay_ms(policy, 3, std::nullopt, [](std::uint64_t) { return std::uint64_t{1} << 62; }),
              4000u);
}

TEST(Backoff, RetryAfterWinsWhenLargerAndIsClamped) {
    BackoffPolicy policy;
    FakeRandom random;
    random.mode = FakeRandom::lowest;
    EXPECT_EQ(backoff_delay_ms(policy, 1, 1000, random.function()), 1000u);
    random.mode = FakeRandom::highest;
    EXPECT_EQ(backoff_delay_ms(policy, 5, 1000, random.function()), 16000u); // backoff larger
    EXPECT_EQ(backoff_delay_ms(policy, 1, 7200000, random.function()), 3600000u); // 2 h → 1 h
}

constexpr std::uint64_t kNow = 784111777000; // Sun, 06 Nov 1994 08:49:37 GMT, in ms

TEST(RetryAfter, DeltaSeconds) {
    EXPECT_EQ(parse_retry_after("1", kNow), 1000u);
    EXPECT_EQ(parse_retry_after(" 120 ", kNow), 120000u);
    EXPECT_EQ(parse_retry_after("0", kNow), 0u);
    EXPECT_EQ(parse_retry_after("99999999999999999999", kNow), std::uint64_t{999999999} * 1000);
}

TEST(RetryAfter, HttpDateInAllThreeForms) {
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", kNow), 30000u);
    EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:50:07 GMT", kNow), 30000u);
    EXPECT_EQ(parse_retry_after("Sun Nov  6 08:50:07 1994", kNow), 30000u);
    EXPECT_EQ(parse_retry_after("Mon, 07 Nov 1994 08:49:37 GMT", kNow), 86400000u);
    // Dates after 2038 and leap years.
    EXPECT_EQ(parse_retry_after("Thu, 29 Feb 2040 00:00:00 GMT", 0), 2214086400000u);
}

TEST(RetryAfter, PastDateIsZero) {
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", kNow), 0u);
}

TEST(RetryAfter, MalformedValues) {
    for (const char* value : {"", "  ", "-1", "1.5", "soon", "Sun, 06 Nov 1994 08:49:37 UTC",
                              "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT",
                              "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT trailing",
                              "Sun Nov  6 08:49:37"})
        EXPECT_EQ(parse_retry_after(value, kNow), std::nullopt) << value;
}

} // namespace
} // namespace vartalap::push
