#include "daemons/push/oauth.hpp"

#include "tests/unit/push/test_crypto.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vartalap::push {
namespace {

using nlohmann::json;

TEST(ServiceAccount, ReadsTheFourFields) {
    const auto account = parse_service_account(json{{"type", "service_account"},
                                                    {"project_id", "p"},
                                                    {"private_key", "PEM"},
                                                    {"client_email", "a@p.iam.gserviceaccount.com"},
                                                    {"token_uri", "https://oauth2.googleapis.com/token"}}
                                                   .dump());
    EXPECT_EQ(account.project_id, "p");
    EXPECT_EQ(account.private_key_pem, "PEM");
    EXPECT_EQ(account.client_email, "a@p.iam.gserviceaccount.com");
    EXPECT_EQ(account.token_uri, "https://oauth2.googleapis.com/token");
}

TEST(ServiceAccount, NamesTheMissingFieldWithoutEchoingValues) {
    try {
        parse_service_account(json{{"project_id", "p"}, {"private_key", "SECRET"}, {"token_uri", "t"}}.dump());
        FAIL() << "accepted an account without client_email";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("client_email"), std::string::npos);
        EXPECT_EQ(std::string(e.what()).find("SECRET"), std::string::npos);
    }
    EXPECT_THROW(parse_service_account("not json"), std::invalid_argument);
}

TEST(RsaSigner, RefusesWhatIsNotAnRsaKey) {
    EXPECT_THROW(RsaSigner::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
                 std::invalid_argument);
    EXPECT_THROW(RsaSigner::from_pem(""), std::invalid_argument);
}

TEST(Assertion, IsAnRs256JwtWithTheServiceAccountClaimsAndAVerifiableSignature) {
    const testing_crypto::RsaKey key = testing_crypto::RsaKey::generate(2048);
    const RsaSigner signer = RsaSigner::from_pem(key.private_pem());
    const AssertionClaims claims{"push@p.iam.gserviceaccount.com", std::string(kFcmScope),
                                 "https://oauth2.googleapis.com/token", 1700000000};
    const std::string jwt = build_assertion(claims, signer);

    const auto parts = testing_crypto::split_jwt(jwt);
    ASSERT_EQ(parts.size(), 3u) << jwt;
    const json header = json::parse(testing_crypto::base64url_decode(parts[0]));
    EXPECT_EQ(header, (json{{"alg", "RS256"}, {"typ", "JWT"}}));
    const json body = json::parse(testing_crypto::base64url_decode(parts[1]));
    EXPECT_EQ(body["iss"], "push@p.iam.gserviceaccount.com");
    EXPECT_EQ(body["scope"], "https://www.googleapis.com/auth/firebase.messaging");
    EXPECT_EQ(body["aud"], "https://oauth2.googleapis.com/token");
    EXPECT_EQ(body["iat"], 1700000000);
    EXPECT_EQ(body["exp"], 1700003600);
    EXPECT_EQ(jwt.find('='), std::string::npos) << "JWS segments are unpadded";

    EXPECT_TRUE(key.verify_rs256(parts[0] + "." + parts[1], testing_crypto::base64url_decode(parts[2])));
    // The signature covers the claims: change one and it no longer verifies.
    EXPECT_FALSE(key.verify_rs256(parts[0] + "." + parts[1] + "x", testing_crypto::base64url_decode(parts[2])));
    const testing_crypto::RsaKey other = testing_crypto::RsaKey::generate(2048);
    EXPECT_FALSE(other.verify_rs256(parts[0] + "." + parts[1], testing_crypto::base64url_decode(parts[2])));
}

TEST(TokenRequest, IsTheFormEncodedJwtBearerGrant) {
    EXPECT_EQ(token_request_body("a.b-c_d"),
              "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b-c_d");
    EXPECT_EQ(form_encode("a b+c&d=é"), "a+b%2Bc%26d%3D%C3%A9");
}

TEST(TokenResponse, ReadsTokenAndLifetime) {
    const auto token = parse_token_response(R"({"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"})");
    ASSERT_TRUE(token);
    EXPECT_EQ(token->token, "ya29.x");
    EXPECT_EQ(token->expires_in_seconds, 3599u);
    EXPECT_FALSE(parse_token_response(R"({"access_token":"ya29.x"})"));
    EXPECT_FALSE(parse_token_response(R"({"expires_in":3599})"));
    EXPECT_FALSE(parse_token_response(R"({"access_token":"","expires_in":3599})"));
    EXPECT_FALSE(parse_token_response("<html>"));
}

TEST(AccessTokenCache, KeepsTheTokenUntilAMinuteBeforeExpiry) {
    AccessTokenCache cache;
    EXPECT_EQ(cache.valid(0), nullptr);
    cache.store("t1", 3600, 1000);
    ASSERT_NE(cache.valid(1000), nullptr);
    EXPECT_EQ(*cache.valid(1000 + 3540000 - 1), "t1");
    EXPECT_EQ(cache.valid(1000 + 3540000), nullptr);
}

TEST(AccessTokenCache, ShortLivedTokensLiveHalfTheirLife) {
    AccessTokenCache cache;
    cache.store("t1", 60, 0);
    EXPECT_NE(cache.valid(29999), nullptr);
    EXPECT_EQ(cache.valid(30000), nullptr);
}

TEST(AccessTokenCache, InvalidateForgetsOnlyTheNamedToken) {
    AccessTokenCache cache;
    cache.store("t1", 3600, 0);
    cache.invalidate("t0"); // a stale 401 for an older token
    EXPECT_NE(cache.valid(0), nullptr);
    cache.invalidate("t1");
    EXPECT_EQ(cache.valid(0), nullptr);
}

} // namespace
} // namespace vartalap::push
