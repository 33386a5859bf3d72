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
    EXPECT_EQ(core_.handle(request("login", {{"username", ""}, {"authToken", "t"}})).status, Status::unauthorized);
    EXPECT_EQ(core_.handle(request("login", {{"username", "a b"}, {"authToken", "t"}})).status, Status::unauthorized);
    EXPECT_EQ(core_.handle(request("login", json::array())).status, Status::bad_request);
    EXPECT_EQ(core_.counters().refused_logins, 4u);
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

} // namespace
} // namespace vartalap::profile
