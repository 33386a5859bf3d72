// GroupCore over a real LMDB store in a temporary directory, with a hand-driven clock and
// the registration answer given by the test. Covers every membership rule of PROTOCOL.md,
// the async (message) forms, idempotency, limits, and the group events each change emits.
#include "daemons/group/group_core.hpp"

#include "tests/support/fanout_copies.hpp"

#include <gtest/gtest.h>

#include <set>

namespace vartalap::group {
namespace {

using nlohmann::json;
using test::SentCopy;

constexpr std::size_t kShards = 2;

class GroupCoreTest : public ::testing::Test {
protected:
    test::TempDirectory dir_{"group-core"};
    test::ManualClock clock_;
    std::unique_ptr<lmdb::Env> env_ = std::make_unique<lmdb::Env>(dir_.path());
    int next_id_ = 0;
    GroupConfig config_;
    std::unique_ptr<GroupCore> core_ = make_core();
    std::set<std::string> registered_ = {"alice", "bob", "carol", "dave", "erin"};

    std::unique_ptr<GroupCore> make_core() {
        return std::make_unique<GroupCore>(
            *env_, kShards, [](std::string_view user) { return user.size() % kShards; }, clock_,
            [this] { return "g" + std::to_string(++next_id_); }, config_);
    }

    GroupCore::IsRegistered registered() {
        return [this](std::string_view user) { return registered_.count(std::string(user)) > 0; };
    }

    Envelope request(std::string method, std::string from, json body, std::string to = {}) {
        Envelope e;
        e.kind = Kind::request;
        e.method = std::move(method);
        e.from = std::move(from);
        e.to = std::move(to);
        e.request_id = 42;
        e.payload = body.dump();
        return e;
    }

    // A client group operation as the gateway forwards it (payload = the client's JSON).
    Envelope op(std::string id, std::string from, std::string group, std::string action, json body) {
        Envelope e;
        e.kind = Kind::group_op;
        e.id = id;
        e.from = from;
        e.to = group;
        e.request_id = 7;
        e.channel = "group";
        e.flags = flag_group;
        json message = {{"_v", 2.1},
                        {"id", id},
                        {"head", {{"type", "group"}, {"to", group}, {"from", from}, {"chatid", group},
                                  {"contentType", "notification"}, {"action", action}}},
                        {"body", body},
                        {"action", action}};
        e.payload = message.dump();
        return e;
    }

    Envelope handle(const Envelope& e) { return core_->handle(e, registered()); }

    json body(const Envelope& reply) { return json::parse(reply.payload); }

    std::string create(const std::string& creator, std::vector<std::string> members, std::string name = "team") {
        auto reply = handle(request("group_create", creator, {{"name", name}, {"members", members}}));
        EXPECT_EQ(reply.status, Status::ok) << reply.error;
        return body(reply).value("groupId", "");
    }

    std::vector<SentCopy> events() {
        std::vector<SentCopy> out;
        test::drain(core_->events(), out);
        EXPECT_EQ(core_->events().flush_deletions(), 0);
        return out;
    }

    static std::set<std::string> recipients(const std::vector<SentCopy>& copies) {
        std::set<std::string> out;
        for (const auto& c : copies) out.insert(c.envelope.to);
        return out;
    }

