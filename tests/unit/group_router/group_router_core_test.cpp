// GroupRouterCore with fake links and a fake membership (the real store reader is tested in
// tests/unit/common/store), its outbox in a real LMDB directory, and a hand-driven clock.
// Covers fan-out, refusal of non-members, the durable point (ack after commit, copies after
// the ack, nothing lost across a crash after the ack), per-shard batching, operations,
// receipts and typing.
#include "daemons/group_router/group_router_core.hpp"

#include "common/wire/client_message.hpp"
#include "common/store/group_store.hpp"
#include "tests/support/fanout_copies.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace vartalap::group_router {
namespace {

using nlohmann::json;

std::size_t shard_of(std::string_view user) { return user.empty() ? 0 : static_cast<unsigned char>(user[0]) % 2; }

class FakeMembership final : public group_store::Membership {
public:
    std::map<std::string, std::vector<std::string>, std::less<>> groups;
    bool available = true;
    int open_snapshots = 0;

    bool begin() override {
        if (!available) return false;
        ++open_snapshots;
        return true;
    }
    void end() override { open_snapshots = 0; }
    bool members(std::string_view group, std::vector<std::string_view>& out) override {
        out.clear();
        auto it = groups.find(group);
        if (it == groups.end()) return false;
        for (const auto& member : it->second) out.push_back(member);
        return true;
    }
};

class FakeLinks final : public GroupRouterOutbox {
public:
    struct Event {
        std::string what; // "copy", "op", "ack"
        std::size_t shard = 0;
        std::string gateway;
        Envelope envelope;
    };
    std::vector<Event> events;
    bool sessions_accept = true;
    int session_budget = -1; // copies accepted before refusing; -1 = unlimited
    bool group_accepts = true;

    bool to_session(std::size_t shard, const Envelope& copy) override {
        if (!sessions_accept || session_budget == 0) return false;
        if (session_budget > 0) --session_budget;
        events.push_back({"copy", shard, {}, copy});
        return true;
    }
    bool to_group(const Envelope& operation) override {
        if (!group_accepts) return false;
        events.push_back({"op", 0, {}, operation});
        return true;
    }
    void to_gateway(std::string_view gateway, const Envelope& ack) override {
        events.push_back({"ack", 0, std::string(gateway), ack});
    }

    std::vector<Event> of(const std::string& what) const {
        std::vector<Event> out;
        for (const auto& e : events)
            if (e.what == what) out.push_back(e);
        return out;
    }
    std::multiset<std::string> copy_recipients() const {
        std::multiset<std::string> out;
        for (const auto& e : of("copy")) out.insert(e.envelope.to);
        return out;
    }
};

// A group message as the message-router forwards it (after the gateway's parse).
Envelope group_message(std::string id, std::string from, std::string group, bool wants_ack = true,
                       std::string action = "message") {
    json head = {{"type", "group"}, {"to", group}, {"from", from}, {"chatid", group},
                 {"contentType", action == "message" ? "text" : "notification"}, {"action", action}};
    json message = {{"_v", 2.1}, {"id", id}, {"head", head}, {"body", {{"text", "hi"}, {"ts", 1700000000}}},
                    {"action", action}, {"from", from}, {"to", group}, {"msgId", id}, {"chatType", "group"}};
    Envelope e;
    e.kind = Kind::group_message;
    e.id = id;
    e.channel = "group";
    e.from = from;
    e.to = group;
    e.origin_gateway = "ws-1";
    e.connection = 5;
    e.created_at_ms = 1700000000000;
    e.flags = flag_group | (wants_ack ? flag_wants_server_ack : 0u);
    e.route = Route::chat;
    e.payload = message.dump();
    return e;
}

class GroupRouterCoreTest : public ::testing::Test {
protected:
    test::TempDirectory dir_{"group-router"};
    test::ManualClock clock_;
    FakeMembership membership_;
    FakeLinks links_;
    GroupRouterConfig config_;
    std::unique_ptr<lmdb::Env> env_ = std::make_unique<lmdb::Env>(dir_.path() / "outbox");
    std::unique_ptr<GroupRouterCore> core_ = make_core();

