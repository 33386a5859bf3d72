// FanoutOutbox over real LMDB: staging in the caller's transaction, per-shard sending with a
// shard that refuses part way, deletions, and recovery after a crash (the outbox destroyed
// and reopened on the same directory), including a resharded topology; then confirmed
// copies (the mode the daemons run): deletion only of confirmed copies, resends after the
// timeout (a hand-driven clock) and after a restart, the bound on unconfirmed copies per
// shard, and seqs that are never reused.
#include "common/store/fanout_outbox.hpp"

#include "tests/support/fanout_copies.hpp"

#include <gtest/gtest.h>

#include <functional>
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
    test::ManualClock clock_;
    FanoutOutbox::Options options_; // no confirm_to: done once sent (ConfirmedOutboxTest sets it)
    std::unique_ptr<lmdb::Env> env_ = std::make_unique<lmdb::Env>(dir_.path());
    std::unique_ptr<FanoutOutbox> outbox_ =
        std::make_unique<FanoutOutbox>(*env_, 3, by_first_letter, clock_, options_);

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
        outbox_ = std::make_unique<FanoutOutbox>(*env_, shards, std::move(shard_of), clock_, options_);
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

// ---------------------------------------------------------------------------------------
// Confirmed copies: the sessions confirm what they committed (copies_stored).

class ConfirmedOutboxTest : public FanoutOutboxTest {
protected:
    void SetUp() override {
        options_.confirm_to = "group-router-1";
        options_.confirm_timeout_ms = 10000;
        options_.max_unconfirmed_copies = 8192;
        reopen();
    }

    // Sends what the outbox sends now; `accept` says whether a shard takes a copy.
    std::vector<SentCopy> send(const std::function<bool(const Envelope&)>& accept = {}) {
        std::vector<SentCopy> sent;
        outbox_->send_pending([&](std::size_t shard, const Envelope& copy) {
            if (accept && !accept(copy)) return false;
            sent.push_back({shard, copy});
            return true;
        });
        return sent;
    }
    static std::multiset<std::string> names(const std::vector<SentCopy>& sent) {
        std::multiset<std::string> out;
        for (const auto& c : sent) out.insert(c.envelope.id + ":" + c.envelope.to);
        return out;
    }
    std::size_t confirm(std::uint64_t seq, std::vector<std::string> users) {
        return outbox_->confirm(seq, users);
    }
};

TEST_F(ConfirmedOutboxTest, CopiesNameTheirEntryAndStayUntilConfirmed) {
    stage_and_commit(message_template("m1"), {"bob", "carol", "bill"});
    const auto sent = send();
    ASSERT_EQ(sent.size(), 3u);
    const std::uint64_t seq = sent[0].envelope.request_id;
    EXPECT_NE(seq, 0u);
    for (const auto& c : sent) {
        EXPECT_EQ(c.envelope.request_id, seq);
        EXPECT_EQ(c.envelope.confirm_to, "group-router-1");
    }
    EXPECT_EQ(outbox_->pending_copies(), 0u);
    EXPECT_EQ(outbox_->unconfirmed_copies(), 3u);
    EXPECT_FALSE(outbox_->has_deletions()); // sent is not enough

    EXPECT_EQ(confirm(seq, {"bob"}), 1u);
    EXPECT_FALSE(outbox_->has_deletions()); // bill (shard 1 too) is not confirmed
    EXPECT_EQ(confirm(seq, {"bill", "bob"}), 1u); // bob again: nothing more
    EXPECT_TRUE(outbox_->has_deletions());  // shard 1's batch is done
    ASSERT_EQ(outbox_->flush_deletions(), 0);
    EXPECT_EQ(outbox_->unconfirmed_copies(), 1u);

    reopen(); // a crash: carol was never confirmed
    EXPECT_EQ(names(send()), (std::multiset<std::string>{"m1:carol"}));
    EXPECT_EQ(confirm(seq, {"carol"}), 1u); // the same seq after the restart
    ASSERT_EQ(outbox_->flush_deletions(), 0);
    EXPECT_EQ(outbox_->pending_messages(), 0u);
    reopen();
    EXPECT_EQ(outbox_->open_copies(), 0u);
}

