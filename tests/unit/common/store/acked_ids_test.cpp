// AckedIds over real LMDB in a temporary directory: record and look up per (user, sender,
// id), the window (since), renewal, pruning in bounded runs through the expiry index, the
// key limit, marks pending until committed (and dropped when discarded), their own
// environment, and the move of the earlier layout out of the owner's environment. Also
// UserQueue's unacked write counts, deleted with their message.
#include "common/store/acked_ids.hpp"
#include "common/store/user_queue.hpp"

#include "tests/support/fixtures.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

namespace vartalap {
namespace {

class AckedIdsTest : public ::testing::Test {
protected:
    void SetUp() override { open(); }
    void TearDown() override {
        acked_.reset();
        env_.reset();
    }
    void open() {
        acked_.reset();
        env_.reset();
        env_ = std::make_unique<lmdb::Env>(dir_.path(), lmdb::EnvOptions{});
        acked_ = std::make_unique<AckedIds>(*env_);
    }
    void record(const std::string& user, const std::string& sender, const std::string& id,
                std::uint64_t at, std::uint64_t fresh_since = 0) {
        acked_->record(user, sender, id, at, fresh_since);
        ASSERT_EQ(acked_->commit_pending(), 0);
    }
    bool contains(const std::string& user, const std::string& sender, const std::string& id,
                  std::uint64_t since = 0) {
        return acked_->contains(user, sender, id, since);
    }
    std::size_t prune(std::uint64_t before, std::size_t batch) {
        std::size_t pruned = 0;
        EXPECT_EQ(acked_->prune(before, batch, pruned), 0);
        return pruned;
    }

