// Unit tests of SessionCore's batches (session_core.*, session_store.*): the durable point
// (server_ack after the commit), dedupe, store and ack in one batch, invalid envelopes, a
// full map, a restart (the fixture and fakes are in session_core_fixture.hpp).
// Thread: the test's own.
#include "tests/unit/session/session_core_fixture.hpp"

namespace vartalap::session {
namespace {


TEST_F(SessionCoreTest, StoresThenServerAcksOnlyAfterCommit) {
    bool durable_at_ack = false;
    outbox_.on_server_ack = [&](const ServerAckCall& call) {
        // A fresh read transaction sees only committed data.
        durable_at_ack = core_->is_stored("bob", call.id);
    };
    handle(chat("alice", "bob", "m1"));

    ASSERT_EQ(outbox_.server_acks.size(), 1u);
    EXPECT_TRUE(durable_at_ack);
    EXPECT_EQ(outbox_.server_acks[0].gateway, "ws-1");
    EXPECT_EQ(outbox_.server_acks[0].connection, 7u);
    EXPECT_EQ(outbox_.server_acks[0].id, "m1");
    EXPECT_EQ(outbox_.server_acks[0].sender, "alice");
    EXPECT_EQ(core_->counters().stored, 1u);
    EXPECT_TRUE(outbox_.deliveries.empty()); // bob is offline

    // Without the flag the message is stored but not server-acked.
    handle(chat("alice", "bob", "m2", 0));
    EXPECT_EQ(outbox_.server_acks.size(), 1u);
    EXPECT_EQ(core_->stored_count("bob"), 2u);
}

TEST_F(SessionCoreTest, DuplicateIsNotStoredOrDeliveredAgainButIsServerAcked) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);

    handle(chat("alice", "bob", "m1")); // resent after a lost SERVER_ACK
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_EQ(outbox_.server_acks.size(), 2u);
    EXPECT_EQ(core_->counters().duplicates, 1u);
    EXPECT_EQ(core_->stored_count("bob"), 1u);

    // A duplicate within the same batch.
    handle(std::vector<Envelope>{chat("alice", "bob", "m2"), chat("alice", "bob", "m2")});
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1", "m2"}));
    EXPECT_EQ(outbox_.server_acks.size(), 4u);
    EXPECT_EQ(core_->counters().duplicates, 2u);
    EXPECT_EQ(core_->stored_count("bob"), 2u);

    // Same id to another recipient is a different message.
    handle(chat("alice", "carol", "m1"));
    EXPECT_EQ(core_->stored_count("carol"), 1u);
}

TEST_F(SessionCoreTest, RestartRedeliversUnackedOldestFirstAndKeepsTheSeqCounter) {
    handle(connect("bob", "ws-1", 1));
    handle(std::vector<Envelope>{chat("alice", "bob", "m1"), chat("alice", "bob", "m2"),
                                 chat("alice", "bob", "m3")});
    answer_from(0);
    handle(ack("bob", {"m2"}));

    restart();
    EXPECT_EQ(core_->online_users(), 0u);
    handle(chat("alice", "bob", "m4")); // must sort after the ones stored before
    handle(chat("alice", "bob", "m1")); // still deduped after the restart
    EXPECT_EQ(core_->counters().duplicates, 1u);
    handle(connect("bob", "ws-1", 2));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1", "m3", "m4"}));

    // Answers to requests of the previous run do not match this run's requests.
    EXPECT_EQ(core_->counters().stale_results, 0u);
}

TEST_F(SessionCoreTest, UnknownAndForeignAcksAreIgnored) {
    handle(chat("alice", "bob", "m1"));
    handle(ack("bob", {"nope", ""}));
    handle(ack("carol", {"m1"})); // carol cannot ack bob's copy
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().acked, 0u);
    // Without persistence there is nobody to forward them to, and nothing is handed off.
    EXPECT_TRUE(outbox_.forwarded_acks.empty());
    EXPECT_TRUE(outbox_.persistence_requests.empty());
}

TEST_F(SessionCoreTest, StoreAndAckInTheSameBatch) {
    handle(connect("bob", "ws-1", 1));
    handle(std::vector<Envelope>{chat("alice", "bob", "m1"), ack("bob", {"m1"})});
    EXPECT_EQ(outbox_.server_acks.size(), 1u); // it was durable
    EXPECT_TRUE(outbox_.deliveries.empty());   // and already acked when sent
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
}

