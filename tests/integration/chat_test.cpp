// End to end through every daemon of topology/local.toml, in this process, with real
// WebSocket and HTTP clients on kernel-chosen loopback ports.
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ChatTest : public ::testing::Test {
protected:
    TempDir data_;
    std::unique_ptr<RunningSystem> system_ =
        std::make_unique<RunningSystem>(local_topology(data_.path(), session_retries(300, 2)));
};

TEST_F(ChatTest, TwoUsersChatBothWaysWithServerAcks) {
    auto alice = system_->login("+911111111111");
    auto bob = system_->login("+912222222222");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);

    alice_ws.send_text(text_message("a-1", bob.user, "hello bob").dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "a-1"));
    auto got = wait_for_id(bob_ws, "a-1");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["body"]["text"], "hello bob");
    EXPECT_EQ((*got)["head"]["from"], alice.user);
    EXPECT_TRUE((*got)["body"].contains("ts"));
    // Legacy flat keys for older app versions.
    EXPECT_EQ((*got)["from"], alice.user);
    EXPECT_EQ((*got)["to"], bob.user);
    EXPECT_EQ((*got)["msgId"], "a-1");
    EXPECT_EQ((*got)["text"], "hello bob");

    bob_ws.send_text(text_message("b-1", alice.user, "hi alice").dump());
    ASSERT_TRUE(wait_for_server_ack(bob_ws, "b-1"));
    got = wait_for_id(alice_ws, "b-1");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["body"]["text"], "hi alice");
    EXPECT_EQ((*got)["head"]["from"], bob.user);
}

// `[system] threads`: the default (1) shares one event loop among the ZeroMQ-loop daemons
// (every other test here); with 0 each has its own thread, and with 2 the message-router and
// the session it routes to sit on different loops. Messages and receipts flow either way.
TEST(ChatThreadsTest, EveryThreadPlacementDelivers) {
    for (int threads : {0, 2}) {
        SCOPED_TRACE("threads = " + std::to_string(threads));
        TempDir data;
        RunningSystem system(local_topology(data.path(), [threads](topology::Topology& t) { t.threads = threads; }));
        auto alice = system.login("+911111111111");
        auto bob = system.login("+912222222222");
        auto alice_ws = system.connect(alice);
        auto bob_ws = system.connect(bob);
        for (int i = 0; i < 20; ++i) {
            const std::string id = "a-" + std::to_string(i);
            alice_ws.send_text(text_message(id, bob.user, "hello " + std::to_string(i)).dump());
            ASSERT_TRUE(wait_for_server_ack(alice_ws, id));
            auto got = wait_for_id(bob_ws, id);
            ASSERT_TRUE(got);
            EXPECT_EQ((*got)["head"]["from"], alice.user);
        }
    }
}

TEST_F(ChatTest, SpoofedFromIsOverwritten) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);
    auto message = text_message("spoof-1", bob.user, "who am i");
    message["head"]["from"] = "mallory";
    message["from"] = "mallory";
    alice_ws.send_text(message.dump());
    auto got = wait_for_id(bob_ws, "spoof-1");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["head"]["from"], "alice");
    EXPECT_EQ((*got)["from"], "alice");
}

TEST_F(ChatTest, ReceiptReachesSenderAndEndsRetries) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);

    alice_ws.send_text(text_message("r-1", bob.user, "ack me").dump());
    ASSERT_TRUE(wait_for_id(bob_ws, "r-1"));
    bob_ws.send_text(receipt("rc-1", alice.user, {"r-1"}).dump());
    auto got = wait_for_id(alice_ws, "rc-1");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["head"]["action"], "state");
    EXPECT_EQ((*got)["body"]["ids"], json::array({"r-1"}));
    EXPECT_EQ((*got)["head"]["from"], bob.user);
    // The ack timeout is 300 ms: with the receipt, no retry comes in three timeouts.
    EXPECT_FALSE(wait_for_id(bob_ws, "r-1", 1000ms));
}

// Issue 14, 3b: a message written to a connection is not written to it again (TCP delivered
// it, and the app does not ack a message it already has: a resend only adds load); without
// an ack it comes again on the next connection, until an ack (or max_unacked_writes).
TEST_F(ChatTest, AnUnackedMessageIsNotResentOnItsConnectionButComesOnTheNext) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);
    alice_ws.send_text(text_message("retry-1", bob.user, "again").dump());
    ASSERT_TRUE(wait_for_id(bob_ws, "retry-1"));
    // No ack: several 300 ms ack timeouts pass without a second copy.
    EXPECT_FALSE(wait_for_id(bob_ws, "retry-1", 1500ms));
    bob_ws.close();

    auto again = system_->connect(bob);
    ASSERT_TRUE(wait_for_id(again, "retry-1", 5s));
    // CLIENT_ACK (the newer ack form) ends it: gone from the stored messages.
    json ack = {{"_v", 2.1}, {"id", "retry-1"},
                {"head", {{"type", "individual"}, {"to", "server"}, {"contentType", "CLIENT_ACK"},
                          {"action", "ack"}}},
                {"body", json::object()}};
    again.send_text(ack.dump());
    const std::map<std::string, std::string> auth = {{"user", bob.user}, {"accesskey", bob.access_key}};
    bool gone = false;
    for (const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(5s);
         !gone && std::chrono::steady_clock::now() < until;) {
        const auto response = system_->http("GET", "/v1.0/messages", "", auth);
        gone = response.status == 200 && json::parse(response.body)["messages"].empty();
    }
    EXPECT_TRUE(gone);
    again.close();
    auto third = system_->connect(bob);
    EXPECT_FALSE(wait_for_id(third, "retry-1", 1000ms));
}