    test::TempDirectory dir_{"acked_ids"};
    std::unique_ptr<lmdb::Env> env_;
    std::unique_ptr<AckedIds> acked_;
};

TEST_F(AckedIdsTest, KnownPerRecipientSenderAndIdWithinTheWindow) {
    record("bob", "alice", "m1", 1000);
    EXPECT_TRUE(contains("bob", "alice", "m1"));
    EXPECT_TRUE(contains("bob", "alice", "m1", 1000));
    EXPECT_FALSE(contains("bob", "alice", "m1", 1001)); // recorded before the window
    EXPECT_FALSE(contains("bob", "carol", "m1"));       // another sender's m1
    EXPECT_FALSE(contains("carol", "alice", "m1"));     // another recipient
    EXPECT_FALSE(contains("bob", "alice", "m2"));
    // Length prefixes: ("bo", "b...") never meets ("bob", ...).
    EXPECT_FALSE(contains("bo", "alice", "bm1"));
    open(); // durable
    EXPECT_TRUE(contains("bob", "alice", "m1"));
    EXPECT_EQ(acked_->size(), 1u);
}

TEST_F(AckedIdsTest, AFreshEntryIsKeptAnOldOneRenewed) {
    record("bob", "alice", "m1", 1000);
    record("bob", "alice", "m1", 2000, /*fresh_since=*/500); // fresh: kept as it is
    EXPECT_FALSE(contains("bob", "alice", "m1", 1500));
    record("bob", "alice", "m1", 3000, /*fresh_since=*/1500); // renewed
    EXPECT_TRUE(contains("bob", "alice", "m1", 2500));
    // The old expiry entry went with the renewal: pruning up to 2000 keeps the entry.
    EXPECT_EQ(prune(2000, 10), 0u);
    EXPECT_TRUE(contains("bob", "alice", "m1"));
    EXPECT_EQ(prune(3001, 10), 1u);
    EXPECT_FALSE(contains("bob", "alice", "m1"));
}

TEST_F(AckedIdsTest, PruningIsOldestFirstInBoundedRuns) {
    for (int i = 0; i < 5; ++i) record("bob", "alice", "m" + std::to_string(i), 1000 + i);
    record("bob", "alice", "new", 9000);
    EXPECT_EQ(prune(5000, 2), 2u);
    EXPECT_FALSE(contains("bob", "alice", "m0"));
    EXPECT_FALSE(contains("bob", "alice", "m1"));
    EXPECT_TRUE(contains("bob", "alice", "m2"));
    EXPECT_EQ(prune(5000, 10), 3u);
    EXPECT_EQ(prune(5000, 10), 0u);
    EXPECT_TRUE(contains("bob", "alice", "new"));
    EXPECT_EQ(acked_->size(), 1u);
}

TEST_F(AckedIdsTest, AKeyOverLmdbsLimitIsNotRecorded) {
    const std::string id(300, 'x'), user(240, 'u');
    record(user, "alice", id, 1000); // 2 + 240 + 2 + 300 + 8 + 8 > 511
    EXPECT_FALSE(contains(user, "alice", id));
    record(user, "alice", std::string(250, 'y'), 1000); // the daemons' limits fit
    EXPECT_TRUE(contains(user, "alice", std::string(250, 'y')));
}

TEST_F(AckedIdsTest, MarksArePendingUntilCommittedAndGoneWhenDiscarded) {
    acked_->record("bob", "alice", "m1", 1000, 0);
    EXPECT_EQ(acked_->pending(), 1u);
    EXPECT_TRUE(contains("bob", "alice", "m1")); // seen at once, before the commit
    EXPECT_FALSE(contains("bob", "carol", "m1"));
    acked_->discard_pending(); // the owner's transaction did not commit
    EXPECT_FALSE(contains("bob", "alice", "m1"));
    acked_->record("bob", "alice", "m2", 1000, 0);
    EXPECT_EQ(acked_->commit_pending(), 0);
    EXPECT_EQ(acked_->pending(), 0u);
    EXPECT_TRUE(contains("bob", "alice", "m2"));
    EXPECT_EQ(acked_->lost(), 0u);
    // In an environment of its own, beside the owner's: the owner's has no such database.
    EXPECT_TRUE(std::filesystem::exists(dir_.path() / "acked-ids" / "data.mdb"));
    lmdb::Txn txn(*env_, lmdb::Txn::read_only);
    EXPECT_FALSE(lmdb::Db::open_existing(txn, "acked_ids").has_value());
}

TEST_F(AckedIdsTest, TheEarlierLayoutInTheOwnersEnvironmentIsMovedOnOpen) {
    acked_.reset();
    // Entries as the earlier layout wrote them, in the owner's environment.
    std::string key;
    lmdb::append_length_prefixed(key, "bob");
    lmdb::append_length_prefixed(key, "m1");
    lmdb::append_u64_be(key, 0x0123456789abcdefull); // any hash: the value names the sender
    std::string value;
    lmdb::append_u64_be(value, 5000);
    value += "alice";
    {
        lmdb::Txn txn(*env_, lmdb::Txn::read_write);
        lmdb::Db old = lmdb::Db::open(txn, "acked_ids");
        lmdb::Db old_expiry = lmdb::Db::open(txn, "acked_expiry");
        ASSERT_EQ(old.put(txn, key, value), 0);
        std::string expiry;
        lmdb::append_u64_be(expiry, 5000);
        ASSERT_EQ(old_expiry.put(txn, expiry + key, ""), 0);
        ASSERT_EQ(txn.commit(), 0);
    }
    acked_ = std::make_unique<AckedIds>(*env_);
    EXPECT_EQ(acked_->migrated(), 1u);
    EXPECT_EQ(acked_->size(), 1u);
    {
        lmdb::Txn txn(*env_, lmdb::Txn::read_only);
        EXPECT_FALSE(lmdb::Db::open_existing(txn, "acked_ids").has_value());
        EXPECT_FALSE(lmdb::Db::open_existing(txn, "acked_expiry").has_value());
    }
    // With its expiry entry: pruned past its time.
    EXPECT_EQ(prune(5001, 10), 1u);
    EXPECT_EQ(acked_->size(), 0u);
    open(); // nothing left to move
    EXPECT_EQ(acked_->migrated(), 0u);
}

TEST(UserQueueWritesTest, CountsAreKeptPerMessageAndDeletedWithIt) {
    test::TempDirectory dir{"user_queue_writes"};
    lmdb::Env env(dir.path(), lmdb::EnvOptions{});
    UserQueue queue(env, "ids", false, "test", [](std::string_view) { return std::nullopt; });
    std::uint64_t seq = 0;
    queue.write_batch([&](lmdb::Txn* txn, WriteMode mode) {
        return queue.store(*txn, "bob", "alice", "m1", mode,
                           [](std::uint64_t) { return std::string_view("r"); }, seq) ==
                   Stored::stored &&
               queue.set_writes(*txn, "bob", seq, 2) == 0;
    });
    {
        lmdb::Txn txn(env, lmdb::Txn::read_only);
        EXPECT_EQ(queue.writes(txn, "bob", seq), 2u);
        EXPECT_EQ(queue.writes(txn, "bob", seq + 1), 0u);
    }
    lmdb::Txn txn(env, lmdb::Txn::read_write);
    ASSERT_EQ(queue.erase(txn, "bob", "m1", seq), 0);
    EXPECT_EQ(queue.writes(txn, "bob", seq), 0u);
}

} // namespace
} // namespace vartalap
