// The one name rule (common/names.hpp): usernames at login, recipients, group members and
// group ids.
#include "common/names.hpp"
#include "common/store/group_store.hpp"

#include <gtest/gtest.h>

#include <string>

namespace vartalap {
namespace {

TEST(NamesTest, TheAppsPhoneNumbersAndTestNamesAreValid) {
    for (const std::string& name : std::vector<std::string>{"+911234567890", "+14155550123", "911234567890", "alice",
                                   "user-42", "bot_1.v2", "a", std::string(kMaxUsernameBytes, '9')})
        EXPECT_EQ(check_username(name), NameProblem::none) << name;
}

TEST(NamesTest, AddressesTheProtocolGivesAMeaningAreReserved) {
    for (const std::string& name : std::vector<std::string>{"server", "Server", "SERVER", "~server:g-1:7", "~", "~alice",
                                   "0f8fad5b-d9cb-469f-a165-70867728950e",
                                   "0F8FAD5B-D9CB-469F-A165-70867728950E"})
        EXPECT_EQ(check_username(name), NameProblem::reserved) << name;
    // Group ids: the server's words and prefix are reserved, a UUID is what they look like.
    EXPECT_EQ(check_group_id("server"), NameProblem::reserved);
    EXPECT_EQ(check_group_id("~server:x"), NameProblem::reserved);
    EXPECT_EQ(check_group_id("0f8fad5b-d9cb-469f-a165-70867728950e"), NameProblem::none);
    // Near misses of the shape are ordinary names.
    EXPECT_EQ(check_username("0f8fad5b-d9cb-469f-a165-70867728950"), NameProblem::none);
    EXPECT_EQ(check_username("0f8fad5bxd9cb-469f-a165-70867728950e"), NameProblem::none);
    EXPECT_EQ(check_username("servers"), NameProblem::none);
}

TEST(NamesTest, BadBytesAndLengthsAreRefused) {
    EXPECT_EQ(check_username(""), NameProblem::empty);
    EXPECT_EQ(check_username(std::string(kMaxUsernameBytes + 1, 'a')), NameProblem::too_long);
    EXPECT_EQ(check_group_id(std::string(kMaxGroupIdBytes + 1, 'a')), NameProblem::too_long);
    EXPECT_EQ(check_group_id(std::string(kMaxGroupIdBytes, 'a')), NameProblem::none);
    for (const std::string& name : std::vector<std::string>{std::string("a\0b", 3), std::string("a b"), std::string("a\tb"),
                                   std::string("a\nb"), std::string("a\x7f"), std::string("../etc"),
                                   std::string("a/b"), std::string("a\\b"), std::string("a\"b"),
                                   std::string("a;b"), std::string("a,b"), std::string("caf\xc3\xa9"),
                                   std::string("a\xe2\x80\xae" "b")}) {
        EXPECT_EQ(check_username(name), NameProblem::bad_character) << name;
        EXPECT_EQ(check_group_id(name), NameProblem::bad_character) << name;
    }
}

TEST(NamesTest, TheGroupStoreUsesTheSameRule) {
    EXPECT_FALSE(group_store::valid_username("server"));
    EXPECT_FALSE(group_store::valid_username("a/b"));
    EXPECT_TRUE(group_store::valid_username("+911234567890"));
    EXPECT_FALSE(group_store::valid_group_id("server"));
    EXPECT_TRUE(group_store::valid_group_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
    EXPECT_EQ(describe(NameProblem::reserved), "reserved");
}

} // namespace
} // namespace vartalap
