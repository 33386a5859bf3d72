// The payload a recipient reads is the client's own text with the server's stamps spliced in
// (client_message.hpp): these tests pin the splice on key order, missing or null bodies,
// escapes, whitespace, forged and duplicate keys, and hostile input.
#include "common/wire/client_message.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <random>
#include <string>
#include <vector>

namespace vartalap {
namespace {

using nlohmann::json;

ClientOrigin origin(std::string_view user = "alice") {
    ClientOrigin o;
    o.user = user;
    o.gateway = "ws-1";
    o.connection = 9;
    o.now_ms = 1700000000999;
    return o;
}

std::size_t count(std::string_view text, std::string_view needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

// Parses `text` as alice; fails the test if refused.
std::string payload_of(std::string_view text, Envelope* envelope = nullptr) {
    Envelope e;
    std::string error;
    EXPECT_TRUE(parse_client_message(text, origin(), e, error)) << error << " for " << text;
    if (envelope != nullptr) *envelope = e;
    return e.payload;
}

std::string refusal_of(std::string_view text) {
    Envelope e;
    std::string error;
    EXPECT_FALSE(parse_client_message(text, origin(), e, error)) << "accepted: " << text;
    return error;
}

TEST(ClientMessageSpliceTest, TheStampsAreSplicedIntoTheClientsTextByteForByte) {
    EXPECT_EQ(payload_of(R"({"id":"a","head":{"to":"b"}})"),
              R"({"id":"a","head":{"to":"b","from":"alice"},"body":{"ts":1700000000},)"
              R"("from":"alice","to":"b","msgId":"a","type":"text","chatId":"","module":"message",)"
              R"("action":"message","chatType":"individual"})");
    EXPECT_EQ(payload_of(R"({"_v":2.1,"id":"m","head":{"to":"b","chatid":"c"},"body":{"text":"hi"}})"),
              R"({"_v":2.1,"id":"m","head":{"to":"b","chatid":"c","from":"alice"},)"
              R"("body":{"text":"hi","ts":1700000000},"from":"alice","to":"b","msgId":"m",)"
              R"("type":"text","chatId":"c","text":"hi","module":"message","action":"message",)"
              R"("chatType":"individual"})");
}

TEST(ClientMessageSpliceTest, KeysInAnyOrderGiveTheSameMessage) {
    std::vector<std::string> top{R"("id":"m1")", R"("_v":2.1)", R"("meta":{"createdAt":1})",
                                 R"("body":{"state":"new","text":"hi","ts":5})",
                                 R"("head":{"chatid":"c","to":"bob","from":"mallory","type":"individual"})"};
    std::sort(top.begin(), top.end());
    json first;
    std::size_t orders = 0;
    do {
        std::string text = "{";
        for (std::size_t i = 0; i < top.size(); ++i) text += (i ? "," : "") + top[i];
        text += "}";
        Envelope e;
        const json out = json::parse(payload_of(text, &e));
        EXPECT_EQ(e.id, "m1");
        EXPECT_EQ(e.to, "bob");
        EXPECT_EQ(e.from, "alice");
        if (orders++ == 0) first = out;
        EXPECT_EQ(out, first) << text;
    } while (std::next_permutation(top.begin(), top.end()));
    EXPECT_EQ(orders, 120u);
    EXPECT_EQ(first["head"]["from"], "alice");
    EXPECT_EQ(first["body"]["ts"], 1700000000);
    EXPECT_EQ(first["body"]["text"], "hi");
    EXPECT_EQ(first["meta"]["createdAt"], 1);
    EXPECT_EQ(first["from"], "alice");
    EXPECT_EQ(first["chatId"], "c");
}

TEST(ClientMessageSpliceTest, AMissingOrNullBodyBecomesOneWithTheServerTime) {
    const json missing = json::parse(payload_of(R"({"id":"a","head":{"to":"b"}})"));
    EXPECT_EQ(missing["body"], (json{{"ts", 1700000000}}));
    const json null_body = json::parse(payload_of(R"({"id":"a","body" : null ,"head":{"to":"b"}})"));
    EXPECT_EQ(null_body["body"], (json{{"ts", 1700000000}}));
    const json empty = json::parse(payload_of(R"({"id":"a","head":{"to":"b"},"body":{ }})"));
    EXPECT_EQ(empty["body"], (json{{"ts", 1700000000}}));
    for (const char* body : {R"("str")", "[]", "[{}]", "5", "true"})
        EXPECT_EQ(refusal_of(std::string(R"({"id":"a","head":{"to":"b"},"body":)") + body + "}"),
                  "body must be an object");
}

TEST(ClientMessageSpliceTest, EscapesAreReadUnescapedAndWrittenAsSent) {
    Envelope e;
    const std::string text =
        R"({"\u0069d":"m\"1","h\u0065ad":{"t\u006f":"b\u006fb","chatid":"c\\d"},)"
        R"("body":{"te\u0078t":"line\nnext \ud83d\ude00 \"q\"","k\u0065y":"\u00e9"}})";
    const std::string out = payload_of(text, &e);
    EXPECT_EQ(e.id, "m\"1");
    EXPECT_EQ(e.to, "bob"); // a recipient is ASCII (common/names.hpp); its escapes are read
    // The client's members are kept as written, escapes included.
    EXPECT_NE(out.find(R"("k\u0065y":"\u00e9")"), std::string::npos) << out;
    EXPECT_NE(out.find(R"("t\u006f":"b\u006fb")"), std::string::npos) << out;
    const json parsed = json::parse(out);
    EXPECT_EQ(parsed["text"], "line\nnext \xF0\x9F\x98\x80 \"q\"");
    EXPECT_EQ(parsed["msgId"], "m\"1");
    EXPECT_EQ(parsed["to"], "bob");
    EXPECT_EQ(parsed["chatId"], "c\\d");
    EXPECT_EQ(parsed["head"]["from"], "alice");
    // The stamped user is escaped too.
    Envelope odd;
    std::string error;
    ASSERT_TRUE(parse_client_message(R"({"id":"a","head":{"to":"b"}})", origin("a\"b\\c\n"), odd, error));
    EXPECT_EQ(json::parse(odd.payload)["head"]["from"], "a\"b\\c\n");
    EXPECT_EQ(json::parse(odd.payload)["from"], "a\"b\\c\n");
}

