#include "common/wire/client_message.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vartalap {
namespace {

using nlohmann::json;

ClientOrigin origin() {
    ClientOrigin o;
    o.user = "alice";
    o.gateway = "ws-1";
    o.connection = 9;
    o.wants_server_ack = true;
    o.now_ms = 1700000000999;
    return o;
}

bool parse(const json& message, Envelope& out, std::string& error) {
    return parse_client_message(message.dump(), origin(), out, error);
}

TEST(ClientMessageTest, TextMessageBecomesChatEnvelopeWithRewrittenPayload) {
    json m = {{"_v", 2.1}, {"id", "m1"},
              {"head", {{"type", "individual"}, {"to", "bob"}, {"from", "mallory"}, {"chatid", "c1"},
                        {"contentType", "text"}, {"action", "message"}}},
              {"meta", {{"createdAt", 1}}},
              {"body", {{"text", "hi"}, {"state", "new"}}}};
    Envelope e;
    std::string error;
    ASSERT_TRUE(parse(m, e, error)) << error;
    EXPECT_EQ(e.kind, Kind::client_message);
    EXPECT_EQ(e.route, Route::chat);
    EXPECT_EQ(e.id, "m1");
    EXPECT_EQ(e.from, "alice");
    EXPECT_EQ(e.to, "bob");
    EXPECT_EQ(e.channel, "individual");
    EXPECT_EQ(e.origin_gateway, "ws-1");
    EXPECT_EQ(e.connection, 9u);
    EXPECT_TRUE(e.has(flag_wants_server_ack));
    EXPECT_FALSE(e.has(flag_ephemeral));
    const json out = json::parse(e.payload);
    EXPECT_EQ(out["head"]["from"], "alice");
    EXPECT_EQ(out["body"]["ts"], 1700000000);
    EXPECT_EQ(out["body"]["text"], "hi");
    EXPECT_EQ(out["meta"]["createdAt"], 1);
    EXPECT_EQ(out["from"], "alice");
    EXPECT_EQ(out["to"], "bob");
    EXPECT_EQ(out["msgId"], "m1");
    EXPECT_EQ(out["chatId"], "c1");
    EXPECT_EQ(out["text"], "hi");
    EXPECT_EQ(out["type"], "text");
    EXPECT_EQ(out["chatType"], "individual");
    EXPECT_EQ(out["action"], "message");
    EXPECT_EQ(out["module"], "message");
}

TEST(ClientMessageTest, ReceiptCarriesAckedIds) {
    json m = {{"id", "r1"}, {"head", {{"to", "bob"}, {"action", "state"}}},
              {"body", {{"ids", {"a", "b"}}, {"state", "read"}}}};
    Envelope e;
    std::string error;
    ASSERT_TRUE(parse(m, e, error)) << error;
    EXPECT_EQ(e.route, Route::receipt);
    EXPECT_EQ(e.ids, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(e.has(flag_system));
    EXPECT_EQ(json::parse(e.payload)["head"]["category"], nullptr); // untouched head keys stay as sent
    EXPECT_EQ(json::parse(e.payload)["module"], "system");
}

TEST(ClientMessageTest, ReceiptToServerAndClientAckAreAcksOnly) {
    Envelope e;
    std::string error;
    ASSERT_TRUE(parse({{"id", "r2"}, {"head", {{"to", "server"}, {"action", "state"}}},
                       {"body", {{"ids", {"x"}}, {"state", "delivered"}}}},
                      e, error));
    EXPECT_EQ(e.route, Route::ack);
    EXPECT_EQ(e.ids, std::vector<std::string>{"x"});
    ASSERT_TRUE(parse({{"id", "m9"}, {"head", {{"to", "server"}, {"contentType", "CLIENT_ACK"}}}}, e, error));
    EXPECT_EQ(e.route, Route::ack);
    EXPECT_EQ(e.ids, std::vector<std::string>{"m9"});
}

TEST(ClientMessageTest, TypingIsEphemeral) {
    Envelope e;
    std::string error;
    ASSERT_TRUE(parse({{"id", "t"}, {"head", {{"to", "bob"}, {"action", "typing"}, {"ephemeral", true}}},
                       {"body", {{"typing", true}}}},
                      e, error));
    EXPECT_TRUE(e.has(flag_ephemeral));
}

TEST(ClientMessageTest, GroupMessageIsFlagged) {
    Envelope e;
    std::string error;
    ASSERT_TRUE(parse({{"id", "g"}, {"head", {{"type", "group"}, {"to", "group-1"}}}, {"body", {{"text", "x"}}}}, e, error));
    EXPECT_TRUE(e.has(flag_group));
    EXPECT_EQ(e.channel, "group");
}

// Issue 14, section 2: ids the server makes (group events) are out of every client's reach.
TEST(ClientMessageTest, RefusesIdsInTheServersNamespaceButNotIdsThatOnlyContainIt) {
    Envelope e;
    std::string error;
    const ClientOrigin o = origin();
    EXPECT_FALSE(parse_client_message(
        R"({"id":"~server:g1:7","head":{"type":"individual","to":"bob","chatid":"c","contentType":"text","action":"message"},"body":{"text":"x"}})",
        o, e, error));
    EXPECT_NE(error.find("reserved message id"), std::string::npos) << error;
    EXPECT_EQ(e.id, "~server:g1:7"); // named, so the error frame can say which message
    EXPECT_TRUE(parse_client_message(
        R"({"id":"m~server:1","head":{"type":"individual","to":"bob","chatid":"c","contentType":"text","action":"message"},"body":{"text":"x"}})",
        o, e, error)) << error;
    EXPECT_TRUE(is_server_id("~server:x"));
    EXPECT_FALSE(is_server_id("~serve"));
    // But a CLIENT_ACK names the message it acks by its id: a group event's is the server's
    // (found by `make chaos`: the app-like checker's acks of events were refused).
    ASSERT_TRUE(parse_client_message(
        R"({"_v":2.1,"id":"~server:g1:7","head":{"type":"individual","to":"server","contentType":"CLIENT_ACK"}})",
        o, e, error)) << error;
    EXPECT_EQ(e.ids, std::vector<std::string>{"~server:g1:7"});
}

// Issue 11, section 3: the flat shape of app versions up to v2.4.0 (vartalap v2.4.0,
// lib/models/socketMessage.dart, toMap), exactly as that app writes it.
TEST(ClientMessageTest, FlatLegacyMessageIsReadAsItsV21Form) {
    const std::string flat =
        R"({"msgId":"l1","to":"bob","from":"mallory","type":"text","chatId":"c1","text":"old \"app\"",)"
        R"("state":"new","module":null,"action":null,"chatType":"individual"})";
    Envelope e;
    std::string error;
    ASSERT_TRUE(parse_client_message(flat, origin(), e, error)) << error;
    EXPECT_EQ(e.kind, Kind::client_message);
    EXPECT_EQ(e.route, Route::chat);
    EXPECT_EQ(e.id, "l1");
    EXPECT_EQ(e.from, "alice"); // the authenticated user, not the "from" it wrote
    EXPECT_EQ(e.to, "bob");
    EXPECT_EQ(e.channel, "individual");
    EXPECT_FALSE(e.has(flag_group));
    const json out = json::parse(e.payload);
    // What a v2.5 app reads (lib/models/remoteMessage.dart: _v, head.type, contentType,
    // action, from are required there).
    EXPECT_EQ(out["_v"], 2.1);
    EXPECT_EQ(out["id"], "l1");
    EXPECT_EQ(out["head"]["type"], "individual");
    EXPECT_EQ(out["head"]["to"], "bob");
    EXPECT_EQ(out["head"]["from"], "alice");
    EXPECT_EQ(out["head"]["chatid"], "c1");
    EXPECT_EQ(out["head"]["contentType"], "text");
    EXPECT_EQ(out["head"]["action"], "message");
    EXPECT_EQ(out["body"]["text"], "old \"app\"");
    EXPECT_EQ(out["body"]["ts"], 1700000000);
    // What a v2.4.0 app reads: the flat keys, the server's.
    EXPECT_EQ(out["msgId"], "l1");
    EXPECT_EQ(out["from"], "alice");
    EXPECT_EQ(out["to"], "bob");
    EXPECT_EQ(out["type"], "text");
    EXPECT_EQ(out["chatId"], "c1");
    EXPECT_EQ(out["text"], "old \"app\"");
    EXPECT_EQ(out["chatType"], "individual");
    EXPECT_EQ(out["action"], "message");
    // Each flat key once: no client-written duplicate left for a parser to pick.
    EXPECT_EQ(e.payload.find("mallory"), std::string::npos);

    // A group message of that app: chatType group, `to` the group id.
    ASSERT_TRUE(parse_client_message(
        R"({"msgId":"l2","to":"grp-1","from":"alice","type":"text","chatId":"grp-1","text":"hi all","state":"new","chatType":"group"})",
        origin(), e, error)) << error;
    EXPECT_TRUE(e.has(flag_group));
    EXPECT_EQ(e.channel, "group");
    EXPECT_EQ(json::parse(e.payload)["chatType"], "group");
    // The original read `chatType || module`, and `chatid` as well as `chatId`.
    ASSERT_TRUE(parse_client_message(
        R"({"msgId":"l3","to":"grp-1","type":"text","chatid":"grp-1","text":"x","module":"group"})",
        origin(), e, error)) << error;
    EXPECT_EQ(e.channel, "group");
    EXPECT_EQ(json::parse(e.payload)["head"]["chatid"], "grp-1");
    // _v below 2 is flat too; other members stay.
    ASSERT_TRUE(parse_client_message(R"({"_v":1.0,"msgId":7,"to":"bob","text":"x","extra":{"k":1}})",
                                     origin(), e, error)) << error;
    EXPECT_EQ(e.id, "7");
    EXPECT_EQ(json::parse(e.payload)["extra"]["k"], 1);
    // Flat messages are refused with the usual reasons.
    EXPECT_FALSE(parse_client_message(R"({"to":"bob","text":"no id"})", origin(), e, error));
    EXPECT_EQ(error, "missing message id");
    EXPECT_FALSE(parse_client_message(R"({"msgId":"l4","to":5,"text":"x"})", origin(), e, error));
    EXPECT_EQ(error, "head field has the wrong type or is too long");
    EXPECT_EQ(e.id, "l4"); // named in the error frame
    EXPECT_FALSE(parse_client_message(R"({"msgId":"l5","to":"bob","chatType":"broadcast"})", origin(), e, error));
    EXPECT_EQ(error, "head.type must be individual or group");
    EXPECT_FALSE(parse_client_message(R"({"msgId":"~server:g:1","to":"bob"})", origin(), e, error));
    EXPECT_NE(error.find("reserved message id"), std::string::npos);
}

// Issue 11, section 3: head.type in any letter case, as the original upper-cased it.
TEST(ClientMessageTest, HeadTypeInAnyLetterCase) {
    Envelope e;
    std::string error;
    ASSERT_TRUE(parse({{"_v", 2.1}, {"id", "u1"}, {"head", {{"type", "INDIVIDUAL"}, {"to", "bob"}}},
                       {"body", {{"text", "x"}}}}, e, error)) << error;
    EXPECT_EQ(e.channel, "individual");
    EXPECT_FALSE(e.has(flag_group));
    json out = json::parse(e.payload);
    EXPECT_EQ(out["head"]["type"], "INDIVIDUAL"); // the client's text is kept
    EXPECT_EQ(out["chatType"], "individual");     // the server's flat keys are lower case
    ASSERT_TRUE(parse({{"_v", 2.1}, {"id", "u2"}, {"head", {{"type", "Group"}, {"to", "g-1"}}},
                       {"body", {{"text", "x"}}}}, e, error)) << error;
    EXPECT_EQ(e.channel, "group");
    EXPECT_TRUE(e.has(flag_group));
    EXPECT_EQ(json::parse(e.payload)["chatType"], "group");
    EXPECT_FALSE(parse({{"id", "u3"}, {"head", {{"type", "Groups"}, {"to", "g-1"}}}}, e, error));
    EXPECT_FALSE(parse({{"id", "u4"}, {"head", {{"type", "grou"}, {"to", "g-1"}}}}, e, error));
    // contentType CLIENT_ACK too (the original upper-cased it as well).
    ASSERT_TRUE(parse({{"id", "m9"}, {"head", {{"to", "server"}, {"contentType", "client_ack"}}}}, e, error));
    EXPECT_EQ(e.route, Route::ack);
}

TEST(ClientMessageTest, RejectsMalformedMessagesWithReasons) {
    Envelope e;
    std::string error;
    const ClientOrigin o = origin();
    EXPECT_FALSE(parse_client_message("{not json", o, e, error));
    EXPECT_EQ(error, "invalid JSON");
    EXPECT_FALSE(parse_client_message("[1,2]", o, e, error));
    EXPECT_FALSE(parse_client_message(R"({"head":{"to":"bob"}})", o, e, error));
    EXPECT_EQ(error, "missing message id");
    EXPECT_FALSE(parse_client_message(R"({"_v":2.1,"id":"x"})", o, e, error));
    EXPECT_EQ(error, "missing head");
    // Without `_v` (or with one below 2) and without a head, a message is flat (legacy):
    // read as such, this one has no `to`.
    EXPECT_FALSE(parse_client_message(R"({"id":"x"})", o, e, error));
    EXPECT_EQ(error, "missing head.to");
    EXPECT_FALSE(parse_client_message(R"({"id":"x","head":{}})", o, e, error));
    EXPECT_EQ(error, "missing head.to");
    EXPECT_FALSE(parse_client_message(R"({"id":"x","head":{"to":"b","type":"broadcast"}})", o, e, error));
    EXPECT_FALSE(parse_client_message(R"({"id":"x","head":{"to":5}})", o, e, error));
    EXPECT_FALSE(parse_client_message(R"({"id":"x","head":{"to":"b"},"body":"str"})", o, e, error));
    EXPECT_FALSE(parse_client_message(R"({"id":"x","head":{"to":"b","action":"state"},"body":{}})", o, e, error));
    EXPECT_FALSE(parse_client_message(R"({"id":"x","head":{"to":"b","action":"state"},"body":{"ids":[1]}})", o, e, error));
    EXPECT_FALSE(parse_client_message(R"({"id":"x","head":{"to":"b","ephemeral":"yes"}})", o, e, error));
    ClientMessageLimits small;
    small.max_bytes = 10;
    EXPECT_FALSE(parse_client_message(R"({"id":"x","head":{"to":"b"}})", o, e, error, small));
    EXPECT_EQ(error, "message too large");
    // Deep nesting within the size limit is refused before parsing: writing the message out
    // again would recurse once per level.
    const auto nested = [](std::size_t levels) {
        return R"({"id":"x","head":{"to":"b"},"body":{"d":)" + std::string(levels, '[') +
               std::string(levels, ']') + "}}";
    };
    EXPECT_FALSE(parse_client_message(nested(30000), o, e, error)); // 60 KB: within the size limit
    EXPECT_EQ(error, "message nested too deeply (at most 64 levels)");
    // 62 levels of arrays + the message and body objects: 64, the limit.
    EXPECT_TRUE(parse_client_message(nested(62), o, e, error)) << error;
    EXPECT_FALSE(parse_client_message(nested(63), o, e, error));
    // Brackets inside strings (escaped quotes included) are text, not nesting.
    const std::string text = R"({"id":"x","head":{"to":"b"},"body":{"text":"\"[[[[)" +
                             std::string(100, '[') + R"("}})";
    EXPECT_TRUE(parse_client_message(text, o, e, error)) << error;
}

