// WsGatewayCore with a fake outbox, fake connections and a hand-driven clock: no sockets.
// Thread: the test's.
#include "daemons/ws_gateway/ws_gateway_core.hpp"

#include <gtest/gtest.h>

#include <set>
#include <nlohmann/json.hpp>

#include <deque>

namespace vartalap::ws_gateway {
namespace {

using nlohmann::json;

class FakeClock final : public Clock {
public:
    std::uint64_t monotonic_ms() const override { return now_ms; }
    std::uint64_t wall_ms() const override { return now_ms; }
    std::uint64_t now_ms = 1'700'000'000'000;
};

struct Sent {
    std::string routing_id;
    Envelope envelope;
};

class FakeOutbox final : public WsGatewayOutbox {
public:
    // Routers 0, 1, 2, ... in turn: a first push goes to 0, a resend to the one after the
    // router it went to last.
    SendResult to_router(const Envelope& e, std::size_t& to) override {
        if (router_result != SendResult::ok) return router_result;
        to = to == kNoRouter ? 0 : to + 1;
        router.push_back(e);
        router_index.push_back(to);
        return router_result;
    }
    SendResult to_session(const Envelope& e) override {
        if (session_result == SendResult::ok) session.push_back(e);
        return session_result;
    }
    SendResult reply(std::string_view routing_id, const Envelope& e) override {
        replies.push_back({std::string(routing_id), e});
        return reply_result;
    }
    std::vector<Envelope> router, session;
    std::vector<std::size_t> router_index; // of each message in `router`
    std::vector<Sent> replies;
    SendResult router_result = SendResult::ok;
    SendResult session_result = SendResult::ok;
    SendResult reply_result = SendResult::ok;
    std::string session_of_everyone = "session-1"; // the shard owning every user here
    bool session_owns(std::string_view session, std::string_view /*user*/) const override {
        return session == session_of_everyone;
    }
};

class FakeConnection final : public ClientConnection {
public:
    FakeConnection(WsGatewayCore& core, std::string user, bool ack, std::size_t limit = 4)
        : ClientConnection(core.next_connection_id(), std::move(user), ack), limit_(limit) {}

    EnqueueResult enqueue(OutgoingFrame&& frame) override {
        if (close_code != 0) return EnqueueResult::closed;
        if (queue.size() >= limit_) return EnqueueResult::full;
        queue.push_back(std::move(frame));
        return EnqueueResult::queued;
    }
    void close(std::uint16_t code, std::string_view reason) override {
        if (close_code != 0) return;
        close_code = code;
        close_reason = std::string(reason);
    }
    void keep_alive() override { ++keep_alives; }
    // Takes the oldest queued frame, as the socket writer would.
    OutgoingFrame pop() {
        OutgoingFrame f = std::move(queue.front());
        queue.pop_front();
        return f;
    }
    json pop_json() { return json::parse(pop().text); }