    GroupRouterCoreTest() { membership_.groups["g"] = {"alice", "bob", "carol", "dave"}; }

    std::unique_ptr<GroupRouterCore> make_core() {
        return std::make_unique<GroupRouterCore>(*env_, membership_, links_, 2, shard_of, clock_, config_);
    }

    void handle(std::vector<Envelope> batch) { core_->handle_batch(batch); }

    // Simulates a crash: the core and its environment are destroyed without any cleanup
    // beyond what LMDB committed, then recreated on the same directory.
    void crash_and_restart() {
        core_.reset();
        env_.reset();
        env_ = std::make_unique<lmdb::Env>(dir_.path() / "outbox");
        core_ = make_core();
    }
};

TEST_F(GroupRouterCoreTest, OneUnchangedCopyPerMemberExceptTheSender) {
    const Envelope message = group_message("m1", "alice", "g");
    handle({message});
    EXPECT_EQ(links_.copy_recipients(), (std::multiset<std::string>{"bob", "carol", "dave"}));
    for (const auto& copy : links_.of("copy")) {
        const Envelope& e = copy.envelope;
        EXPECT_EQ(e.kind, Kind::deliver);
        EXPECT_EQ(e.id, "m1");
        EXPECT_EQ(e.from, "alice");
        EXPECT_EQ(e.channel, "group");
        EXPECT_EQ(e.payload, message.payload); // head.to stays the group id
        EXPECT_TRUE(e.has(flag_group));
        EXPECT_FALSE(e.has(flag_wants_server_ack)); // only the router acks the sender
        EXPECT_TRUE(e.origin_gateway.empty());
        EXPECT_EQ(copy.shard, shard_of(e.to));
    }
    EXPECT_EQ(core_->counters().messages, 1u);
    EXPECT_EQ(core_->counters().copies_sent, 3u);
}

TEST_F(GroupRouterCoreTest, TheServerAckComesAfterTheCommitAndBeforeTheCopies) {
    handle({group_message("m1", "alice", "g")});
    ASSERT_FALSE(links_.events.empty());
    EXPECT_EQ(links_.events.front().what, "ack");
    const Envelope& ack = links_.events.front().envelope;
    EXPECT_EQ(links_.events.front().gateway, "ws-1");
    EXPECT_EQ(ack.kind, Kind::server_ack);
    EXPECT_EQ(ack.status, Status::ok);
    EXPECT_EQ(ack.id, "m1");
    EXPECT_EQ(ack.to, "alice");
    EXPECT_EQ(ack.connection, 5u);
    EXPECT_EQ(links_.of("ack").size(), 1u);
    // Durable before the ack: a fresh outbox on the same directory sees the message.
    links_.events.clear();
    links_.sessions_accept = false;
    handle({group_message("m2", "alice", "g")});
    EXPECT_EQ(links_.of("ack").size(), 1u);
    crash_and_restart();
    EXPECT_EQ(core_->outbox().pending_copies(), 3u);
}

TEST_F(GroupRouterCoreTest, NoServerAckUnlessTheSenderAskedForOne) {
    handle({group_message("m1", "alice", "g", /*wants_ack=*/false)});
    EXPECT_TRUE(links_.of("ack").empty());
    EXPECT_EQ(links_.of("copy").size(), 3u);
}

TEST_F(GroupRouterCoreTest, ANonMemberIsRefusedAndNothingIsDelivered) {
    handle({group_message("m1", "erin", "g", /*wants_ack=*/false), group_message("m2", "alice", "nope")});
    EXPECT_TRUE(links_.of("copy").empty());
    const auto acks = links_.of("ack");
    ASSERT_EQ(acks.size(), 2u); // refusals go out whether or not the sender asked for acks
    for (const auto& ack : acks) {
        EXPECT_EQ(ack.envelope.kind, Kind::server_ack);
        EXPECT_EQ(ack.envelope.status, Status::refused);
        EXPECT_EQ(ack.envelope.error, "not a member of this group");
    }
    EXPECT_EQ(acks[0].envelope.id, "m1");
    EXPECT_EQ(acks[1].envelope.id, "m2"); // an unknown group looks the same: no leak
    EXPECT_EQ(core_->counters().not_member, 2u);
    EXPECT_FALSE(core_->outbox().has_pending());
}

TEST_F(GroupRouterCoreTest, AFullOutboxRefusesWithStorageFullAndNoServerAck) {
    // A 256 KiB map that copies nobody confirms fill: the batch that no longer fits is
    // refused, each sender told "server storage full" (status storage_full), nothing acked.
    core_.reset();
    env_.reset();
    lmdb::EnvOptions small;
    small.map_size = 256u << 10;
    env_ = std::make_unique<lmdb::Env>(dir_.path() / "small", small);
    core_ = make_core();
    links_.sessions_accept = false;
    int sent = 0;
    for (; sent < 200 && core_->counters().store_full == 0; ++sent) {
        Envelope message = group_message("m" + std::to_string(sent), "alice", "g");
        message.payload.append(16 * 1024, ' ');
        handle({message});
    }
    ASSERT_EQ(core_->counters().store_full, 1u) << "the outbox never filled";
    const auto acks = links_.of("ack");
    ASSERT_EQ(acks.size(), static_cast<std::size_t>(sent));
    for (int i = 0; i + 1 < sent; ++i) EXPECT_EQ(acks[i].envelope.status, Status::ok) << i;
    EXPECT_EQ(acks.back().envelope.id, "m" + std::to_string(sent - 1));
    EXPECT_EQ(acks.back().envelope.status, Status::storage_full);
    EXPECT_EQ(acks.back().envelope.error, "server storage full");
}

TEST_F(GroupRouterCoreTest, ALargeGroupIsOnePassWithCopiesBatchedPerShard) {
    std::vector<std::string> members;
    for (int i = 0; i < 1000; ++i) members.push_back("user-" + std::to_string(i) + (i % 2 ? "a" : "b"));
    members.push_back("alice");
    membership_.groups["big"] = members;
    handle({group_message("m1", "alice", "big")});
    const auto copies = links_.of("copy");
    ASSERT_EQ(copies.size(), 1000u);
    // All copies of one shard are sent together, then the next shard's.
    std::size_t switches = 0;
    for (std::size_t i = 1; i < copies.size(); ++i)
        if (copies[i].shard != copies[i - 1].shard) ++switches;
    EXPECT_LE(switches, 1u);
    EXPECT_EQ(std::set<std::string>(members.begin(), members.end() - 1),
              [&] {
                  std::set<std::string> got;
                  for (const auto& c : copies) got.insert(c.envelope.to);
                  return got;
              }());
}

TEST_F(GroupRouterCoreTest, ACrashAfterTheAckLosesNoCopies) {
    links_.sessions_accept = false; // the session shards are down
    handle({group_message("m1", "alice", "g"), group_message("m2", "bob", "g")});
    EXPECT_EQ(links_.of("ack").size(), 2u); // both durable and acknowledged
    EXPECT_TRUE(links_.of("copy").empty());

    crash_and_restart();
    links_.events.clear();
    core_->on_timer(); // still down: nothing lost, nothing sent
    EXPECT_TRUE(links_.of("copy").empty());
    EXPECT_EQ(core_->outbox().pending_copies(), 6u);

    links_.sessions_accept = true;
    core_->on_timer();
    std::multiset<std::string> got;
    for (const auto& c : links_.of("copy")) got.insert(c.envelope.id + ">" + c.envelope.to);
    EXPECT_EQ(got, (std::multiset<std::string>{"m1>bob", "m1>carol", "m1>dave", "m2>alice", "m2>carol", "m2>dave"}));
    EXPECT_TRUE(links_.of("ack").empty()); // the ack is not repeated

    // Sent batches are deleted (after the deletion delay when no batch comes).
    clock_.advance(config_.deletion_delay_ms);
    core_->on_timer();
    EXPECT_FALSE(core_->outbox().has_deletions());
    crash_and_restart();
    EXPECT_EQ(core_->outbox().pending_copies(), 0u);
}

TEST_F(GroupRouterCoreTest, AShardAtItsLimitIsRetriedWhereItStopped) {
    links_.session_budget = 1;
    handle({group_message("m1", "alice", "g")});
    EXPECT_EQ(links_.of("copy").size(), 1u);
    EXPECT_EQ(core_->outbox().pending_copies(), 2u);
    links_.session_budget = -1;
    core_->on_timer();
    EXPECT_EQ(links_.copy_recipients(), (std::multiset<std::string>{"bob", "carol", "dave"}));
}

TEST_F(GroupRouterCoreTest, BackpressureWhenTooManyCopiesWait) {
    config_.max_pending_copies = 5;
    core_ = make_core();
    links_.sessions_accept = false;
    handle({group_message("m1", "alice", "g")});
    EXPECT_TRUE(core_->accepting()); // 3 waiting
    handle({group_message("m2", "alice", "g")});
    EXPECT_FALSE(core_->accepting()); // 6 waiting: the daemon stops reading
    links_.sessions_accept = true;
    core_->on_timer();
    EXPECT_TRUE(core_->accepting());
}

TEST_F(GroupRouterCoreTest, OperationsGoToTheGroupDaemonAndItsReplyIsTheAck) {
    handle({group_message("op1", "alice", "g", true, "add"), group_message("op2", "bob", "g", false, "remove"),
            group_message("op3", "carol", "new-g", true, "create")});
    const auto ops = links_.of("op");
    ASSERT_EQ(ops.size(), 3u);
    EXPECT_TRUE(links_.of("copy").empty());
    EXPECT_TRUE(links_.of("ack").empty()); // not before the group daemon committed
    EXPECT_EQ(ops[0].envelope.kind, Kind::group_op);
    EXPECT_EQ(ops[0].envelope.id, "op1");
    EXPECT_EQ(ops[0].envelope.from, "alice");
    EXPECT_EQ(ops[0].envelope.to, "g");
    EXPECT_NE(ops[0].envelope.request_id, ops[1].envelope.request_id);
    EXPECT_EQ(core_->pending_operations(), 3u);

    auto reply = [&](const FakeLinks::Event& op, Status status, std::string error = {}) {
        Envelope r;
        r.kind = Kind::reply;
        r.request_id = op.envelope.request_id;
        r.status = status;
        r.error = std::move(error);
        core_->on_reply(r);
    };
    reply(ops[0], Status::ok);
    reply(ops[1], Status::refused, "only an admin can remove other members");
    reply(ops[2], Status::overloaded, "group store is full");
    reply(ops[0], Status::ok); // a late duplicate: ignored
    const auto acks = links_.of("ack");
    ASSERT_EQ(acks.size(), 2u);
    EXPECT_EQ(acks[0].envelope.id, "op1");
    EXPECT_EQ(acks[0].envelope.status, Status::ok);
    EXPECT_EQ(acks[0].gateway, "ws-1");
    EXPECT_EQ(acks[1].envelope.id, "op2"); // a refusal is told even without ack=true
    EXPECT_EQ(acks[1].envelope.status, Status::refused);
    EXPECT_EQ(acks[1].envelope.error, "only an admin can remove other members");
    // op3 failed transiently: no answer, so the client resends.
    EXPECT_EQ(core_->pending_operations(), 0u);
}

TEST_F(GroupRouterCoreTest, UnansweredOperationsExpire) {
    handle({group_message("op1", "alice", "g", true, "add")});
    clock_.advance(config_.op_timeout_ms);
    core_->on_timer();
    EXPECT_EQ(core_->pending_operations(), 0u);
    EXPECT_EQ(core_->counters().operations_lost, 1u);
    EXPECT_TRUE(links_.of("ack").empty());
}

TEST_F(GroupRouterCoreTest, ReceiptsGoOnlyToTheOriginalSender) {
    Envelope receipt = group_message("r1", "bob", "alice");
    receipt.route = Route::receipt;
    receipt.flags |= flag_system;
    receipt.ids = {"m1"};
    Envelope to_group = receipt;
    to_group.id = "r2";
    to_group.to = "g";
    handle({receipt, to_group});
    const auto copies = links_.of("copy");
    ASSERT_EQ(copies.size(), 1u);
    EXPECT_EQ(copies[0].envelope.to, "alice");
    EXPECT_EQ(copies[0].envelope.id, "r1");
    EXPECT_TRUE(copies[0].envelope.has(flag_system));
    EXPECT_EQ(copies[0].envelope.ids, (std::vector<std::string>{"m1"}));
    EXPECT_EQ(core_->counters().receipts, 1u);
    EXPECT_EQ(core_->counters().receipts_to_group, 1u);
    // r1 is durable and acknowledged; r2, with nothing to deliver, is answered ok too (the
    // sender's gateway keeps a message until its server_ack).
    const auto acks = links_.of("ack");
    ASSERT_EQ(acks.size(), 2u);
    for (const auto& ack : acks) EXPECT_EQ(ack.envelope.status, Status::ok);
}

TEST_F(GroupRouterCoreTest, TypingIsSentToMembersButNeverStoredOrAcked) {
    Envelope typing = group_message("t1", "alice", "g");
    typing.flags |= flag_ephemeral;
    links_.session_budget = 2; // one member's shard is busy: that copy is simply dropped
    handle({typing});
    EXPECT_EQ(links_.of("copy").size(), 2u);
    EXPECT_TRUE(links_.of("ack").empty());
    EXPECT_FALSE(core_->outbox().has_pending());

    links_.events.clear();
    links_.session_budget = -1;
    Envelope stranger = typing;
    stranger.from = "erin";
    handle({stranger});
    EXPECT_TRUE(links_.events.empty()); // no copies, and no error per keystroke
}

TEST_F(GroupRouterCoreTest, WithoutTheGroupStoreMessagesAreNotAcked) {
    membership_.available = false;
    handle({group_message("m1", "alice", "g"), group_message("op1", "alice", "g", true, "add")});
    EXPECT_TRUE(links_.of("ack").empty());
    EXPECT_TRUE(links_.of("copy").empty());
    EXPECT_EQ(links_.of("op").size(), 1u); // operations do not need the store here
    EXPECT_EQ(core_->counters().store_unavailable, 1u);
}

TEST_F(GroupRouterCoreTest, InvalidEnvelopesAreCountedAndDropped) {
    Envelope wrong_kind = group_message("m1", "alice", "g");
    wrong_kind.kind = Kind::deliver;
    Envelope no_from = group_message("m2", "", "g");
    Envelope ack = group_message("m3", "alice", "g");
    ack.route = Route::ack;
    handle({wrong_kind, no_from, ack});
    EXPECT_TRUE(links_.events.empty());
    EXPECT_EQ(core_->counters().invalid, 3u);
}

// ---------------------------------------------------------------------------------------
// Confirmed copies: the configuration the daemon runs (confirm_to = its instance name).

class ConfirmedGroupRouterTest : public GroupRouterCoreTest {
protected:
    void SetUp() override {
        config_.outbox.confirm_to = "group-router-1";
        config_.outbox.confirm_timeout_ms = 1000;
        crash_and_restart(); // the core again, with this configuration
        links_.events.clear();
    }