    std::vector<std::pair<std::string, std::string>> members(const std::string& group) {
        std::vector<std::pair<std::string, std::string>> out;
        auto record = core_->find(group);
        if (!record) return out;
        for (const auto& m : record->members) out.emplace_back(m.username, group_store::to_string(m.role));
        return out;
    }
};

using Members = std::vector<std::pair<std::string, std::string>>;

TEST_F(GroupCoreTest, CreatorIsAdminOthersAreUsersInOrder) {
    auto reply = handle(request("group_create", "alice", {{"name", "team"}, {"members", {"bob", "carol"}},
                                                          {"profilePic", "https://x/p.png"}}));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(reply.kind, Kind::reply);
    EXPECT_EQ(reply.request_id, 42u);
    EXPECT_EQ(body(reply), (json{{"groupId", "g1"}}));
    EXPECT_EQ(members("g1"), (Members{{"alice", "admin"}, {"bob", "user"}, {"carol", "user"}}));

    auto got = handle(request("group_get", "bob", json::object(), "g1"));
    ASSERT_EQ(got.status, Status::ok);
    EXPECT_EQ(body(got), (json{{"groupId", "g1"},
                               {"name", "team"},
                               {"members", {{{"username", "alice"}, {"role", "admin"}},
                                            {{"username", "bob"}, {"role", "user"}},
                                            {{"username", "carol"}, {"role", "user"}}}},
                               {"profilePic", "https://x/p.png"}}));
}

TEST_F(GroupCoreTest, CreateEmitsOneAddEventToEveryMember) {
    create("alice", {"bob", "carol"});
    auto sent = events();
    ASSERT_EQ(sent.size(), 3u);
    EXPECT_EQ(recipients(sent), (std::set<std::string>{"alice", "bob", "carol"}));
    for (const auto& copy : sent) {
        EXPECT_EQ(copy.envelope.kind, Kind::deliver);
        EXPECT_EQ(copy.envelope.from, "alice");
        EXPECT_EQ(copy.envelope.id, "~server:g1:1");
        EXPECT_TRUE(copy.envelope.has(flag_group));
        EXPECT_TRUE(copy.envelope.has(flag_system));
        EXPECT_FALSE(copy.envelope.has(flag_wants_server_ack));
        EXPECT_EQ(copy.shard, copy.envelope.to.size() % kShards);
        const json event = copy.payload();
        EXPECT_EQ(event["head"]["type"], "group");
        EXPECT_EQ(event["head"]["to"], "g1");
        EXPECT_EQ(event["head"]["from"], "alice");
        EXPECT_EQ(event["head"]["contentType"], "notification");
        EXPECT_EQ(event["head"]["action"], "add");
        EXPECT_EQ(event["body"]["added"], (json{{{"username", "alice"}, {"role", "admin"}},
                                                {{"username", "bob"}, {"role", "user"}},
                                                {{"username", "carol"}, {"role", "user"}}}));
        EXPECT_EQ(event["body"]["name"], "team");
        EXPECT_EQ(event["body"]["ts"], clock_.wall / 1000);
        // Legacy flat keys, as client_message.cpp writes them.
        EXPECT_EQ(event["msgId"], "~server:g1:1");
        EXPECT_EQ(event["from"], "alice");
        EXPECT_EQ(event["to"], "g1");
        EXPECT_EQ(event["chatType"], "group");
        EXPECT_EQ(event["type"], "notification");
    }
}

TEST_F(GroupCoreTest, UnknownUsernamesAreRefusedWithTheirNames) {
    auto reply = handle(request("group_create", "alice", {{"name", "t"}, {"members", {"bob", "zed", "yan"}}}));
    EXPECT_EQ(reply.status, Status::bad_request);
    EXPECT_EQ(reply.error, "unknown users (not registered): zed, yan");
    EXPECT_EQ(body(reply)["error"], reply.error);
    EXPECT_TRUE(core_->groups_of("alice").empty());
    EXPECT_TRUE(events().empty());

    const auto group = create("alice", {"bob"});
    events();
    reply = handle(request("group_add", "bob", {{"members", {"carol", "zed"}}}, group));
    EXPECT_EQ(reply.status, Status::bad_request);
    EXPECT_EQ(reply.error, "unknown users (not registered): zed");
    EXPECT_EQ(members(group), (Members{{"alice", "admin"}, {"bob", "user"}}));
    EXPECT_TRUE(events().empty());
}

TEST_F(GroupCoreTest, PrepareAsksOnlyAboutNewMembers) {
    const auto group = create("alice", {"bob"});
    auto prepared = core_->prepare(request("group_add", "alice", {{"members", {"bob", "carol"}}}, group));
    ASSERT_FALSE(prepared.reply);
    EXPECT_EQ(prepared.to_check, (std::vector<std::string>{"carol"}));
    prepared = core_->prepare(request("group_create", "alice", {{"name", "x"}, {"members", {"alice", "bob"}}}));
    ASSERT_FALSE(prepared.reply);
    EXPECT_EQ(prepared.to_check, (std::vector<std::string>{"bob"})); // the creator is not checked
}

TEST_F(GroupCoreTest, AtMostOneHundredMembersAtCreation) {
    std::vector<std::string> hundred, hundred_and_one;
    for (int i = 0; i < 101; ++i) {
        const std::string user = "u" + std::to_string(i);
        registered_.insert(user);
        if (i < 100) hundred.push_back(user);
        hundred_and_one.push_back(user);
    }
    auto reply = handle(request("group_create", "alice", {{"name", "big"}, {"members", hundred_and_one}}));
    EXPECT_EQ(reply.status, Status::bad_request);
    EXPECT_NE(reply.error.find("at most 100"), std::string::npos) << reply.error;
    // The creator named in the list does not count against the limit.
    hundred.push_back("alice");
    reply = handle(request("group_create", "alice", {{"name", "big"}, {"members", hundred}}));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(core_->find(body(reply)["groupId"].get<std::string>())->members.size(), 101u);
}

TEST_F(GroupCoreTest, AtMostFiftyPerAddAndTheGroupSizeLimit) {
    const auto group = create("alice", {});
    std::vector<std::string> fifty, fifty_one;
    for (int i = 0; i < 51; ++i) {
        const std::string user = "u" + std::to_string(i);
        registered_.insert(user);
        if (i < 50) fifty.push_back(user);
        fifty_one.push_back(user);
    }
    auto reply = handle(request("group_add", "alice", {{"members", fifty_one}}, group));
    EXPECT_EQ(reply.status, Status::bad_request);
    EXPECT_NE(reply.error.find("at most 50"), std::string::npos) << reply.error;
    reply = handle(request("group_add", "alice", {{"members", fifty}}, group));
    EXPECT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(core_->find(group)->members.size(), 51u);

    config_.max_group_members = 52;
    core_ = make_core();
    reply = handle(request("group_add", "alice", {{"members", {"bob", "carol"}}}, group));
    EXPECT_EQ(reply.status, Status::refused);
    EXPECT_EQ(reply.error, "a group has at most 52 members");
    reply = handle(request("group_add", "alice", {{"members", {"bob"}}}, group));
    EXPECT_EQ(reply.status, Status::ok) << reply.error;
}

TEST_F(GroupCoreTest, AnyMemberMayAddAndEventsGoToMembersBeforeAndTheAdded) {
    const auto group = create("alice", {"bob", "carol"});
    events();
    auto reply = handle(request("group_add", "bob", {{"members", {"dave", "alice"}}}, group));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(members(group), (Members{{"alice", "admin"}, {"bob", "user"}, {"carol", "user"}, {"dave", "user"}}));
    EXPECT_EQ(body(reply)["members"].size(), 4u); // REST add answers with the group

    auto sent = events();
    EXPECT_EQ(recipients(sent), (std::set<std::string>{"alice", "bob", "carol", "dave"}));
    for (const auto& copy : sent) {
        const json event = copy.payload();
        EXPECT_EQ(event["head"]["action"], "add");
        EXPECT_EQ(event["head"]["from"], "bob");
        EXPECT_EQ(event["body"]["added"], (json{{{"username", "dave"}, {"role", "user"}}}));
        // The newcomer also learns the whole group; the others only who joined.
        EXPECT_EQ(event["body"].contains("members"), copy.envelope.to == "dave") << copy.envelope.to;
    }
    EXPECT_EQ(core_->groups_of("dave"), (std::vector<std::string>{group}));
}

TEST_F(GroupCoreTest, AddingOnlyExistingMembersChangesNothing) {
    const auto group = create("alice", {"bob"});
    events();
    auto reply = handle(request("group_add", "bob", {{"members", {"alice"}}}, group));
    EXPECT_EQ(reply.status, Status::ok);
    EXPECT_TRUE(events().empty());
}

TEST_F(GroupCoreTest, NonMembersCannotSeeOrChangeAGroup) {
    const auto group = create("alice", {"bob"});
    events();
    for (const auto& e : {request("group_get", "carol", json::object(), group),
                          request("group_add", "carol", {{"members", {"dave"}}}, group),
                          request("group_remove", "carol", {{"member", "bob"}}, group),
                          request("group_get", "carol", json::object(), "no-such-group")}) {
        auto reply = handle(e);
        EXPECT_EQ(reply.status, Status::not_found) << e.method;
        EXPECT_EQ(reply.error, "no such group");
    }
    EXPECT_EQ(members(group), (Members{{"alice", "admin"}, {"bob", "user"}}));
    EXPECT_TRUE(events().empty());
}

TEST_F(GroupCoreTest, AMemberMayRemoveThemself) {
    const auto group = create("alice", {"bob", "carol"});
    events();
    auto reply = handle(request("group_remove", "carol", {{"member", "carol"}}, group));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(members(group), (Members{{"alice", "admin"}, {"bob", "user"}}));
    EXPECT_TRUE(core_->groups_of("carol").empty());
    auto sent = events();
    // The members before the change, the leaver included.
    EXPECT_EQ(recipients(sent), (std::set<std::string>{"alice", "bob", "carol"}));
    EXPECT_EQ(sent[0].payload()["head"]["action"], "remove");
    EXPECT_EQ(sent[0].payload()["body"]["removed"], (json{"carol"}));
    EXPECT_FALSE(sent[0].payload()["body"].contains("promoted"));
}

TEST_F(GroupCoreTest, OnlyAnAdminRemovesOthers) {
    const auto group = create("alice", {"bob", "carol"});
    events();
    auto reply = handle(request("group_remove", "bob", {{"member", "carol"}}, group));
    EXPECT_EQ(reply.status, Status::refused);
    EXPECT_EQ(reply.error, "only an admin can remove other members");
    EXPECT_TRUE(events().empty());

    reply = handle(request("group_remove", "alice", {{"member", "carol"}}, group));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(members(group), (Members{{"alice", "admin"}, {"bob", "user"}}));
    EXPECT_EQ(recipients(events()), (std::set<std::string>{"alice", "bob", "carol"}));

    reply = handle(request("group_remove", "alice", {{"member", "erin"}}, group));
    EXPECT_EQ(reply.status, Status::bad_request);
    EXPECT_EQ(reply.error, "erin is not a member of this group");
}

TEST_F(GroupCoreTest, WhenTheLastAdminLeavesTheFirstRemainingMemberBecomesAdmin) {
    const auto group = create("alice", {"bob", "carol"});
    events();
    auto reply = handle(request("group_remove", "alice", {{"member", "alice"}}, group));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(members(group), (Members{{"bob", "admin"}, {"carol", "user"}}));
    auto sent = events();
    EXPECT_EQ(sent[0].payload()["body"]["promoted"], (json{{{"username", "bob"}, {"role", "admin"}}}));
    // The new admin may now remove others.
    reply = handle(request("group_remove", "bob", {{"member", "carol"}}, group));
    EXPECT_EQ(reply.status, Status::ok) << reply.error;
}

TEST_F(GroupCoreTest, PromotionFollowsJoinOrder) {
    const auto group = create("alice", {"bob"});
    // bob becomes admin when alice leaves; carol and dave join; bob leaves: carol, the first
    // remaining member, is promoted.
    handle(request("group_remove", "alice", {{"member", "alice"}}, group));
    handle(request("group_add", "bob", {{"members", {"carol", "dave"}}}, group));
    EXPECT_EQ(members(group), (Members{{"bob", "admin"}, {"carol", "user"}, {"dave", "user"}}));
    handle(request("group_remove", "bob", {{"member", "bob"}}, group));
    EXPECT_EQ(members(group), (Members{{"carol", "admin"}, {"dave", "user"}}));
}

TEST_F(GroupCoreTest, TheLastMemberLeavingDeletesTheGroup) {
    const auto group = create("alice", {});
    events();
    auto reply = handle(request("group_remove", "alice", {{"member", "alice"}}, group));
    ASSERT_EQ(reply.status, Status::ok);
    EXPECT_EQ(body(reply)["deleted"], true);
    EXPECT_FALSE(core_->find(group));
    EXPECT_EQ(recipients(events()), (std::set<std::string>{"alice"}));
}

TEST_F(GroupCoreTest, ListReturnsTheCallersGroups) {
    const auto first = create("alice", {"bob"}, "one");
    const auto second = create("bob", {"carol"}, "two");
    auto reply = handle(request("group_list", "bob", json::object()));
    ASSERT_EQ(reply.status, Status::ok);
    const json groups = body(reply);
    ASSERT_TRUE(groups.is_array());
    std::set<std::string> ids;
    for (const auto& g : groups) ids.insert(g["groupId"].get<std::string>());
    EXPECT_EQ(ids, (std::set<std::string>{first, second}));
    reply = handle(request("group_list", "erin", json::object()));
    EXPECT_EQ(body(reply), json::array());
}

TEST_F(GroupCoreTest, BadRequestsAreRefusedClearly) {
    EXPECT_EQ(handle(request("group_create", "alice", {{"members", {"bob"}}})).status, Status::bad_request);
    EXPECT_EQ(handle(request("group_create", "alice", {{"name", 5}})).status, Status::bad_request);
    EXPECT_EQ(handle(request("group_create", "alice", {{"name", "x"}, {"members", "bob"}})).status,
              Status::bad_request);
    EXPECT_EQ(handle(request("group_create", "alice", {{"name", "x"}, {"members", {"has space"}}})).status,
              Status::bad_request);
    EXPECT_EQ(handle(request("group_add", "alice", {{"members", {"bob"}}})).status, Status::bad_request);
    EXPECT_EQ(handle(request("group_remove", "alice", json::object(), "g9")).status, Status::bad_request);
    EXPECT_EQ(handle(request("group_create", "", {{"name", "x"}})).status, Status::unauthorized);
    EXPECT_EQ(handle(request("group_fly", "alice", json::object())).status, Status::not_found);
    auto e = request("group_create", "alice", json::object());
    e.payload = "not json";
    EXPECT_EQ(handle(e).status, Status::bad_request);
    // groupId from the path (`to`) and the body must agree.
    const auto group = create("alice", {"bob"});
    EXPECT_EQ(handle(request("group_get", "alice", {{"groupId", "other"}}, group)).status, Status::bad_request);
    EXPECT_EQ(handle(request("group_get", "alice", {{"groupId", group}})).status, Status::ok);
}

// ---------------------------------------------------------------------------------------
// The async path: operations sent as messages.

TEST_F(GroupCoreTest, AsyncCreateUsesTheClientsGroupId) {
    auto reply = handle(op("m1", "alice", "client-g", "create", {{"name", "trip"}, {"members", {"bob"}}}));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(reply.request_id, 7u);
    EXPECT_EQ(body(reply), (json{{"groupId", "client-g"}}));
    EXPECT_EQ(members("client-g"), (Members{{"alice", "admin"}, {"bob", "user"}}));
    EXPECT_EQ(recipients(events()), (std::set<std::string>{"alice", "bob"}));
}

TEST_F(GroupCoreTest, AsyncAddOfAnUnknownGroupWithANameCreatesIt) {
    // The app's own shape: an "add" event for a group it made locally.
    auto reply = handle(op("m1", "alice", "app-g", "add",
                           {{"name", "trip"}, {"added", {{{"username", "alice"}, {"role", "admin"}},
                                                         {{"username", "bob"}, {"role", "admin"}}}}}));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    // Roles sent by the client are ignored: the creator is admin, the others user.
    EXPECT_EQ(members("app-g"), (Members{{"alice", "admin"}, {"bob", "user"}}));
}

TEST_F(GroupCoreTest, AsyncAddAndRemove) {
    handle(op("m1", "alice", "g", "create", {{"name", "trip"}, {"members", {"bob"}}}));
    events();
    auto reply = handle(op("m2", "bob", "g", "add", {{"added", {{{"username", "carol"}}, "dave"}}}));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(members("g"), (Members{{"alice", "admin"}, {"bob", "user"}, {"carol", "user"}, {"dave", "user"}}));
    EXPECT_EQ(recipients(events()), (std::set<std::string>{"alice", "bob", "carol", "dave"}));

    reply = handle(op("m3", "alice", "g", "remove", {{"removed", {"carol", "dave"}}}));
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_EQ(members("g"), (Members{{"alice", "admin"}, {"bob", "user"}}));
    auto sent = events();
    EXPECT_EQ(recipients(sent), (std::set<std::string>{"alice", "bob", "carol", "dave"}));
    EXPECT_EQ(sent[0].payload()["body"]["removed"], (json{"carol", "dave"}));

    reply = handle(op("m4", "bob", "g", "remove", {{"removed", {"alice"}}}));
    EXPECT_EQ(reply.status, Status::refused);
}

TEST_F(GroupCoreTest, AResentOperationChangesNothingTheSecondTime) {
    const Envelope create_op = op("m1", "alice", "g", "create", {{"name", "trip"}, {"members", {"bob"}}});
    ASSERT_EQ(handle(create_op).status, Status::ok);
    EXPECT_EQ(events().size(), 2u);
    auto again = handle(create_op);
    EXPECT_EQ(again.status, Status::ok); // acknowledged again, like a resent message
    EXPECT_EQ(body(again), (json{{"groupId", "g"}}));
    EXPECT_TRUE(events().empty());

    const Envelope add_op = op("m2", "alice", "g", "add", {{"added", {"carol"}}});
    ASSERT_EQ(handle(add_op).status, Status::ok);
    events();
    // carol leaves; the resent add must not bring her back.
    ASSERT_EQ(handle(op("m3", "carol", "g", "remove", {{"removed", {"carol"}}})).status, Status::ok);
    events();
    EXPECT_EQ(handle(add_op).status, Status::ok);
    EXPECT_EQ(members("g"), (Members{{"alice", "admin"}, {"bob", "user"}}));
    EXPECT_TRUE(events().empty());
    EXPECT_EQ(core_->counters().replayed, 2u);

    // A refusal is final too: resending gets the same refusal, even once it would pass.
    const Envelope bad_remove = op("m4", "bob", "g", "remove", {{"removed", {"alice"}}});
    EXPECT_EQ(handle(bad_remove).status, Status::refused);
    handle(op("m5", "alice", "g", "remove", {{"removed", {"alice"}}})); // bob becomes admin
    auto replay = handle(bad_remove);
    EXPECT_EQ(replay.status, Status::refused);
    EXPECT_EQ(replay.error, "only an admin can remove other members");

    // Idempotency survives a restart.
    core_.reset();
    core_ = make_core();
    EXPECT_EQ(handle(add_op).status, Status::ok);
    EXPECT_EQ(members("g"), (Members{{"bob", "admin"}}));
}

TEST_F(GroupCoreTest, TheSameOpIdFromAnotherUserIsAnotherOperation) {
    handle(op("m1", "alice", "g", "create", {{"name", "trip"}, {"members", {"bob"}}}));
    auto reply = handle(op("m1", "bob", "g2", "create", {{"name", "other"}}));
    EXPECT_EQ(reply.status, Status::ok) << reply.error;
    EXPECT_TRUE(core_->find("g2"));
}

TEST_F(GroupCoreTest, AsyncCreateOfAnExistingGroupIsRefused) {
    handle(op("m1", "alice", "g", "create", {{"name", "trip"}}));
    auto reply = handle(op("m2", "bob", "g", "create", {{"name", "mine"}}));
    EXPECT_EQ(reply.status, Status::refused);
    EXPECT_EQ(reply.error, "group already exists");
    EXPECT_EQ(members("g"), (Members{{"alice", "admin"}}));
}

TEST_F(GroupCoreTest, MalformedOperationsAreRefused) {
    EXPECT_EQ(handle(op("m1", "alice", "g", "create", json::object())).status, Status::bad_request);
    EXPECT_EQ(handle(op("m2", "alice", "g", "rename", {{"name", "x"}})).status, Status::bad_request);
    EXPECT_EQ(handle(op("m3", "alice", "server", "create", {{"name", "x"}})).status, Status::bad_request);
    EXPECT_EQ(handle(op("m4", "alice", "g", "remove", json::object())).status, Status::bad_request);
    auto e = op("m5", "alice", "g", "create", {{"name", "x"}});
    e.payload = "[1,2";
    EXPECT_EQ(handle(e).status, Status::bad_request);
}

TEST_F(GroupCoreTest, EventsSurviveARestartUntilSent) {
    create("alice", {"bob", "carol"});
    // Not sent: the daemon died right after the commit.
    core_.reset();
    core_ = make_core();
    EXPECT_EQ(core_->events().pending_copies(), 3u);
    EXPECT_EQ(recipients(events()), (std::set<std::string>{"alice", "bob", "carol"}));
    core_.reset();
    core_ = make_core();
    EXPECT_EQ(core_->events().pending_copies(), 0u);
}

TEST_F(GroupCoreTest, EventIdsAreUniqueAcrossChangesAndRestarts) {
    const auto group = create("alice", {"bob"});
    handle(request("group_add", "alice", {{"members", {"carol"}}}, group));
    core_.reset();
    core_ = make_core();
    handle(request("group_remove", "alice", {{"member", "carol"}}, group));
    std::set<std::string> ids;
    for (const auto& copy : events()) ids.insert(copy.envelope.id);
    EXPECT_EQ(ids, (std::set<std::string>{"~server:" + group + ":1", "~server:" + group + ":2", "~server:" + group + ":3"}));
}

TEST_F(GroupCoreTest, RandomGroupIdsAreUuids) {
    const std::string id = random_group_id();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4');
    EXPECT_NE(id, random_group_id());
    EXPECT_TRUE(group_store::valid_group_id(id));
}

} // namespace
} // namespace vartalap::group