TEST(ClientMessageSpliceTest, WhitespaceAnywhereIsKeptAndTheResultIsValidJson) {
    const std::string text = "\n\t{ \"id\" : \"a\" ,\r\n  \"head\" :\t{ \"to\" : \"b\" , \"from\" : \"m\" } ,"
                             "\n  \"meta\" : { \"x\" : [ 1 , 2 ] } ,\n  \"body\" : { \"ts\" : 1 }\n}\n ";
    const std::string out = payload_of(text);
    EXPECT_NE(out.find("\"meta\" : { \"x\" : [ 1 , 2 ] }"), std::string::npos) << out;
    const json parsed = json::parse(out);
    EXPECT_EQ(parsed["head"], (json{{"to", "b"}, {"from", "alice"}}));
    EXPECT_EQ(parsed["body"], (json{{"ts", 1700000000}}));
}

TEST(ClientMessageSpliceTest, NoRecipientCanReadAForgedFrom) {
    // Forged everywhere the server stamps, twice, escaped, and first and last in each object.
    const std::string text =
        R"({"from":"mallory","id":"a","fr\u006fm":"mallory",)"
        R"("head":{"from":"mallory","to":"b","from":"mallory","fro\u006d":"mallory"},)"
        R"("body":{"ts":1,"text":"hi","ts":2},"msgId":"forged","text":"forged","from":"mallory"})";
    const std::string out = payload_of(text);
    EXPECT_EQ(count(out, "mallory"), 0u) << out;
    EXPECT_EQ(count(out, "forged"), 0u) << out;
    EXPECT_EQ(count(out, "\"from\""), 2u) << out;  // head.from and the legacy key, once each
    EXPECT_EQ(count(out, "\"ts\""), 1u) << out;
    const json parsed = json::parse(out);
    EXPECT_EQ(parsed["from"], "alice");
    EXPECT_EQ(parsed["head"]["from"], "alice");
    EXPECT_EQ(parsed["msgId"], "a");
    EXPECT_EQ(parsed["text"], "hi");
    // Every member dropped: the objects stay valid.
    EXPECT_EQ(json::parse(payload_of(R"({"id":"a","head":{"from":"m","to":"b"},"body":{"ts":1}})"))["body"],
              (json{{"ts", 1700000000}}));
}

