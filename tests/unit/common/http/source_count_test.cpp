// Connections per source address (common/http/source_count.hpp).
#include "common/http/source_count.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace vartalap {
namespace {

SourceCount::Address address(unsigned char last) {
    SourceCount::Address a{};
    a[10] = a[11] = 0xff; // ::ffff:127.0.0.<last>
    a[12] = 127;
    a[15] = last;
    return a;
}

TEST(SourceCountTest, EachAddressHasItsOwnCap) {
    SourceCount count;
    std::vector<SourceCount::Token> held(4);
    EXPECT_TRUE(count.enter(address(1), 2, held[0]));
    EXPECT_TRUE(count.enter(address(1), 2, held[1]));
    EXPECT_FALSE(count.enter(address(1), 2, held[2]));
    EXPECT_EQ(count.live(address(1)), 2u);
    // Another address is not affected.
    EXPECT_TRUE(count.enter(address(2), 2, held[3]));
    EXPECT_EQ(count.sources(), 2u);
    // One connection goes: the address may open one more.
    held[0] = {};
    EXPECT_EQ(count.live(address(1)), 1u);
    EXPECT_TRUE(count.enter(address(1), 2, held[2]));
}

TEST(SourceCountTest, AnAddressWithNoConnectionsLeavesTheMap) {
    SourceCount count;
    {
        SourceCount::Token a;
        ASSERT_TRUE(count.enter(address(7), 1, a));
        SourceCount::Token moved = std::move(a);
        EXPECT_EQ(count.live(address(7)), 1u);
    }
    EXPECT_EQ(count.live(address(7)), 0u);
    EXPECT_EQ(count.sources(), 0u);
}

} // namespace
} // namespace vartalap
