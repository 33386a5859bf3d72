// Deferred deletions (SessionConfig::delete_delay_ms > 0, session_store.hpp): a batch that
// only deletes does not commit; the core sees its deletions at once, the file only after the
// next storing batch's commit, the delay, the count bound or flush(); a crash before then
// delivers the message again; a full map applies them again in a fresh transaction.
#include "tests/unit/session/session_core_fixture.hpp"

namespace vartalap::session {
namespace {

class DeferredDeletesTest : public SessionCoreTest {
protected:
    void SetUp() override {
        config_.delete_delay_ms = 1000;
        open();
    }
    void reopen(lmdb::EnvOptions options = {}) {
        core_.reset();
        env_.reset();
        open(options);
    }
    // Whether (user, id) is in the committed state of the file (a read transaction of its
    // own, beside the core's deferred write transaction: the environment uses MDB_NOTLS).
    bool committed(const std::string& user, const std::string& id) {
        lmdb::Txn txn(*env_, lmdb::Txn::read_only);
        const auto ids = lmdb::Db::open_existing(txn, "message_ids_v2");
        std::string prefix;
        UserQueue::id_prefix(prefix, user, id);
        if (!ids) return false;
        lmdb::Cursor cursor(txn, *ids);
        return cursor.seek(prefix) && cursor.key().starts_with(prefix);
    }
    // bob online with m1 delivered (written), then acked by bob.
    void deliver_and_ack_m1() {
        handle(connect("bob", "ws-1", 1));
        handle(chat("alice", "bob", "m1"));
        answer_from(0);
        handle(ack("bob", {"m1"}));
    }
};

TEST_F(DeferredDeletesTest, AnAckOnlyBatchIsSeenAtOnceAndCommittedAfterTheDelay) {
    handle(connect("bob", "ws-1", 1));
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    const std::uint64_t commits = core_->counters().commits;
    handle(ack("bob", {"m1"}));

    EXPECT_EQ(core_->counters().commits, commits); // no commit of its own
    EXPECT_EQ(core_->counters().acked, 1u);
    EXPECT_EQ(core_->deferred_deletes(), 1u);
    EXPECT_EQ(core_->counters().deletes_deferred, 1u);
    EXPECT_FALSE(core_->is_stored("bob", "m1")); // the core's view
    EXPECT_TRUE(committed("bob", "m1"));         // the file's
    EXPECT_EQ(core_->next_deadline_ms(), clock_.monotonic_ms() + config_.delete_delay_ms);

    advance(config_.delete_delay_ms - 1);
    EXPECT_TRUE(committed("bob", "m1"));
    advance(1);
    EXPECT_FALSE(committed("bob", "m1"));
    EXPECT_EQ(core_->deferred_deletes(), 0u);
    EXPECT_EQ(core_->counters().commits, commits + 1);
    EXPECT_FALSE(core_->next_deadline_ms().has_value());
    EXPECT_EQ(outbox_.deliveries.size(), 1u); // never delivered again
}

TEST_F(DeferredDeletesTest, DeferredDeletionsGoWithTheNextStoringBatchInOneCommit) {
    deliver_and_ack_m1();
    const std::uint64_t commits = core_->counters().commits;
    handle(chat("alice", "bob", "m2"));
    EXPECT_EQ(core_->counters().commits, commits + 1);
    EXPECT_FALSE(committed("bob", "m1"));
    EXPECT_TRUE(committed("bob", "m2"));
    EXPECT_EQ(core_->deferred_deletes(), 0u);
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1", "m2"}));
}

TEST_F(DeferredDeletesTest, ACrashBeforeTheCommitDeliversTheAckedMessageAgain) {
    deliver_and_ack_m1();
    restart(); // the deferred transaction dies with the process: never committed
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    handle(connect("bob", "ws-1", 2));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1"})); // at least once
    handle(chat("alice", "bob", "m1")); // a resend is still a duplicate
    EXPECT_EQ(core_->counters().duplicates, 1u);
}

TEST_F(DeferredDeletesTest, FlushCommitsAndAWrittenReceiptIsDeferredLikeAnAck) {
    handle(connect("alice", "ws-1", 3));
    handle(chat("bob", "alice", "r1", flag_system));
    answer_from(0); // the receipt's socket write is its ack
    EXPECT_FALSE(core_->is_stored("alice", "r1"));
    EXPECT_TRUE(committed("alice", "r1"));
    core_->flush();
    EXPECT_FALSE(committed("alice", "r1"));
    EXPECT_EQ(core_->deferred_deletes(), 0u);
    core_->flush(); // nothing deferred: nothing to do
    EXPECT_FALSE(core_->next_deadline_ms().has_value());
}

TEST_F(DeferredDeletesTest, TheCountBoundCommitsAtOnce) {
    config_.max_deferred_deletes = 2;
    reopen();
    handle(connect("bob", "ws-1", 1));
    handle(std::vector<Envelope>{chat("alice", "bob", "m1"), chat("alice", "bob", "m2")});
    answer_from(0);
    handle(ack("bob", {"m1"}));
    EXPECT_TRUE(committed("bob", "m1"));
    handle(ack("bob", {"m2"}));
    EXPECT_EQ(core_->deferred_deletes(), 0u);
    EXPECT_FALSE(committed("bob", "m1"));
    EXPECT_FALSE(committed("bob", "m2"));
}

TEST_F(DeferredDeletesTest, AFullMapAppliesTheDeferredDeletionsAgainInAFreshTransaction) {
    lmdb::EnvOptions small;
    small.map_size = 1u << 20; // 1 MiB, filled by a few dozen 16 KiB messages
    reopen(small);
    const std::string big(16 * 1024, 'p');
    std::vector<std::string> ids;
    while (core_->counters().map_full_refusals == 0 && ids.size() < 1000) {
        Envelope message = chat("alice", "bob", "m" + std::to_string(ids.size()));
        message.payload = big;
        ids.push_back(message.id);
        handle(std::move(message));
    }
    ASSERT_LT(ids.size(), 1000u) << "the map never filled up";
    ids.pop_back(); // refused
    handle(ack("bob", ids)); // bob acks what is stored (offline: not in flight)
    EXPECT_EQ(core_->counters().acked, ids.size());
    EXPECT_EQ(core_->stored_count("bob"), 0u);

    // A storing batch on the full map: refused, and the deferred deletions are committed
    // (in the deferred transaction, or again in a fresh one if that one hit the limit).
    Envelope late = chat("alice", "bob", "late");
    late.payload = big;
    handle(std::move(late));
    EXPECT_EQ(core_->counters().map_full_refusals, 2u);
    EXPECT_EQ(core_->deferred_deletes(), 0u);
    for (const std::string& id : ids) EXPECT_FALSE(committed("bob", id)) << id;
    EXPECT_EQ(core_->stored_count("bob"), 0u);
    reopen(small); // and the file says so
    EXPECT_EQ(core_->stored_count("bob"), 0u);
}

TEST_F(DeferredDeletesTest, ZeroDelayCommitsEveryDeletingBatchAsBefore) {
    config_.delete_delay_ms = 0;
    reopen();
    deliver_and_ack_m1();
    EXPECT_FALSE(committed("bob", "m1"));
    EXPECT_EQ(core_->deferred_deletes(), 0u);
    EXPECT_EQ(core_->counters().deletes_deferred, 0u);
    EXPECT_FALSE(core_->next_deadline_ms().has_value());
}

} // namespace
} // namespace vartalap::session
