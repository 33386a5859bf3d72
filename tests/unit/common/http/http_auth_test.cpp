#include "common/access_key.hpp"
#include "common/http/http_auth.hpp"

#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

namespace vartalap {
namespace {

const std::string kSecret(32, 's');

TEST(HttpAuthTest, HeadersThenCookies) {
    AccessKeys keys(kSecret);
    const auto key = keys.issue("alice", 1);
    boost::beast::http::request<boost::beast::http::string_body> request;
    EXPECT_FALSE(authenticate(request, keys));
    request.set("Cookie", "theme=dark; user=alice; accesskey=" + key);
    EXPECT_EQ(authenticate(request, keys), "alice");
    request.set("user", "bob"); // a header wins over the cookie, and bob's key is missing
    EXPECT_FALSE(authenticate(request, keys));
    EXPECT_EQ(cookie_value("a=1; b=\"2\"", "b"), "2");
    EXPECT_FALSE(cookie_value("a=1", "c"));
}

} // namespace
} // namespace vartalap
