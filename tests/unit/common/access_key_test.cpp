#include "common/access_key.hpp"

#include <filesystem>
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
    EXPECT_FALSE(keys.verify("alice", "v1.1700000001." + key.substr(key.rfind('.') + 1)));
    EXPECT_FALSE(AccessKeys(std::string(32, 't')).verify("alice", key)); // another secret
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