TEST_F(ChatTest, OfflineUserGetsMessageOnConnect) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto alice_ws = system_->connect(alice);
    alice_ws.send_text(text_message("off-1", bob.user, "while you were out").dump());
    alice_ws.send_text(text_message("off-2", bob.user, "second").dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "off-1"));
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "off-2"));
    auto bob_ws = system_->connect(bob);
    auto first = wait_for_id(bob_ws, "off-1");
    ASSERT_TRUE(first);
    EXPECT_EQ((*first)["body"]["text"], "while you were out");
    ASSERT_TRUE(wait_for_id(bob_ws, "off-2"));
}

// The default ack timeout (10 s) keeps retries out of the picture: a second copy here can
// only come from the resend. (While a message is being handed to persistence, a user who
// connects at that moment may still get it twice: at-least-once, see the session's notes.)
TEST(ChatDedupeTest, ResentMessageIsDeliveredOnceButAckedAgain) {
    TempDir data;
    RunningSystem system(local_topology(data.path()));
    auto alice = system.login("alice");
    auto bob = system.login("bob");
    auto alice_ws = system.connect(alice);
    auto bob_ws = system.connect(bob);
    const auto message = text_message("dup-1", bob.user, "once").dump();
    alice_ws.send_text(message);
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "dup-1"));
    alice_ws.send_text(message); // as if the first SERVER_ACK was lost
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "dup-1"));
    ASSERT_TRUE(wait_for_id(bob_ws, "dup-1"));
    EXPECT_FALSE(wait_for_id(bob_ws, "dup-1", 1000ms));
    bob_ws.send_text(receipt("dup-rc", alice.user, {"dup-1"}).dump());
    EXPECT_TRUE(wait_for_id(alice_ws, "dup-rc"));
}

TEST_F(ChatTest, BadCredentialsGet401) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto try_upgrade = [&](std::map<std::string, std::string> headers) {
        auto result = WsClient::connect("127.0.0.1", system_->ws_port(), "/wss", headers);
        auto* status = std::get_if<int>(&result);
        return status ? *status : 101;
    };
    EXPECT_EQ(try_upgrade({}), 401);
    EXPECT_EQ(try_upgrade({{"user", "alice"}}), 401);
    EXPECT_EQ(try_upgrade({{"user", "alice"}, {"accesskey", "v1.1700000000.forged"}}), 401);
    EXPECT_EQ(try_upgrade({{"user", "alice"}, {"accesskey", bob.access_key}}), 401);
    EXPECT_EQ(try_upgrade({{"user", "alice"}, {"accesskey", alice.access_key}}), 101);
    // Browsers send the pair as cookies.
    EXPECT_EQ(try_upgrade({{"Cookie", "user=alice; accesskey=" + alice.access_key}}), 101);
    EXPECT_EQ(try_upgrade({{"Cookie", "user=alice; accesskey=" + bob.access_key}}), 401);

    EXPECT_EQ(system_->http("GET", "/profile").status, 401);
    EXPECT_EQ(system_->http("GET", "/profile", "", {{"user", "alice"}, {"accesskey", bob.access_key}}).status, 401);
    auto profile = system_->http("GET", "/v1.0/profile", "", {{"user", "alice"}, {"accesskey", alice.access_key}});
    EXPECT_EQ(profile.status, 200);
    EXPECT_EQ(json::parse(profile.body)["username"], "alice");
}

TEST_F(ChatTest, LoginAnswersLikeTheOriginal) {
    auto response = system_->http("POST", "/login", R"({"username":"carol","authToken":"t","notificationToken":"n"})");
    ASSERT_EQ(response.status, 200);
    auto body = json::parse(response.body);
    EXPECT_EQ(body["status"], true);
    EXPECT_EQ(body["username"], "carol");
    EXPECT_EQ(body["isNew"], true);
    EXPECT_TRUE(body["accesskey"].is_string());
    response = system_->http("POST", "/login", R"({"username":"carol","notificationToken":"n"})", {{"token", "t"}});
    ASSERT_EQ(response.status, 200);
    EXPECT_EQ(json::parse(response.body)["isNew"], false);
    EXPECT_EQ(system_->http("POST", "/login", R"({"username":"carol","authToken":""})").status, 401);
    EXPECT_EQ(system_->http("POST", "/login", "not json").status, 400);
    EXPECT_EQ(system_->http("GET", "/login").status, 405);
    EXPECT_EQ(system_->http("GET", "/nowhere").status, 404);
    auto alive = system_->http("GET", "/alive");
    EXPECT_EQ(alive.status, 200);
    EXPECT_EQ(alive.body, "OK");
}

