#include "daemons/profile/profile_core.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vartalap::profile {
namespace {

using nlohmann::json;

class FixedClock final : public Clock {
public:
    std::uint64_t monotonic_ms() const override { return 1000; }
    std::uint64_t wall_ms() const override { return 1700000000000; }
};

class ProfileCoreTest : public ::testing::Test {
protected:
    std::filesystem::path dir_ = std::filesystem::temp_directory_path() /
                                 ("vartalap-profile-" + std::to_string(::getpid()) + "-" +
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::unique_ptr<lmdb::Env> env_ = [this] {
        std::filesystem::remove_all(dir_);
        return std::make_unique<lmdb::Env>(dir_);
    }();
    DevelopmentIdentityProvider identity_;
    AccessKeys keys_{std::string(32, 'k')};
    FixedClock clock_;
    ProfileCore core_{*env_, identity_, keys_, clock_};

    ~ProfileCoreTest() override {
        env_.reset();
        std::filesystem::remove_all(dir_);
    }

    Envelope request(std::string method, json body, std::string from = {}) {
        Envelope e;
        e.kind = Kind::request;
        e.request_id = 77;
        e.method = std::move(method);
        e.from = std::move(from);
        e.payload = body.dump();
        return e;
    }
};

TEST_F(ProfileCoreTest, LoginIssuesAVerifiableKeyAndRemembersTheUser) {
    auto reply = core_.handle(request("login", {{"username", "+911"}, {"authToken", "t"}, {"notificationToken", "fcm-1"}}));
    ASSERT_EQ(reply.status, Status::ok);
    EXPECT_EQ(reply.request_id, 77u);
    auto body = json::parse(reply.payload);
    EXPECT_EQ(body["status"], true);
    EXPECT_EQ(body["username"], "+911");
    EXPECT_EQ(body["isNew"], true);
    EXPECT_TRUE(keys_.verify("+911", body["accesskey"].get<std::string>()));
    EXPECT_EQ(core_.notification_token("+911"), "fcm-1");

    reply = core_.handle(request("login", {{"username", "+911"}, {"authToken", "t"}, {"notificationToken", "fcm-2"}}));
    EXPECT_EQ(json::parse(reply.payload)["isNew"], false);
    EXPECT_EQ(core_.notification_token("+911"), "fcm-2");
}

TEST_F(ProfileCoreTest, LoginRefusals) {
    EXPECT_EQ(core_.handle(request("login", {{"username", "a"}})).status, Status::unauthorized);
    EXPECT_EQ(core_.handle(request("login", {{"username", "a"}, {"authToken", ""}})).status, Status::unauthorized);
    // A username no one may have is the client's error (400), whatever the token.
    EXPECT_EQ(core_.handle(request("login", {{"username", ""}, {"authToken", "t"}})).status, Status::bad_request);
    EXPECT_EQ(core_.handle(request("login", {{"username", "a b"}, {"authToken", "t"}})).status, Status::bad_request);
    EXPECT_EQ(core_.handle(request("login", json::array())).status, Status::bad_request);
    EXPECT_EQ(core_.counters().refused_logins, 4u);
    EXPECT_EQ(core_.counters().invalid_usernames, 2u);
}

// Issue 12: the stored login fields have limits; past one, 400 naming the field, and
// nothing is stored.
TEST_F(ProfileCoreTest, StoredLoginFieldsHaveSizeLimits) {
    const auto login = [&](json extra) {
        json body = {{"username", "+911"}, {"authToken", "t"}};
        body.update(extra);
        return core_.handle(request("login", body));
    };
    auto reply = login({{"deviceId", std::string(kMaxDeviceIdBytes + 1, 'd')}});
    EXPECT_EQ(reply.status, Status::bad_request);
    EXPECT_EQ(json::parse(reply.payload)["error"], "deviceId too long (at most 128 bytes)");
    reply = login({{"notificationToken", std::string(kMaxNotificationTokenBytes + 1, 't')}});
    EXPECT_EQ(reply.status, Status::bad_request);
    EXPECT_EQ(json::parse(reply.payload)["error"], "notificationToken too long (at most 1024 bytes)");
    reply = login({{"deviceId", json::array({1, 2})}});
    EXPECT_EQ(json::parse(reply.payload)["error"], "deviceId must be a string");
    reply = login({{"messageVersion", "2.1"}});
    EXPECT_EQ(json::parse(reply.payload)["error"], "messageVersion must be a number");
    EXPECT_EQ(core_.counters().invalid_fields, 4u);
    EXPECT_EQ(core_.counters().logins, 0u);
    // At the limits the login is taken.
    reply = login({{"deviceId", std::string(kMaxDeviceIdBytes, 'd')},
                   {"notificationToken", std::string(kMaxNotificationTokenBytes, 't')},
                   {"messageVersion", 2.1}});
    EXPECT_EQ(reply.status, Status::ok);
    EXPECT_EQ(core_.notification_token("+911"), std::string(kMaxNotificationTokenBytes, 't'));
}

// Issue 12: names the protocol gives a meaning cannot be registered (common/names.hpp).
TEST_F(ProfileCoreTest, ReservedUsernamesCannotLogIn) {
    for (const std::string& name : std::vector<std::string>{"server", "Server", "~server:g:1", "0f8fad5b-d9cb-469f-a165-70867728950e",
                                   "../x", std::string("a\0b", 3), std::string(65, '1')}) {
        const auto reply = core_.handle(request("login", {{"username", name}, {"authToken", "t"}}));
        EXPECT_EQ(reply.status, Status::bad_request) << name;
        EXPECT_NE(json::parse(reply.payload)["error"].get<std::string>().find("invalid username"),
                  std::string::npos);
    }
    EXPECT_EQ(json::parse(core_.handle(request("login", {{"username", "server"}, {"authToken", "t"}})).payload)["error"],
              "invalid username: reserved");
    EXPECT_EQ(core_.counters().logins, 0u);
    // The app's usernames: E.164 phone numbers.
    EXPECT_EQ(core_.handle(request("login", {{"username", "+911234567890"}, {"authToken", "t"}})).status, Status::ok);
}

TEST_F(ProfileCoreTest, ContactbookSyncListsRegisteredUsers) {
    core_.handle(request("login", {{"username", "alice"}, {"authToken", "t"}}));
    auto reply = core_.handle(request("contactbook_sync", {{"users", {"alice", "nobody", 5}}}, "alice"));
    ASSERT_EQ(reply.status, Status::ok);
    EXPECT_EQ(json::parse(reply.payload), (json{{"alice", true}}));
    EXPECT_EQ(core_.handle(request("contactbook_sync", {{"people", 1}}, "alice")).status, Status::bad_request);
}

TEST_F(ProfileCoreTest, ProfileOfTheCaller) {
    core_.handle(request("login", {{"username", "alice"}, {"authToken", "t"}}));
    auto reply = core_.handle(request("profile", json::object(), "alice"));
    ASSERT_EQ(reply.status, Status::ok);
    EXPECT_EQ(json::parse(reply.payload), (json{{"name", "alice"}, {"username", "alice"}}));
    EXPECT_EQ(core_.handle(request("profile", json::object(), "ghost")).status, Status::not_found);
    EXPECT_EQ(core_.handle(request("nope", json::object(), "alice")).status, Status::not_found);
}

// A provider whose token is the identity's sub ("sub/phone" gives a phone too).
class SubIsTokenProvider final : public IdentityProvider {
public:
    bool verify(std::string_view, std::string_view token, Identity& identity,
                std::string& reason) const override {
        if (token.empty()) {
            reason = "empty";
            return false;
        }
        const auto slash = token.find('/');
        identity.sub = std::string(token.substr(0, slash));
        identity.phone_number = slash == std::string_view::npos ? "" : std::string(token.substr(slash + 1));
        return true;
    }
};

TEST_F(ProfileCoreTest, TheFirstLoginBindsTheUsernameToItsSub) {
    SubIsTokenProvider subs;
    ProfileCore core(*env_, subs, keys_, clock_);
    auto login = [&](const char* user, const char* token) {
        return core.handle(request("login", {{"username", user}, {"authToken", token}}));
    };
    EXPECT_EQ(login("alice", "sub-a").status, Status::ok);
    EXPECT_EQ(login("alice", "sub-a").status, Status::ok);
    const auto refused = login("alice", "sub-b");
    EXPECT_EQ(refused.status, Status::unauthorized);
    EXPECT_EQ(json::parse(refused.payload)["error"], "username is bound to another identity");
    EXPECT_EQ(core.counters().sub_mismatches, 1u);
    // Another username is free to bind sub-b.
    EXPECT_EQ(login("bob", "sub-b").status, Status::ok);
    // The binding is durable: a new core over the same store keeps it.
    ProfileCore again(*env_, subs, keys_, clock_);
    EXPECT_EQ(again.handle(request("login", {{"username", "alice"}, {"authToken", "sub-b"}})).status,
              Status::unauthorized);
    // A user made by the development provider (no sub) is bound by its first real login.
    EXPECT_EQ(core_.handle(request("login", {{"username", "carol"}, {"authToken", "dev"}})).status, Status::ok);
    EXPECT_EQ(login("carol", "sub-c").status, Status::ok);
    EXPECT_EQ(login("carol", "sub-d").status, Status::unauthorized);
}

TEST_F(ProfileCoreTest, ARefusedLoginSaysWhyInJson) {
    const auto reply = core_.handle(request("login", {{"username", "a"}, {"authToken", ""}}));
    EXPECT_EQ(reply.status, Status::unauthorized);
    EXPECT_EQ(json::parse(reply.payload)["error"], "invalid identity token: empty identity token");
}

TEST_F(ProfileCoreTest, LogoutRevokesThatKeyDurablyAndListsIt) {
    auto key_of = [&](const char* user) {
        return json::parse(core_.handle(request("login", {{"username", user}, {"authToken", "t"}})).payload)["accesskey"]
            .get<std::string>();
    };
    const std::string phone = key_of("alice");
    const std::string bob = key_of("bob");
    auto list = [&](ProfileCore& core, const std::string& epoch, std::uint64_t since) {
        return json::parse(core.handle(request("revocations", {{"epoch", epoch}, {"since", since}})).payload);
    };
    auto empty = list(core_, "", 0);
    EXPECT_EQ(empty["entries"].size(), 0u);
    EXPECT_EQ(empty["version"], 0);
    const std::string epoch = empty["epoch"];
    EXPECT_EQ(epoch.size(), 32u);

    EXPECT_EQ(core_.handle(request("logout", {{"accesskey", phone}}, "alice")).status, Status::ok);
    EXPECT_EQ(core_.handle(request("logout", {{"accesskey", phone}}, "alice")).status, Status::ok);
    EXPECT_EQ(core_.counters().logouts, 1u);
    // A key of another user, or none: not a logout.
    EXPECT_EQ(core_.handle(request("logout", {{"accesskey", bob}}, "alice")).status, Status::unauthorized);
    EXPECT_EQ(core_.handle(request("logout", json::object(), "alice")).status, Status::unauthorized);

    auto one = list(core_, epoch, 0);
    ASSERT_EQ(one["entries"].size(), 1u);
    EXPECT_EQ(one["entries"][0]["user"], "alice");
    EXPECT_EQ(one["entries"][0]["key"], phone);
    EXPECT_EQ(one["entries"][0]["seq"], 1);
    EXPECT_EQ(one["version"], 1);
    EXPECT_EQ(one["complete"], true);
    EXPECT_EQ(list(core_, epoch, 1)["entries"].size(), 0u);
    // A stale epoch gets the whole list.
    EXPECT_EQ(list(core_, "stale", 1)["entries"].size(), 1u);

    // Durable: a new core over the same directory (a restart) has the same epoch and list.
    env_.reset();
    env_ = std::make_unique<lmdb::Env>(dir_);
    ProfileCore restarted(*env_, identity_, keys_, clock_);
    auto after = list(restarted, epoch, 0);
    EXPECT_EQ(after["epoch"], epoch);
    ASSERT_EQ(after["entries"].size(), 1u);
    EXPECT_EQ(restarted.handle(request("logout", {{"accesskey", bob}}, "bob")).status, Status::ok);
    EXPECT_EQ(list(restarted, epoch, 1)["entries"][0]["seq"], 2);
}

TEST_F(ProfileCoreTest, RevocationsOfKeysPastTheirMaxAgeArePruned) {
    AccessKeys aging(std::string(32, 'k'), 3600);
    ProfileCore core(*env_, identity_, aging, clock_);
    const std::uint64_t now = clock_.wall_ms() / 1000;
    const std::string old_key = aging.issue("alice", now - 3500);
    const std::string new_key = aging.issue("alice", now);
    EXPECT_EQ(core.handle(request("logout", {{"accesskey", old_key}}, "alice")).status, Status::ok);
    EXPECT_EQ(core.handle(request("logout", {{"accesskey", new_key}}, "alice")).status, Status::ok);
    EXPECT_EQ(aging.expires_at(old_key), now + 100);
    core.prune_revocations();
    EXPECT_EQ(core.counters().revocations_pruned, 0u);
    // Too old to verify: nothing to revoke.
    EXPECT_EQ(core.handle(request("logout", {{"accesskey", aging.issue("alice", now - 3600)}}, "alice")).status,
              Status::unauthorized);

    class LaterClock final : public Clock {
    public:
        std::uint64_t monotonic_ms() const override { return 2000; }
        std::uint64_t wall_ms() const override { return 1700000000000 + 200'000; }
    } later;
    ProfileCore core_later(*env_, identity_, aging, later);
    core_later.prune_revocations();
    EXPECT_EQ(core_later.counters().revocations_pruned, 1u);
    auto left = json::parse(core_later.handle(request("revocations", {{"epoch", ""}, {"since", 0}})).payload);
    ASSERT_EQ(left["entries"].size(), 1u);
    EXPECT_EQ(left["entries"][0]["key"], new_key);
}

} // namespace
} // namespace vartalap::profile
