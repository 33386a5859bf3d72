// Issue 11, section 3: the app's exact shapes, end to end through every daemon of
// topology/local.toml in this process, sent and read as the app does. Where each shape comes
// from: the app (github.com/ramank775/vartalap, tags v1.0-v2.5.17) and the original server
// (github.com/ramank775/chat-server, v2.8.3); the files are named at each test.
//
// Thread: the test's; every daemon runs on the System's threads.
#include "tests/integration/support/system_fixture.hpp"

#include <gtest/gtest.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

using Headers = std::map<std::string, std::string>;

Headers json_auth(const LoggedIn& who) {
    return {{"user", who.user}, {"accesskey", who.access_key}, {"content-type", "application/json"}};
}

// The flat message of app versions up to v2.4.0, as lib/models/socketMessage.dart's toMap
// writes it (enumToString lower-cases; module and action are null for a chat message).
json flat_message(const std::string& id, const std::string& from, const std::string& to,
                  const std::string& text, const std::string& chat_type = "individual") {
    return {{"msgId", id}, {"to", to}, {"from", from}, {"type", "text"},
            {"chatId", chat_type == "group" ? to : "chat-" + to}, {"text", text}, {"state", "new"},
            {"module", nullptr}, {"action", nullptr}, {"chatType", chat_type}};
}

class AppShapesTest : public ::testing::Test {
protected:
    WsClient connect_at(const std::string& path, const LoggedIn& who) {
        auto result = WsClient::connect("127.0.0.1", system_->ws_port(), path,
                                        {{"user", who.user}, {"accesskey", who.access_key}});
        if (auto* status = std::get_if<int>(&result))
            throw std::runtime_error(path + ": upgrade refused with HTTP " + std::to_string(*status));
        return std::move(std::get<WsClient>(result));
    }

    std::string create_group(const LoggedIn& admin, const std::vector<std::string>& members) {
        const auto created = system_->http("POST", "/v1.0/group/create",
                                           json{{"name", "team"}, {"members", members}, {"profilePic", nullptr}}.dump(),
                                           json_auth(admin));
        EXPECT_EQ(created.status, 200) << created.body;
        return json::parse(created.body).at("groupId").get<std::string>();
    }

    // What a recipient of either app version reads in a delivered message: the v2.5 app's
    // RemoteMessage.fromMap (lib/models/remoteMessage.dart: _v, id, head.type, to, from,
    // contentType, action, body) and the v2.4.0 app's SocketMessage.fromMap (the flat keys).
    static void expect_readable_by_both(const json& got, const std::string& id, const std::string& from,
                                        const std::string& to, const std::string& text,
                                        const std::string& chat_type) {
        EXPECT_EQ(got["_v"], 2.1);
        EXPECT_EQ(got["id"], id);
        EXPECT_EQ(got["head"]["type"], chat_type);
        EXPECT_EQ(got["head"]["to"], to);
        EXPECT_EQ(got["head"]["from"], from);
        EXPECT_EQ(got["head"]["contentType"], "text");
        EXPECT_EQ(got["head"]["action"], "message");
        EXPECT_EQ(got["body"]["text"], text);
        EXPECT_EQ(got["msgId"], id);
        EXPECT_EQ(got["from"], from);
        EXPECT_EQ(got["to"], to);
        EXPECT_EQ(got["type"], "text");
        EXPECT_EQ(got["text"], text);
        EXPECT_EQ(got["chatType"], chat_type);
    }

    TempDir data_;
    std::unique_ptr<RunningSystem> system_ = std::make_unique<RunningSystem>(local_topology(data_.path()));
};

