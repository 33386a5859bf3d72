#include "common/access_key.hpp"

#include <filesystem>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <thread>
#include <vector>

namespace vartalap {
namespace {

const std::string kSecret(32, 's');

TEST(AccessKeyTest, IssuedKeyVerifiesOnlyForItsUser) {
    AccessKeys keys(kSecret);
    const auto key = keys.issue("alice", 1700000000);
    EXPECT_TRUE(keys.verify("alice", key));
    EXPECT_FALSE(keys.verify("bob", key));
    EXPECT_FALSE(keys.verify("", key));
    EXPECT_FALSE(keys.verify("alice", ""));
    EXPECT_FALSE(keys.verify("alice", key + "x"));
    EXPECT_FALSE(keys.verify("alice", "v2.1700000001." + key.substr(14)));
    EXPECT_FALSE(AccessKeys(std::string(32, 't')).verify("alice", key)); // another secret
    // Two logins in one second (two devices) get different keys.
    EXPECT_NE(keys.issue("alice", 1700000000), key);
    // A nonce changed under the same signature does not verify.
    std::string other_nonce = key;
    other_nonce[14] = other_nonce[14] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(keys.verify("alice", other_nonce));
}

TEST(AccessKeyTest, KeysOfTheFirstFormatStillVerify) {
    // "v1.<issued_at>.<base64url(HMAC-SHA256(secret, "v1|alice|1700000000"))>", as issued
    // before the nonce was added.
    AccessKeys keys(kSecret);
    const std::string v1 = "v1.1700000000." + base64url_encode([] {
        unsigned char digest[32];
        unsigned int length = 0;
        const std::string message = "v1|alice|1700000000";
        HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
        return std::string(reinterpret_cast<char*>(digest), length);
    }());
    EXPECT_TRUE(keys.verify("alice", v1));
    EXPECT_FALSE(keys.verify("bob", v1));
}

TEST(AccessKeyTest, KeysOlderThanTheMaxAgeAreRefused) {
    AccessKeys keys(kSecret, 3600);
    const auto key = keys.issue("alice", 1000);
    EXPECT_TRUE(keys.verify("alice", key, 4599));
    EXPECT_FALSE(keys.verify("alice", key, 4600));
    EXPECT_EQ(keys.expires_at(key), 4600u);
    EXPECT_EQ(AccessKeys(kSecret).expires_at(key), 0u); // no max age: never
    EXPECT_TRUE(AccessKeys(kSecret).verify("alice", key, 1u << 31));
}

TEST(AccessKeyTest, KeysDatedInTheFutureAreRefused) {
    // Issue 12: a key dated ahead would outlive any max age; a few minutes of clock skew
    // between the profile's host and a gateway's are allowed, no more.
    for (const std::uint64_t max_age : {std::uint64_t{0}, std::uint64_t{3600}}) {
        AccessKeys keys(kSecret, max_age);
        const std::uint64_t now = 1'700'000'000;
        EXPECT_TRUE(keys.verify("alice", keys.issue("alice", now), now));
        EXPECT_TRUE(keys.verify("alice", keys.issue("alice", now + kAccessKeyMaxFutureSkewSeconds), now));
        EXPECT_FALSE(keys.verify("alice", keys.issue("alice", now + kAccessKeyMaxFutureSkewSeconds + 1), now));
        EXPECT_FALSE(keys.verify("alice", keys.issue("alice", now + 86'400 * 365), now));
        // Far future issue times cannot overflow the comparison.
        EXPECT_FALSE(keys.verify("alice", keys.issue("alice", UINT64_MAX - 1), now));
        EXPECT_FALSE(keys.verify("alice", keys.issue("alice", 99'999'999'999'999ull), 0));
    }
}

TEST(AccessKeyTest, KeysOfReservedOrMalformedUsernamesNeverVerify) {
    // A user registered as "server" before names were reserved keeps a correctly signed
    // key; it verifies no more (common/names.hpp).
    AccessKeys keys(kSecret);
    for (const std::string& user : std::vector<std::string>{"server", "SERVER", "~server:x", "a b", "a/../b",
                                   "0f8fad5b-d9cb-469f-a165-70867728950e", std::string(65, 'a')}) {
        EXPECT_FALSE(keys.verify(user, keys.issue(user, 1000), 1000)) << user;
    }
    EXPECT_TRUE(keys.verify("+911234567890", keys.issue("+911234567890", 1000), 1000));
}

TEST(AccessKeyTest, Base64urlRoundTrip) {
    std::string out;
    for (const std::string& bytes : {std::string(), std::string("f"), std::string("fo"),
                                    std::string("foo"), std::string("\xff\xfe\x00", 3)}) {
        ASSERT_TRUE(base64url_decode(base64url_encode(bytes), out));
        EXPECT_EQ(out, bytes);
    }
    EXPECT_FALSE(base64url_decode("a", out));
    EXPECT_FALSE(base64url_decode("ab+c", out));
    EXPECT_FALSE(base64url_decode("ab=c", out));
}

TEST(AccessKeyTest, ShortSecretIsRefused) {
    EXPECT_THROW(AccessKeys(std::string(31, 's')), std::invalid_argument);
}

TEST(AccessKeyTest, SecretIsCreatedOnceWithPrivateMode) {
    const auto dir = std::filesystem::temp_directory_path() / ("vartalap-secret-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    const auto file = dir / "secret.key";
    const std::string first = load_or_create_secret(file);
    EXPECT_EQ(first.size(), 32u);
    EXPECT_EQ(load_or_create_secret(file), first);
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    std::filesystem::remove_all(dir);
}

TEST(AccessKeyTest, ConcurrentFirstStartsAgreeOnOneSecret) {
    const auto dir = std::filesystem::temp_directory_path() / ("vartalap-race-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    constexpr int kStarters = 8;
    std::vector<std::string> secrets(kStarters);
    std::vector<std::thread> starters;
    for (int i = 0; i < kStarters; ++i)
        starters.emplace_back([&, i] { secrets[i] = load_or_create_secret(dir / "secret.key"); });
    for (auto& t : starters) t.join();
    for (const auto& secret : secrets) EXPECT_EQ(secret, secrets[0]);
    EXPECT_EQ(load_or_create_secret(dir / "secret.key"), secrets[0]);
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
    EXPECT_EQ(files, 1u); // no temporary file left behind
    std::filesystem::remove_all(dir);
}

TEST(AccessKeyTest, ConfiguredHexSecret) {
    EXPECT_EQ(secret_from_config("hex:00ff"), std::string("\x00\xff", 2));
    EXPECT_THROW(secret_from_config("hex:zz"), std::runtime_error);
    EXPECT_EQ(secret_from_config("plain"), "plain");
}

TEST(AccessKeyTest, Base64urlIsUnpaddedWithTheUrlAlphabet) {
    EXPECT_EQ(base64url_encode(""), "");
    EXPECT_EQ(base64url_encode("f"), "Zg");
    EXPECT_EQ(base64url_encode("fo"), "Zm8");
    EXPECT_EQ(base64url_encode("foo"), "Zm9v");
    EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64url_encode(std::string("\xfb\xff\xbf", 3)), "-_-_");
    EXPECT_EQ(base64url_encode(std::string("\x00\xfb\xff", 3)), "APv_");
}

} // namespace
} // namespace vartalap
