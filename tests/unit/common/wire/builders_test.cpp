// The envelope builders: a reply keeps what its requester matches on, a refusal carries its
// reason both as `error` and as the JSON payload, and a server_ack names the connection.
#include "common/wire/builders.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vartalap {
namespace {

Envelope request() {
    Envelope r;
    r.kind = Kind::request;
    r.id = "op-1";
    r.from = "alice";
    r.to = "g1";
    r.request_id = 42;
    r.method = "group_create";
    r.payload = R"({"name":"x"})";
    return r;
}

TEST(BuildersTest, AReplyKeepsTheRequestsCorrelationAndPayload) {
    const Envelope reply = make_reply(request(), Status::ok, R"({"groupId":"g1"})");
    EXPECT_EQ(reply.kind, Kind::reply);
    EXPECT_EQ(reply.request_id, 42u);
    EXPECT_EQ(reply.method, "group_create");
    EXPECT_EQ(reply.id, "op-1");
    EXPECT_EQ(reply.from, "alice");
    EXPECT_EQ(reply.to, "g1");
    EXPECT_EQ(reply.status, Status::ok);
    EXPECT_EQ(reply.payload, R"({"groupId":"g1"})");
    EXPECT_TRUE(reply.error.empty());
}

TEST(BuildersTest, ARefusalWithoutPayloadCarriesItsReasonAsJson) {
    const Envelope reply = make_reply(request(), Status::not_found, {}, "no such \"group\"");
    EXPECT_EQ(reply.status, Status::not_found);
    EXPECT_EQ(reply.error, "no such \"group\"");
    EXPECT_EQ(nlohmann::json::parse(reply.payload), (nlohmann::json{{"error", "no such \"group\""}}));
    // A refusal with its own payload keeps it.
    EXPECT_EQ(make_reply(request(), Status::bad_request, "{}", "x").payload, "{}");
    // An ok reply without payload stays empty.
    EXPECT_TRUE(make_reply(request(), Status::ok).payload.empty());
}

TEST(BuildersTest, AServerAckNamesTheSendersConnectionAndClearsTheReusedEnvelope) {
    Envelope out;
    out.payload = "left over";
    out.ids = {"x"};
    out.method = "login";
    out.flags = flag_ephemeral;
    out.route = Route::chat;
    build_server_ack(out, {.gateway = "ws-1", .connection = 7, .request_id = 9, .id = "m1",
                           .sender = "bob", .channel = "group", .status = Status::refused,
                           .error = "full"});
    EXPECT_EQ(out.kind, Kind::server_ack);
    EXPECT_EQ(out.origin_gateway, "ws-1");
    EXPECT_EQ(out.connection, 7u);
    EXPECT_EQ(out.request_id, 9u);
    EXPECT_EQ(out.id, "m1");
    EXPECT_EQ(out.from, "bob");
    EXPECT_EQ(out.to, "bob");
    EXPECT_EQ(out.channel, "group");
    EXPECT_EQ(out.status, Status::refused);
    EXPECT_EQ(out.error, "full");
    EXPECT_TRUE(out.payload.empty());
    EXPECT_TRUE(out.ids.empty());
    EXPECT_TRUE(out.method.empty());
    EXPECT_EQ(out.flags, 0u);
    EXPECT_EQ(out.route, Route::none);
}

} // namespace
} // namespace vartalap
