// FanoutOutbox over real LMDB: staging in the caller's transaction, per-shard sending with a
// shard that refuses part way, deletions, and recovery after a crash (the outbox destroyed
// and reopened on the same directory), including a resharded topology.
#include "common/store/fanout_outbox.hpp"

#include "tests/support/fanout_copies.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace vartalap {
namespace {

using test::SentCopy;

Envelope message_template(std::string id) {
    Envelope e;
    e.kind = Kind::deliver;
    e.id = std::move(id);
    e.channel = "group";
    e.from = "alice";
    e.flags = flag_group;
    e.payload = R"({"head":{"to":"g"}})";
    return e;
}

std::size_t by_first_letter(std::string_view user) { return user.empty() ? 0 : (user[0] - 'a') % 3; }

class FanoutOutboxTest : public ::testing::Test {
protected:
    test::TempDirectory dir_{"outbox"};
    std::unique_ptr<lmdb::Env> env_ = std::make_unique<lmdb::Env>(dir_.path());
    std::unique_ptr<FanoutOutbox> outbox_ = std::make_unique<FanoutOutbox>(*env_, 3, by_first_letter);

    void stage_and_commit(const Envelope& e, std::vector<std::string_view> recipients) {
        lmdb::Txn txn(*env_, lmdb::Txn::read_write);
        ASSERT_EQ(outbox_->stage(txn, e, recipients), 0);
        ASSERT_EQ(txn.commit(), 0);
        outbox_->committed();
    }

