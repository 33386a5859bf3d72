// Unit tests of SessionCore's EphemeralTracker (session_ephemeral.*), driven through the
// core: ephemeral messages are never stored, server_acked or retried (the fixture and fakes
// are in session_core_fixture.hpp).
// Thread: the test's own.
#include "tests/unit/session/session_core_fixture.hpp"

namespace vartalap::session {
namespace {


TEST_F(SessionCoreTest, EphemeralIsNeverStoredNorServerAcked) {
    // Offline: dropped.
    handle(chat("alice", "bob", "t1", flag_ephemeral | flag_wants_server_ack));
    EXPECT_TRUE(outbox_.deliveries.empty());
    EXPECT_TRUE(outbox_.server_acks.empty());
    EXPECT_EQ(core_->stored_count("bob"), 0u);
    EXPECT_EQ(core_->counters().ephemeral_dropped, 1u);
    handle(connect("bob", "ws-1", 1));
    EXPECT_TRUE(outbox_.deliveries.empty());

    // Online: delivered once, still not stored, never retried.
    handle(chat("alice", "bob", "t2", flag_ephemeral | flag_wants_server_ack));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_EQ(last_delivery().connection, 1u);
    EXPECT_TRUE(outbox_.server_acks.empty());
    EXPECT_EQ(core_->stored_count("bob"), 0u);
    EXPECT_EQ(core_->counters().stored, 0u);
    EXPECT_FALSE(core_->next_deadline_ms().has_value());
    answer_from(0);
    EXPECT_EQ(core_->counters().delivered, 1u);
    advance(config_.ack_timeout_ms * 10);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);

    // not_connected on an ephemeral also tells us the user is gone.
    handle(chat("alice", "bob", "t3", flag_ephemeral));
    answer_from(1, Status::not_connected);
    EXPECT_EQ(core_->online_users(), 0u);
}

} // namespace
} // namespace vartalap::session
