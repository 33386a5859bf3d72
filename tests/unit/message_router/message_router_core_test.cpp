#include "daemons/message_router/message_router_core.hpp"

#include "common/wire/client_message.hpp"

#include <gtest/gtest.h>
#include <set>

namespace vartalap::message_router {
namespace {

topology::Topology two_shards() {
    auto loaded = topology::load_string(R"(
[system]
data_dir = "/tmp/x"
[[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = "127.0.0.1:0"
router = "inproc://ws-1"
[[daemon]]
kind = "message-router"
name = "router-1"
pull = "inproc://router-1"
[[daemon]]
kind = "session"
name = "session-a"
pull = "inproc://session-a"
slots = "0-8191"
[[daemon]]
kind = "session"
name = "session-b"
pull = "inproc://session-b"
slots = "8192-16383"
[[daemon]]
kind = "profile"
name = "profile-1"
router = "inproc://profile-1"
)", "test.toml");
    if (!loaded.topology) throw std::runtime_error(loaded.errors.front().str());
    return *loaded.topology;
}

struct Sent {
    std::size_t shard;
    Envelope envelope;
};

// Records what the core sends; `group_routers` says whether the topology runs any.
class RecordingOutbox final : public MessageRouterOutbox {
public:
    RecordingOutbox(std::vector<Sent>& sent, bool group_routers) : sent_(sent), group_routers_(group_routers) {}
    void to_session(std::size_t shard, Envelope& e) override { sent_.push_back({shard, e}); }
    bool has_group_router() const override { return group_routers_; }
    void to_group_router(Envelope& e) override { grouped.push_back(e); }
    std::vector<Envelope> grouped; // what went to a group-router

private:
    std::vector<Sent>& sent_;
    bool group_routers_;
};

class RouterCoreTest : public ::testing::Test {
protected:
    topology::Topology topology_ = two_shards();
    topology::ShardMap shards_{topology_, "session"};
    std::vector<Sent> sent_;
    RecordingOutbox outbox_{sent_, /*group_routers=*/false};
    MessageRouterCore core_{shards_, outbox_};

    Envelope message(Route route, std::string from, std::string to) {
        Envelope e;
        e.kind = Kind::client_message;
        e.route = route;
        e.id = "m1";
        e.from = std::move(from);
        e.to = std::move(to);
        return e;
    }
};

TEST_F(RouterCoreTest, ChatGoesToTheRecipientsShard) {
    auto e = message(Route::chat, "alice", "bob");
    core_.route(e);
    ASSERT_EQ(sent_.size(), 1u);
    EXPECT_EQ(sent_[0].shard, shards_.index_for("bob"));
    EXPECT_EQ(sent_[0].envelope.kind, Kind::deliver);
    EXPECT_EQ(sent_[0].envelope.to, "bob");
}

TEST_F(RouterCoreTest, ReceiptAcksOnTheAckersShardAndIsDeliveredToTheSender) {
    auto e = message(Route::receipt, "bob", "alice");
    e.ids = {"x", "y"};
    core_.route(e);
    ASSERT_EQ(sent_.size(), 2u);
    EXPECT_EQ(sent_[0].envelope.kind, Kind::ack);
    EXPECT_EQ(sent_[0].shard, shards_.index_for("bob"));
    EXPECT_EQ(sent_[0].envelope.from, "bob");
    EXPECT_EQ(sent_[0].envelope.ids, (std::vector<std::string>{"x", "y"}));
    // The ack names the original sender: only alice's copies with these ids are acked.
    EXPECT_EQ(sent_[0].envelope.to, "alice");
    EXPECT_EQ(sent_[1].envelope.kind, Kind::deliver);
    EXPECT_EQ(sent_[1].shard, shards_.index_for("alice"));
}

TEST_F(RouterCoreTest, AckOnlyIsNotDelivered) {
    auto e = message(Route::ack, "bob", "server");
    e.ids = {"x"};
    core_.route(e);
    ASSERT_EQ(sent_.size(), 1u);
    EXPECT_EQ(sent_[0].envelope.kind, Kind::ack);
    EXPECT_EQ(sent_[0].envelope.to, ""); // names no sender: any sender's copy
}

TEST_F(RouterCoreTest, DropsWhatItCannotRoute) {
    auto group = message(Route::chat, "alice", "group-1");
    group.flags |= flag_group;
    core_.route(group);
    auto other = message(Route::chat, "alice", "bob");
    other.kind = Kind::connect;
    core_.route(other);
    auto anonymous = message(Route::chat, "", "bob");
    core_.route(anonymous);
    EXPECT_TRUE(sent_.empty());
    EXPECT_EQ(core_.counters().dropped, 3u);
}

class GroupRoutingTest : public RouterCoreTest {
protected:
    RecordingOutbox group_outbox_{sent_, /*group_routers=*/true};
    std::vector<Envelope>& to_group_router_ = group_outbox_.grouped;
    MessageRouterCore with_group_router_{shards_, group_outbox_};

    Envelope group(Route route, std::string from, std::string to) {
        auto e = message(route, std::move(from), std::move(to));
        e.flags |= flag_group;
        e.channel = "group";
        return e;
    }
};

TEST_F(GroupRoutingTest, GroupMessagesAndOperationsGoToAGroupRouter) {
    auto chat = group(Route::chat, "alice", "group-1");
    chat.payload = R"({"action":"add"})"; // an operation looks the same here
    with_group_router_.route(chat);
    EXPECT_TRUE(sent_.empty());
    ASSERT_EQ(to_group_router_.size(), 1u);
    EXPECT_EQ(to_group_router_[0].kind, Kind::group_message);
    EXPECT_EQ(to_group_router_[0].to, "group-1");
    EXPECT_EQ(to_group_router_[0].payload, R"({"action":"add"})");
    EXPECT_EQ(with_group_router_.counters().group, 1u);
}

TEST_F(GroupRoutingTest, AGroupReceiptAcksHereAndIsDeliveredByTheGroupRouter) {
    auto receipt = group(Route::receipt, "bob", "alice");
    receipt.ids = {"m1"};
    with_group_router_.route(receipt);
    ASSERT_EQ(sent_.size(), 1u);
    EXPECT_EQ(sent_[0].envelope.kind, Kind::ack);
    EXPECT_EQ(sent_[0].shard, shards_.index_for("bob"));
    EXPECT_EQ(sent_[0].envelope.to, ""); // a group receipt's `to` may be the group id
    ASSERT_EQ(to_group_router_.size(), 1u);
    EXPECT_EQ(to_group_router_[0].kind, Kind::group_message);
    EXPECT_EQ(to_group_router_[0].to, "alice");
}

TEST_F(GroupRoutingTest, AGroupClientAckNeedsNoGroupRouter) {
    auto ack = group(Route::ack, "bob", "server");
    ack.ids = {"m1"};
    core_.route(ack); // the router without a group-router
    ASSERT_EQ(sent_.size(), 1u);
    EXPECT_EQ(sent_[0].envelope.kind, Kind::ack);
    EXPECT_EQ(core_.counters().dropped, 0u);
}

TEST_F(GroupRoutingTest, WithoutAGroupRouterGroupTrafficIsDroppedButAcksApply) {
    auto receipt = group(Route::receipt, "bob", "alice");
    receipt.ids = {"m1"};
    core_.route(receipt);
    ASSERT_EQ(sent_.size(), 1u); // the ack part only
    EXPECT_EQ(sent_[0].envelope.kind, Kind::ack);
    EXPECT_EQ(core_.counters().dropped, 1u);
}

TEST_F(RouterCoreTest, BothShardsAreUsed) {
    std::set<std::size_t> used;
    for (int i = 0; i < 64; ++i) used.insert(shards_.index_for("user-" + std::to_string(i)));
    EXPECT_EQ(used.size(), 2u);
}

} // namespace
} // namespace vartalap::message_router
