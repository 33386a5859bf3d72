// Firebase ID-token checks (daemons/profile/firebase_token.hpp) against tokens signed at
// runtime by test RSA keys: every refusal of issue 11 section 1, the provider's phone rule
// and unknown-kid refresh request, the certificate document parse, Cache-Control.
#include "daemons/profile/firebase_token.hpp"

#include "tests/support/id_tokens.hpp"

#include <gtest/gtest.h>
#include <openssl/hmac.h>

namespace vartalap::profile {
namespace {

using nlohmann::json;
using testing_tokens::claims;
using testing_tokens::header;
using testing_tokens::Signer;

constexpr const char* kProject = "vartalap-test";
constexpr std::int64_t kNow = 1'700'000'000;

class FixedClock final : public Clock {
public:
    std::uint64_t monotonic_ms() const override { return 1000; }
    std::uint64_t wall_ms() const override { return static_cast<std::uint64_t>(kNow) * 1000; }
};

class FirebaseTokenTest : public ::testing::Test {
protected:
    // Key generation takes a while: one CA and two signing keys for the whole suite.
    static void SetUpTestSuite() {
        ca_ = new testing_crypto::TestCa();
        signer_ = new Signer(*ca_);
        other_ = new Signer(*ca_);
    }
    static void TearDownTestSuite() {
        delete other_;
        delete signer_;
        delete ca_;
    }

    static CertificateSet certs() {
        std::string error;
        auto set = CertificateSet::parse(json{{"k1", signer_->certificate_pem()}}.dump(), error);
        EXPECT_TRUE(set) << error;
        return std::move(*set);
    }

    TokenVerdict check(const std::string& token, std::string* why = nullptr) {
        std::string reason;
        const auto verdict = verify_firebase_token(token, set_, rules_, kNow, identity_, reason);
        if (why) *why = reason;
        // A refusal never quotes the token.
        if (verdict != TokenVerdict::ok && token.size() > 20) {
            EXPECT_EQ(reason.find(token.substr(token.size() - 20)), std::string::npos);
        }
        return verdict;
    }

    std::string good(json payload = claims(kProject, "uid-1", kNow)) {
        return signer_->token(header("k1"), payload);
    }