// The app's addMembersToGroup and removeMemberToGroup return resp["status"] as a bool and
// roll back on anything else (vartalap v2.5.17, lib/services/api_service.dart); the original
// answered {status: true}, and 200 {status: false} to a non-admin removing someone else
// (chat-server v2.8.3, services/group-ms/group-ms.js, addMembers and removeMembers).
TEST_F(AppShapesTest, GroupAddAndRemoveAnswerWithAStatusBool) {
    auto alice = system_->login("+911111111111");
    auto bob = system_->login("+912222222222");
    auto carol = system_->login("+913333333333");
    auto dave = system_->login("+914444444444");
    const std::string group = create_group(alice, {bob.user});

    auto added = system_->http("POST", "/group/" + group + "/add",
                               json{{"members", {carol.user}}}.dump(), json_auth(alice));
    ASSERT_EQ(added.status, 200) << added.body;
    json body = json::parse(added.body);
    ASSERT_TRUE(body["status"].is_boolean()) << added.body;
    EXPECT_EQ(body["status"], true);
    EXPECT_EQ(body["members"].size(), 3u);

    // A non-admin removing someone else: refused, as 200 {"status": false, "error"} on the
    // app's path, and 403 on the REST-style one.
    auto refused = system_->http("POST", "/v1.0/group/" + group + "/remove",
                                 json{{"member", carol.user}}.dump(), json_auth(bob));
    ASSERT_EQ(refused.status, 200) << refused.body;
    body = json::parse(refused.body);
    EXPECT_EQ(body["status"], false);
    EXPECT_EQ(body["error"], "only an admin can remove other members");
    auto rest_style = system_->http("DELETE", "/v1.0/groups/" + group + "/members",
                                    json{{"member", carol.user}}.dump(), json_auth(bob));
    EXPECT_EQ(rest_style.status, 403) << rest_style.body;
    EXPECT_FALSE(json::parse(rest_style.body).contains("status"));

    // The admin removes carol; bob leaves by himself.
    auto removed = system_->http("POST", "/group/" + group + "/remove",
                                 json{{"member", carol.user}}.dump(), json_auth(alice));
    ASSERT_EQ(removed.status, 200) << removed.body;
    EXPECT_EQ(json::parse(removed.body)["status"], true);
    auto left = system_->http("POST", "/group/" + group + "/remove",
                              json{{"member", bob.user}}.dump(), json_auth(bob));
    ASSERT_EQ(left.status, 200) << left.body;
    EXPECT_EQ(json::parse(left.body)["status"], true);

    // Not a member: the original's 404 {status: false}; the REST-style path keeps its 404.
    auto outsider = system_->http("POST", "/group/" + group + "/add",
                                  json{{"members", {carol.user}}}.dump(), json_auth(dave));
    EXPECT_EQ(outsider.status, 404) << outsider.body;
    EXPECT_EQ(json::parse(outsider.body)["status"], false);
    auto outsider_rest = system_->http("POST", "/groups/" + group + "/members",
                                       json{{"members", {carol.user}}}.dump(), json_auth(dave));
    EXPECT_EQ(outsider_rest.status, 404) << outsider_rest.body;
    EXPECT_FALSE(json::parse(outsider_rest.body).contains("status"));
    // After all that the group is alice alone.
    auto got = system_->http("GET", "/group/" + group, {}, json_auth(alice));
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(json::parse(got.body)["members"].size(), 1u);
}

// The app's ws_url is set per deployment; the original's nginx site took the upgrade on
// /wss/ and /v1.0/wss/ (chat-server v2.8.3, deployment/config/nginx/nginx.docker.conf) and
// the gateway read ?ack=true on any path (services/connection-gateway/gateway.js).
TEST_F(AppShapesTest, WebSocketUpgradesOnEveryPathTheAppMayUseWithItsQuery) {
    auto alice = system_->login("+911111111111");
    auto bob = system_->login("+912222222222");
    auto bob_ws = connect_at("/v1.0/wss/", bob);
    int n = 0;
    for (const std::string path : {"/wss", "/", "/wss/", "/v1.0/wss", "/v1.0/wss/"}) {
        SCOPED_TRACE(path);
        auto alice_ws = connect_at(path + "?ack=true", alice);
        const std::string id = "p-" + std::to_string(++n);
        ASSERT_TRUE(alice_ws.send_text(text_message(id, bob.user, "via " + path).dump()));
        EXPECT_TRUE(wait_for_server_ack(alice_ws, id)); // the query was read
        auto got = wait_for_id(bob_ws, id);
        ASSERT_TRUE(got);
        EXPECT_EQ((*got)["body"]["text"], "via " + path);
        alice_ws.close();
    }
    for (const std::string path : {"/wss/x", "/v1.0", "/v1.0/wss/x", "/ws"}) {
        auto refused = WsClient::connect("127.0.0.1", system_->ws_port(), path + "?ack=true",
                                         {{"user", alice.user}, {"accesskey", alice.access_key}});
        ASSERT_TRUE(std::holds_alternative<int>(refused)) << path;
        EXPECT_EQ(std::get<int>(refused), 404) << path;
    }
}

