// rest-gateway's budget of buffered request bodies (daemons/rest_gateway/body_budget.hpp).
#include "daemons/rest_gateway/body_budget.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace vartalap::rest_gateway {
namespace {

constexpr std::size_t kMiB = 1 << 20;

TEST(BodyBudgetTest, ReservationsCountUntilReleased) {
    BodyBudget budget(8 * kMiB);
    BodyBudget::Token a;
    BodyBudget::Token b;
    EXPECT_TRUE(budget.reserve(kMiB, a));
    EXPECT_TRUE(budget.reserve(2 * kMiB, b));
    EXPECT_EQ(budget.in_use(), 3 * kMiB);
    a.release();
    EXPECT_EQ(budget.in_use(), 2 * kMiB);
    {
        BodyBudget::Token moved = std::move(b);
        EXPECT_EQ(budget.in_use(), 2 * kMiB);
    }
    EXPECT_EQ(budget.in_use(), 0u);
}

TEST(BodyBudgetTest, BigBodiesLeaveAnEighthForSmallOnes) {
    BodyBudget budget(8 * kMiB);
    std::vector<BodyBudget::Token> big(8);
    for (int i = 0; i < 7; ++i) EXPECT_TRUE(budget.reserve(kMiB, big[i])) << i;
    // The eighth MiB is kept for small bodies.
    EXPECT_FALSE(budget.reserve(kMiB, big[7]));
    EXPECT_EQ(budget.refused(), 1u);
    EXPECT_EQ(budget.in_use(), 7 * kMiB);
    std::vector<BodyBudget::Token> small(17);
    for (int i = 0; i < 16; ++i)
        EXPECT_TRUE(budget.reserve(BodyBudget::kSmallBody, small[i])) << i;
    EXPECT_EQ(budget.in_use(), 8 * kMiB);
    // Full: even a small body waits; a bodiless request never does.
    EXPECT_FALSE(budget.reserve(1, small[16]));
    EXPECT_TRUE(budget.reserve(0, small[16]));
    EXPECT_EQ(budget.refused(), 2u);
    // One big body answered: its room is the small ones' eighth, not another big one's.
    big[0].release();
    EXPECT_FALSE(budget.reserve(kMiB, big[7]));
    // The small ones answered too: a big one fits again.
    for (auto& token : small) token.release();
    EXPECT_TRUE(budget.reserve(kMiB, big[7]));
    EXPECT_EQ(budget.in_use(), 7 * kMiB);
}

TEST(BodyBudgetTest, ALowerTotalAppliesToTheNextReservation) {
    BodyBudget budget(8 * kMiB);
    BodyBudget::Token a;
    BodyBudget::Token b;
    EXPECT_TRUE(budget.reserve(4 * kMiB, a));
    budget.set_total(4 * kMiB);
    EXPECT_FALSE(budget.reserve(1, b));
    a.release();
    EXPECT_TRUE(budget.reserve(1024, b));
}

} // namespace
} // namespace vartalap::rest_gateway