TEST_F(ConfirmedOutboxTest, UnconfirmedCopiesAreSentAgainAfterTheTimeout) {
    stage_and_commit(message_template("m1"), {"bob", "bill", "carol"});
    const auto sent = send();
    const std::uint64_t seq = sent[0].envelope.request_id;
    EXPECT_EQ(confirm(seq, {"bob"}), 1u);
    clock_.advance(9999);
    EXPECT_TRUE(send().empty());
    EXPECT_EQ(outbox_->resent_copies(), 0u);
    clock_.advance(1);
    // Only what no session confirmed, each batch in its order.
    EXPECT_EQ(names(send()), (std::multiset<std::string>{"m1:bill", "m1:carol"}));
    EXPECT_EQ(outbox_->resent_copies(), 2u);
    EXPECT_EQ(outbox_->unconfirmed_copies(), 2u);
    // A confirmation of the first send arrives late: it counts all the same.
    EXPECT_EQ(confirm(seq, {"bill", "carol"}), 2u);
    EXPECT_EQ(outbox_->unconfirmed_copies(), 0u);
    clock_.advance(20000);
    EXPECT_TRUE(send().empty());
    EXPECT_EQ(outbox_->pending_messages(), 0u);
}

TEST_F(ConfirmedOutboxTest, AResendKeepsItsPlaceBeforeNewerEntries) {
    stage_and_commit(message_template("m1"), {"bob"});
    send();
    clock_.advance(10000);
    stage_and_commit(message_template("m2"), {"bob"});
    const auto sent = send();
    ASSERT_EQ(sent.size(), 2u);
    EXPECT_EQ(sent[0].envelope.id, "m1");
    EXPECT_EQ(sent[1].envelope.id, "m2");
}

TEST_F(ConfirmedOutboxTest, ConfirmationsOfCopiesNotSentInThisPassAreSkippedOnResend) {
    stage_and_commit(message_template("m1"), {"bob", "bill", "bea"});
    // The shard takes bob, then refuses (high-water mark).
    auto sent = send([](const Envelope& copy) { return copy.to == "bob"; });
    ASSERT_EQ(sent.size(), 1u);
    const std::uint64_t seq = sent[0].envelope.request_id;
    EXPECT_EQ(outbox_->pending_copies(), 2u);
    // A session confirms bill (a copy of an earlier run, say) before this pass sent it.
    EXPECT_EQ(confirm(seq, {"bill"}), 1u);
    EXPECT_EQ(outbox_->unconfirmed_copies(), 1u); // bob
    EXPECT_EQ(names(send()), (std::multiset<std::string>{"m1:bea"}));
}

TEST_F(ConfirmedOutboxTest, ABatchConfirmedBeforeItsTurnIsFinishedOnce) {
    stage_and_commit(message_template("m1"), {"bob", "carol"});
    stage_and_commit(message_template("m2"), {"bill", "cody"});
    // Shard 1 refuses everything for now; shard 2 takes its copies.
    auto sent = send([](const Envelope& copy) { return copy.to[0] != 'b'; });
    ASSERT_EQ(names(sent), (std::multiset<std::string>{"m1:carol", "m2:cody"}));
    const std::uint64_t m1 = sent[0].envelope.request_id, m2 = sent[1].envelope.request_id;
    // Confirmations of earlier sends (before a restart, say) for what still waits in shard 1.
    EXPECT_EQ(confirm(m1, {"bob"}), 1u);
    EXPECT_EQ(confirm(m2, {"bill", "cody"}), 2u); // m2 is done: both its batches
    EXPECT_TRUE(send().empty()); // nothing left to send on shard 1
    EXPECT_EQ(confirm(m1, {"carol"}), 1u);
    EXPECT_EQ(outbox_->open_copies(), 0u);
    EXPECT_EQ(outbox_->pending_messages(), 0u);
    ASSERT_EQ(outbox_->flush_deletions(), 0); // four keys and two templates, each deleted once
    reopen();
    EXPECT_EQ(outbox_->open_copies(), 0u);
    EXPECT_EQ(outbox_->pending_messages(), 0u);
}

