// UserQueue over real LMDB in a temporary directory: the on-disk layout, store with dedupe,
// delete by id and by seq, cursor and seq order, reopening, and the batch write's map-full
// fallback (on a tiny map, and stepped through with a pass that reports "full").
// Also the big-endian helpers of lmdb.hpp the layout is built from.
#include "common/store/user_queue.hpp"

#include "tests/support/fixtures.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace vartalap {
namespace {

std::string be64(std::uint64_t value) {
    std::string out;
    lmdb::append_u64_be(out, value);
    return out;
}

class UserQueueTest : public ::testing::Test {
protected:
    void SetUp() override { open(); }
    void TearDown() override {
        queue_.reset();
        env_.reset();
    }
    void open(lmdb::EnvOptions options = {}, bool with_time = false) {
        queue_.reset();
        env_.reset();
        env_ = std::make_unique<lmdb::Env>(dir_.path(), options);
        queue_ = std::make_unique<UserQueue>(*env_, "ids", with_time, "test", sender_of);
    }

    // Stores (user, id) with record "r:<id>" in one batch: the outcome and the seq.
    // The sender of a record written as "from:<sender>" (the migration tests' records).
    static std::optional<std::string> sender_of(std::string_view record) {
        if (!record.starts_with("from:")) return std::nullopt;
        return std::string(record.substr(5));
    }

    std::pair<Stored, std::uint64_t> store(const std::string& user, const std::string& id,
                                           std::uint64_t time = 0, const std::string& sender = "s") {
        Stored outcome = Stored::refused;
        std::uint64_t seq = 0;
        const std::string record = "r:" + id;
        const BatchWrite write = queue_->write_batch([&](lmdb::Txn* txn, WriteMode mode) {
            outcome = queue_->store(
                *txn, user, sender, id, mode,
                [&](std::uint64_t) -> std::string_view { return record; },
                seq, time);
            return outcome != Stored::out_of_space;
        });
        EXPECT_EQ(write.first_rc, 0);
        return {outcome, seq};
    }

    std::vector<std::uint64_t> seqs_of(const std::string& user, std::uint64_t from = 0) {
        lmdb::Txn txn(*env_, lmdb::Txn::read_only);
        std::vector<std::uint64_t> seqs;
        for (UserCursor cursor(txn, *queue_, user, from); cursor.valid(); cursor.next())
            seqs.push_back(cursor.seq());
        return seqs;
    }

