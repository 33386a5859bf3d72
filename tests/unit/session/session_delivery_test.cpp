// Unit tests of SessionCore's DeliveryWindow (session_delivery.*), driven through the core:
// delivery, acks, retries, parking, windows, connections, limits (the fixture and fakes are
// in session_core_fixture.hpp; the offline path is in session_offline_test.cpp).
// Thread: the test's own.
#include "tests/unit/session/session_core_fixture.hpp"

namespace vartalap::session {
namespace {


TEST_F(SessionCoreTest, DeliversToOnlineUserOnItsConnection) {
    handle(connect("bob", "ws-2", 42));
    handle(chat("alice", "bob", "m1"));

    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    const Delivery& d = outbox_.deliveries[0];
    EXPECT_EQ(d.gateway, "ws-2");
    EXPECT_EQ(d.request.kind, Kind::deliver);
    EXPECT_EQ(d.request.connection, 42u);
    EXPECT_NE(d.request.request_id, 0u);
    EXPECT_EQ(d.request.id, "m1");
    EXPECT_EQ(d.request.to, "bob");
    EXPECT_EQ(d.request.from, "alice");
    EXPECT_EQ(d.request.retry_count, 0u);
    EXPECT_EQ(d.request.payload, chat("alice", "bob", "m1").payload);

    answer_from(0);
    EXPECT_EQ(core_->counters().delivered, 1u);
    EXPECT_TRUE(core_->is_stored("bob", "m1")); // until bob acks it
    EXPECT_EQ(core_->in_flight_of("bob"), 1u);
}

TEST_F(SessionCoreTest, AckDeletesAndStopsRetries) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    handle(ack("bob", {"m1"}));

    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().acked, 1u);
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
    EXPECT_FALSE(core_->next_deadline_ms().has_value());
    advance(config_.ack_timeout_ms * 10);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_EQ(core_->counters().retried, 0u);
}

TEST_F(SessionCoreTest, AckBeforeDeliverResultAlsoStopsEverything) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    handle(ack("bob", {"m1"})); // the ack overtook the gateway's answer
    answer_from(0);             // now unknown: ignored
    EXPECT_EQ(core_->counters().stale_results, 1u);
    advance(config_.send_timeout_ms + config_.ack_timeout_ms);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
}

TEST_F(SessionCoreTest, AckTimeoutRetries) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    ASSERT_TRUE(core_->next_deadline_ms().has_value());
    EXPECT_EQ(*core_->next_deadline_ms(), clock_.monotonic_ms() + config_.ack_timeout_ms);

    advance(config_.ack_timeout_ms - 1);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    advance(1);
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    EXPECT_EQ(last_delivery().id, "m1");
    EXPECT_EQ(last_delivery().retry_count, 1u);
    EXPECT_NE(last_delivery().request_id, outbox_.deliveries[0].request.request_id);
    EXPECT_EQ(last_delivery().payload, outbox_.deliveries[0].request.payload);
    EXPECT_EQ(core_->counters().retried, 1u);
}

// Drives m1 through the initial attempt and retry_limit retries, all timing out.
class ParkingTest : public SessionCoreTest {
protected:
    void park_m1() {
        handle(connect("bob", "ws-1", 1));
        handle(chat("alice", "bob", "m1"));
        for (std::uint32_t attempt = 0; attempt <= config_.retry_limit; ++attempt) {
            ASSERT_EQ(outbox_.deliveries.size(), attempt + 1);
            EXPECT_EQ(last_delivery().retry_count, attempt);
            answer_from(attempt);
            advance(config_.ack_timeout_ms);
        }
        EXPECT_EQ(core_->counters().parked, 1u);
        EXPECT_EQ(core_->counters().retried, config_.retry_limit);
    }
};

TEST_F(ParkingTest, RetryLimitParksAndNextConnectRedelivers) {
    park_m1();
    EXPECT_EQ(outbox_.deliveries.size(), config_.retry_limit + 1);
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    EXPECT_FALSE(core_->next_deadline_ms().has_value());
    advance(config_.ack_timeout_ms * 100);
    EXPECT_EQ(outbox_.deliveries.size(), config_.retry_limit + 1); // not retried

    // Newer messages still flow while m1 is parked.
    handle(chat("alice", "bob", "m2"));
    EXPECT_EQ(last_delivery().id, "m2");

    handle(connect("bob", "ws-1", 2));
    ASSERT_EQ(outbox_.closes.size(), 1u);
    EXPECT_EQ(outbox_.closes[0].connection, 1u);
    EXPECT_EQ(delivered_ids(config_.retry_limit + 2),
              (std::vector<std::string>{"m1", "m2"}));
    EXPECT_EQ(last_delivery().connection, 2u);
}