    // A session shard's copies_stored for the copies it was sent of entry `seq`.
    void confirm(std::uint64_t seq, std::vector<std::string> users) {
        Envelope confirmation;
        confirmation.kind = Kind::copies_stored;
        confirmation.request_id = seq;
        confirmation.ids = std::move(users);
        core_->on_copies_stored(confirmation);
    }
};

TEST_F(ConfirmedGroupRouterTest, CopiesStayInTheOutboxUntilTheSessionsConfirmThem) {
    handle({group_message("m1", "alice", "g")});
    const auto copies = links_.of("copy");
    ASSERT_EQ(copies.size(), 3u);
    const std::uint64_t seq = copies[0].envelope.request_id;
    for (const auto& copy : copies) {
        EXPECT_EQ(copy.envelope.confirm_to, "group-router-1");
        EXPECT_EQ(copy.envelope.request_id, seq);
    }
    ASSERT_EQ(links_.of("ack").size(), 1u); // the SERVER_ACK does not wait for confirmations
    clock_.advance(config_.deletion_delay_ms);
    core_->on_timer();
    EXPECT_EQ(core_->outbox().unconfirmed_copies(), 3u);

    // A crash: every unconfirmed copy is sent again, under the same seq.
    crash_and_restart();
    links_.events.clear();
    core_->on_timer();
    EXPECT_EQ(links_.copy_recipients(), (std::multiset<std::string>{"bob", "carol", "dave"}));
    confirm(seq, {"bob", "dave"});
    confirm(seq, {"carol"});
    EXPECT_EQ(core_->counters().copies_confirmed, 3u);
    EXPECT_EQ(core_->counters().confirmations, 2u);
    clock_.advance(config_.deletion_delay_ms);
    core_->on_timer(); // the deletion, on its own
    EXPECT_FALSE(core_->outbox().has_deletions());
    crash_and_restart();
    links_.events.clear();
    core_->on_timer();
    EXPECT_TRUE(links_.of("copy").empty());
}

TEST_F(ConfirmedGroupRouterTest, ACopyNotConfirmedInTimeIsSentAgain) {
    handle({group_message("m1", "alice", "g")});
    const std::uint64_t seq = links_.of("copy")[0].envelope.request_id;
    confirm(seq, {"bob", "carol"}); // dave's session died with his copy in its queue
    links_.events.clear();
    clock_.advance(999);
    core_->on_timer();
    EXPECT_TRUE(links_.of("copy").empty());
    clock_.advance(1);
    core_->on_timer();
    EXPECT_EQ(links_.copy_recipients(), (std::multiset<std::string>{"dave"}));
    confirm(seq, {"dave"});
    EXPECT_EQ(core_->outbox().open_copies(), 0u);
}

TEST_F(ConfirmedGroupRouterTest, ConfirmationsEmptyAFullOutboxSoTheRouterReadsAgain) {
    config_.max_pending_copies = 3;
    crash_and_restart();
    handle({group_message("m1", "alice", "g")});
    const std::uint64_t seq = links_.of("copy")[0].envelope.request_id;
    EXPECT_FALSE(core_->accepting()); // sent, but not confirmed: still in the outbox
    confirm(seq, {"bob"});
    EXPECT_TRUE(core_->accepting());
}

TEST(PeekActionTest, ReadsOnlyTheTopLevelAction) {
    EXPECT_EQ(peek_action(R"({"_v":2.1,"action":"add","body":{"action":"x"}})"), "add");
    EXPECT_EQ(peek_action(R"({"body":{"action":"remove"},"head":{"action":"remove"}})"), "");
    EXPECT_EQ(peek_action(R"({"a":[{"action":"create"}],"action":"message"})"), "message");
    EXPECT_EQ(peek_action(R"({"action":5})"), "");
    EXPECT_EQ(peek_action(R"({"action":{"x":"add"}})"), "");
    EXPECT_EQ(peek_action("not json"), "");
    EXPECT_EQ(peek_action(""), "");
    EXPECT_TRUE(is_group_operation("create"));
    EXPECT_TRUE(is_group_operation("add"));
    EXPECT_TRUE(is_group_operation("remove"));
    EXPECT_FALSE(is_group_operation("message"));
    EXPECT_FALSE(is_group_operation("state"));
}

} // namespace
} // namespace vartalap::group_router
