#include "common/http/target.hpp"

#include <gtest/gtest.h>

namespace vartalap {
namespace {

TEST(RequestTargetTest, SplitsPathAndQuery) {
    auto t = split_target("/wss?ack=true");
    EXPECT_EQ(t.path, "/wss");
    EXPECT_EQ(t.query, "ack=true");
    t = split_target("/messages");
    EXPECT_EQ(t.path, "/messages");
    EXPECT_EQ(t.query, "");
    t = split_target("/a?b?c");
    EXPECT_EQ(t.path, "/a");
    EXPECT_EQ(t.query, "b?c");
    t = split_target("/metrics?");
    EXPECT_EQ(t.path, "/metrics");
    EXPECT_EQ(t.query, "");
}

TEST(RequestTargetTest, QueryParamIsTheFirstOfItsName) {
    EXPECT_EQ(query_param("limit=10&cursor=abc", "limit"), "10");
    EXPECT_EQ(query_param("limit=10&cursor=abc", "cursor"), "abc");
    EXPECT_EQ(query_param("limit=1&limit=2", "limit"), "1");
    EXPECT_EQ(query_param("flag&x=1", "flag"), "");
    EXPECT_EQ(query_param("flag=&x=1", "flag"), "");
    EXPECT_EQ(query_param("a=b=c", "a"), "b=c");
    EXPECT_EQ(query_param("cursor=a%2Fb", "cursor"), "a%2Fb"); // undecoded
    EXPECT_FALSE(query_param("limit=10", "lim"));
    EXPECT_FALSE(query_param("", "limit"));
    EXPECT_FALSE(query_param("xlimit=1", "limit"));
}

TEST(RequestTargetTest, QueryHasMatchesAnyOccurrence) {
    EXPECT_TRUE(query_has("ack=true", "ack", "true"));
    EXPECT_TRUE(query_has("x=1&ack=1", "ack", "1"));
    EXPECT_TRUE(query_has("ack=false&ack=true", "ack", "true"));
    EXPECT_FALSE(query_has("ack", "ack", "true"));
    EXPECT_FALSE(query_has("ack=truex", "ack", "true"));
    EXPECT_FALSE(query_has("", "ack", "true"));
}

} // namespace
} // namespace vartalap