    std::deque<OutgoingFrame> queue;
    std::uint16_t close_code = 0;
    std::string close_reason;
    int keep_alives = 0;

private:
    std::size_t limit_;
};

std::string chat(const std::string& id, const std::string& to) {
    return json{{"_v", 2.1},
                {"id", id},
                {"head", {{"type", "individual"}, {"to", to}, {"from", "mallory"}, {"chatid", "c"},
                          {"contentType", "text"}, {"action", "message"}}},
                {"body", {{"text", "hi"}}}}
        .dump();
}

Envelope request(Kind kind, std::uint64_t connection, std::uint64_t request_id = 0,
                 std::string payload = {}) {
    Envelope e;
    e.kind = kind;
    e.connection = connection;
    e.request_id = request_id;
    e.payload = std::move(payload);
    return e;
}

class WsGatewayCoreTest : public ::testing::Test {
protected:
    FakeClock clock_;
    FakeOutbox outbox_;
    WsGatewayCore core_{"ws-1", outbox_, clock_, WsGatewayOptions{}};
};

TEST_F(WsGatewayCoreTest, ConnectionIdsAreUniqueAndStartFromTheWallClock) {
    const std::uint64_t a = core_.next_connection_id();
    const std::uint64_t b = core_.next_connection_id();
    EXPECT_NE(a, b);
    EXPECT_GE(a, clock_.now_ms << 20); // a restarted gateway does not reuse old ids
}

TEST_F(WsGatewayCoreTest, OpenSendsConnectToTheSession) {
    FakeConnection alice(core_, "alice", /*ack=*/true);
    ASSERT_TRUE(core_.opened(alice));
    ASSERT_EQ(outbox_.session.size(), 1u);
    const Envelope& e = outbox_.session[0];
    EXPECT_EQ(e.kind, Kind::connect);
    EXPECT_EQ(e.from, "alice");
    EXPECT_EQ(e.origin_gateway, "ws-1");
    EXPECT_EQ(e.connection, alice.id());
    EXPECT_TRUE(e.has(flag_wants_server_ack));
    EXPECT_EQ(core_.connection_count(), 1u);

    core_.closed(alice);
    ASSERT_EQ(outbox_.session.size(), 2u);
    EXPECT_EQ(outbox_.session[1].kind, Kind::disconnect);
    EXPECT_EQ(outbox_.session[1].connection, alice.id());
    EXPECT_EQ(core_.connection_count(), 0u);
    core_.closed(alice); // a second end is ignored
    EXPECT_EQ(outbox_.session.size(), 2u);
}

TEST_F(WsGatewayCoreTest, ConnectNotQueuedRefusesTheConnection) {
    outbox_.session_result = SendResult::would_block;
    FakeConnection alice(core_, "alice", false);
    EXPECT_FALSE(core_.opened(alice));
    EXPECT_EQ(core_.connection_count(), 0u);
    EXPECT_EQ(core_.counters().events_dropped, 1u);
}

TEST_F(WsGatewayCoreTest, ARevokedKeyClosesOnlyItsOwnConnection) {
    FakeConnection alice(core_, "alice", false);
    alice.set_access_key("v1.1.key-a");
    FakeConnection bob(core_, "bob", false);
    bob.set_access_key("v1.1.key-b");
    ASSERT_TRUE(core_.opened(alice));
    ASSERT_TRUE(core_.opened(bob));
    core_.revoke("alice", "v1.1.other-device-key"); // another key of alice: nothing
    core_.revoke("carol", "v1.1.key-a");            // nobody
    EXPECT_EQ(alice.close_code, 0);
    core_.revoke("alice", "v1.1.key-a");
    EXPECT_EQ(alice.close_code, kCloseRevoked);
    EXPECT_EQ(alice.close_reason, "access key revoked");
    EXPECT_EQ(bob.close_code, 0);
    EXPECT_EQ(core_.counters().revoked_closed, 1u);
}

TEST_F(WsGatewayCoreTest, NewConnectionReplacesTheOldOneWithoutADisconnect) {
    FakeConnection first(core_, "alice", false);
    FakeConnection second(core_, "alice", false);
    ASSERT_TRUE(core_.opened(first));
    // A delivery queued on the first connection...
    Envelope deliver = request(Kind::deliver, first.id(), 5, "payload");
    core_.session_request("session-1", deliver);
    ASSERT_EQ(first.queue.size(), 1u);

    ASSERT_TRUE(core_.opened(second));
    EXPECT_EQ(first.close_code, kCloseReplaced);
    EXPECT_EQ(first.close_reason, "replaced");
    EXPECT_EQ(second.close_code, 0);
    EXPECT_EQ(core_.connection_count(), 1u);

    // ...and when the first socket ends: its queued frame is answered, no disconnect.
    core_.frame_done(first.pop().ticket, /*written=*/false);
    core_.closed(first);
    ASSERT_EQ(outbox_.session.size(), 2u); // connect, connect
    EXPECT_EQ(outbox_.session[1].connection, second.id());
    ASSERT_EQ(outbox_.replies.size(), 1u);
    EXPECT_EQ(outbox_.replies[0].envelope.status, Status::not_connected);

    // Deliveries to the old id are not_connected; to the new one they are queued.
    Envelope old_deliver = request(Kind::deliver, first.id(), 6, "x");
    core_.session_request("session-1", old_deliver);
    EXPECT_EQ(outbox_.replies.back().envelope.status, Status::not_connected);
    Envelope new_deliver = request(Kind::deliver, second.id(), 7, "x");
    core_.session_request("session-1", new_deliver);
    EXPECT_EQ(second.queue.size(), 1u);
}

TEST_F(WsGatewayCoreTest, KeepAliveSweepsEveryRegisteredConnectionOnce) {
    FakeConnection alice(core_, "alice", false);
    FakeConnection replaced(core_, "bob", false);
    FakeConnection bob(core_, "bob", false);
    FakeConnection never_opened(core_, "carol", false);
    ASSERT_TRUE(core_.opened(alice));
    ASSERT_TRUE(core_.opened(replaced));
    ASSERT_TRUE(core_.opened(bob)); // replaces the first of bob's connections
    core_.keep_alive();
    core_.keep_alive();
    EXPECT_EQ(alice.keep_alives, 2);
    EXPECT_EQ(bob.keep_alives, 2);
    EXPECT_EQ(replaced.keep_alives, 0); // it is closing: no longer the gateway's to ping
    EXPECT_EQ(never_opened.keep_alives, 0);
    core_.closed(alice);
    core_.keep_alive();
    EXPECT_EQ(alice.keep_alives, 2);
    EXPECT_EQ(bob.keep_alives, 3);
}

TEST_F(WsGatewayCoreTest, PingGetsPong) {
    FakeConnection alice(core_, "alice", false);
    ASSERT_TRUE(core_.opened(alice));
    core_.client_text(alice, "ping");
    ASSERT_EQ(alice.queue.size(), 1u);
    EXPECT_EQ(alice.queue[0].text, "pong");
    EXPECT_FALSE(alice.queue[0].ticket.owed());
    EXPECT_TRUE(outbox_.router.empty());
}

TEST_F(WsGatewayCoreTest, ValidMessageGoesToTheRouterAsTheAuthenticatedUser) {
    FakeConnection alice(core_, "alice", /*ack=*/true);
    ASSERT_TRUE(core_.opened(alice));
    core_.client_text(alice, chat("m-1", "bob"));
    ASSERT_EQ(outbox_.router.size(), 1u);
    const Envelope& e = outbox_.router[0];
    EXPECT_EQ(e.kind, Kind::client_message);
    EXPECT_EQ(e.id, "m-1");
    EXPECT_EQ(e.from, "alice");
    EXPECT_EQ(e.to, "bob");
    EXPECT_EQ(e.origin_gateway, "ws-1");
    EXPECT_EQ(e.connection, alice.id());
    EXPECT_EQ(e.created_at_ms, clock_.now_ms);
    EXPECT_TRUE(e.has(flag_wants_server_ack));
    EXPECT_EQ(json::parse(e.payload)["head"]["from"], "alice");
    EXPECT_TRUE(alice.queue.empty()); // no SERVER_ACK at ingress
    EXPECT_EQ(core_.counters().client_messages, 1u);
}

TEST_F(WsGatewayCoreTest, InvalidMessageGetsAnErrorFrame) {
    FakeConnection alice(core_, "alice", false);
    ASSERT_TRUE(core_.opened(alice));
    core_.client_text(alice, "{not json");
    core_.client_text(alice, R"({"id":"x-1","head":{"type":"individual"}})");
    core_.client_binary(alice);
    ASSERT_EQ(alice.queue.size(), 3u);
    json error = alice.pop_json();
    EXPECT_EQ(error["head"]["contentType"], "error");
    EXPECT_EQ(error["head"]["to"], "alice");
    EXPECT_EQ(error["id"], "");
    error = alice.pop_json();
    EXPECT_EQ(error["id"], "x-1");
    EXPECT_TRUE(error["body"]["error"].is_string());
    error = alice.pop_json();
    EXPECT_EQ(error["head"]["contentType"], "error");
    EXPECT_TRUE(outbox_.router.empty());
    EXPECT_EQ(alice.close_code, 0); // the socket stays open
    EXPECT_EQ(core_.counters().client_errors, 3u);
}

TEST_F(WsGatewayCoreTest, BusyRouterTellsTheClientToRetry) {
    FakeConnection alice(core_, "alice", true);
    ASSERT_TRUE(core_.opened(alice));
    outbox_.router_result = SendResult::would_block;
    core_.client_text(alice, chat("m-2", "bob"));
    ASSERT_EQ(alice.queue.size(), 1u);
    const json error = alice.pop_json();
    EXPECT_EQ(error["head"]["contentType"], "error");
    EXPECT_EQ(error["id"], "m-2");
    EXPECT_EQ(error["body"]["error"], "server busy, retry");
    EXPECT_EQ(core_.counters().busy, 1u);
    EXPECT_EQ(core_.counters().client_messages, 0u);
}

TEST_F(WsGatewayCoreTest, DeliverIsAnsweredWhenItsFrameIsWritten) {
    FakeConnection bob(core_, "bob", false);
    ASSERT_TRUE(core_.opened(bob));
    Envelope deliver = request(Kind::deliver, bob.id(), 42, "the payload");
    core_.session_request("session-1", deliver);
    ASSERT_EQ(bob.queue.size(), 1u);
    EXPECT_TRUE(outbox_.replies.empty()); // not before the write completes
    OutgoingFrame frame = bob.pop();
    EXPECT_EQ(frame.text, "the payload");
    core_.frame_done(frame.ticket, /*written=*/true);
    ASSERT_EQ(outbox_.replies.size(), 1u);
    EXPECT_EQ(outbox_.replies[0].routing_id, "session-1");
    const Envelope& reply = outbox_.replies[0].envelope;
    EXPECT_EQ(reply.kind, Kind::deliver_result);
    EXPECT_EQ(reply.request_id, 42u);
    EXPECT_EQ(reply.status, Status::ok);
    EXPECT_EQ(reply.origin_gateway, "ws-1");
}

TEST_F(WsGatewayCoreTest, DeliverOutcomesWithoutAWrite) {
    // Unknown connection.
    Envelope unknown = request(Kind::deliver, 999, 1, "x");
    core_.session_request("s", unknown);
    ASSERT_EQ(outbox_.replies.size(), 1u);
    EXPECT_EQ(outbox_.replies[0].envelope.status, Status::not_connected);
    EXPECT_EQ(outbox_.replies[0].envelope.request_id, 1u);

    // Full queue: overloaded, and the connection stays open.
    FakeConnection bob(core_, "bob", false, /*limit=*/1);
    ASSERT_TRUE(core_.opened(bob));
    Envelope first = request(Kind::deliver, bob.id(), 2, "a");
    Envelope second = request(Kind::deliver, bob.id(), 3, "b");
    core_.session_request("s", first);
    core_.session_request("s", second);
    ASSERT_EQ(outbox_.replies.size(), 2u);
    EXPECT_EQ(outbox_.replies[1].envelope.status, Status::overloaded);
    EXPECT_EQ(outbox_.replies[1].envelope.request_id, 3u);
    EXPECT_EQ(bob.close_code, 0);

    // Closing connection (still registered until its socket ends): not_connected.
    bob.close(kCloseGoingAway, "going away");
    Envelope third = request(Kind::deliver, bob.id(), 4, "c");
    core_.session_request("s", third);
    EXPECT_EQ(outbox_.replies.back().envelope.status, Status::not_connected);
    EXPECT_EQ(outbox_.replies.back().envelope.request_id, 4u);
}

TEST_F(WsGatewayCoreTest, UnroutableReplyIsCountedNotFatal) {
    outbox_.reply_result = SendResult::unroutable;
    Envelope unknown = request(Kind::deliver, 999, 1, "x");
    core_.session_request("gone", unknown);
    EXPECT_EQ(core_.counters().replies_dropped, 1u);
}

TEST_F(WsGatewayCoreTest, ServerAckOnlyWhenTheConnectionAskedForIt) {
    FakeConnection alice(core_, "alice", /*ack=*/true);
    FakeConnection carol(core_, "carol", /*ack=*/false);
    ASSERT_TRUE(core_.opened(alice));
    ASSERT_TRUE(core_.opened(carol));
    Envelope ack = request(Kind::server_ack, alice.id());
    ack.id = "m-9";
    core_.session_request("s", ack);
    ASSERT_EQ(alice.queue.size(), 1u);
    const json frame = alice.pop_json();
    EXPECT_EQ(frame["id"], "m-9");
    EXPECT_EQ(frame["head"]["contentType"], "SERVER_ACK");
    EXPECT_EQ(frame["head"]["to"], "alice");

    ack.connection = carol.id();
    core_.session_request("s", ack);
    EXPECT_TRUE(carol.queue.empty());
    ack.connection = 12345; // gone
    core_.session_request("s", ack);
    EXPECT_TRUE(outbox_.replies.empty()); // server_ack takes no reply
}

TEST_F(WsGatewayCoreTest, RefusedServerAckBecomesAnErrorFrame) {
    FakeConnection carol(core_, "carol", /*ack=*/false);
    ASSERT_TRUE(core_.opened(carol));
    Envelope refusal = request(Kind::server_ack, carol.id());
    refusal.id = "m-10";
    refusal.status = Status::refused;
    refusal.error = "server storage full";
    core_.session_request("s", refusal);
    ASSERT_EQ(carol.queue.size(), 1u);
    const json frame = carol.pop_json();
    EXPECT_EQ(frame["id"], "m-10");
    EXPECT_EQ(frame["head"]["contentType"], "error");
    EXPECT_EQ(frame["body"]["error"], "server storage full");
}

TEST_F(WsGatewayCoreTest, CloseConnectionRequestClosesWithoutDisconnect) {
    FakeConnection alice(core_, "alice", false);
    ASSERT_TRUE(core_.opened(alice));
    Envelope close = request(Kind::close_connection, alice.id());
    core_.session_request("s", close);
    EXPECT_EQ(alice.close_code, kCloseReplaced);
    EXPECT_EQ(core_.connection_count(), 0u);
    core_.closed(alice);
    EXPECT_EQ(outbox_.session.size(), 1u); // only the connect
}

TEST_F(WsGatewayCoreTest, ResyncAnnouncesTheConnectionsOfTheAskingShardOnly) {
    FakeConnection alice(core_, "alice", /*ack=*/true);
    FakeConnection bob(core_, "bob", /*ack=*/false);
    ASSERT_TRUE(core_.opened(alice));
    ASSERT_TRUE(core_.opened(bob));
    outbox_.session.clear();

    Envelope resync = request(Kind::resync, 0);
    core_.session_request("session-2", resync); // owns nobody here
    EXPECT_TRUE(outbox_.session.empty());
    core_.session_request("session-1", resync);
    ASSERT_EQ(outbox_.session.size(), 2u);
    std::set<std::string> users;
    for (const Envelope& e : outbox_.session) {
        EXPECT_EQ(e.kind, Kind::connect);
        EXPECT_EQ(e.origin_gateway, "ws-1");
        EXPECT_EQ(e.has(flag_wants_server_ack), e.from == "alice");
        users.insert(e.from);
    }
    EXPECT_EQ(users, (std::set<std::string>{"alice", "bob"}));
    EXPECT_EQ(core_.counters().resyncs, 2u);
    EXPECT_TRUE(outbox_.replies.empty()); // a resync takes no reply
}

TEST_F(WsGatewayCoreTest, ResyncStampsWhenTheConnectionOpenedNotNow) {
    FakeConnection alice(core_, "alice", /*ack=*/true);
    const std::uint64_t opened_at = clock_.now_ms;
    ASSERT_TRUE(core_.opened(alice));
    EXPECT_EQ(outbox_.session.back().created_at_ms, opened_at);
    outbox_.session.clear();
    clock_.now_ms += 60000; // a shard restarts a minute later and asks
    Envelope resync = request(Kind::resync, 0);
    core_.session_request("session-1", resync);
    ASSERT_EQ(outbox_.session.size(), 1u);
    // The session orders a user's connections by this stamp: a resync of an old socket
    // must not look newer than a connection the user opened since at another gateway.
    EXPECT_EQ(outbox_.session[0].created_at_ms, opened_at);
}

TEST_F(WsGatewayCoreTest, UnexpectedKindIsCountedAndDropped) {
    Envelope odd = request(Kind::ack, 1);
    core_.session_request("s", odd);
    EXPECT_EQ(core_.counters().bad_requests, 1u);
    EXPECT_TRUE(outbox_.replies.empty());
}

TEST_F(WsGatewayCoreTest, DrainClosesEveryoneAndSendsDisconnects) {
    FakeConnection alice(core_, "alice", false);
    FakeConnection bob(core_, "bob", false);
    ASSERT_TRUE(core_.opened(alice));
    ASSERT_TRUE(core_.opened(bob));
    core_.close_all();
    EXPECT_EQ(alice.close_code, kCloseGoingAway);
    EXPECT_EQ(bob.close_code, kCloseGoingAway);
    EXPECT_EQ(core_.connection_count(), 2u); // registered until their sockets end
    core_.closed(alice);
    ASSERT_EQ(outbox_.session.size(), 3u);
    EXPECT_EQ(outbox_.session[2].kind, Kind::disconnect);
    // bob's close did not finish in time: abandon_all still announces it.
    core_.abandon_all();
    ASSERT_EQ(outbox_.session.size(), 4u);
    EXPECT_EQ(outbox_.session[3].kind, Kind::disconnect);
    EXPECT_EQ(outbox_.session[3].from, "bob");
    EXPECT_EQ(core_.connection_count(), 0u);
}

TEST_F(WsGatewayCoreTest, CapacityCountsRegisteredConnections) {
    WsGatewayOptions options;
    options.max_connections = 1;
    WsGatewayCore small("ws-1", outbox_, clock_, options);
    FakeConnection alice(small, "alice", false);
    EXPECT_FALSE(small.at_capacity());
    ASSERT_TRUE(small.opened(alice));
    EXPECT_TRUE(small.at_capacity());
}


TEST_F(WsGatewayCoreTest, QueuedFramesCountWhatWaitsOnEveryConnection) {
    FakeConnection alice(core_, "alice", false);
    FakeConnection bob(core_, "bob", false);
    ASSERT_TRUE(core_.opened(alice));
    ASSERT_TRUE(core_.opened(bob));
    Envelope to_alice = request(Kind::deliver, alice.id(), 1, "a");
    Envelope to_bob = request(Kind::deliver, bob.id(), 2, "b");
    core_.session_request("session-1", to_alice);
    core_.session_request("session-1", to_bob);
    core_.client_text(alice, "ping"); // the pong is a frame too
    EXPECT_EQ(core_.queued_frames(), alice.queue.size() + bob.queue.size());
    EXPECT_EQ(core_.queued_frames(), 3u);
    core_.frame_done(alice.pop().ticket, true);
    core_.frame_done(bob.pop().ticket, false);
    EXPECT_EQ(core_.queued_frames(), 1u);
    core_.frame_done(alice.pop().ticket, true);
    EXPECT_EQ(core_.queued_frames(), 0u);
}

TEST_F(WsGatewayCoreTest, NewOptionsApplyToTheNextFrameAndConnection) {
    WsGatewayOptions options = core_.options();
    options.max_frame_bytes = 1024;
    options.max_connections = 1;
    core_.set_options(options);
    EXPECT_EQ(core_.options().max_frame_bytes, 1024u);

    FakeConnection alice(core_, "alice", false);
    ASSERT_TRUE(core_.opened(alice));
    EXPECT_TRUE(core_.at_capacity());
    // A client message over the new limit is refused with an error frame.
    std::string big = chat("m1", "bob");
    big.insert(big.size() - 2, std::string(2000, ' '));
    core_.client_text(alice, big);
    EXPECT_TRUE(outbox_.router.empty());
    EXPECT_EQ(core_.counters().client_errors, 1u);
}

} // namespace
} // namespace vartalap::ws_gateway