TEST(ClientMessageSpliceTest, KeysTheServerReadsMayNotComeTwice) {
    EXPECT_EQ(refusal_of(R"({"id":"a","id":"b","head":{"to":"b"}})"), "duplicate key id");
    EXPECT_EQ(refusal_of(R"({"id":"a","head":{"to":"b"},"head":{"to":"c"}})"), "duplicate key head");
    EXPECT_EQ(refusal_of(R"({"id":"a","head":{"to":"b"},"body":{},"body":null})"), "duplicate key body");
    EXPECT_EQ(refusal_of(R"({"id":"a","head":{"to":"b","t\u006f":"c"}})"), "duplicate key head.to");
    EXPECT_EQ(refusal_of(R"({"id":"a","head":{"to":"b","action":"state","action":"message"}})"),
              "duplicate key head.action");
    EXPECT_EQ(refusal_of(R"({"id":"a","head":{"to":"b","action":"state"},"body":{"ids":["x"],"ids":["y"]}})"),
              "duplicate key body.ids");
    EXPECT_EQ(refusal_of(R"({"id":"a","head":{"to":"b"},"body":{"text":"x","text":"y"}})"),
              "duplicate key body.text");
    // Keys the server does not read pass through as sent, duplicates included.
    const std::string out = payload_of(R"({"id":"a","head":{"to":"b","x":1,"x":2},"meta":{},"meta":{}})");
    EXPECT_EQ(count(out, "\"meta\":{}"), 2u) << out;
    EXPECT_EQ(count(out, "\"x\":"), 2u) << out;
}

TEST(ClientMessageSpliceTest, EveryValueIsValidatedEvenTheOnesTheServerDoesNotRead) {
    for (const char* text : {
             R"({"id":"a","head":{"to":"b"},"meta":{"x":tru}})",
             R"({"id":"a","head":{"to":"b"},"meta":{"x":"\x"}})",
             R"({"id":"a","head":{"to":"b"},"meta":{"x":01}})",
             R"({"id":"a","head":{"to":"b"},"meta":[1,]})",
             R"({"id":"a","head":{"to":"b"},"meta":{"x" 1}})",
             R"({"id":"a","head":{"to":"b"},"body":{"deep":{"x":nul}}})",
             R"({"id":"a","head":{"to":"b","misc":[1 2]}})",
             R"({"id":"a","head":{"to":"b"}} {})",
             R"({"id":"a","head":{"to":"b"}}})",
             R"({"id":"a","head":{"to":"b"})",
             "{\"id\":\"a\",\"head\":{\"to\":\"b\"},\"body\":{\"text\":\"\xC3\x28\"}}",  // not UTF-8
             "{\"id\":\"a\",\"head\":{\"to\":\"b\"},\"meta\":\"\xFF\"}",
             "{\"id\":\"a\",\"head\":{\"to\":\"b\"},\"meta\":\"\xED\xA0\x80\"}",            // surrogate
             "",
             "   ",
         })
        EXPECT_EQ(refusal_of(text), "invalid JSON") << text;
    // A UTF-8 byte order mark is allowed before the message, as JSON parsers do.
    const json bom = json::parse(payload_of("\xEF\xBB\xBF{\"id\":\"a\",\"head\":{\"to\":\"b\"}}"));
    EXPECT_EQ(bom["from"], "alice");
}

