#include "daemons/rest_gateway/rest_api.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vartalap::rest_gateway {
namespace {

TEST(RestRouteTest, ProfilePaths) {
    EXPECT_EQ(route_request("GET", "/alive").target, RestRoute::alive);
    EXPECT_FALSE(route_request("GET", "/alive").needs_auth);
    EXPECT_EQ(route_request("GET", "/v1.0/alive").target, RestRoute::alive);
    auto login = route_request("POST", "/v1.0/login");
    EXPECT_EQ(login.target, RestRoute::daemon);
    EXPECT_EQ(login.daemon_kind, "profile");
    EXPECT_EQ(login.method, "login");
    EXPECT_FALSE(login.needs_auth);
    EXPECT_EQ(route_request("POST", "/profile/user/sync").method, "contactbook_sync");
    EXPECT_TRUE(route_request("POST", "/contactbook/sync").needs_auth);
    EXPECT_EQ(route_request("GET", "/login").target, RestRoute::method_not_allowed);
    EXPECT_EQ(route_request("GET", "/login").allow, "POST, DELETE");
    const auto logout = route_request("POST", "/v1.0/logout");
    EXPECT_EQ(logout.method, "logout");
    EXPECT_TRUE(logout.needs_auth);
    EXPECT_EQ(route_request("DELETE", "/login").method, "logout");
    EXPECT_TRUE(route_request("DELETE", "/v1.0/login").needs_auth);
    EXPECT_EQ(route_request("GET", "/logout").allow, "POST");
    EXPECT_EQ(route_request("GET", "/v1.01/alive").target, RestRoute::not_found);
    // The original's /profile/get (and /profile/, its '/' route) answer like /profile.
    for (const char* path : {"/profile/get", "/v1.0/profile/get", "/profile/", "/profile"}) {
        const auto route = route_request("GET", path);
        EXPECT_EQ(route.target, RestRoute::daemon) << path;
        EXPECT_EQ(route.method, "profile") << path;
        EXPECT_TRUE(route.needs_auth) << path;
    }
    EXPECT_EQ(route_request("GET", "/nowhere").target, RestRoute::not_found);
}

TEST(RestRouteTest, MessagePaths) {
    EXPECT_EQ(route_request("POST", "/send").target, RestRoute::send_objects);
    EXPECT_EQ(route_request("POST", "/v1.0/messages").target, RestRoute::send_strings);
    auto fetch = route_request("GET", "/messages");
    EXPECT_EQ(fetch.target, RestRoute::daemon);
    EXPECT_EQ(fetch.daemon_kind, "persistence");
    EXPECT_TRUE(fetch.needs_auth);
    auto wrong = route_request("DELETE", "/messages");
    EXPECT_EQ(wrong.target, RestRoute::method_not_allowed);
    EXPECT_EQ(wrong.allow, "GET, POST");
}

TEST(RestRouteTest, GroupPathsInBothForms) {
    auto check = [](std::string_view method, std::string_view path, std::string_view expected,
                    std::string_view id) {
        auto route = route_request(method, path);
        EXPECT_EQ(route.target, RestRoute::daemon) << path;
        EXPECT_EQ(route.daemon_kind, "group") << path;
        EXPECT_EQ(route.method, expected) << path;
        EXPECT_EQ(route.group_id, id) << path;
    };
    check("POST", "/group/create", "group_create", "");
    check("POST", "/groups", "group_create", "");
    check("GET", "/group/get", "group_list", "");
    check("GET", "/v1.0/groups", "group_list", "");
    check("GET", "/group/g-1", "group_get", "g-1");
    check("GET", "/groups/g-1", "group_get", "g-1");
    check("POST", "/group/g-1/add", "group_add", "g-1");
    check("POST", "/groups/g-1/members", "group_add", "g-1");
    check("POST", "/group/g-1/remove", "group_remove", "g-1");
    check("DELETE", "/groups/g-1/members", "group_remove", "g-1");
    EXPECT_EQ(route_request("GET", "/group/g-1/add").target, RestRoute::method_not_allowed);
    EXPECT_EQ(route_request("POST", "/groups/g-1/add").target, RestRoute::not_found);
    EXPECT_EQ(route_request("GET", "/group//add").target, RestRoute::not_found);
    // The app's /group/... paths answer in the original's shapes; /groups/... do not.
    EXPECT_TRUE(route_request("POST", "/group/g-1/add").app_group);
    EXPECT_TRUE(route_request("POST", "/group/g-1/add").group_change);
    EXPECT_TRUE(route_request("POST", "/v1.0/group/g-1/remove").group_change);
    EXPECT_TRUE(route_request("GET", "/group/g-1").app_group);
    EXPECT_FALSE(route_request("GET", "/group/g-1").group_change);
    EXPECT_TRUE(route_request("POST", "/group/create").app_group);
    EXPECT_TRUE(route_request("GET", "/group/get").app_group);
    EXPECT_FALSE(route_request("POST", "/groups/g-1/members").app_group);
    EXPECT_FALSE(route_request("DELETE", "/groups/g-1/members").app_group);
    EXPECT_FALSE(route_request("GET", "/groups").app_group);
    EXPECT_FALSE(route_request("GET", "/group/g-1/add").app_group); // a 405 is not shaped
}

TEST(RestRouteTest, AppGroupBodies) {
    using nlohmann::json;
    // add/remove: the group with "status": true (the app returns resp["status"]).
    const json added = json::parse(app_group_body(true, true, R"({"groupId":"g","name":"n"})", ""));
    EXPECT_EQ(added, (json{{"groupId", "g"}, {"name", "n"}, {"status", true}}));
    EXPECT_EQ(json::parse(app_group_body(true, true, "", "")), (json{{"status", true}}));
    // Other successes are the daemon's payload as it is ({"groupId"}, a group, a list).
    EXPECT_EQ(app_group_body(true, false, R"([{"groupId":"g"}])", ""), R"([{"groupId":"g"}])");
    // Failures: {"status": false, "error": ...}.
    EXPECT_EQ(json::parse(app_group_body(false, true, R"({"error":"x"})", "only an admin")),
              (json{{"status", false}, {"error", "only an admin"}}));
}

TEST(SendBodyTest, ObjectsAndStrings) {
    std::string error;
    auto one = split_send_body(RestRoute::send_objects, R"({"id":"a"})", 10, error);
    ASSERT_TRUE(one);
    EXPECT_EQ(one->size(), 1u);
    auto many = split_send_body(RestRoute::send_objects, R"([{"id":"a"},{"id":"b"}])", 10, error);
    ASSERT_TRUE(many);
    EXPECT_EQ(many->size(), 2u);
    EXPECT_EQ(nlohmann::json::parse((*many)[1])["id"], "b");
    auto strings = split_send_body(RestRoute::send_strings, R"(["{\"id\":\"a\"}", 5])", 10, error);
    ASSERT_TRUE(strings);
    EXPECT_EQ((*strings)[0], R"({"id":"a"})");
    EXPECT_EQ((*strings)[1], "5"); // reported per message later, not a refusal of the batch
    EXPECT_FALSE(split_send_body(RestRoute::send_strings, R"({"id":"a"})", 10, error));
    EXPECT_FALSE(split_send_body(RestRoute::send_objects, "nope", 10, error));
    EXPECT_EQ(error, "body is not valid JSON");
    EXPECT_FALSE(split_send_body(RestRoute::send_objects, "[1,2,3]", 2, error));
}

TEST(SendResultsTest, FirstOutcomeWinsAndUnresolvedAreNotConfirmed) {
    SendResults results(3);
    results.set_id(0, "a");
    results.set_id(1, "b");
    results.resolve(0, true);
    results.resolve(0, false, "late");
    results.resolve(2, false, "invalid JSON");
    EXPECT_FALSE(results.done());
    const auto json = nlohmann::json::parse(results.to_json());
    EXPECT_EQ(json["results"][0], (nlohmann::json{{"id", "a"}, {"status", "accepted"}}));
    EXPECT_EQ(json["results"][1]["reason"], "not confirmed");
    EXPECT_EQ(json["results"][2]["id"], nullptr);
    EXPECT_EQ(json["results"][2]["reason"], "invalid JSON");
    results.resolve(1, true);
    EXPECT_TRUE(results.done());
}

} // namespace
} // namespace vartalap::rest_gateway
