// fd_limit: the cap arithmetic, and raising the soft descriptor limit to the hard one.
#include "common/fd_limit.hpp"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cstdint>

namespace vartalap {
namespace {

TEST(FitCapTest, ACapThatFitsIsKept) {
    EXPECT_EQ(fit_cap(20000, 10000, 1024), 10000u);
    // Exactly at the limit: cap + other + reserve == limit.
    EXPECT_EQ(fit_cap(10000 + 1024 + kFdReserve, 10000, 1024), 10000u);
}

TEST(FitCapTest, ACapThatDoesNotFitIsLowered) {
    EXPECT_EQ(fit_cap(10000 + 1024 + kFdReserve - 1, 10000, 1024), 9999u);
    EXPECT_EQ(fit_cap(1024, 10000, 0), 1024u - kFdReserve);
    EXPECT_EQ(fit_cap(4096, 10000, 1024, 100), 4096u - 1024u - 100u);
}

TEST(FitCapTest, NoRoomLeavesOneConnection) {
    EXPECT_EQ(fit_cap(1024, 10000, 1024), 1u);
    EXPECT_EQ(fit_cap(0, 10000, 0), 1u);
    EXPECT_EQ(fit_cap(10, 10000, UINT64_MAX), 1u); // no overflow
}

TEST(FitCapTest, AnUnlimitedLimitKeepsTheCap) {
    EXPECT_EQ(fit_cap(UINT64_MAX, 10'000'000, 1024), 10'000'000u);
}

TEST(RaiseFdLimitTest, RaisesTheSoftLimitToTheHardOne) {
    rlimit saved{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_max == RLIM_INFINITY || saved.rlim_max < 256)
        GTEST_SKIP() << "needs a finite hard limit of at least 256";
    rlimit low = saved;
    low.rlim_cur = 128;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    const FdLimit raised = raise_fd_limit();
    rlimit now{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
    setrlimit(RLIMIT_NOFILE, &saved);
    EXPECT_EQ(now.rlim_cur, saved.rlim_max);
    EXPECT_EQ(raised.soft, static_cast<std::uint64_t>(saved.rlim_max));
    EXPECT_EQ(raised.hard, static_cast<std::uint64_t>(saved.rlim_max));
    // The cap is fitted against the raised limit.
    EXPECT_EQ(fit_connection_cap("test", "max_connections", 100, 0), 100u);
}

} // namespace
} // namespace vartalap
