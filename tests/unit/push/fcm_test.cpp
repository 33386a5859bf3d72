#include "daemons/push/fcm.hpp"
#include "common/http/url.hpp"
#include "daemons/push/webhook.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vartalap::push {
namespace {

using nlohmann::json;
using Outcome = PushResult::Outcome;

TEST(FcmPayload, IsAHighPriorityDataMessageWithTheMessageJsonAsAString) {
    const std::string message = R"({"_v":2.1,"id":"m1","head":{"to":"bob","contentType":"text"},"body":{"text":"hi \"there\""}})";
    const json body = json::parse(fcm_send_body("device-1", message));
    EXPECT_EQ(body, (json{{"message",
                           {{"token", "device-1"},
                            {"data", {{"message", message}}},
                            {"android", {{"priority", "high"}}}}}}));
    EXPECT_TRUE(body["message"]["data"]["message"].is_string());
}

TEST(FcmPayload, DefaultEndpointNamesTheProject) {
    EXPECT_EQ(fcm_default_endpoint("my-project"), "https://fcm.googleapis.com/v1/projects/my-project/messages:send");
}

json fcm_error(int code, const std::string& status, const json& details) {
    return {{"error", {{"code", code}, {"message", "m"}, {"status", status}, {"details", details}}}};
}

TEST(FcmResponse, SuccessIsOk) {
    EXPECT_EQ(classify_fcm_response(200, R"({"name":"projects/p/messages/1"})", std::nullopt).outcome, Outcome::ok);
}

TEST(FcmResponse, UnregisteredTokensAreRecognised) {
    const json unregistered = fcm_error(
        404, "NOT_FOUND",
        json::array({{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"}, {"errorCode", "UNREGISTERED"}}}));
    EXPECT_EQ(classify_fcm_response(404, unregistered.dump(), std::nullopt).outcome, Outcome::unregistered);

    const json bad_token = fcm_error(
        400, "INVALID_ARGUMENT",
        json::array({{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"}, {"errorCode", "INVALID_ARGUMENT"}},
                     {{"@type", "type.googleapis.com/google.rpc.BadRequest"},
                      {"fieldViolations", json::array({{{"field", "message.token"},
                                                        {"description", "Invalid registration token"}}})}}}));
    EXPECT_EQ(classify_fcm_response(400, bad_token.dump(), std::nullopt).outcome, Outcome::unregistered);
}

TEST(FcmResponse, OtherClientErrorsFailWithoutTouchingTheToken) {
    // INVALID_ARGUMENT about the payload (too big) is not about the token.
    const json too_big = fcm_error(
        400, "INVALID_ARGUMENT",
        json::array({{{"@type", "type.googleapis.com/google.rpc.BadRequest"},
                      {"fieldViolations", json::array({{{"field", "message.data"}}})}}}));
    const PushResult result = classify_fcm_response(400, too_big.dump(), std::nullopt);
    EXPECT_EQ(result.outcome, Outcome::failed);
    EXPECT_EQ(result.reason, "HTTP 400 INVALID_ARGUMENT");
    // A 404 without UNREGISTERED is a wrong URL or project.
    EXPECT_EQ(classify_fcm_response(404, "<html>Not Found</html>", std::nullopt).outcome, Outcome::failed);
    EXPECT_EQ(classify_fcm_response(403, fcm_error(403, "PERMISSION_DENIED", json::array()).dump(), std::nullopt).outcome,
              Outcome::failed);
}

TEST(FcmResponse, OddlyShapedErrorDocumentsNeverThrow) {
    for (const char* body : {R"({"error":{"status":7,"details":[{"errorCode":5,"fieldViolations":[{"field":1}]}]}})",
                             R"({"error":{"details":{"errorCode":"UNREGISTERED"}}})", R"({"error":[1,2]})",
                             R"({"error":{"details":[1,"x",null,{"fieldViolations":"message.token"}]}})", "[]", "",
                             "\xff\xfe"}) {
        EXPECT_NO_THROW({
            const PushResult result = classify_fcm_response(400, body, std::nullopt);
            EXPECT_EQ(result.outcome, Outcome::failed) << body;
        });
    }
}

TEST(FcmResponse, OverloadAndServerErrorsRetryWithRetryAfter) {
    auto result = classify_fcm_response(429, fcm_error(429, "RESOURCE_EXHAUSTED", json::array()).dump(), 30000);
    EXPECT_EQ(result.outcome, Outcome::retry);
    EXPECT_EQ(result.retry_after_ms, 30000u);
    result = classify_fcm_response(503, "", std::nullopt);
    EXPECT_EQ(result.outcome, Outcome::retry);
    EXPECT_EQ(result.retry_after_ms, std::nullopt);
    EXPECT_EQ(classify_fcm_response(500, "", std::nullopt).outcome, Outcome::retry);
}

TEST(Webhook, BodyAndOutcomes) {
    const json body = json::parse(webhook_body("device-1", "bob", R"({"id":"m1"})"));
    EXPECT_EQ(body, (json{{"token", "device-1"}, {"to", "bob"}, {"message", R"({"id":"m1"})"}}));
    EXPECT_EQ(classify_webhook_response(204, std::nullopt).outcome, Outcome::ok);
    EXPECT_EQ(classify_webhook_response(410, std::nullopt).outcome, Outcome::unregistered);
    EXPECT_EQ(classify_webhook_response(503, 2000).retry_after_ms, 2000u);
    EXPECT_EQ(classify_webhook_response(429, std::nullopt).outcome, Outcome::retry);
    EXPECT_EQ(classify_webhook_response(400, std::nullopt).outcome, Outcome::failed);
}

TEST(Url, ParsesWhatProvidersNeed) {
    auto url = parse_url("https://fcm.googleapis.com/v1/projects/p/messages:send");
    ASSERT_TRUE(url);
    EXPECT_TRUE(url->tls);
    EXPECT_EQ(url->host, "fcm.googleapis.com");
    EXPECT_EQ(url->port, "443");
    EXPECT_EQ(url->target, "/v1/projects/p/messages:send");
    EXPECT_EQ(url->host_header(), "fcm.googleapis.com");

    url = parse_url("http://127.0.0.1:8080");
    ASSERT_TRUE(url);
    EXPECT_FALSE(url->tls);
    EXPECT_EQ(url->port, "8080");
    EXPECT_EQ(url->target, "/");
    EXPECT_EQ(url->host_header(), "127.0.0.1:8080");

    url = parse_url("https://[::1]:8443/hook?x=1");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->host, "::1");
    EXPECT_EQ(url->target, "/hook?x=1");
    EXPECT_EQ(url->host_header(), "[::1]:8443");

    for (const char* bad : {"", "ftp://x/", "https://", "https://:443/", "https://u:p@host/", "https://host:99999/",
                            "https://host:0/", "https://host/a b", "https://host/#frag", "https://::1/"})
        EXPECT_FALSE(parse_url(bad)) << bad;
}

} // namespace
} // namespace vartalap::push