    static testing_crypto::TestCa* ca_;
    static Signer* signer_;
    static Signer* other_;
    CertificateSet set_ = certs();
    TokenRules rules_{kProject, 60};
    Identity identity_;
};

testing_crypto::TestCa* FirebaseTokenTest::ca_ = nullptr;
Signer* FirebaseTokenTest::signer_ = nullptr;
Signer* FirebaseTokenTest::other_ = nullptr;

TEST_F(FirebaseTokenTest, AValidTokenGivesItsSubAndPhone) {
    ASSERT_EQ(check(good(claims(kProject, "uid-1", kNow, "+911234"))), TokenVerdict::ok);
    EXPECT_EQ(identity_.sub, "uid-1");
    EXPECT_EQ(identity_.phone_number, "+911234");
    ASSERT_EQ(check(good()), TokenVerdict::ok);
    EXPECT_EQ(identity_.phone_number, "");
}

TEST_F(FirebaseTokenTest, AlgNoneIsRefused) {
    const json h = {{"alg", "none"}, {"kid", "k1"}};
    const std::string unsigned_token =
        base64url_encode(h.dump()) + "." + base64url_encode(claims(kProject, "u", kNow).dump()) + ".";
    EXPECT_EQ(check(unsigned_token), TokenVerdict::refused);
    // Even with an RS256 signature attached.
    EXPECT_EQ(check(signer_->token(h, claims(kProject, "u", kNow))), TokenVerdict::refused);
    EXPECT_EQ(check(signer_->token({{"kid", "k1"}}, claims(kProject, "u", kNow))), TokenVerdict::refused);
}

TEST_F(FirebaseTokenTest, Hs256KeyedWithTheCertificateIsRefused) {
    // The classic confusion: an HMAC whose key is the public certificate's text.
    const json h = {{"alg", "HS256"}, {"kid", "k1"}};
    const std::string signed_part =
        base64url_encode(h.dump()) + "." + base64url_encode(claims(kProject, "u", kNow).dump());
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    const std::string& pem = signer_->certificate_pem();
    HMAC(EVP_sha256(), pem.data(), static_cast<int>(pem.size()),
         reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac, &length);
    const std::string token =
        signed_part + "." + base64url_encode(std::string(reinterpret_cast<char*>(mac), length));
    std::string why;
    EXPECT_EQ(check(token, &why), TokenVerdict::refused);
    EXPECT_EQ(why, "alg is not RS256");
}

TEST_F(FirebaseTokenTest, ABadSignatureIsRefused) {
    const std::string token = good();
    // Another payload under the same signature.
    const auto first = token.find('.');
    const auto second = token.find('.', first + 1);
    const std::string forged = token.substr(0, first) + "." +
                               base64url_encode(claims(kProject, "someone-else", kNow).dump()) +
                               token.substr(second);
    std::string why;
    EXPECT_EQ(check(forged, &why), TokenVerdict::refused);
    EXPECT_EQ(why, "bad signature");
    // Signed by a key that is not k1's.
    EXPECT_EQ(check(other_->token(header("k1"), claims(kProject, "u", kNow))), TokenVerdict::refused);
    // No signature, or one that is not base64url.
    EXPECT_EQ(check(token.substr(0, second + 1)), TokenVerdict::refused);
    EXPECT_EQ(check(token.substr(0, second + 1) + "!!!"), TokenVerdict::refused);
}

TEST_F(FirebaseTokenTest, AnUnknownKidIsToldApart) {
    std::string why;
    EXPECT_EQ(check(signer_->token(header("k9"), claims(kProject, "u", kNow)), &why),
              TokenVerdict::unknown_kid);
    EXPECT_EQ(why, "unknown kid k9");
    EXPECT_EQ(check(signer_->token({{"alg", "RS256"}}, claims(kProject, "u", kNow))),
              TokenVerdict::refused);
}

TEST_F(FirebaseTokenTest, ExpiryWithinTheLeeway) {
    auto c = claims(kProject, "u", kNow);
    c["exp"] = kNow - 61;
    std::string why;
    EXPECT_EQ(check(good(c), &why), TokenVerdict::refused);
    EXPECT_EQ(why, "expired");
    c["exp"] = kNow - 30; // within the 60 s leeway
    EXPECT_EQ(check(good(c)), TokenVerdict::ok);
    c.erase("exp");
    EXPECT_EQ(check(good(c)), TokenVerdict::refused);
}

TEST_F(FirebaseTokenTest, IatAndAuthTimeMustNotBeInTheFuture) {
    auto c = claims(kProject, "u", kNow);
    c["iat"] = kNow + 120;
    EXPECT_EQ(check(good(c)), TokenVerdict::refused);
    c["iat"] = kNow + 30;
    EXPECT_EQ(check(good(c)), TokenVerdict::ok);
    c["auth_time"] = kNow + 120;
    EXPECT_EQ(check(good(c)), TokenVerdict::refused);
    c.erase("auth_time");
    EXPECT_EQ(check(good(c)), TokenVerdict::refused);
}

TEST_F(FirebaseTokenTest, AForeignProjectIsRefused) {
    std::string why;
    EXPECT_EQ(check(good(claims("another-project", "u", kNow)), &why), TokenVerdict::refused);
    EXPECT_EQ(why, "wrong issuer");
    auto c = claims(kProject, "u", kNow);
    c["aud"] = "another-project";
    EXPECT_EQ(check(good(c), &why), TokenVerdict::refused);
    EXPECT_EQ(why, "wrong audience");
    c["aud"] = json::array({kProject});
    EXPECT_EQ(check(good(c)), TokenVerdict::refused);
}

TEST_F(FirebaseTokenTest, SubMustBeANonEmptyString) {
    EXPECT_EQ(check(good(claims(kProject, "", kNow))), TokenVerdict::refused);
    EXPECT_EQ(check(good(claims(kProject, std::string(129, 'x'), kNow))), TokenVerdict::refused);
    auto c = claims(kProject, "u", kNow);
    c["sub"] = 42;
    EXPECT_EQ(check(good(c)), TokenVerdict::refused);
}

TEST_F(FirebaseTokenTest, MalformedTokensAreRefused) {
    for (const char* token : {"", "abc", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"})
        EXPECT_EQ(check(token), TokenVerdict::refused) << token;
}

TEST_F(FirebaseTokenTest, CertificateDocumentsAreCheckedWhole) {
    std::string error;
    EXPECT_FALSE(CertificateSet::parse("not json", error));
    EXPECT_FALSE(CertificateSet::parse("{}", error));
    EXPECT_FALSE(CertificateSet::parse(R"({"k1": 5})", error));
    EXPECT_FALSE(CertificateSet::parse(R"({"k1": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"})", error));
    auto both = CertificateSet::parse(
        json{{"k1", signer_->certificate_pem()}, {"k2", other_->certificate_pem()}}.dump(), error);
    ASSERT_TRUE(both);
    EXPECT_EQ(both->size(), 2u);
    EXPECT_NE(both->key("k2"), nullptr);
    EXPECT_EQ(both->key("k3"), nullptr);
}

TEST_F(FirebaseTokenTest, CacheControlMaxAge) {
    EXPECT_EQ(cache_max_age("public, max-age=19302, must-revalidate, no-transform"), 19302);
    EXPECT_EQ(cache_max_age("Max-Age=5"), 5);
    EXPECT_EQ(cache_max_age("no-cache"), -1);
    EXPECT_EQ(cache_max_age("max-age=abc"), -1);
    EXPECT_EQ(cache_max_age(""), -1);
}

TEST_F(FirebaseTokenTest, TheProviderChecksThePhoneAndAsksForUnknownKids) {
    FixedClock clock;
    CertificateStore store;
    int refreshes = 0;
    FirebaseIdentityProvider provider(rules_, /*require_phone_match=*/true, store, clock,
                                      [&] { ++refreshes; });
    Identity identity;
    std::string reason;
    const std::string token = good(claims(kProject, "uid-7", kNow, "+915551"));
    EXPECT_FALSE(provider.verify("+915551", token, identity, reason));
    EXPECT_EQ(reason, "no current certificates");
    EXPECT_EQ(refreshes, 1);

    store.replace(std::make_shared<const CertificateSet>(certs()), 0);
    EXPECT_TRUE(provider.verify("+915551", token, identity, reason)) << reason;
    EXPECT_EQ(identity.sub, "uid-7");
    EXPECT_FALSE(provider.verify("+915552", token, identity, reason));
    EXPECT_EQ(reason, "phone_number does not match the username");
    // No phone_number in the token: any username (the binding to sub still applies).
    EXPECT_TRUE(provider.verify("bot-1", good(), identity, reason)) << reason;

    EXPECT_FALSE(provider.verify("+915551", signer_->token(header("k2"), claims(kProject, "u", kNow)),
                                 identity, reason));
    EXPECT_EQ(refreshes, 2);

    // An expired set is not used.
    store.replace(std::make_shared<const CertificateSet>(certs()), clock.wall_ms());
    EXPECT_FALSE(provider.verify("+915551", token, identity, reason));
    EXPECT_EQ(reason, "no current certificates");
}

} // namespace
} // namespace vartalap::profile
