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

// Issue 14, section 2: mallory used alice's id for bob first; alice's message is still
// stored and delivered (not taken for a resend), and each receipt acks only its sender's copy.
TEST_F(SessionCoreTest, AnotherSendersIdCannotSuppressAMessageAndReceiptsAckPerSender) {
    handle(chat("mallory", "bob", "m1"));
    handle(chat("alice", "bob", "m1"));
    EXPECT_EQ(core_->counters().stored, 2u);
    EXPECT_EQ(core_->counters().duplicates, 0u);
    EXPECT_TRUE(core_->is_stored("bob", "m1", "alice"));
    EXPECT_TRUE(core_->is_stored("bob", "m1", "mallory"));
    ASSERT_EQ(outbox_.server_acks.size(), 2u);
    // A real resend of alice's is a duplicate.
    handle(chat("alice", "bob", "m1"));
    EXPECT_EQ(core_->counters().duplicates, 1u);

    handle(connect("bob", "ws-1", 1));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1", "m1"}));
    // bob's receipt to mallory (the ack names mallory as `to`) deletes only mallory's copy.
    Envelope receipt = ack("bob", {"m1"});
    receipt.to = "mallory";
    handle(receipt);
    EXPECT_FALSE(core_->is_stored("bob", "m1", "mallory"));
    EXPECT_TRUE(core_->is_stored("bob", "m1", "alice"));
    // An ack naming nobody (CLIENT_ACK) deletes one copy: alice's is the one left.
    handle(ack("bob", {"m1"}));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
}

TEST_F(SessionCoreTest, AnAckNamingNoSenderDeletesTheCopyInFlightNotAnotherSenders) {
    handle(chat("mallory", "bob", "m1")); // seq 1, older
    handle(connect("bob", "ws-1", 1));
    ASSERT_EQ(delivered_ids(), (std::vector<std::string>{"m1"}));
    handle(chat("alice", "bob", "m1"));   // seq 2: delivered too (window 64)
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    ASSERT_EQ(outbox_.deliveries[1].request.from, "alice");
    // mallory's is acked by the receipt naming her; then a CLIENT_ACK while alice's is in
    // flight deletes alice's (in flight), never a copy not delivered.
    Envelope receipt = ack("bob", {"m1"});
    receipt.to = "mallory";
    handle(receipt);
    handle(ack("bob", {"m1"}));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
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
    EXPECT_EQ(outbox_.refusals[0].status, Status::storage_full);
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