// App versions up to v2.4.0 send flat messages (lib/models/socketMessage.dart) over the
// WebSocket; the original read them by `_v` (chat-server v2.8.3,
// libs/event-args/message.js, MessageEvent.fromString). Recipients on either version read
// what arrives.
TEST_F(AppShapesTest, FlatLegacyMessagesAreAcceptedOnWebSocketAndRest) {
    auto alice = system_->login("+911111111111");
    auto bob = system_->login("+912222222222");
    auto carol = system_->login("+913333333333");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);
    auto carol_ws = system_->connect(carol);

    // WebSocket, 1-to-1; the forged "from" is replaced.
    json flat = flat_message("1718000000001", "mallory", bob.user, "from v2.4.0");
    ASSERT_TRUE(alice_ws.send_text(flat.dump()));
    EXPECT_TRUE(wait_for_server_ack(alice_ws, "1718000000001"));
    auto got = wait_for_id(bob_ws, "1718000000001");
    ASSERT_TRUE(got);
    expect_readable_by_both(*got, "1718000000001", alice.user, bob.user, "from v2.4.0", "individual");
    EXPECT_EQ((*got)["chatId"], "chat-" + bob.user); // the sender's chat id, as it wrote it
    EXPECT_EQ((*got)["head"]["chatid"], "chat-" + bob.user);
    EXPECT_EQ(got->dump().find("mallory"), std::string::npos);

    // WebSocket, a group (chatType group, to = the group id).
    const std::string group = create_group(alice, {bob.user, carol.user});
    ASSERT_TRUE(alice_ws.send_text(flat_message("1718000000002", alice.user, group, "to all", "group").dump()));
    EXPECT_TRUE(wait_for_server_ack(alice_ws, "1718000000002"));
    for (WsClient* member : {&bob_ws, &carol_ws}) {
        got = wait_for_id(*member, "1718000000002");
        ASSERT_TRUE(got);
        expect_readable_by_both(*got, "1718000000002", alice.user, group, "to all", "group");
    }

    // REST: POST /messages (an array of serialized messages) and POST /send (an object).
    const json strings = json::array({flat_message("1718000000003", alice.user, bob.user, "rest strings").dump()});
    auto posted = system_->http("POST", "/v1.0/messages", strings.dump(), json_auth(alice));
    ASSERT_EQ(posted.status, 201) << posted.body;
    EXPECT_EQ(json::parse(posted.body)["results"][0], (json{{"id", "1718000000003"}, {"status", "accepted"}}));
    got = wait_for_id(bob_ws, "1718000000003");
    ASSERT_TRUE(got);
    expect_readable_by_both(*got, "1718000000003", alice.user, bob.user, "rest strings", "individual");

    auto sent = system_->http("POST", "/v1.0/send",
                              flat_message("1718000000004", alice.user, bob.user, "rest object").dump(),
                              json_auth(alice));
    ASSERT_EQ(sent.status, 200) << sent.body;
    EXPECT_EQ(json::parse(sent.body)["results"][0]["status"], "accepted");
    got = wait_for_id(bob_ws, "1718000000004");
    ASSERT_TRUE(got);
    expect_readable_by_both(*got, "1718000000004", alice.user, bob.user, "rest object", "individual");

    // And a flat message missing its recipient is refused with the usual error frame.
    json no_to = flat_message("1718000000005", alice.user, bob.user, "x");
    no_to.erase("to");
    ASSERT_TRUE(alice_ws.send_text(no_to.dump()));
    auto error = alice_ws.read_json_matching(
        [](const json& m) { return m.is_object() && m.value("id", "") == "1718000000005"; }, 5s);
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["head"]["contentType"], "error");
    EXPECT_EQ((*error)["body"]["error"], "missing head.to");
}

