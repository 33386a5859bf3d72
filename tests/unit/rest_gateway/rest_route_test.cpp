#include "daemons/rest_gateway/rest_gateway.hpp"

#include <gtest/gtest.h>

namespace vartalap {
namespace {

TEST(RestRouteTest, Paths) {
    EXPECT_EQ(route_request("GET", "/alive").target, RestRoute::alive);
    EXPECT_FALSE(route_request("GET", "/alive").needs_auth);
    EXPECT_EQ(route_request("GET", "/v1.0/alive").target, RestRoute::alive);
    auto login = route_request("POST", "/v1.0/login");
    EXPECT_EQ(login.target, RestRoute::profile_daemon);
    EXPECT_EQ(login.method, "login");
    EXPECT_FALSE(login.needs_auth);
    EXPECT_EQ(route_request("POST", "/profile/user/sync").method, "contactbook_sync");
    EXPECT_TRUE(route_request("POST", "/contactbook/sync").needs_auth);
    EXPECT_EQ(route_request("GET", "/login").target, RestRoute::method_not_allowed);
    EXPECT_EQ(route_request("GET", "/login").allow, "POST");
    EXPECT_EQ(route_request("GET", "/v1.01/alive").target, RestRoute::not_found);
    EXPECT_EQ(route_request("GET", "/nowhere").target, RestRoute::not_found);
}

} // namespace
} // namespace vartalap