    test::TempDirectory dir_{"user-queue"}; // removed after the environment is closed
    std::unique_ptr<lmdb::Env> env_;
    std::unique_ptr<UserQueue> queue_;
};

TEST(BigEndianTest, EncodesMostSignificantByteFirstAndReadsShortInputsAsTheirValue) {
    EXPECT_EQ(be64(0x0102030405060708), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
    EXPECT_EQ(lmdb::read_u64_be(be64(0xfedcba9876543210)), 0xfedcba9876543210u);
    EXPECT_EQ(lmdb::read_u64_be(std::string("\x01\x02", 2)), 0x0102u);
    EXPECT_EQ(lmdb::read_u64_be(""), 0u);
    EXPECT_EQ(lmdb::read_u64_be(be64(7) + "tail"), 7u); // only the first 8 bytes
}

TEST(UserQueueKeysTest, LayoutIsLengthPrefixedUserThenBigEndianSeqOrId) {
    std::string key;
    UserQueue::message_key(key, "bob", 258);
    EXPECT_EQ(key, std::string("\x00\x03" "bob", 5) + be64(258));
    UserQueue::id_key(key, "bob", "m1", 258);
    EXPECT_EQ(key, std::string("\x00\x03" "bob" "\x00\x02" "m1", 9) + be64(258));
    EXPECT_EQ(UserQueue::user_length_at(key, 0), 3u);
    EXPECT_EQ(UserQueue::user_length_at("x", 0), 0u); // too short to hold a length
    const std::string long_user(300, 'u');
    UserQueue::user_prefix(key, long_user);
    EXPECT_EQ(key.substr(0, 2), std::string("\x01\x2c", 2));
    EXPECT_EQ(UserQueue::user_length_at(key, 0), 300u);
}

TEST_F(UserQueueTest, WritesTheDocumentedLayoutOnDisk) {
    open({}, /*with_time=*/true);
    ASSERT_EQ(store("bob", "m1", 1234).second, 1u);
    lmdb::Txn txn(*env_, lmdb::Txn::read_only);
    std::string_view value;
    ASSERT_EQ(queue_->messages().get(txn, std::string("\x00\x03" "bob", 5) + be64(1), value), 0);
    EXPECT_EQ(value, "r:m1");
    ASSERT_EQ(queue_->ids().get(txn, std::string("\x00\x03" "bob" "\x00\x02" "m1", 9) + be64(1),
                                value), 0);
    EXPECT_EQ(value, be64(1) + be64(1234) + "s"); // seq, time, sender
    const lmdb::Db meta = lmdb::Db::open(txn, "meta");
    ASSERT_EQ(meta.get(txn, "next_seq", value), 0);
    EXPECT_EQ(value, be64(2));
}

TEST_F(UserQueueTest, StoresWithDedupeAndRefusesNewMessagesUnlessAllWritesAreAllowed) {
    EXPECT_EQ(store("bob", "m1"), std::make_pair(Stored::stored, std::uint64_t{1}));
    EXPECT_EQ(store("bob", "m1").first, Stored::duplicate);
    EXPECT_EQ(store("alice", "m1"), std::make_pair(Stored::stored, std::uint64_t{2}));
    EXPECT_TRUE(queue_->contains("bob", "s", "m1"));
    EXPECT_FALSE(queue_->contains("bob", "s", "m2"));
    EXPECT_EQ(queue_->count("bob"), 1u);

    lmdb::Txn txn(*env_, lmdb::Txn::read_write);
    std::uint64_t seq = 0;
    const auto encode = [](std::uint64_t) -> std::string_view { return "x"; };
    EXPECT_EQ(queue_->store(txn, "bob", "s", "m2", WriteMode::deletions_only, encode, seq),
              Stored::refused);
    EXPECT_EQ(queue_->store(txn, "bob", "s", "m1", WriteMode::none, encode, seq), Stored::duplicate);
    EXPECT_EQ(queue_->next_seq(), 3u); // nothing taken
}

TEST_F(UserQueueTest, DeletesById) {
    store("bob", "m1");
    store("bob", "m2");
    lmdb::Txn txn(*env_, lmdb::Txn::read_write);
    IdEntry entry;
    // WriteMode::none finds without deleting.
    ASSERT_EQ(queue_->erase_by_id(txn, "bob", std::nullopt, "m2", WriteMode::none, entry), 0);
    EXPECT_EQ(entry.seq, 2u);
    EXPECT_TRUE(queue_->contains(txn, "bob", "s", "m2"));
    ASSERT_EQ(queue_->erase_by_id(txn, "bob", std::nullopt, "m2", WriteMode::deletions_only, entry), 0);
    EXPECT_EQ(entry.seq, 2u);
    EXPECT_EQ(queue_->erase_by_id(txn, "bob", std::nullopt, "m2", WriteMode::all, entry), MDB_NOTFOUND);
    EXPECT_EQ(queue_->erase_by_id(txn, "alice", std::nullopt, "m1", WriteMode::all, entry), MDB_NOTFOUND);
    std::string_view record;
    EXPECT_EQ(queue_->get(txn, "bob", 2, record), MDB_NOTFOUND);
    ASSERT_EQ(queue_->get(txn, "bob", 1, record), 0);
    EXPECT_EQ(record, "r:m1");
    ASSERT_EQ(txn.commit(), 0);
    EXPECT_EQ(queue_->count("bob"), 1u);
    EXPECT_FALSE(queue_->contains("bob", "s", "m2"));
}

TEST_F(UserQueueTest, DeletesBySeqAndToleratesWhatIsGoneAlready) {
    store("bob", "m1");
    lmdb::Txn txn(*env_, lmdb::Txn::read_write);
    EXPECT_EQ(queue_->erase(txn, "bob", "m1", 1), 0);
    EXPECT_EQ(queue_->erase(txn, "bob", "m1", 1), 0);
    ASSERT_EQ(txn.commit(), 0);
    EXPECT_EQ(queue_->count("bob"), 0u);
    EXPECT_FALSE(queue_->contains("bob", "s", "m1"));
}

TEST_F(UserQueueTest, CursorsWalkOneUserInSeqOrderAndTheScanWalksEveryUser) {
    store("bob", "b1");
    store("alice", "a1");
    store("bob", "b2");
    store("bo", "x1"); // a prefix of "bob" as bytes: the length prefix keeps them apart
    store("bob", "b3");
    EXPECT_EQ(seqs_of("bob"), (std::vector<std::uint64_t>{1, 3, 5}));
    EXPECT_EQ(seqs_of("bob", 3), (std::vector<std::uint64_t>{3, 5}));
    EXPECT_EQ(seqs_of("bo"), (std::vector<std::uint64_t>{4}));
    EXPECT_TRUE(seqs_of("carol").empty());

    lmdb::Txn txn(*env_, lmdb::Txn::read_only);
    std::vector<std::pair<std::string, std::uint64_t>> seen;
    for (StoreScan scan(txn, *queue_, ""); scan.valid();) {
        ASSERT_TRUE(scan.is_message());
        seen.emplace_back(std::string(scan.user()), scan.seq());
        if (scan.user() == "bob" && scan.seq() == 1) {
            scan.skip_user(); // past 3 and 5
            continue;
        }
        scan.next();
    }
    // Keys sort by the length prefix first: "bo" (2) and "bob" (3) before "alice" (5).
    EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::uint64_t>>{
                        {"bo", 4}, {"bob", 1}, {"alice", 2}}));