// The original upper-cased head.type (libs/event-args/message.js: `type.toUpperCase()`).
TEST_F(AppShapesTest, HeadTypeInAnyLetterCase) {
    auto alice = system_->login("+911111111111");
    auto bob = system_->login("+912222222222");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);
    json upper = text_message("c-1", bob.user, "upper");
    upper["head"]["type"] = "INDIVIDUAL";
    ASSERT_TRUE(alice_ws.send_text(upper.dump()));
    EXPECT_TRUE(wait_for_server_ack(alice_ws, "c-1"));
    auto got = wait_for_id(bob_ws, "c-1");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["chatType"], "individual");

    const std::string group = create_group(alice, {bob.user});
    json mixed = text_message("c-2", group, "mixed");
    mixed["head"]["type"] = "Group";
    ASSERT_TRUE(alice_ws.send_text(mixed.dump()));
    EXPECT_TRUE(wait_for_server_ack(alice_ws, "c-2"));
    got = wait_for_id(bob_ws, "c-2");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["head"]["to"], group);
    EXPECT_EQ((*got)["chatType"], "group");
}

// GET /profile/get is the original's alias of /profile (services/profile-ms/profile-ms.js);
// POST /messages?ack=true answered {"acks": [<SERVER_ACK as a string>...]}
// (services/connection-gateway/gateway.js, newMessage).
TEST_F(AppShapesTest, ProfileGetAndMessagesAcks) {
    auto alice = system_->login("+911111111111");
    auto bob = system_->login("+912222222222");
    const auto profile = system_->http("GET", "/v1.0/profile", {}, json_auth(alice));
    ASSERT_EQ(profile.status, 200) << profile.body;
    EXPECT_EQ(json::parse(profile.body)["username"], alice.user);
    for (const char* path : {"/profile/get", "/v1.0/profile/get"}) {
        const auto alias = system_->http("GET", path, {}, json_auth(alice));
        EXPECT_EQ(alias.status, 200) << path;
        EXPECT_EQ(alias.body, profile.body) << path;
    }
    EXPECT_EQ(system_->http("GET", "/profile/get").status, 401);

    auto bob_ws = system_->connect(bob);
    const json strings = json::array({text_message("k-1", bob.user, "one").dump(),
                                      text_message("k-2", bob.user, "two").dump(), "{oops"});
    auto posted = system_->http("POST", "/v1.0/messages?ack=true", strings.dump(), json_auth(alice));
    ASSERT_EQ(posted.status, 201) << posted.body;
    const json answer = json::parse(posted.body);
    EXPECT_EQ(answer["results"].size(), 3u);
    ASSERT_EQ(answer["acks"].size(), 2u) << posted.body;
    std::vector<std::string> acked;
    for (const auto& ack : answer["acks"]) {
        ASSERT_TRUE(ack.is_string());
        const json frame = json::parse(ack.get<std::string>());
        EXPECT_EQ(frame["head"]["contentType"], "SERVER_ACK");
        EXPECT_EQ(frame["head"]["to"], alice.user);
        acked.push_back(frame["id"]);
    }
    EXPECT_EQ(acked, (std::vector<std::string>{"k-1", "k-2"}));
    EXPECT_TRUE(wait_for_id(bob_ws, "k-1"));
    EXPECT_TRUE(wait_for_id(bob_ws, "k-2"));
    // Without the query: the results only, as before.
    auto plain = system_->http("POST", "/v1.0/messages",
                               json::array({text_message("k-3", bob.user, "three").dump()}).dump(), json_auth(alice));
    ASSERT_EQ(plain.status, 201) << plain.body;
    EXPECT_FALSE(json::parse(plain.body).contains("acks"));
}

} // namespace
} // namespace vartalap::testing