TEST_F(SessionCoreTest, ConnectInTheSameBatchAsMessages) {
    handle(std::vector<Envelope>{chat("alice", "bob", "m1"), connect("bob", "ws-1", 1),
                                 chat("alice", "bob", "m2")});
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1", "m2"}));
}

TEST_F(SessionCoreTest, InvalidEnvelopesAreCountedAndDropped) {
    handle(chat("alice", "bob", ""));                      // no id
    handle(chat("alice", "", "m1"));                       // no recipient
    handle(chat("alice", "bob", std::string(1000, 'x')));  // over the LMDB key limit
    handle(chat("alice", std::string(1000, 'y'), "m2"));
    handle(connect("", "ws-1", 1));
    handle(connect("bob", "ws-unknown", 1));
    Envelope wrong;
    wrong.kind = Kind::reply;
    handle(wrong);
    EXPECT_EQ(core_->counters().invalid, 7u);
    EXPECT_EQ(core_->counters().stored, 0u);
    EXPECT_TRUE(outbox_.server_acks.empty());
    EXPECT_EQ(core_->online_users(), 0u);
    // The four invalid messages are refused (a REST send waits for an answer per message).
    ASSERT_EQ(outbox_.refusals.size(), 4u);
    for (const RefusalCall& refusal : outbox_.refusals) {
        EXPECT_EQ(refusal.status, Status::bad_request);
        EXPECT_EQ(refusal.sender, "alice");
    }
}

TEST_F(SessionCoreTest, MapFullRefusesNewMessagesButStillAppliesAcks) {
    core_.reset();
    env_.reset();
    std::filesystem::remove_all(directory_);
    lmdb::EnvOptions small;
    small.map_size = 1u << 20; // 1 MiB, filled by a few dozen 16 KiB messages
    open(small);

    const std::string big(16 * 1024, 'p');
    int stored = 0;
    for (; stored < 1000; ++stored) {
        Envelope message = chat("alice", "bob", "m" + std::to_string(stored));
        message.payload = big;
        const std::size_t acks_before = outbox_.server_acks.size();
        handle(std::move(message));
        if (core_->counters().map_full_refusals > 0) {
            EXPECT_EQ(outbox_.server_acks.size(), acks_before); // refused: no SERVER_ACK
            break;
        }
    }
    ASSERT_GT(stored, 0);
    ASSERT_LT(stored, 1000) << "the map never filled up";
    EXPECT_FALSE(core_->is_stored("bob", "m" + std::to_string(stored)));
    EXPECT_EQ(core_->counters().map_full_refusals, 1u);
    // Instead of silence, the sender's gateway is told why there is no SERVER_ACK.
    ASSERT_EQ(outbox_.refusals.size(), 1u);
    EXPECT_EQ(outbox_.refusals[0].gateway, "ws-1");
    EXPECT_EQ(outbox_.refusals[0].connection, 7u);
    EXPECT_EQ(outbox_.refusals[0].id, "m" + std::to_string(stored));
    EXPECT_EQ(outbox_.refusals[0].sender, "alice");
    EXPECT_EQ(outbox_.refusals[0].status, Status::refused);
    EXPECT_EQ(outbox_.refusals[0].reason, "server storage full");

    // A batch with a new message and acks: the message is refused, the acks are applied.
    std::vector<std::string> ids;
    for (int i = 0; i < stored; ++i) ids.push_back("m" + std::to_string(i));
    Envelope refused = chat("alice", "bob", "late");
    refused.payload = big;
    handle(std::vector<Envelope>{std::move(refused), ack("bob", ids)});
    EXPECT_EQ(core_->counters().map_full_refusals, 2u);
    EXPECT_FALSE(core_->is_stored("bob", "late"));
    EXPECT_EQ(core_->counters().acked, static_cast<std::uint64_t>(stored));
    EXPECT_EQ(core_->stored_count("bob"), 0u);

    // The space is usable again. LMDB reuses pages freed by a transaction only after the
    // next one has committed (two meta pages), so one small write goes first.
    handle(chat("alice", "bob", "small"));
    EXPECT_TRUE(core_->is_stored("bob", "small"));
    Envelope again = chat("alice", "bob", "again");
    again.payload = big;
    handle(std::move(again));
    EXPECT_TRUE(core_->is_stored("bob", "again"));
    EXPECT_EQ(core_->counters().map_full_refusals, 2u);
}

} // namespace
} // namespace vartalap::session