    // Resuming at a saved key.
    std::string resume;
    UserQueue::message_key(resume, "bob", 3);
    StoreScan scan(txn, *queue_, resume);
    ASSERT_TRUE(scan.valid());
    EXPECT_EQ(scan.seq(), 3u);
    EXPECT_EQ(scan.record(), "r:b2");
}

TEST_F(UserQueueTest, ReopeningKeepsTheOrderAndContinuesTheCounter) {
    store("bob", "m1");
    store("bob", "m2");
    open();
    EXPECT_EQ(queue_->next_seq(), 3u);
    EXPECT_EQ(store("bob", "m3").second, 3u);
    EXPECT_EQ(store("bob", "m1").first, Stored::duplicate);
    EXPECT_EQ(seqs_of("bob"), (std::vector<std::uint64_t>{1, 2, 3}));
}

TEST_F(UserQueueTest, WriteBatchStepsDownToDeletionsOnlyThenToAReadOnlyPass) {
    store("bob", "m1");
    std::vector<WriteMode> modes;
    std::vector<bool> read_only;
    int fail_passes = 2; // all and deletions_only report "full"
    const BatchWrite write = queue_->write_batch([&](lmdb::Txn* txn, WriteMode mode) {
        modes.push_back(mode);
        read_only.push_back(mode == WriteMode::none);
        std::uint64_t seq = 0;
        const auto encode = [](std::uint64_t) -> std::string_view { return "x"; };
        EXPECT_EQ(queue_->store(*txn, "bob", "s", "m2", mode, encode, seq),
                  mode == WriteMode::all ? Stored::stored : Stored::refused);
        if (fail_passes-- > 0) return !queue_->full(MDB_MAP_FULL);
        return true;
    });
    EXPECT_EQ(modes, (std::vector<WriteMode>{WriteMode::all, WriteMode::deletions_only,
                                             WriteMode::none}));
    EXPECT_EQ(write.first_rc, MDB_MAP_FULL);
    EXPECT_EQ(write.rc, MDB_MAP_FULL);
    EXPECT_EQ(queue_->next_seq(), 2u); // rewound: the seq taken by the failed pass is reused
    EXPECT_FALSE(queue_->contains("bob", "s", "m2"));
}