TEST(ClientMessageSpliceTest, DepthCountsEveryMemberWhereverItIs) {
    const auto nested = [](const char* before, std::size_t levels, const char* after) {
        return before + std::string(levels, '[') + std::string(levels, ']') + after;
    };
    // The message object is level 1, meta 2, its arrays 3..64.
    EXPECT_TRUE(payload_of(nested(R"({"id":"a","head":{"to":"b"},"meta":{"d":)", 62, "}}")).size() > 0);
    EXPECT_EQ(refusal_of(nested(R"({"id":"a","head":{"to":"b"},"meta":{"d":)", 63, "}}")),
              "message nested too deeply (at most 64 levels)");
    EXPECT_EQ(refusal_of(nested(R"({"id":"a","head":{"to":"b","x":)", 63, "}}")),
              "message nested too deeply (at most 64 levels)");
    EXPECT_EQ(refusal_of(nested(R"({"id":)", 64, R"(,"head":{"to":"b"}})")),
              "message nested too deeply (at most 64 levels)");
    EXPECT_EQ(refusal_of(nested("", 65, "")), "message nested too deeply (at most 64 levels)");
    // The check itself, as the REST gateway uses it.
    EXPECT_TRUE(nested_deeper_than(nested("", 3, ""), 2));
    EXPECT_FALSE(nested_deeper_than(nested("", 2, ""), 2));
    EXPECT_FALSE(nested_deeper_than(R"({"a":"[[[[[[","b":{"c":[1]}})", 3));
    EXPECT_TRUE(nested_deeper_than(R"({"a":"]]]","b":{"c":[1]}})", 2));
    EXPECT_TRUE(nested_deeper_than("\xEF\xBB\xBF[[[]]]", 2));
    EXPECT_FALSE(nested_deeper_than("{not json", 2));
}

TEST(ClientMessageSpliceTest, AnIntegerIdIsItsDecimalText) {
    Envelope e;
    const json out = json::parse(payload_of(R"({"id":12345678901234567890,"head":{"to":"b"}})", &e));
    EXPECT_EQ(e.id, "12345678901234567890");
    EXPECT_EQ(out["msgId"], "12345678901234567890");
    EXPECT_EQ(out["id"], 12345678901234567890u); // the client's member as sent
    EXPECT_EQ(payload_of(R"({"id":-7,"head":{"to":"b"}})", &e).size() > 0, true);
    EXPECT_EQ(e.id, "-7");
    EXPECT_EQ(refusal_of(R"({"id":1.5,"head":{"to":"b"}})"), "missing message id");
    EXPECT_EQ(refusal_of(R"({"id":123456789012345678901234,"head":{"to":"b"}})"), "missing message id");
}

TEST(ClientMessageSpliceTest, AReusedEnvelopeKeepsNothingOfThePreviousMessage) {
    Envelope e;
    std::string error;
    const ClientOrigin o = origin();
    ASSERT_TRUE(parse_client_message(
        R"({"id":"big","head":{"to":"bob","action":"state","type":"group"},"body":{"ids":["x","y"],"text":")" +
            std::string(5000, 'z') + R"("}})",
        o, e, error));
    ASSERT_TRUE(parse_client_message(R"({"id":"a","head":{"to":"b"}})", o, e, error));
    EXPECT_EQ(e.payload, payload_of(R"({"id":"a","head":{"to":"b"}})"));
    EXPECT_TRUE(e.ids.empty());
    EXPECT_EQ(e.flags, 0u);
    EXPECT_EQ(e.channel, "individual");
    EXPECT_EQ(e.route, Route::chat);
}

TEST(ClientMessageSpliceTest, ARefusalNamesTheMessageWhenItsIdCanBeRead) {
    Envelope e;
    std::string error;
    EXPECT_FALSE(parse_client_message(R"({"id":"x-1","head":{"type":"individual"}})", origin(), e, error));
    EXPECT_EQ(error, "missing head.to");
    EXPECT_EQ(e.id, "x-1");
    EXPECT_FALSE(parse_client_message(R"({"id":"x-2","head":{"to":"b"},"meta":tru})", origin(), e, error));
    EXPECT_EQ(e.id, ""); // not valid JSON: nothing is named
    EXPECT_FALSE(parse_client_message(R"({"id":5,"head":{}})", origin(), e, error));
    EXPECT_EQ(e.id, "");
}