namespace vartalap::ws_gateway {
namespace {

std::string group_op(const std::string& id, const std::string& action) {
    return json{{"_v", 2.1},
                {"id", id},
                {"head", {{"type", "group"}, {"to", "trip"}, {"chatid", "trip"},
                          {"contentType", "notification"}, {"action", action}}},
                {"body", json::object()}}
        .dump();
}

// Per-user token buckets (issue 12): sends and group operations each have their own; a
// refusal is an error frame naming the message; receipts and acks are never limited.
TEST(WsGatewayRateLimitTest, MessagesAndGroupOperationsHaveTheirOwnBuckets) {
    FakeClock clock;
    FakeOutbox outbox;
    WsGatewayOptions options;
    options.write_queue_limit = 64;
    options.rate_limits.sends = {60, 2};     // one a second, burst 2
    options.rate_limits.group_ops = {60, 1}; // one a second, burst 1
    WsGatewayCore core("ws-1", outbox, clock, options);
    FakeConnection mallory(core, "mallory", false, 64);
    FakeConnection alice(core, "alice", false, 64);
    ASSERT_TRUE(core.opened(mallory));
    ASSERT_TRUE(core.opened(alice));

    core.client_text(mallory, chat("m1", "bob"));
    core.client_text(mallory, chat("m2", "bob"));
    core.client_text(mallory, chat("m3", "bob")); // over the burst
    EXPECT_EQ(outbox.router.size(), 2u);
    ASSERT_EQ(mallory.queue.size(), 1u);
    const json error = mallory.pop_json();
    EXPECT_EQ(error["id"], "m3");
    EXPECT_EQ(error["head"]["contentType"], "error");
    EXPECT_EQ(error["body"]["error"], "rate limited, retry");
    EXPECT_EQ(core.counters().rate_limited_sends, 1u);

    // A group operation spends its own bucket, not the empty send bucket.
    core.client_text(mallory, group_op("g1", "add"));
    EXPECT_EQ(outbox.router.size(), 3u);
    core.client_text(mallory, group_op("g2", "remove"));
    EXPECT_EQ(outbox.router.size(), 3u);
    EXPECT_EQ(core.counters().rate_limited_group_ops, 1u);
    EXPECT_EQ(mallory.pop_json()["id"], "g2");

    // A receipt (an ack to the server) passes with every bucket empty.
    core.client_text(mallory, json{{"_v", 2.1}, {"id", "r1"},
                                   {"head", {{"type", "individual"}, {"to", "bob"},
                                             {"contentType", "text"}, {"action", "state"}}},
                                   {"body", {{"ids", {"x"}}, {"state", "delivered"}}}}.dump());
    EXPECT_EQ(outbox.router.size(), 4u);
    // Another user has a bucket of his own.
    core.client_text(alice, chat("a1", "bob"));
    EXPECT_EQ(outbox.router.size(), 5u);
    EXPECT_TRUE(alice.queue.empty());
    // One second later one token is back.
    clock.now_ms += 1000;
    core.client_text(mallory, chat("m4", "bob"));
    core.client_text(mallory, chat("m5", "bob"));
    EXPECT_EQ(outbox.router.size(), 6u);
    EXPECT_EQ(core.counters().rate_limited_sends, 2u);
}

// ---------------------------------------------------------------------------------------
// Messages without a server_ack are pushed again (unconfirmed.hpp).

WsGatewayOptions resending(std::uint32_t after_ms, std::uint32_t max_resends, std::size_t max_entries) {
    WsGatewayOptions o;
    o.resend = {.resend_after_ms = after_ms, .max_resends = max_resends, .max_entries = max_entries};
    return o;
}

Envelope server_ack_for(const ClientConnection& connection, const std::string& id,
                        Status status = Status::ok) {
    Envelope ack = request(Kind::server_ack, connection.id());
    ack.id = id;
    ack.from = connection.user();
    ack.status = status;
    return ack;
}

TEST_F(WsGatewayCoreTest, EveryMessageAsksForAServerAckWhileResendingIsOn) {
    FakeConnection carol(core_, "carol", /*ack=*/false);
    ASSERT_TRUE(core_.opened(carol));
    core_.client_text(carol, chat("c-1", "bob"));
    ASSERT_EQ(outbox_.router.size(), 1u);
    EXPECT_TRUE(outbox_.router[0].has(flag_wants_server_ack));
    EXPECT_EQ(core_.unconfirmed(), 1u);
    // The server_ack confirms it; carol did not ask for SERVER_ACK frames and gets none.
    Envelope ack = server_ack_for(carol, "c-1");
    core_.session_request("s", ack);
    EXPECT_EQ(core_.unconfirmed(), 0u);
    EXPECT_TRUE(carol.queue.empty());
    EXPECT_EQ(core_.counters().server_acks, 0u);

    // With resending off, the flag is the client's choice again and nothing is kept.
    FakeOutbox outbox;
    WsGatewayCore off("ws-2", outbox, clock_, resending(0, 5, 10));
    FakeConnection dave(off, "dave", /*ack=*/false);
    ASSERT_TRUE(off.opened(dave));
    off.client_text(dave, chat("d-1", "bob"));
    ASSERT_EQ(outbox.router.size(), 1u);
    EXPECT_FALSE(outbox.router[0].has(flag_wants_server_ack));
    EXPECT_EQ(off.unconfirmed(), 0u);
    clock_.now_ms += 60'000;
    off.resend_unconfirmed();
    EXPECT_EQ(outbox.router.size(), 1u);
}

TEST_F(WsGatewayCoreTest, AMessageWithoutAServerAckIsPushedAgainThenGivenUp) {
    FakeOutbox outbox;
    WsGatewayCore core("ws-2", outbox, clock_, resending(2000, 2, 100));
    EXPECT_EQ(core.resend_period_ms(), 500u);
    FakeConnection alice(core, "alice", /*ack=*/true);
    ASSERT_TRUE(core.opened(alice));
    core.client_text(alice, chat("lost", "bob"));
    core.client_text(alice, chat("kept", "bob"));
    ASSERT_EQ(outbox.router.size(), 2u);

    clock_.now_ms += 1999;
    core.resend_unconfirmed();
    EXPECT_EQ(outbox.router.size(), 2u); // not late yet
    clock_.now_ms += 1;
    core.resend_unconfirmed();
    ASSERT_EQ(outbox.router.size(), 4u); // both again, in their order, same ids and origin
    EXPECT_EQ(outbox.router[2].id, "lost");
    EXPECT_EQ(outbox.router[3].id, "kept");
    EXPECT_EQ(outbox.router[2].connection, alice.id());
    EXPECT_EQ(outbox.router[2].payload, outbox.router[0].payload);
    EXPECT_EQ(outbox.router_index[2], outbox.router_index[0] + 1); // another router
    EXPECT_EQ(core.counters().resent, 2u);

    // "kept" is answered (its first copy was slow, or the resend got through).
    Envelope ack = server_ack_for(alice, "kept");
    core.session_request("s", ack);
    ASSERT_EQ(alice.queue.size(), 1u);
    EXPECT_EQ(alice.pop_json()["head"]["contentType"], "SERVER_ACK");

    clock_.now_ms += 2000;
    core.resend_unconfirmed();
    ASSERT_EQ(outbox.router.size(), 5u);
    EXPECT_EQ(outbox.router[4].id, "lost");
    EXPECT_EQ(outbox.router_index[4], outbox.router_index[2] + 1);
    EXPECT_TRUE(alice.queue.empty());
    // Out of resends: the client is told to resend it itself.
    clock_.now_ms += 2000;
    core.resend_unconfirmed();
    EXPECT_EQ(outbox.router.size(), 5u);
    ASSERT_EQ(alice.queue.size(), 1u);
    const json error = alice.pop_json();
    EXPECT_EQ(error["head"]["contentType"], "error");
    EXPECT_EQ(error["id"], "lost");
    EXPECT_EQ(error["body"]["error"], "server busy, retry");
    EXPECT_EQ(core.counters().unconfirmed_given_up, 1u);
    EXPECT_EQ(core.unconfirmed(), 0u);
}

TEST_F(WsGatewayCoreTest, ARefusalConfirmsAndAClosedConnectionsMessagesAreStillPushed) {
    FakeOutbox outbox;
    WsGatewayCore core("ws-2", outbox, clock_, resending(1000, 1, 100));
    FakeConnection alice(core, "alice", /*ack=*/false);
    ASSERT_TRUE(core.opened(alice));
    core.client_text(alice, chat("refused", "bob"));
    core.client_text(alice, chat("orphan", "bob"));
    Envelope refusal = server_ack_for(alice, "refused", Status::overloaded);
    refusal.error = "server busy, retry";
    core.session_request("s", refusal);
    ASSERT_EQ(alice.queue.size(), 1u); // the refusal's error frame
    EXPECT_EQ(alice.pop_json()["id"], "refused");
    EXPECT_EQ(core.unconfirmed(), 1u);

    // The app went away: its message is still pushed again (it would not resend it).
    core.closed(alice);
    clock_.now_ms += 1000;
    core.resend_unconfirmed();
    ASSERT_EQ(outbox.router.size(), 3u);
    EXPECT_EQ(outbox.router[2].id, "orphan");
    clock_.now_ms += 1000;
    core.resend_unconfirmed(); // given up: nobody to tell
    EXPECT_TRUE(alice.queue.empty());
    EXPECT_EQ(core.counters().unconfirmed_given_up, 1u);
}

TEST_F(WsGatewayCoreTest, AcksAndTypingAreNotKeptAndAFullTableRefuses) {
    FakeOutbox outbox;
    WsGatewayCore core("ws-2", outbox, clock_, resending(1000, 1, 2));
    FakeConnection alice(core, "alice", /*ack=*/true);
    ASSERT_TRUE(core.opened(alice));
    core.client_text(alice, json{{"_v", 2.1}, {"id", "t1"},
                                 {"head", {{"type", "individual"}, {"to", "bob"},
                                           {"contentType", "typing"}, {"action", "typing"},
                                           {"ephemeral", true}}},
                                 {"body", {{"typing", true}}}}.dump());
    core.client_text(alice, json{{"_v", 2.1}, {"id", "ack-1"},
                                 {"head", {{"type", "individual"}, {"to", "server"},
                                           {"contentType", "CLIENT_ACK"}}},
                                 {"body", json::object()}}.dump());
    ASSERT_EQ(outbox.router.size(), 2u);
    EXPECT_EQ(core.unconfirmed(), 0u);

    core.client_text(alice, chat("a", "bob"));
    core.client_text(alice, chat("b", "bob"));
    EXPECT_EQ(core.unconfirmed(), 2u);
    core.client_text(alice, chat("c", "bob")); // max_unconfirmed reached: not taken
    EXPECT_EQ(outbox.router.size(), 4u);
    ASSERT_EQ(alice.queue.size(), 1u);
    const json error = alice.pop_json();
    EXPECT_EQ(error["id"], "c");
    EXPECT_EQ(error["body"]["error"], "server busy, retry");
    EXPECT_EQ(core.counters().unconfirmed_full, 1u);
    EXPECT_EQ(core.counters().busy, 1u);
    // An ack still passes (nothing is kept for it).
    core.client_text(alice, json{{"_v", 2.1}, {"id", "ack-2"},
                                 {"head", {{"type", "individual"}, {"to", "server"},
                                           {"contentType", "CLIENT_ACK"}}},
                                 {"body", json::object()}}.dump());
    EXPECT_EQ(outbox.router.size(), 5u);
}

} // namespace
} // namespace vartalap::ws_gateway