TEST_F(UserQueueTest, WriteBatchRetriesWhileTheMapMayGrow) {
    int fail_passes = 1;
    int grows = 0;
    const BatchWrite write = queue_->write_batch(
        [&](lmdb::Txn* txn, WriteMode mode) {
            EXPECT_EQ(mode, WriteMode::all);
            std::uint64_t seq = 0;
            const auto encode = [](std::uint64_t) -> std::string_view { return "x"; };
            queue_->store(*txn, "bob", "s", "m1", mode, encode, seq);
            if (fail_passes-- > 0) return !queue_->full(MDB_MAP_FULL);
            return true;
        },
        [&] { return ++grows == 1; });
    EXPECT_EQ(grows, 1);
    EXPECT_EQ(write.first_rc, 0);
    EXPECT_EQ(write.rc, 0);
    EXPECT_EQ(seqs_of("bob"), (std::vector<std::uint64_t>{1})); // the retry reused seq 1
}

TEST_F(UserQueueTest, AFullTinyMapRefusesNewMessagesButStillAppliesDeletions) {
    lmdb::EnvOptions tiny;
    tiny.map_size = 256 << 10; // 256 KiB
    open(tiny);
    const std::string big(16 << 10, 'x');
    std::uint64_t stored = 0;
    for (int i = 0; i < 64; ++i) {
        std::uint64_t seq = 0;
        Stored outcome = Stored::refused;
        const BatchWrite write = queue_->write_batch([&](lmdb::Txn* txn, WriteMode mode) {
            outcome = queue_->store(
                *txn, "bob", "s", "m" + std::to_string(i), mode,
                [&](std::uint64_t) -> std::string_view { return big; }, seq);
            return outcome != Stored::out_of_space;
        });
        if (write.first_rc != 0) {
            EXPECT_EQ(write.first_rc, MDB_MAP_FULL);
            EXPECT_EQ(outcome, Stored::refused); // the deletions_only (or none) pass's answer
            break;
        }
        ++stored;
    }
    ASSERT_GT(stored, 0u);
    ASSERT_LT(stored, 64u) << "the map never filled";
    const std::uint64_t next = queue_->next_seq();
    EXPECT_EQ(next, stored + 1); // the refused message took no seq

    // A batch that stores one more and deletes the first: the store is refused, the
    // deletion applied.
    IdEntry entry;
    int erase_rc = -1;
    Stored outcome = Stored::stored;
    const BatchWrite write = queue_->write_batch([&](lmdb::Txn* txn, WriteMode mode) {
        std::uint64_t seq = 0;
        outcome = queue_->store(
            *txn, "bob", "s", "new", mode, [&](std::uint64_t) -> std::string_view { return big; }, seq);
        if (outcome == Stored::out_of_space) return false;
        erase_rc = queue_->erase_by_id(*txn, "bob", std::nullopt, "m0", mode, entry);
        return !queue_->full(erase_rc);
    });
    EXPECT_EQ(write.first_rc, MDB_MAP_FULL);
    EXPECT_EQ(write.rc, 0);
    EXPECT_EQ(outcome, Stored::refused);
    EXPECT_EQ(erase_rc, 0);
    EXPECT_EQ(entry.seq, 1u);
    EXPECT_FALSE(queue_->contains("bob", "s", "m0"));
    EXPECT_FALSE(queue_->contains("bob", "s", "new"));
    EXPECT_EQ(queue_->count("bob"), stored - 1);
    EXPECT_EQ(queue_->next_seq(), next);
}