TEST_F(ConfirmedOutboxTest, AShardAtItsBoundGetsNoMoreCopiesUntilConfirmationsFreeIt) {
    options_.max_unconfirmed_copies = 2;
    reopen();
    stage_and_commit(message_template("m1"), {"bob", "bill", "carol"});
    stage_and_commit(message_template("m2"), {"bea", "cody"});
    auto sent = send();
    // Shard 1 stops at two unconfirmed copies; shard 2 is not held back by it.
    EXPECT_EQ(names(sent), (std::multiset<std::string>{"m1:bob", "m1:bill", "m1:carol", "m2:cody"}));
    EXPECT_EQ(outbox_->pending_copies(), 1u);
    EXPECT_TRUE(send().empty());
    EXPECT_EQ(confirm(sent[0].envelope.request_id, {"bob"}), 1u);
    EXPECT_EQ(names(send()), (std::multiset<std::string>{"m2:bea"}));
    EXPECT_TRUE(send().empty());
}

TEST_F(ConfirmedOutboxTest, ATimeoutFreesTheBoundOfAShardWhoseSessionLostItsCopies) {
    options_.max_unconfirmed_copies = 1;
    reopen();
    stage_and_commit(message_template("m1"), {"bob", "bill"});
    const auto first = send();
    EXPECT_EQ(names(first), (std::multiset<std::string>{"m1:bob"}));
    // The session died with bob's copy: no confirmation comes.
    clock_.advance(10000);
    EXPECT_EQ(names(send()), (std::multiset<std::string>{"m1:bob"})); // bob again, first
    EXPECT_EQ(confirm(first[0].envelope.request_id, {"bob"}), 1u);
    EXPECT_EQ(names(send()), (std::multiset<std::string>{"m1:bill"}));
}

TEST_F(ConfirmedOutboxTest, ARestartSendsEveryUnconfirmedCopyAgain) {
    stage_and_commit(message_template("m1"), {"alan", "bob", "bill", "carol"});
    auto sent = send();
    const std::uint64_t seq = sent[0].envelope.request_id;
    EXPECT_EQ(confirm(seq, {"alan", "bob"}), 2u);
    ASSERT_EQ(outbox_->flush_deletions(), 0); // shard 0 (alan) is done
    reopen();
    sent = send();
    // Shard 1's batch was partly confirmed: it is sent whole (sessions dedupe bob).
    EXPECT_EQ(names(sent), (std::multiset<std::string>{"m1:bob", "m1:bill", "m1:carol"}));
    for (const auto& c : sent) EXPECT_EQ(c.envelope.request_id, seq);
}

TEST_F(ConfirmedOutboxTest, SeqsAreNeverReusedSoAStaleConfirmationConfirmsNothing) {
    stage_and_commit(message_template("m1"), {"bob"});
    const std::uint64_t first = send()[0].envelope.request_id;
    EXPECT_EQ(confirm(first, {"bob"}), 1u);
    ASSERT_EQ(outbox_->flush_deletions(), 0); // the outbox is empty now
    reopen();
    stage_and_commit(message_template("m2"), {"bob"});
    const std::uint64_t second = send()[0].envelope.request_id;
    EXPECT_GT(second, first);
    // A confirmation of m1 sent twice (the session saw a resend) arrives after the restart.
    EXPECT_EQ(confirm(first, {"bob"}), 0u);
    EXPECT_EQ(outbox_->unconfirmed_copies(), 1u);
    EXPECT_EQ(confirm(second, {"zed", "carol"}), 0u); // not recipients of m2
    EXPECT_EQ(confirm(12345, {"bob"}), 0u);
    EXPECT_EQ(outbox_->unconfirmed_copies(), 1u);
}

TEST_F(ConfirmedOutboxTest, ConfirmationsInAnyOrderFindTheirRecipients) {
    std::vector<std::string> users;
    for (int i = 0; i < 300; ++i) users.push_back("b" + std::to_string(i)); // one shard
    std::vector<std::string_view> views(users.begin(), users.end());
    stage_and_commit(message_template("m1"), views);
    const std::uint64_t seq = send()[0].envelope.request_id;
    std::vector<std::string> reversed(users.rbegin(), users.rend());
    EXPECT_EQ(confirm(seq, std::vector<std::string>(reversed.begin(), reversed.begin() + 150)), 150u);
    EXPECT_EQ(confirm(seq, users), 150u);
    EXPECT_EQ(outbox_->open_copies(), 0u);
    EXPECT_TRUE(outbox_->has_deletions());
}

} // namespace
} // namespace vartalap