// Issue 12: a recipient is checked with the login rule (common/names.hpp), so nobody can
// address `server` (whose frames clients take for the server's), a server id, or a name no
// one could register.
TEST(ClientMessageTest, RecipientsFollowTheUsernameRule) {
    Envelope e;
    std::string error;
    const auto message_to = [](const std::string& to, const std::string& type = "individual") {
        return json{{"_v", 2.1}, {"id", "m1"},
                    {"head", {{"type", type}, {"to", to}, {"chatid", "c"}, {"contentType", "text"}}},
                    {"body", {{"text", "x"}}}};
    };
    for (const std::string& to : std::vector<std::string>{"server", "Server", "~server:g:1", "0f8fad5b-d9cb-469f-a165-70867728950e"}) {
        EXPECT_FALSE(parse(message_to(to), e, error)) << to;
        EXPECT_EQ(error, "invalid recipient (head.to): reserved") << to;
        EXPECT_EQ(e.id, "m1");
    }
    for (const std::string& to : std::vector<std::string>{std::string("a\0b", 3), std::string("a b"), std::string("../../etc/passwd"),
                                 std::string("a\x01"), std::string("caf\xc3\xa9")}) {
        EXPECT_FALSE(parse(message_to(to), e, error)) << to;
        EXPECT_EQ(error, "invalid recipient (head.to): a character that is not allowed") << to;
    }
    EXPECT_FALSE(parse(message_to(std::string(65, 'a')), e, error));
    EXPECT_EQ(error, "invalid recipient (head.to): too long");
    EXPECT_TRUE(parse(message_to("+911234567890"), e, error)) << error;
    // A typing indicator and a receipt are addressed too.
    EXPECT_FALSE(parse({{"id", "t"}, {"head", {{"to", "server"}, {"action", "typing"}, {"ephemeral", true}}},
                        {"body", {{"typing", true}}}},
                       e, error));
    EXPECT_FALSE(parse({{"id", "r"}, {"head", {{"to", "a b"}, {"action", "state"}}},
                        {"body", {{"ids", {"x"}}, {"state", "read"}}}},
                       e, error));
    // Group messages go to a group id: a server-made one is a UUID; `server` is no group.
    EXPECT_TRUE(parse(message_to("0f8fad5b-d9cb-469f-a165-70867728950e", "group"), e, error)) << error;
    EXPECT_FALSE(parse(message_to("server", "group"), e, error));
    EXPECT_FALSE(parse(message_to(std::string(129, 'g'), "group"), e, error));
    // An ack's `to` names nobody: CLIENT_ACK and a receipt to "server" stay acks.
    EXPECT_TRUE(parse({{"id", "m9"}, {"head", {{"to", "server"}, {"contentType", "CLIENT_ACK"}}}}, e, error));
    EXPECT_EQ(e.route, Route::ack);
}

TEST(ClientMessageTest, ServerAckShape) {
    const json ack = json::parse(server_ack_json("m1", "alice", 1700000000999));
    EXPECT_EQ(ack["_v"], 2.1);
    EXPECT_EQ(ack["id"], "m1");
    EXPECT_EQ(ack["head"]["type"], "individual");
    EXPECT_EQ(ack["head"]["from"], "server");
    EXPECT_EQ(ack["head"]["to"], "alice");
    EXPECT_EQ(ack["head"]["contentType"], "SERVER_ACK");
    EXPECT_EQ(ack["head"]["ephemeral"], true);
    EXPECT_EQ(ack["body"]["ts"], 1700000000);
}

} // namespace
} // namespace vartalap
