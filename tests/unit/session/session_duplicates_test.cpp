// Duplicates the app cannot stop (issue 14, section 3), in SessionCore without persistence:
// acked ids kept for the dedupe window, and socket writes without an ack counted across
// connections and restarts until the message counts as delivered. (The same with
// persistence: session_offline_test.cpp; persistence's side: persistence_core_test.cpp.)
// Thread: the test's own.
#include "tests/unit/session/session_core_fixture.hpp"

namespace vartalap::session {
namespace {

// A receipt's ack: it names the original sender.
Envelope receipt_ack(const std::string& user, const std::string& sender,
                     std::vector<std::string> ids) {
    Envelope e = ack(user, std::move(ids));
    e.to = sender;
    return e;
}

class DuplicatesTest : public SessionCoreTest {
protected:
    void SetUp() override {
        config_.dedupe_window_ms = 60'000;
        SessionCoreTest::SetUp();
    }
};

// 3a: the sender never saw its SERVER_ACK (the socket dropped) and resends an id that was
// delivered and acked: it gets the SERVER_ACK, the recipient does not get it again; within
// the window, across a restart; after the window it is a new message.
TEST_F(DuplicatesTest, AResendOfAnAckedIdIsServerAckedAndNotDeliveredAgainWithinTheWindow) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    handle(receipt_ack("bob", "alice", {"m1"}));
    ASSERT_FALSE(core_->is_stored("bob", "m1"));

    handle(chat("alice", "bob", "m1")); // the resend
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    ASSERT_EQ(outbox_.server_acks.size(), 2u);
    EXPECT_EQ(outbox_.server_acks[1].id, "m1");
    EXPECT_EQ(core_->counters().duplicates, 1u);
    handle(chat("carol", "bob", "m1")); // another sender's m1 is another message
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1", "m1"}));
    answer_from(1);
    handle(ack("bob", {"m1"})); // a CLIENT_ACK (no sender): carol's copy, the one in flight

    restart();
    handle(connect("bob", "ws-1", 2));
    handle(std::vector<Envelope>{chat("alice", "bob", "m1"), chat("carol", "bob", "m1")});
    EXPECT_TRUE(outbox_.deliveries.empty());
    EXPECT_EQ(core_->counters().duplicates, 2u);

    advance(59'000);
    handle(chat("alice", "bob", "m1"));
    EXPECT_TRUE(outbox_.deliveries.empty());
    advance(2'000); // past the window: pruned
    EXPECT_EQ(core_->counters().acked_ids_pruned, 2u);
    handle(chat("alice", "bob", "m1"));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1"}));
}

// 3a with deletions deferred (delete_delay_ms): the acked id goes with the deletion.
TEST_F(DuplicatesTest, AnAckedIdIsKeptWhenItsDeletionIsDeferred) {
    config_.delete_delay_ms = 1'000;
    restart();
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    handle(receipt_ack("bob", "alice", {"m1"}));
    EXPECT_EQ(core_->deferred_deletes(), 1u);
    handle(chat("alice", "bob", "m1"));
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_EQ(core_->counters().duplicates, 1u);
    restart();
    handle(connect("bob", "ws-1", 2));
    handle(chat("alice", "bob", "m1"));
    EXPECT_TRUE(outbox_.deliveries.empty());
}

// 3b: the app never acks a message it already has. m1 is written on three connections
// (one per connection: never twice on one) without an ack, across a restart; then it counts
// as delivered: deleted, counted, and a resend of it is a duplicate. m2, acked, is not
// affected.
TEST_F(DuplicatesTest, AMessageWrittenMaxUnackedWritesTimesWithoutAnAckCountsDelivered) {
    ASSERT_EQ(config_.max_unacked_writes, 3u);
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    handle(disconnect("bob", "ws-1", 1)); // the socket dropped: the ack was lost
    EXPECT_EQ(core_->counters().unacked_writes, 1u);
    restart();

    handle(connect("bob", "ws-1", 2));
    ASSERT_EQ(delivered_ids(), (std::vector<std::string>{"m1"}));
    answer_from(0);
    advance(config_.ack_timeout_ms); // no ack: it leaves the window, not written again
    EXPECT_EQ(core_->counters().unacked_writes, 1u);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    handle(chat("alice", "bob", "m2"));
    answer_from(1);
    handle(ack("bob", {"m2"}));

    handle(connect("bob", "ws-1", 3)); // a new connection replaces the old one
    ASSERT_EQ(delivered_ids(2), (std::vector<std::string>{"m1"}));
    answer_from(2);
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    handle(disconnect("bob", "ws-1", 3));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().unacked_delivered, 1u);
    EXPECT_EQ(core_->stored_count("bob"), 0u);

    handle(connect("bob", "ws-1", 4));
    EXPECT_EQ(outbox_.deliveries.size(), 3u); // nothing comes back
    handle(chat("alice", "bob", "m1"));        // a late resend is a duplicate
    EXPECT_EQ(outbox_.deliveries.size(), 3u);
    EXPECT_EQ(core_->counters().duplicates, 1u);
}

// A connection that never got a message written (no deliver_result ok) does not count.
TEST_F(DuplicatesTest, AnAttemptThatWasNotWrittenIsNotCounted) {
    config_.max_unacked_writes = 1;
    restart();
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    handle(disconnect("bob", "ws-1", 1)); // before the gateway answered
    handle(connect("bob", "ws-1", 2));
    answer_from(1, Status::overloaded);
    handle(connect("bob", "ws-1", 3));
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().unacked_writes, 0u);
    answer_from(2); // written once: at the limit of 1 when it leaves flight
    handle(disconnect("bob", "ws-1", 3));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().unacked_delivered, 1u);
}

} // namespace
} // namespace vartalap::session