// Issue 14, section 2: one sender's id never stands for another sender's message.
TEST_F(UserQueueTest, DedupeIsPerSenderSoAnotherSendersIdCannotSuppressAMessage) {
    EXPECT_EQ(store("bob", "m1", 0, "mallory"), std::make_pair(Stored::stored, std::uint64_t{1}));
    EXPECT_EQ(store("bob", "m1", 0, "alice"), std::make_pair(Stored::stored, std::uint64_t{2}));
    EXPECT_EQ(store("bob", "m1", 0, "alice").first, Stored::duplicate);
    EXPECT_EQ(store("bob", "m1", 0, "mallory").first, Stored::duplicate);
    EXPECT_TRUE(queue_->contains("bob", "alice", "m1"));
    EXPECT_TRUE(queue_->contains("bob", "mallory", "m1"));
    EXPECT_TRUE(queue_->contains("bob", std::nullopt, "m1"));
    EXPECT_FALSE(queue_->contains("bob", "carol", "m1"));
    // An id that is a prefix of another is another id: "m" finds nothing of "m1".
    EXPECT_FALSE(queue_->contains("bob", std::nullopt, "m"));
    EXPECT_EQ(seqs_of("bob"), (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(UserQueueTest, AnAckNamingTheSenderDeletesOnlyThatSendersCopy) {
    store("bob", "m1", 0, "mallory");
    store("bob", "m1", 0, "alice");
    lmdb::Txn txn(*env_, lmdb::Txn::read_write);
    IdEntry entry;
    ASSERT_EQ(queue_->erase_by_id(txn, "bob", "alice", "m1", WriteMode::all, entry), 0);
    EXPECT_EQ(entry.seq, 2u);
    EXPECT_EQ(entry.sender, "alice");
    EXPECT_FALSE(queue_->contains(txn, "bob", "alice", "m1"));
    EXPECT_TRUE(queue_->contains(txn, "bob", "mallory", "m1"));
    EXPECT_EQ(queue_->erase_by_id(txn, "bob", "alice", "m1", WriteMode::all, entry), MDB_NOTFOUND);
}

TEST_F(UserQueueTest, AnAckWithoutASenderDeletesOneCopyThePreferredElseTheOldest) {
    store("bob", "m1", 0, "mallory"); // seq 1
    store("bob", "m1", 0, "alice");   // seq 2
    store("bob", "m1", 0, "carol");   // seq 3
    lmdb::Txn txn(*env_, lmdb::Txn::read_write);
    IdEntry entry;
    const UserQueue::Prefer in_flight = [](std::uint64_t seq) { return seq == 3; };
    ASSERT_EQ(queue_->erase_by_id(txn, "bob", std::nullopt, "m1", WriteMode::all, entry, in_flight), 0);
    EXPECT_EQ(entry.sender, "carol");
    ASSERT_EQ(queue_->erase_by_id(txn, "bob", std::nullopt, "m1", WriteMode::all, entry), 0);
    EXPECT_EQ(entry.seq, 1u); // the oldest of what is left
    EXPECT_EQ(entry.sender, "mallory");
    EXPECT_TRUE(queue_->contains(txn, "bob", "alice", "m1"));
    EXPECT_EQ(queue_->count(txn, "bob"), 1u);
}

// A store written by the schema-1 layout ([2][user][id] -> seq (+time), no schema record),
// as the code before issue 14 wrote it, byte for byte.
void write_schema1_store(const std::filesystem::path& dir, bool with_time,
                         const std::vector<std::tuple<std::string, std::string, std::string>>& rows) {
    lmdb::Env env(dir);
    lmdb::Txn txn(env, lmdb::Txn::read_write);
    const lmdb::Db messages = lmdb::Db::open(txn, "messages");
    const lmdb::Db ids = lmdb::Db::open(txn, "ids");
    const lmdb::Db meta = lmdb::Db::open(txn, "meta");
    std::uint64_t seq = 0;
    for (const auto& [user, sender, id] : rows) {
        ++seq;
        std::string key = std::string(1, '\0') + static_cast<char>(user.size()) + user;
        ASSERT_EQ(messages.put(txn, key + be64(seq), "from:" + sender), 0);
        std::string value = be64(seq);
        if (with_time) value += be64(1000 + seq);
        ASSERT_EQ(ids.put(txn, key + id, value), 0);
    }
    ASSERT_EQ(meta.put(txn, "next_seq", be64(seq + 1)), 0);
    ASSERT_EQ(txn.commit(), 0);
}

TEST_F(UserQueueTest, OpeningASchema1StoreMigratesItsIdIndexToKeysWithTheSender) {
    queue_.reset();
    env_.reset();
    std::vector<std::tuple<std::string, std::string, std::string>> rows;
    for (int i = 0; i < 25; ++i) rows.emplace_back(i % 2 ? "bob" : "carol", "alice", "m" + std::to_string(i));
    rows.emplace_back("bob", "mallory", "x");
    const auto dir = dir_.path() / "schema1"; // the fixture's store is schema 2 already
    write_schema1_store(dir, /*with_time=*/true, rows);

    env_ = std::make_unique<lmdb::Env>(dir);
    // 7 entries per transaction: the migration takes several rounds.
    queue_ = std::make_unique<UserQueue>(*env_, "ids", true, "test", sender_of, 7);
    EXPECT_EQ(queue_->migrated(), 26u);
    EXPECT_TRUE(queue_->contains("bob", "alice", "m1"));
    EXPECT_TRUE(queue_->contains("carol", "alice", "m0"));
    EXPECT_TRUE(queue_->contains("bob", "mallory", "x"));
    EXPECT_FALSE(queue_->contains("bob", "alice", "x"));
    EXPECT_EQ(queue_->next_seq(), 27u);
    {
        lmdb::Txn txn(*env_, lmdb::Txn::read_write);
        IdEntry entry;
        ASSERT_EQ(queue_->find(txn, "bob", "alice", "m3", entry), 0);
        EXPECT_EQ(entry.seq, 4u);
        EXPECT_EQ(entry.time, 1004u); // the time moved with it
        EXPECT_FALSE(lmdb::Db::open_existing(txn, "ids").has_value()); // the old index is gone
        const lmdb::Db meta = lmdb::Db::open(txn, "meta");
        std::string_view value;
        ASSERT_EQ(meta.get(txn, "schema", value), 0);
        EXPECT_EQ(lmdb::read_u64_be(value), kUserQueueSchema);
    }
    // A resend of a migrated message is still a duplicate; another sender's id is not.
    EXPECT_EQ(store("bob", "m1", 0, "alice").first, Stored::duplicate);
    EXPECT_EQ(store("bob", "x", 0, "alice").first, Stored::stored);
    // Opening again migrates nothing.
    queue_.reset();
    env_ = std::make_unique<lmdb::Env>(dir);
    queue_ = std::make_unique<UserQueue>(*env_, "ids", true, "test", sender_of);
    EXPECT_EQ(queue_->migrated(), 0u);
    EXPECT_TRUE(queue_->contains("bob", "alice", "m1"));
}

TEST_F(UserQueueTest, AnInterruptedMigrationResumesWithWhatIsLeft) {
    queue_.reset();
    env_.reset();
    const auto dir = dir_.path() / "schema1";
    write_schema1_store(dir, false, {{"bob", "alice", "a"}, {"bob", "alice", "b"}});
    {
        // Half-migrated, as a crash after the first round leaves it: "a" moved already.
        lmdb::Env env(dir);
        lmdb::Txn txn(env, lmdb::Txn::read_write);
        const lmdb::Db ids = lmdb::Db::open(txn, "ids");
        const lmdb::Db v2 = lmdb::Db::open(txn, "ids_v2");
        std::string key;
        UserQueue::id_key(key, "bob", "a", 1);
        ASSERT_EQ(v2.put(txn, key, be64(1) + "alice"), 0);
        ASSERT_EQ(ids.del(txn, std::string("\x00\x03" "boba", 6)), 0);
        ASSERT_EQ(txn.commit(), 0);
    }
    env_ = std::make_unique<lmdb::Env>(dir);
    queue_ = std::make_unique<UserQueue>(*env_, "ids", false, "test", sender_of);
    EXPECT_EQ(queue_->migrated(), 1u);
    EXPECT_TRUE(queue_->contains("bob", "alice", "a"));
    EXPECT_TRUE(queue_->contains("bob", "alice", "b"));
}

} // namespace
} // namespace vartalap
