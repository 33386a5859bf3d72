// SessionCore's latency histograms and the limits SIGHUP changes (set_limits).
#include "tests/unit/session/session_core_fixture.hpp"

namespace vartalap::session {
namespace {

TEST_F(SessionCoreTest, LatencyHistogramsTimeTheWriteAndTheAck) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    advance(3);        // the gateway answers 3 ms after the commit
    answer_from(0);
    advance(40);       // bob acks 40 ms after the write
    handle(ack("bob", {"m1"}));

    const SessionLatency& latency = core_->latency();
    EXPECT_EQ(latency.delivery.count(), 1u);
    EXPECT_DOUBLE_EQ(latency.delivery.sum_seconds(), 0.003);
    EXPECT_EQ(latency.ack.count(), 1u);
    EXPECT_DOUBLE_EQ(latency.ack.sum_seconds(), 0.043); // from the commit, like the delivery
}

TEST_F(SessionCoreTest, DeliveryLatencyCountsFromTheFirstAttemptAndOnlyOnce) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0, Status::overloaded); // not written: retried after the back-off
    advance(config_.overload_retry_ms);
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    answer_from(1);
    EXPECT_EQ(core_->latency().delivery.count(), 1u);
    EXPECT_DOUBLE_EQ(core_->latency().delivery.sum_seconds(),
                     static_cast<double>(config_.overload_retry_ms) / 1000.0);
    // A second answer (a late duplicate) does not count a second delivery; the ack
    // latency counts from the first attempt too.
    handle(result(outbox_.deliveries[1].request.request_id));
    advance(config_.ack_timeout_ms - 7);
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    handle(ack("bob", {"m1"}));
    EXPECT_EQ(core_->latency().delivery.count(), 1u);
    EXPECT_EQ(core_->latency().ack.count(), 1u);
    EXPECT_DOUBLE_EQ(core_->latency().ack.sum_seconds(),
                     static_cast<double>(config_.overload_retry_ms + config_.ack_timeout_ms - 7) /
                         1000.0);
}

TEST_F(SessionCoreTest, AnAckBeforeTheWriteIsConfirmedCountsTheDeliveryOnce) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    advance(2);
    handle(ack("bob", {"m1"})); // overtook the gateway's deliver_result
    EXPECT_EQ(core_->counters().delivered, 1u);
    EXPECT_EQ(core_->latency().delivery.count(), 1u);
    EXPECT_DOUBLE_EQ(core_->latency().delivery.sum_seconds(), 0.002);
    EXPECT_EQ(core_->latency().ack.count(), 1u);
    EXPECT_DOUBLE_EQ(core_->latency().ack.sum_seconds(), 0.002);
    answer_from(0); // the late result: stale, not a second delivery
    EXPECT_EQ(core_->counters().delivered, 1u);
    EXPECT_EQ(core_->counters().stale_results, 1u);
}

TEST_F(SessionCoreTest, AWiderWindowLetsWaitingMessagesGoAtOnce) {
    handle(connect("bob", "ws-1", 1));
    std::vector<Envelope> batch;
    for (std::size_t i = 0; i < config_.window + 10; ++i)
        batch.push_back(chat("alice", "bob", "m" + std::to_string(i)));
    handle(std::move(batch));
    ASSERT_EQ(outbox_.deliveries.size(), config_.window);

    SessionLimits limits = core_->limits();
    limits.window = config_.window + 10;
    core_->set_limits(limits);
    core_->on_timer();
    EXPECT_EQ(outbox_.deliveries.size(), config_.window + 10);
    EXPECT_EQ(core_->limits().window, config_.window + 10);
}

TEST_F(SessionCoreTest, NewAckTimeoutAndRetryLimitApplyToTheNextAttempts) {
    SessionLimits limits = core_->limits();
    limits.ack_timeout_ms = 500;
    limits.retry_limit = 0; // the first timeout parks
    core_->set_limits(limits);

    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    ASSERT_TRUE(core_->next_deadline_ms());
    EXPECT_EQ(*core_->next_deadline_ms(), clock_.monotonic_ms() + 500);
    advance(500);
    EXPECT_EQ(core_->counters().parked, 1u);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
}

} // namespace
} // namespace vartalap::session
