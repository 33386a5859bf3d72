// The group store: the record encoding the group daemon writes and group-routers read, the
// name rules, the one-environment-per-directory registry, and the read-only Reader, over a
// real LMDB in a temporary directory.
#include "common/store/group_store.hpp"
#include "common/store/group_store_reader.hpp"

#include "tests/support/fixtures.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vartalap {
namespace {

TEST(GroupStoreTest, RecordsRoundTripAndMemberViewsMatch) {
    group_store::GroupRecord record;
    record.name = "team ✓";
    record.has_profile_pic = true;
    record.profile_pic = "https://example/p.png";
    record.created_at_ms = 1700000000123;
    record.members = {{"alice", group_store::Role::admin}, {"bob", group_store::Role::user}};
    std::string bytes;
    group_store::encode(record, bytes);
    group_store::GroupRecord decoded;
    ASSERT_TRUE(group_store::decode(bytes, decoded));
    EXPECT_EQ(decoded.name, record.name);
    EXPECT_EQ(decoded.profile_pic, record.profile_pic);
    EXPECT_TRUE(decoded.has_profile_pic);
    EXPECT_EQ(decoded.created_at_ms, record.created_at_ms);
    EXPECT_EQ(decoded.members, record.members);
    std::vector<std::string_view> views;
    ASSERT_TRUE(group_store::member_views(bytes, views));
    EXPECT_EQ(views, (std::vector<std::string_view>{"alice", "bob"}));
}

TEST(GroupStoreTest, CorruptRecordsAreRejectedNotOverread) {
    group_store::GroupRecord record;
    record.name = "x";
    record.members = {{"alice", group_store::Role::admin}};
    std::string bytes;
    group_store::encode(record, bytes);
    group_store::GroupRecord out;
    std::vector<std::string_view> views;
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
        EXPECT_FALSE(group_store::decode(std::string_view(bytes).substr(0, cut), out)) << cut;
        EXPECT_FALSE(group_store::member_views(std::string_view(bytes).substr(0, cut), views)) << cut;
    }
    std::string huge_count = bytes;
    huge_count[huge_count.size() - 9] = '\x7f'; // the member count: far more than the bytes hold
    EXPECT_FALSE(group_store::decode(huge_count, out));
    EXPECT_FALSE(group_store::decode(bytes + "x", out));
    std::string bad_format = bytes;
    bad_format[0] = 9;
    EXPECT_FALSE(group_store::decode(bad_format, out));
}

TEST(GroupStoreTest, AppliedOperationRecordsRoundTripAndRejectShortBytes) {
    const std::string bytes = group_store::encode_applied(Status::refused, "g-42", "not a member");
    Status status = Status::ok;
    std::string group_id, error;
    ASSERT_TRUE(group_store::decode_applied(bytes, status, group_id, error));
    EXPECT_EQ(status, Status::refused);
    EXPECT_EQ(group_id, "g-42");
    EXPECT_EQ(error, "not a member");
    EXPECT_FALSE(group_store::decode_applied(bytes.substr(0, 2), status, group_id, error));
    EXPECT_FALSE(group_store::decode_applied(bytes.substr(0, 5), status, group_id, error)); // id cut
}

TEST(GroupStoreTest, UsernamesAndGroupIdsAreValidated) {
    EXPECT_TRUE(group_store::valid_username("+911234567890"));
    EXPECT_FALSE(group_store::valid_username(""));
    EXPECT_FALSE(group_store::valid_username("a b"));
    EXPECT_FALSE(group_store::valid_username(std::string(65, 'a')));
    EXPECT_TRUE(group_store::valid_group_id("0b7c2f6e-1d2a-4e9b-9f0a-2b3c4d5e6f70"));
    EXPECT_FALSE(group_store::valid_group_id("server"));
    EXPECT_FALSE(group_store::valid_group_id(std::string(129, 'g')));
}