TEST_F(ParkingTest, LateAckDeletesParkedMessage) {
    park_m1();
    handle(ack("bob", {"m1"}));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().acked, 1u);
    const std::size_t before = outbox_.deliveries.size();
    handle(connect("bob", "ws-1", 2));
    EXPECT_EQ(outbox_.deliveries.size(), before); // nothing left to deliver
}

TEST_F(SessionCoreTest, LateAckAfterTimeoutDeletesAndStopsTheRetry) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    advance(config_.ack_timeout_ms); // retried
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    handle(ack("bob", {"m1"})); // the ack of the first copy, late
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    answer_from(1);
    advance(config_.ack_timeout_ms * 10);
    EXPECT_EQ(outbox_.deliveries.size(), 2u);
}

TEST_F(SessionCoreTest, OfflineMessagesAreDeliveredOldestFirstOnConnect) {
    handle(chat("alice", "bob", "m1"));
    handle(std::vector<Envelope>{chat("carol", "bob", "m2"), chat("alice", "bob", "m3")});
    handle(chat("alice", "dave", "x1"));
    handle(chat("dave", "bob", "m4"));
    EXPECT_TRUE(outbox_.deliveries.empty());

    handle(connect("bob", "ws-1", 9));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1", "m2", "m3", "m4"}));
    for (const Delivery& d : outbox_.deliveries) EXPECT_EQ(d.request.connection, 9u);
}

TEST_F(SessionCoreTest, WindowBoundsInFlightAndTheRestFlowsAsAcksCome) {
    handle(connect("bob", "ws-1", 1));
    std::vector<std::string> all;
    for (int b = 0; b < 4; ++b) {
        std::vector<Envelope> batch;
        for (int i = 0; i < 50; ++i) {
            all.push_back("m" + std::to_string(b * 50 + i));
            batch.push_back(chat("alice", "bob", all.back()));
        }
        handle(std::move(batch));
    }
    ASSERT_EQ(outbox_.deliveries.size(), config_.window);
    EXPECT_EQ(core_->in_flight_of("bob"), config_.window);
    EXPECT_EQ(core_->stored_count("bob"), 200u);

    // Ack in rounds of 10 (answering each delivery first) until everything has flowed.
    std::size_t answered = 0;
    std::size_t acked = 0;
    while (acked < all.size()) {
        answer_from(answered);
        answered = outbox_.deliveries.size();
        std::vector<std::string> ids;
        for (std::size_t i = acked; i < std::min(acked + 10, all.size()); ++i)
            ids.push_back(all[i]);
        acked += ids.size();
        handle(ack("bob", ids));
        EXPECT_LE(core_->in_flight_of("bob"), config_.window);
        EXPECT_EQ(core_->in_flight_of("bob"),
                  std::min<std::size_t>(config_.window, all.size() - acked));
    }
    EXPECT_EQ(delivered_ids(), all); // each exactly once, in order
    EXPECT_EQ(core_->stored_count("bob"), 0u);
}

TEST_F(SessionCoreTest, ConnectWithLargeBacklogLoadsOnlyAWindow) {
    for (int b = 0; b < 10; ++b) {
        std::vector<Envelope> batch;
        for (int i = 0; i < 100; ++i)
            batch.push_back(chat("alice", "bob", "m" + std::to_string(b * 100 + i), 0));
        handle(std::move(batch));
    }
    handle(connect("bob", "ws-1", 1));
    EXPECT_EQ(outbox_.deliveries.size(), config_.window);
    EXPECT_EQ(core_->in_flight(), config_.window);
    EXPECT_EQ(outbox_.deliveries.front().request.id, "m0");
    EXPECT_EQ(outbox_.deliveries.back().request.id, "m63");
}