TEST_F(ChatTest, BadJsonGetsErrorFrameAndSocketStaysOpen) {
    auto alice = system_->login("alice");
    auto alice_ws = system_->connect(alice);
    alice_ws.send_text("{not json");
    auto error = alice_ws.read_json_matching(
        [](const json& m) { return m.is_object() && m["head"].value("contentType", "") == "error"; }, 5s);
    ASSERT_TRUE(error);
    EXPECT_TRUE((*error)["body"]["error"].is_string());
    alice_ws.send_text(R"({"id":"x","head":{"type":"individual"}})"); // no head.to
    ASSERT_TRUE(alice_ws.read_json_matching(
        [](const json& m) { return m.is_object() && m["head"].value("contentType", "") == "error"; }, 5s));
    EXPECT_FALSE(wait_for_server_ack(alice_ws, "x", 300ms));
    alice_ws.send_text("ping");
    EXPECT_EQ(alice_ws.read_text(5s), "pong");
}

// Deep nesting within the size limits (60 KB of brackets) must not crash a gateway: writing
// such a message out again would recurse once per level. Both gateways refuse it and serve on.
TEST_F(ChatTest, DeeplyNestedJsonIsRefusedAndBothGatewaysServeOn) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);
    const std::string deep = R"({"id":"deep","head":{"to":")" + bob.user + R"("},"body":{"d":)" +
                             std::string(30000, '[') + std::string(30000, ']') + "}}";
    alice_ws.send_text(deep);
    auto error = alice_ws.read_json_matching(
        [](const json& m) { return m.is_object() && m["head"].value("contentType", "") == "error"; }, 5s);
    ASSERT_TRUE(error);
    EXPECT_NE((*error)["body"]["error"].get<std::string>().find("nested too deeply"), std::string::npos);

    const std::map<std::string, std::string> headers = {{"user", alice.user}, {"accesskey", alice.access_key}};
    EXPECT_EQ(system_->http("POST", "/send", "[" + deep + "]", headers).status, 400);
    EXPECT_EQ(system_->http("POST", "/v1.0/contactbook/sync",
                            R"({"users":)" + std::string(30000, '[') + std::string(30000, ']') + "}", headers)
                  .status,
              400);

    // Both still serve: a message over WebSocket, and /alive over HTTP.
    alice_ws.send_text(text_message("after", bob.user, "still here").dump());
    EXPECT_TRUE(wait_for_server_ack(alice_ws, "after"));
    EXPECT_TRUE(wait_for_id(bob_ws, "after"));
    EXPECT_EQ(system_->http("GET", "/alive").status, 200);
}

TEST_F(ChatTest, OversizeFrameClosesWith1009) {
    auto alice = system_->login("alice");
    auto alice_ws = system_->connect(alice);
    alice_ws.send_text(std::string(200 * 1024, 'x'));
    EXPECT_FALSE(alice_ws.read_text(5s)); // the server closes
    EXPECT_EQ(alice_ws.close_code(), 1009);
}

TEST_F(ChatTest, NewConnectionReplacesOld) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto first = system_->connect(bob);
    auto second = system_->connect(bob);
    EXPECT_FALSE(first.read_text(5s));
    EXPECT_NE(first.close_code(), 0);
    auto alice_ws = system_->connect(alice);
    alice_ws.send_text(text_message("rep-1", bob.user, "to the new one").dump());
    EXPECT_TRUE(wait_for_id(second, "rep-1"));
}

TEST(ChatRestartTest, UnackedMessageSurvivesRestart) {
    TempDir data;
    LoggedIn alice, bob;
    {
        RunningSystem system(local_topology(data.path()));
        alice = system.login("alice");
        bob = system.login("bob");
        auto alice_ws = system.connect(alice);
        alice_ws.send_text(text_message("keep-1", bob.user, "survive").dump());
        ASSERT_TRUE(wait_for_server_ack(alice_ws, "keep-1"));
        // Bob receives it but does not ack before the restart.
        auto bob_ws = system.connect(bob);
        ASSERT_TRUE(wait_for_id(bob_ws, "keep-1"));
    }
    RunningSystem system(local_topology(data.path()));
    // Keys survive restarts: the secret lives in the data dir.
    auto bob_ws = system.connect(bob);
    auto got = wait_for_id(bob_ws, "keep-1");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["body"]["text"], "survive");
}

} // namespace
} // namespace vartalap::testing