TEST(GroupStoreTest, OneEnvironmentPerDirectoryPerProcess) {
    test::TempDirectory dir("shared-env");
    auto writer = group_store::shared_env(dir.path() / "store", {});
    lmdb::EnvOptions read_only;
    read_only.read_only = true;
    auto reader = group_store::shared_env(dir.path() / "store" / ".", read_only);
    EXPECT_EQ(writer.get(), reader.get());
    EXPECT_EQ(group_store::find_shared_env(dir.path() / "store").get(), writer.get());
    writer.reset();
    reader.reset();
    EXPECT_EQ(group_store::find_shared_env(dir.path() / "store"), nullptr);
    // A read-only one first cannot serve a writer later.
    auto first = group_store::shared_env(dir.path() / "store", read_only);
    EXPECT_THROW(group_store::shared_env(dir.path() / "store", {}), std::runtime_error);
}

// ---------------------------------------------------------------------------------------
// The reader: what group-routers read the store through.

// Writes `group` with `members` as the group daemon would (one committed transaction).
void write_group(lmdb::Env& env, std::string_view group, std::vector<std::string> members) {
    group_store::GroupRecord record;
    record.name = "team";
    for (auto& m : members) record.members.push_back({std::move(m), group_store::Role::user});
    std::string bytes;
    group_store::encode(record, bytes);
    lmdb::Txn txn(env, lmdb::Txn::read_write);
    const auto groups = lmdb::Db::open(txn, group_store::kGroupsDb);
    ASSERT_EQ(groups.put(txn, group, bytes), 0);
    ASSERT_EQ(txn.commit(), 0);
}

TEST(GroupStoreReaderTest, ReadsTheStoreOnceItExistsRateLimited) {
    test::TempDirectory dir("membership");
    test::ManualClock clock;
    const auto store = dir.path() / "group-1";
    group_store::Reader reader(store, clock, /*retry_ms=*/1000);
    EXPECT_FALSE(reader.ready());
    EXPECT_FALSE(reader.begin());

    {
        auto env = group_store::shared_env(store, {});
        write_group(*env, "g1", {"alice", "bob"});

        EXPECT_FALSE(reader.ready()); // rate limited: the next attempt is due later
        clock.advance(1000);
        ASSERT_TRUE(reader.ready());
        ASSERT_TRUE(reader.begin());
        std::vector<std::string_view> members;
        ASSERT_TRUE(reader.members("g1", members));
        EXPECT_EQ(members, (std::vector<std::string_view>{"alice", "bob"}));
        EXPECT_FALSE(reader.members("g2", members));
        reader.end();
    }
    // The writer of this process is gone: the reader keeps its own reference.
    ASSERT_TRUE(reader.begin());
    std::vector<std::string_view> members;
    EXPECT_TRUE(reader.members("g1", members));
    reader.end();
}

TEST(GroupStoreReaderTest, AStoreWithoutItsDatabasesIsNotReadyAndACorruptRecordIsAbsent) {
    test::TempDirectory dir("membership-empty");
    test::ManualClock clock;
    const auto store = dir.path() / "group-1";
    auto env = group_store::shared_env(store, {});
    group_store::Reader reader(store, clock, /*retry_ms=*/10);
    EXPECT_FALSE(reader.ready()); // the environment exists, its "groups" database does not
    {
        lmdb::Txn txn(*env, lmdb::Txn::read_write);
        const auto groups = lmdb::Db::open(txn, group_store::kGroupsDb);
        ASSERT_EQ(groups.put(txn, "broken", "\x01\x00"), 0);
        ASSERT_EQ(txn.commit(), 0);
    }
    clock.advance(10);
    ASSERT_TRUE(reader.begin());
    std::vector<std::string_view> members;
    EXPECT_FALSE(reader.members("broken", members));
    EXPECT_TRUE(members.empty());
    reader.end();
    EXPECT_FALSE(reader.members("broken", members)); // no snapshot open: nothing is read
}

} // namespace
} // namespace vartalap