TEST_F(SessionCoreTest, StaleDisconnectIsIgnored) {
    handle(connect("bob", "ws-1", 1));
    handle(connect("bob", "ws-2", 2));
    handle(disconnect("bob", "ws-1", 1)); // the old connection's close arrives late
    EXPECT_EQ(core_->online_users(), 1u);
    handle(chat("alice", "bob", "m1"));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_EQ(outbox_.deliveries[0].gateway, "ws-2");
    EXPECT_EQ(outbox_.deliveries[0].request.connection, 2u);

    handle(disconnect("bob", "ws-2", 2));
    EXPECT_EQ(core_->online_users(), 0u);
    handle(chat("alice", "bob", "m2"));
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_TRUE(core_->is_stored("bob", "m2"));
}

TEST_F(SessionCoreTest, NewConnectionClosesTheOldOneAndTakesOverInFlight) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    const std::uint64_t old_request = outbox_.deliveries[0].request.request_id;

    handle(connect("bob", "ws-2", 5));
    ASSERT_EQ(outbox_.closes.size(), 1u);
    EXPECT_EQ(outbox_.closes[0].gateway, "ws-1");
    EXPECT_EQ(outbox_.closes[0].connection, 1u);
    EXPECT_EQ(outbox_.closes[0].user, "bob");
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    EXPECT_EQ(outbox_.deliveries[1].gateway, "ws-2");
    EXPECT_EQ(outbox_.deliveries[1].request.connection, 5u);
    EXPECT_EQ(outbox_.deliveries[1].request.id, "m1");

    // The old connection's answer is stale; it must not change the new one's state.
    handle(result(old_request, Status::not_connected));
    EXPECT_EQ(core_->online_users(), 1u);
    EXPECT_EQ(core_->counters().stale_results, 1u);

    // A repeated connect for the current connection changes nothing.
    handle(connect("bob", "ws-2", 5));
    EXPECT_EQ(outbox_.closes.size(), 1u);
    EXPECT_EQ(outbox_.deliveries.size(), 2u);
}

TEST_F(SessionCoreTest, AConnectOlderThanTheCurrentConnectionIsClosedNotApplied) {
    // After a shard restart: bob's connect at ws-2 (opened at 2000) arrives first, then
    // ws-1's resync of the socket he opened at 1000 and has since left.
    Envelope current = connect("bob", "ws-2", 7);
    current.created_at_ms = 2000;
    handle(current);
    Envelope stale = connect("bob", "ws-1", 3);
    stale.created_at_ms = 1000;
    handle(stale);
    // The current socket stays; the stale one is closed as replaced.
    ASSERT_EQ(outbox_.closes.size(), 1u);
    EXPECT_EQ(outbox_.closes[0].gateway, "ws-1");
    EXPECT_EQ(outbox_.closes[0].connection, 3u);
    EXPECT_EQ(core_->counters().stale_connects, 1u);
    handle(chat("alice", "bob", "m1"));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_EQ(outbox_.deliveries[0].gateway, "ws-2");
    EXPECT_EQ(outbox_.deliveries[0].request.connection, 7u);

    // A connection opened later (or in the same millisecond) still takes over.
    Envelope newer = connect("bob", "ws-1", 9);
    newer.created_at_ms = 2000;
    handle(newer);
    ASSERT_EQ(outbox_.closes.size(), 2u);
    EXPECT_EQ(outbox_.closes[1].gateway, "ws-2");
    EXPECT_EQ(outbox_.closes[1].connection, 7u);
    EXPECT_EQ(core_->counters().stale_connects, 1u);
}

TEST_F(SessionCoreTest, ReceiptIsDeletedWhenWrittenToTheSocket) {
    handle(connect("alice", "ws-1", 3));
    handle(chat("bob", "alice", "r1", flag_system | flag_wants_server_ack));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_TRUE(core_->is_stored("alice", "r1"));
    EXPECT_EQ(outbox_.server_acks.size(), 1u);

    answer_from(0);
    EXPECT_FALSE(core_->is_stored("alice", "r1"));
    EXPECT_EQ(core_->in_flight_of("alice"), 0u);
    EXPECT_EQ(core_->counters().delivered, 1u);
    advance(config_.ack_timeout_ms * 10);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
}

TEST_F(SessionCoreTest, ReceiptNotWrittenStaysStored) {
    handle(connect("alice", "ws-1", 3));
    handle(chat("bob", "alice", "r1", flag_system));
    answer_from(0, Status::not_connected);
    EXPECT_TRUE(core_->is_stored("alice", "r1"));
    handle(connect("alice", "ws-1", 4));
    EXPECT_EQ(last_delivery().id, "r1");
}