// Hostile input in bulk: messages with random bytes replaced, inserted, deleted or cut off.
// Whatever is accepted must come out as valid JSON with the server's stamps, read the same
// by a parser that keeps the last of duplicate keys (nlohmann) and one that keeps the first
// (simdjson's DOM). Deterministic: a fixed seed.
TEST(ClientMessageSpliceTest, MutatedMessagesAreRefusedOrComeOutValidAndStamped) {
    const std::vector<std::string> bases{
        R"({"_v":2.1,"id":"m1","head":{"type":"individual","to":"bob","from":"mallory","chatid":"c"},"meta":{"a":[1,2.5,true,null]},"body":{"text":"h\u00e9\"i","ts":1,"n":{"x":[]}},"from":"mallory"})",
        R"({ "id" : 7 , "head" : { "to" : "server" , "contentType" : "CLIENT_ACK" } })",
        R"({"id":"r","head":{"to":"bob","action":"state"},"body":{"ids":["a","b"],"state":"read"}})",
    };
    static constexpr char interesting[] = "{}[]\",:\\ \n0a-e.tfn";
    std::mt19937 random(42);
    std::size_t accepted = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string text = bases[random() % bases.size()];
        for (int m = 0, n = 1 + static_cast<int>(random() % 3); m < n && !text.empty(); ++m) {
            const std::size_t at = random() % text.size();
            const char c = random() % 4 == 0 ? static_cast<char>(random() % 256)
                                               : interesting[random() % (sizeof interesting - 1)];
            switch (random() % 4) {
            case 0: text[at] = c; break;
            case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c); break;
            case 2: text.erase(at, 1); break;
            default: text.resize(at); break;
            }
        }
        Envelope e;
        std::string error;
        if (!parse_client_message(text, origin(), e, error)) continue;
        ++accepted;
        const json out = json::parse(e.payload, nullptr, false);
        ASSERT_FALSE(out.is_discarded()) << text << "\n -> " << e.payload;
        EXPECT_EQ(out["head"]["from"], "alice") << text;
        EXPECT_EQ(out["from"], "alice") << text;
        EXPECT_EQ(out["body"]["ts"], 1700000000) << text;
        // A parser that keeps the first of duplicate keys reads the same sender.
        simdjson::dom::parser first_wins;
        simdjson::dom::element doc;
        ASSERT_EQ(first_wins.parse(e.payload).get(doc), simdjson::SUCCESS) << e.payload;
        std::string_view from;
        ASSERT_EQ(doc["head"]["from"].get(from), simdjson::SUCCESS) << e.payload;
        EXPECT_EQ(from, "alice") << text;
        ASSERT_EQ(doc["from"].get(from), simdjson::SUCCESS) << e.payload;
        EXPECT_EQ(from, "alice") << text;
    }
    EXPECT_GT(accepted, 100u); // the mutations leave many messages valid: the check ran
}

TEST(ClientMessageSpliceTest, PeekReadsOneTopLevelStringMember) {
    EXPECT_EQ(peek_string_member(R"({"_v":2.1,"action":"add","body":{"action":"x"}})", "action"), "add");
    EXPECT_EQ(peek_string_member(R"({"body":{"action":"remove"}})", "action"), "");
    EXPECT_EQ(peek_string_member(R"({"a\u0063tion":"add\n"})", "action"), "add\n");
    EXPECT_EQ(peek_string_member(R"({"action":5})", "action"), "");
    EXPECT_EQ(peek_string_member(R"([{"action":"add"}])", "action"), "");
    EXPECT_EQ(peek_string_member("not json", "action"), "");
    EXPECT_EQ(peek_string_member("", "action"), "");
}

TEST(ClientMessageSpliceTest, ServerFramesEscapeWhatTheyQuote) {
    const json error = json::parse(error_json("bad \"x\"\n", "i\\d", "u\"", 1700000000999));
    EXPECT_EQ(error["body"]["error"], "bad \"x\"\n");
    EXPECT_EQ(error["body"]["ts"], 1700000000);
    EXPECT_EQ(error["id"], "i\\d");
    EXPECT_EQ(error["head"]["to"], "u\"");
    EXPECT_EQ(error["head"]["contentType"], "error");
    EXPECT_EQ(error["head"]["ephemeral"], true);
    EXPECT_EQ(error["_v"], 2.1);
}

} // namespace
} // namespace vartalap