    void reopen(std::size_t shards = 3, FanoutOutbox::ShardOf shard_of = by_first_letter) {
        outbox_.reset();
        env_.reset();
        env_ = std::make_unique<lmdb::Env>(dir_.path());
        outbox_ = std::make_unique<FanoutOutbox>(*env_, shards, std::move(shard_of));
    }
};

TEST_F(FanoutOutboxTest, SendsOneCopyPerRecipientGroupedByShard) {
    stage_and_commit(message_template("m1"), {"bob", "carol", "bill", "alan", "cody"});
    EXPECT_EQ(outbox_->pending_copies(), 5u);
    std::vector<SentCopy> sent;
    EXPECT_EQ(test::drain(*outbox_, sent), 5u);
    std::vector<std::pair<std::size_t, std::string>> order;
    for (const auto& c : sent) {
        order.emplace_back(c.shard, c.envelope.to);
        EXPECT_EQ(c.envelope.id, "m1");
        EXPECT_EQ(c.envelope.payload, R"({"head":{"to":"g"}})");
        EXPECT_EQ(c.envelope.kind, Kind::deliver);
    }
    // Shard by shard, each in the given order.
    EXPECT_EQ(order, (std::vector<std::pair<std::size_t, std::string>>{
                         {0, "alan"}, {1, "bob"}, {1, "bill"}, {2, "carol"}, {2, "cody"}}));
    EXPECT_FALSE(outbox_->has_pending());
    EXPECT_TRUE(outbox_->has_deletions());
    EXPECT_EQ(outbox_->flush_deletions(), 0);
    EXPECT_FALSE(outbox_->has_deletions());
    reopen();
    EXPECT_EQ(outbox_->pending_copies(), 0u);
}

TEST_F(FanoutOutboxTest, AbortedStagesAreForgotten) {
    {
        lmdb::Txn txn(*env_, lmdb::Txn::read_write);
        ASSERT_EQ(outbox_->stage(txn, message_template("m1"), std::vector<std::string_view>{"bob"}), 0);
        txn.abort();
        outbox_->aborted();
    }
    EXPECT_FALSE(outbox_->has_pending());
    reopen();
    EXPECT_FALSE(outbox_->has_pending());
}

TEST_F(FanoutOutboxTest, ARefusingShardKeepsItsCopiesOthersProceed) {
    stage_and_commit(message_template("m1"), {"bob", "bill", "carol"});
    stage_and_commit(message_template("m2"), {"bob", "carol"});
    std::vector<SentCopy> sent;
    int shard1_budget = 1; // shard 1 accepts one copy, then is "at its high-water mark"
    outbox_->send_pending([&](std::size_t shard, const Envelope& copy) {
        if (shard == 1 && shard1_budget-- <= 0) return false;
        sent.push_back({shard, copy});
        return true;
    });
    std::multiset<std::string> got;
    for (const auto& c : sent) got.insert(c.envelope.id + ":" + c.envelope.to);
    EXPECT_EQ(got, (std::multiset<std::string>{"m1:bob", "m1:carol", "m2:carol"}));
    EXPECT_EQ(outbox_->pending_copies(), 2u);

    sent.clear();
    test::drain(*outbox_, sent);
    got.clear();
    for (const auto& c : sent) got.insert(c.envelope.id + ":" + c.envelope.to);
    // Resumed where it stopped, in order: nothing sent twice, nothing skipped.
    EXPECT_EQ(got, (std::multiset<std::string>{"m1:bill", "m2:bob"}));
    EXPECT_EQ(sent[0].envelope.id, "m1");
    EXPECT_EQ(outbox_->pending_messages(), 0u);
}

TEST_F(FanoutOutboxTest, ACrashBeforeSendingLosesNothing) {
    stage_and_commit(message_template("m1"), {"bob", "carol", "alan"});
    reopen(); // crash: nothing was sent
    EXPECT_EQ(outbox_->pending_copies(), 3u);
    std::vector<SentCopy> sent;
    test::drain(*outbox_, sent);
    ASSERT_EQ(sent.size(), 3u);
    EXPECT_EQ(sent[0].envelope.payload, R"({"head":{"to":"g"}})");
    EXPECT_EQ(sent[0].envelope.from, "alice");
}

TEST_F(FanoutOutboxTest, ACrashMidwayResendsOnlyUnfinishedShardBatches) {
    stage_and_commit(message_template("m1"), {"alan", "bob", "bill", "carol"});
    std::vector<SentCopy> sent;
    outbox_->send_pending([&](std::size_t shard, const Envelope& copy) {
        if (shard == 1 && copy.to == "bill") return false; // shard 1 stopped after bob
        sent.push_back({shard, copy});
        return true;
    });
    ASSERT_EQ(outbox_->flush_deletions(), 0); // shards 0 and 2 are done and deleted
    reopen();
    sent.clear();
    test::drain(*outbox_, sent);
    std::vector<std::string> to;
    for (const auto& c : sent) to.push_back(c.envelope.to);
    // Shard 1's batch restarts from its beginning (bob again: sessions dedupe by id).
    EXPECT_EQ(to, (std::vector<std::string>{"bob", "bill"}));
}

TEST_F(FanoutOutboxTest, DeletionsNotCommittedBeforeACrashMeanAResend) {
    stage_and_commit(message_template("m1"), {"bob"});
    std::vector<SentCopy> sent;
    test::drain(*outbox_, sent);
    reopen(); // crashed before the deletion committed
    EXPECT_EQ(outbox_->pending_copies(), 1u);
}

TEST_F(FanoutOutboxTest, PendingCopiesAreRegroupedForANewShardMap) {
    stage_and_commit(message_template("m1"), {"alan", "bob", "carol", "dora"});
    reopen(2, [](std::string_view user) { return user.size() % 2; });
    std::vector<SentCopy> sent;
    test::drain(*outbox_, sent);
    std::map<std::string, std::size_t> shard_of;
    for (const auto& c : sent) shard_of[c.envelope.to] = c.shard;
    EXPECT_EQ(shard_of, (std::map<std::string, std::size_t>{{"alan", 0}, {"bob", 1}, {"carol", 1}, {"dora", 0}}));
    ASSERT_EQ(outbox_->flush_deletions(), 0);
    reopen(2, [](std::string_view user) { return user.size() % 2; });
    EXPECT_EQ(outbox_->pending_copies(), 0u);
}

TEST_F(FanoutOutboxTest, EmptyRecipientListsStageNothing) {
    stage_and_commit(message_template("m1"), {});
    EXPECT_FALSE(outbox_->has_pending());
    EXPECT_EQ(outbox_->pending_messages(), 0u);
}

} // namespace
} // namespace vartalap