TEST_F(SessionCoreTest, NotConnectedMakesTheUserOffline) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0, Status::not_connected);
    EXPECT_EQ(core_->online_users(), 0u);
    EXPECT_FALSE(core_->next_deadline_ms().has_value());

    handle(chat("alice", "bob", "m2"));
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    EXPECT_TRUE(core_->is_stored("bob", "m2"));

    handle(connect("bob", "ws-1", 2));
    EXPECT_EQ(delivered_ids(1), (std::vector<std::string>{"m1", "m2"}));
}

TEST_F(SessionCoreTest, SendTimeoutTreatsTheAttemptAsNotDelivered) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    const std::uint64_t first_request = last_delivery().request_id;
    EXPECT_EQ(*core_->next_deadline_ms(), clock_.monotonic_ms() + config_.send_timeout_ms);

    advance(config_.send_timeout_ms - 1);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    advance(1);
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    EXPECT_EQ(core_->counters().send_timeouts, 1u);
    EXPECT_EQ(last_delivery().retry_count, 1u);

    handle(result(first_request)); // the late answer to the timed-out request
    EXPECT_EQ(core_->counters().stale_results, 1u);
    EXPECT_EQ(core_->counters().delivered, 0u);
}

TEST_F(SessionCoreTest, OverloadedWaitsThenRetriesWithoutSpendingARetry) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0, Status::overloaded);
    EXPECT_EQ(core_->counters().overloaded, 1u);
    advance(config_.overload_retry_ms - 1);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    advance(1);
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    EXPECT_EQ(last_delivery().retry_count, 0u);
}

TEST_F(SessionCoreTest, FullOutboxIsRetriedLater) {
    handle(connect("bob", "ws-1", 1));
    outbox_.accept = false;
    handle(chat("alice", "bob", "m1"));
    EXPECT_TRUE(outbox_.deliveries.empty());
    EXPECT_EQ(outbox_.server_acks.size(), 1u); // durable regardless
    EXPECT_EQ(core_->in_flight_of("bob"), 1u);
    outbox_.accept = true;
    advance(config_.overload_retry_ms);
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_EQ(last_delivery().id, "m1");
}

TEST_F(SessionCoreTest, GlobalInFlightLimitStarvesThenResumes) {
    core_.reset();
    config_.max_in_flight = 10;
    core_ = std::make_unique<SessionCore>(*env_, outbox_, clock_, config_);
    for (int i = 0; i < 8; ++i) {
        handle(chat("alice", "bob", "b" + std::to_string(i), 0));
        handle(chat("alice", "carol", "c" + std::to_string(i), 0));
    }
    handle(std::vector<Envelope>{connect("bob", "ws-1", 1), connect("carol", "ws-1", 2)});
    EXPECT_EQ(core_->in_flight(), 10u);
    EXPECT_GT(core_->counters().in_flight_limit_hits, 0u);

    answer_from(0);
    std::vector<std::string> ids;
    for (int i = 0; i < 8; ++i) ids.push_back("b" + std::to_string(i));
    handle(ack("bob", ids));
    answer_from(10);
    std::vector<std::string> carol_ids;
    for (int i = 0; i < 8; ++i) carol_ids.push_back("c" + std::to_string(i));
    handle(ack("carol", carol_ids));
    EXPECT_EQ(outbox_.deliveries.size(), 16u);
    EXPECT_EQ(core_->stored_count("bob"), 0u);
    EXPECT_EQ(core_->stored_count("carol"), 0u);
}

TEST_F(SessionCoreTest, OnlineUserLimitRefusesConnect) {
    core_.reset();
    config_.max_online_users = 1;
    core_ = std::make_unique<SessionCore>(*env_, outbox_, clock_, config_);
    handle(connect("bob", "ws-1", 1));
    handle(connect("carol", "ws-1", 2));
    EXPECT_EQ(core_->online_users(), 1u);
    EXPECT_EQ(core_->counters().user_limit_refusals, 1u);
    ASSERT_EQ(outbox_.closes.size(), 1u);
    EXPECT_EQ(outbox_.closes[0].user, "carol");
}

} // namespace
} // namespace vartalap::session
