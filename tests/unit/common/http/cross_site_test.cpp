// Origin and Content-Type checks for cookie-authenticated browser requests
// (common/http/cross_site.hpp), and which credentials count as cookies (http_auth.hpp).
#include "common/http/cross_site.hpp"
#include "common/http/http_auth.hpp"

#include <gtest/gtest.h>

namespace vartalap {
namespace {

TEST(CrossSiteTest, TheServersOwnOriginIsAllowed) {
    const std::vector<std::string> none;
    EXPECT_TRUE(origin_allowed("http://127.0.0.1:8081", "127.0.0.1:8081", none));
    EXPECT_TRUE(origin_allowed("https://Chat.Example.org", "chat.example.org", none));
    // Behind a proxy that passes `$host` (no port) the port is not compared.
    EXPECT_TRUE(origin_allowed("https://chat.example.org:8443", "chat.example.org", none));
    EXPECT_TRUE(origin_allowed("http://[::1]:8080", "[::1]:8080", none));
    // No Origin: not a browser's cross-site request.
    EXPECT_TRUE(origin_allowed("", "chat.example.org", none));
}

TEST(CrossSiteTest, OtherOriginsAreRefusedUnlessListed) {
    const std::vector<std::string> none;
    EXPECT_FALSE(origin_allowed("https://evil.example", "chat.example.org", none));
    EXPECT_FALSE(origin_allowed("https://chat.example.org.evil.example", "chat.example.org", none));
    EXPECT_FALSE(origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8081", none));
    EXPECT_FALSE(origin_allowed("null", "chat.example.org", none));
    EXPECT_FALSE(origin_allowed("https://chat.example.org/path", "chat.example.org", none));
    EXPECT_FALSE(origin_allowed("ftp://chat.example.org", "chat.example.org", none));
    EXPECT_FALSE(origin_allowed("https://chat.example.org", "", none));
    const std::vector<std::string> listed = {"https://app.example.com"};
    EXPECT_TRUE(origin_allowed("https://app.example.com", "chat.example.org", listed));
    EXPECT_TRUE(origin_allowed("HTTPS://APP.EXAMPLE.COM", "chat.example.org", listed));
    EXPECT_FALSE(origin_allowed("https://app.example.com:444", "chat.example.org", listed));
    EXPECT_FALSE(origin_allowed("https://evil.example", "chat.example.org", listed));
}

TEST(CrossSiteTest, AllowedOriginEntriesAreOrigins) {
    EXPECT_EQ(origin_entry_error("https://app.example.com"), "");
    EXPECT_EQ(origin_entry_error("http://localhost:3000"), "");
    EXPECT_NE(origin_entry_error("app.example.com"), "");
    EXPECT_NE(origin_entry_error("https://app.example.com/"), "");
    EXPECT_NE(origin_entry_error("*"), "");
}

TEST(CrossSiteTest, JsonContentTypes) {
    EXPECT_TRUE(json_content_type("application/json"));
    EXPECT_TRUE(json_content_type("application/json; charset=utf-8")); // the app's Dart client
    EXPECT_TRUE(json_content_type("Application/JSON;charset=UTF-8"));
    EXPECT_FALSE(json_content_type(""));
    EXPECT_FALSE(json_content_type("text/plain"));
    EXPECT_FALSE(json_content_type("application/x-www-form-urlencoded"));
    EXPECT_FALSE(json_content_type("multipart/form-data; boundary=x"));
    EXPECT_FALSE(json_content_type("application/jsonx"));
}

TEST(CrossSiteTest, CredentialsSayWhetherTheyCameFromCookies) {
    boost::beast::http::request<boost::beast::http::string_body> request;
    request.set("user", "alice");
    request.set("accesskey", "k");
    EXPECT_FALSE(extract_credentials(request).from_cookie);
    request.set(boost::beast::http::field::cookie, "user=alice; accesskey=k");
    EXPECT_FALSE(extract_credentials(request).from_cookie); // headers win
    request.erase("accesskey");
    EXPECT_TRUE(extract_credentials(request).from_cookie);
    request.erase("user");
    const Credentials c = extract_credentials(request);
    EXPECT_TRUE(c.from_cookie);
    EXPECT_EQ(c.user, "alice");
}

} // namespace
} // namespace vartalap
