// TokenBucket and RateLimiter (common/rate_limit.hpp), time driven by hand.
#include "common/rate_limit.hpp"

#include <gtest/gtest.h>

#include <string>

namespace vartalap {
namespace {

// 60 per minute = one token per second, burst 5.
constexpr RateLimit kOnePerSecond{60, 5};

TEST(TokenBucketTest, ABurstPassesThenOneTokenPerRefillPeriod) {
    std::uint64_t now = 1000;
    TokenBucket bucket(kOnePerSecond, now);
    std::uint64_t wait = 0;
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.take(kOnePerSecond, 1, now, wait)) << i;
    EXPECT_FALSE(bucket.take(kOnePerSecond, 1, now, wait));
    EXPECT_EQ(wait, 1000u);
    now += 400;
    EXPECT_FALSE(bucket.take(kOnePerSecond, 1, now, wait));
    EXPECT_EQ(wait, 600u);
    now += 600;
    EXPECT_TRUE(bucket.take(kOnePerSecond, 1, now, wait));
    EXPECT_FALSE(bucket.take(kOnePerSecond, 1, now, wait));
    // A long pause refills to the burst, never beyond.
    now += 3'600'000;
    EXPECT_TRUE(bucket.full(kOnePerSecond, now));
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.take(kOnePerSecond, 1, now, wait)) << i;
    EXPECT_FALSE(bucket.take(kOnePerSecond, 1, now, wait));
}

TEST(TokenBucketTest, ACostSpendsThatManyTokensOrNone) {
    std::uint64_t now = 0;
    TokenBucket bucket(kOnePerSecond, now);
    std::uint64_t wait = 0;
    EXPECT_TRUE(bucket.take(kOnePerSecond, 3, now, wait));
    EXPECT_FALSE(bucket.take(kOnePerSecond, 3, now, wait)); // 2 left: nothing spent
    EXPECT_EQ(wait, 1000u);
    EXPECT_TRUE(bucket.take(kOnePerSecond, 2, now, wait));
    // A cost above the burst passes once the bucket is full (it is taken as the burst).
    now += 5000;
    EXPECT_TRUE(bucket.take(kOnePerSecond, 50, now, wait));
    EXPECT_FALSE(bucket.take(kOnePerSecond, 1, now, wait));
}

TEST(TokenBucketTest, ARateOfZeroIsNoLimit) {
    const RateLimit off{0, 0};
    TokenBucket bucket(off, 0);
    std::uint64_t wait = 0;
    for (int i = 0; i < 1000; ++i) EXPECT_TRUE(bucket.take(off, 1, 0, wait));
}

TEST(TokenBucketTest, RetryAfterSecondsRoundsUpToAtLeastOne) {
    EXPECT_EQ(retry_after_seconds(1), 1u);
    EXPECT_EQ(retry_after_seconds(1000), 1u);
    EXPECT_EQ(retry_after_seconds(1001), 2u);
}

TEST(RateLimiterTest, EachKeyHasItsOwnBucket) {
    RateLimiter limiter(kOnePerSecond);
    std::uint64_t wait = 0;
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.take("mallory", 100, wait));
    EXPECT_FALSE(limiter.take("mallory", 100, wait));
    EXPECT_TRUE(limiter.take("alice", 100, wait)); // another user is served meanwhile
    EXPECT_EQ(limiter.size(), 2u);
}

TEST(RateLimiterTest, RefilledBucketsAreForgotten) {
    RateLimiter limiter(kOnePerSecond);
    std::uint64_t wait = 0;
    EXPECT_TRUE(limiter.take("a", 0, wait));
    EXPECT_TRUE(limiter.take("b", 0, wait));
    EXPECT_EQ(limiter.size(), 2u);
    // Both refill within 5 s (burst 5 at one per second); the next take sweeps them.
    EXPECT_TRUE(limiter.take("c", 6000, wait));
    EXPECT_EQ(limiter.size(), 1u);
}

TEST(RateLimiterTest, TheMapNeverPassesItsCap) {
    RateLimiter limiter(kOnePerSecond, 16);
    std::uint64_t wait = 0;
    for (int i = 0; i < 1000; ++i) {
        EXPECT_TRUE(limiter.take("user" + std::to_string(i), 10, wait));
        EXPECT_LE(limiter.size(), 16u);
    }
    // An exhausted user who is still tracked stays refused.
    RateLimiter small(kOnePerSecond, 16);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(small.take("mallory", 10, wait));
    EXPECT_FALSE(small.take("mallory", 10, wait));
}

TEST(RateLimiterTest, SetLimitChangesTheRate) {
    RateLimiter limiter(kOnePerSecond);
    std::uint64_t wait = 0;
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.take("a", 0, wait));
    EXPECT_FALSE(limiter.take("a", 0, wait));
    limiter.set_limit({0, 0}, 100); // off
    EXPECT_TRUE(limiter.take("a", 0, wait));
    EXPECT_EQ(limiter.size(), 0u);
}

} // namespace
} // namespace vartalap
