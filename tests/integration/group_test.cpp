// Groups end to end through real daemons in this process: ws-gateway, rest-gateway,
// message-router, session, profile, group and group-router (topology/local.toml plus a
// group and a group-router when the file has none), with real WebSocket clients on
// kernel-chosen loopback ports. The sync path is exercised through the group daemon's
// ROUTER exactly as a rest-gateway talks to it, and through HTTP once the rest-gateway
// routes exist.
//
// Thread: the test's; every daemon runs its own thread.
#include "common/zmq/socket.hpp"
#include "daemons/factories.hpp"
#include "tests/integration/support/system_fixture.hpp"

#include <gtest/gtest.h>

#include <set>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Adds a group daemon and a group-router to a topology that has none.
void with_groups(topology::Topology& topology) {
    if (topology.of_kind("group").empty()) {
        topology::DaemonSpec group;
        group.kind = "group";
        group.name = "group-1";
        group.endpoints["router"] = "inproc://group-1";
        topology.daemons.push_back(group);
    }
    if (topology.of_kind("group-router").empty()) {
        topology::DaemonSpec router;
        router.kind = "group-router";
        router.name = "group-router-1";
        router.endpoints["pull"] = "inproc://group-router-1";
        router.endpoints["router"] = "inproc://group-router-1-confirm";
        topology.daemons.push_back(router);
    }
}

// Runs a topology's daemons in this process the way vartalap::System does (bind all,
// connect all, start all; drain gateways first), creating the group kinds with their own
// factories so the test does not depend on registry.cpp listing them yet.
class GroupSystem {
public:
    explicit GroupSystem(topology::Topology topology) : topology_(std::move(topology)) {
        zmq_.set(zmq::ctxopt::blocky, false);
        for (const auto& spec : topology_.daemons) {
            contexts_.push_back(std::make_unique<DaemonContext>(DaemonContext{
                zmq_, topology_, spec, std::filesystem::path(topology_.data_dir) / spec.name, keys_, clock_}));
            const DaemonContext& context = *contexts_.back();
            if (spec.kind == "group")
                daemons_.push_back(make_group(context));
            else if (spec.kind == "group-router")
                daemons_.push_back(make_group_router(context));
            else
                daemons_.push_back(make_daemon(context));
        }
        for (auto& daemon : daemons_) daemon->bind();
        for (auto& daemon : daemons_) daemon->connect();
        for (auto& daemon : daemons_) daemon->start();
        for (std::size_t i = 0; i < daemons_.size(); ++i) {
            const auto& spec = topology_.daemons[i];
            const auto endpoints = daemons_[i]->bound_endpoints();
            auto it = endpoints.find("listen");
            if (it == endpoints.end()) continue;
            const int port = std::stoi(it->second.substr(it->second.rfind(':') + 1));
            if (spec.kind == "ws-gateway") ws_port_ = port;
            if (spec.kind == "rest-gateway") rest_port_ = port;
        }
    }

    ~GroupSystem() { stop(); }

    void stop() {
        auto rank = [](const std::string& kind) {
            if (kind == "ws-gateway" || kind == "rest-gateway") return 0;
            if (kind == "message-router" || kind == "group-router") return 1;
            if (kind == "session") return 2;
            return 3;
        };
        for (int r = 0; r <= 3; ++r) {
            for (std::size_t i = 0; i < daemons_.size(); ++i)
                if (rank(topology_.daemons[i].kind) == r) daemons_[i]->request_stop();
            for (std::size_t i = 0; i < daemons_.size(); ++i)
                if (rank(topology_.daemons[i].kind) == r) daemons_[i]->join();
        }
        daemons_.clear();
    }

    zmq::context_t& zmq() { return zmq_; }

    HttpResponse http(const std::string& method, const std::string& target, const std::string& body = {},
                      const std::map<std::string, std::string>& headers = {}) {
        return http_request("127.0.0.1", rest_port_, method, target, body, headers);
    }

    LoggedIn login(const std::string& user) {
        const json body = {{"username", user}, {"authToken", "dev-token"}, {"notificationToken", "fcm-" + user}};
        const auto response = http("POST", "/v1.0/login", body.dump());
        const auto reply = json::parse(response.body, nullptr, false);
        if (response.status != 200 || !reply.is_object() || !reply.contains("accesskey"))
            throw std::runtime_error("login of " + user + " failed: " + response.body);
        return {user, reply["accesskey"].get<std::string>()};
    }

    WsClient connect(const LoggedIn& who) {
        auto result = WsClient::connect("127.0.0.1", ws_port_, "/wss?ack=true",
                                        {{"user", who.user}, {"accesskey", who.access_key}});
        if (auto* status = std::get_if<int>(&result))
            throw std::runtime_error("WebSocket upgrade refused with HTTP " + std::to_string(*status));
        return std::move(std::get<WsClient>(result));
    }

private:
    topology::Topology topology_;
    zmq::context_t zmq_{1};
    SystemClock clock_;
    AccessKeys keys_{std::string(32, 'k')};
    std::vector<std::unique_ptr<DaemonContext>> contexts_;
    std::vector<std::unique_ptr<Daemon>> daemons_;
    int ws_port_ = 0;
    int rest_port_ = 0;
};

// Client messages.
json group_operation(const std::string& id, const std::string& group, const std::string& action, json body) {
    return {{"_v", 2.1},
            {"id", id},
            {"head", {{"type", "group"}, {"to", group}, {"chatid", group}, {"contentType", "notification"},
                      {"action", action}, {"category", "message"}}},
            {"meta", {{"createdAt", 1700000000000LL}}},
            {"body", std::move(body)}};
}

json group_text(const std::string& id, const std::string& group, const std::string& text) {
    return {{"_v", 2.1},
            {"id", id},
            {"head", {{"type", "group"}, {"to", group}, {"chatid", group}, {"contentType", "text"},
                      {"action", "message"}}},
            {"body", {{"text", text}, {"state", "new"}}}};
}

// The next group event (notification) about `group` with `action`.
std::optional<json> wait_for_event(WsClient& client, const std::string& group, const std::string& action,
                                   std::chrono::milliseconds deadline = 5s) {
    return client.read_json_matching(
        [&](const json& m) {
            return m.is_object() && m.contains("head") && m["head"].value("type", "") == "group" &&
                   m["head"].value("contentType", "") == "notification" && m["head"].value("to", "") == group &&
                   m["head"].value("action", "") == action;
        },
        deadline);
}

// The server's answer to message `id`, which must be an error frame (not a SERVER_ACK).
std::optional<json> wait_for_error(WsClient& client, const std::string& id, std::chrono::milliseconds deadline = 5s) {
    auto answer = client.read_json_matching(
        [&](const json& m) {
            if (!m.is_object() || m.value("id", "") != id || !m.contains("head")) return false;
            const std::string type = m["head"].value("contentType", "");
            return type == "error" || type == "SERVER_ACK";
        },
        deadline);
    if (answer && (*answer)["head"]["contentType"] != "error") {
        ADD_FAILURE() << "a refused message was answered with " << answer->dump()
                      << " (the gateway must turn a non-ok server_ack into an error frame)";
        return std::nullopt;
    }
    return answer;
}

class GroupTest : public ::testing::Test {
protected:
    TempDir data_;
    std::unique_ptr<GroupSystem> system_ =
        std::make_unique<GroupSystem>(local_topology(data_.path(), with_groups));

    // Sends as a rest-gateway would (DEALER → the group daemon's ROUTER) and waits for the
    // reply.
    Envelope group_request(const std::string& method, const std::string& from, json body,
                           const std::string& group = {}) {
        auto dealer = make_socket(system_->zmq(), zmq::socket_type::dealer);
        dealer.connect("inproc://group-1");
        Envelope request;
        request.kind = Kind::request;
        request.method = method;
        request.from = from;
        request.to = group;
        request.request_id = ++request_id_;
        request.payload = body.dump();
        std::string scratch;
        EXPECT_EQ(send_envelope(dealer, request, scratch), SendResult::ok);
        zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, 5s);
        Incoming incoming;
        if (receive_envelope(dealer, false, incoming) != ReceiveResult::ok) {
            ADD_FAILURE() << "no reply from the group daemon to " << method;
            return {};
        }
        return incoming.envelope;
    }

    std::vector<std::string> members(const std::string& group, const std::string& asker) {
        auto reply = group_request("group_get", asker, json::object(), group);
        std::vector<std::string> out;
        if (reply.status != Status::ok) return out;
        const json group_json = json::parse(reply.payload);
        for (const auto& m : group_json["members"]) out.push_back(m["username"]);
        return out;
    }

    std::uint64_t request_id_ = 0;
};

TEST_F(GroupTest, AsyncCreateThenAMessageReachesOnlineAndOfflineMembers) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto carol = system_->login("carol"); // registered, offline for now
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);

    alice_ws.send_text(group_operation("op-1", "trip", "create", {{"name", "Trip"}, {"members", {"bob", "carol"}}}).dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "op-1")) << "the create was not acknowledged";
    auto event = wait_for_event(bob_ws, "trip", "add");
    ASSERT_TRUE(event);
    EXPECT_EQ((*event)["head"]["from"], "alice");
    EXPECT_EQ((*event)["body"]["name"], "Trip");
    EXPECT_EQ((*event)["body"]["added"].size(), 3u);

    alice_ws.send_text(group_text("gm-1", "trip", "hello group").dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "gm-1"));
    auto got = wait_for_id(bob_ws, "gm-1");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["head"]["to"], "trip"); // head.to stays the group id
    EXPECT_EQ((*got)["head"]["from"], "alice");
    EXPECT_EQ((*got)["body"]["text"], "hello group");
    EXPECT_FALSE(wait_for_id(alice_ws, "gm-1", 300ms)) << "the sender got a copy of its own message";

    // carol was offline: the event and the message wait for her.
    auto carol_ws = system_->connect(carol);
    EXPECT_TRUE(wait_for_event(carol_ws, "trip", "add"));
    got = wait_for_id(carol_ws, "gm-1");
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["body"]["text"], "hello group");
}

TEST_F(GroupTest, ANonMemberIsRefusedAndNothingIsDelivered) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto mallory = system_->login("mallory");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);
    auto mallory_ws = system_->connect(mallory);
    alice_ws.send_text(group_operation("op-1", "club", "create", {{"name", "Club"}, {"members", {"bob"}}}).dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "op-1"));
    ASSERT_TRUE(wait_for_event(bob_ws, "club", "add"));

    mallory_ws.send_text(group_text("x-1", "club", "let me in").dump());
    auto error = wait_for_error(mallory_ws, "x-1");
    EXPECT_TRUE(error) << "no error frame for a message from a non-member";
    if (error) {
        EXPECT_NE((*error)["body"].value("error", "").find("not a member"), std::string::npos) << error->dump();
    }
    EXPECT_FALSE(wait_for_id(bob_ws, "x-1", 500ms));
    EXPECT_FALSE(wait_for_id(alice_ws, "x-1", 100ms));
}

TEST_F(GroupTest, EventsReachRemovedAndAddedMembersAndOnlyMembersGetMessages) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto carol = system_->login("carol");
    auto dave = system_->login("dave");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);
    auto carol_ws = system_->connect(carol);
    auto dave_ws = system_->connect(dave);
    alice_ws.send_text(group_operation("op-1", "team", "create", {{"name", "Team"}, {"members", {"bob", "carol"}}}).dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "op-1"));
    for (auto* ws : {&alice_ws, &bob_ws, &carol_ws}) ASSERT_TRUE(wait_for_event(*ws, "team", "add"));

    // Any member may add: carol adds dave.
    carol_ws.send_text(group_operation("op-2", "team", "add", {{"added", {"dave"}}}).dump());
    ASSERT_TRUE(wait_for_server_ack(carol_ws, "op-2"));
    for (auto* ws : {&alice_ws, &bob_ws, &carol_ws, &dave_ws}) {
        auto event = wait_for_event(*ws, "team", "add");
        ASSERT_TRUE(event);
        EXPECT_EQ((*event)["body"]["added"], (json{{{"username", "dave"}, {"role", "user"}}}));
    }

    // Only an admin removes others: bob cannot remove carol; alice removes bob.
    bob_ws.send_text(group_operation("op-3", "team", "remove", {{"removed", {"carol"}}}).dump());
    auto refused = wait_for_error(bob_ws, "op-3");
    EXPECT_TRUE(refused) << "no error frame for a refused operation";
    if (refused) {
        EXPECT_NE((*refused)["body"].value("error", "").find("only an admin"), std::string::npos);
    }
    alice_ws.send_text(group_operation("op-4", "team", "remove", {{"removed", {"bob"}}}).dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "op-4"));
    for (auto* ws : {&alice_ws, &bob_ws, &carol_ws, &dave_ws}) {
        auto event = wait_for_event(*ws, "team", "remove");
        ASSERT_TRUE(event) << "a member before the change missed the remove event";
        EXPECT_EQ((*event)["body"]["removed"], (json{"bob"}));
    }

    alice_ws.send_text(group_text("gm-1", "team", "after the changes").dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "gm-1"));
    EXPECT_TRUE(wait_for_id(carol_ws, "gm-1"));
    EXPECT_TRUE(wait_for_id(dave_ws, "gm-1"));
    EXPECT_FALSE(wait_for_id(bob_ws, "gm-1", 500ms)) << "a removed member still gets messages";
}

TEST_F(GroupTest, AResentOperationChangesNothing) {
    auto alice = system_->login("alice");
    auto bob = system_->login("bob");
    auto carol = system_->login("carol");
    auto alice_ws = system_->connect(alice);
    auto bob_ws = system_->connect(bob);
    auto carol_ws = system_->connect(carol);
    const auto create = group_operation("op-1", "book", "create", {{"name", "Books"}, {"members", {"bob"}}});
    alice_ws.send_text(create.dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "op-1"));
    ASSERT_TRUE(wait_for_event(bob_ws, "book", "add"));

    const auto add = group_operation("op-2", "book", "add", {{"added", {"carol"}}});
    alice_ws.send_text(add.dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "op-2"));
    ASSERT_TRUE(wait_for_event(carol_ws, "book", "add"));
    ASSERT_TRUE(wait_for_event(bob_ws, "book", "add"));
    carol_ws.send_text(group_operation("op-3", "book", "remove", {{"removed", {"carol"}}}).dump());
    ASSERT_TRUE(wait_for_server_ack(carol_ws, "op-3"));
    ASSERT_TRUE(wait_for_event(carol_ws, "book", "remove"));
    ASSERT_TRUE(wait_for_event(bob_ws, "book", "remove"));

    // The app resends both after a lost ack: acknowledged again, nothing changes.
    alice_ws.send_text(create.dump());
    alice_ws.send_text(add.dump());
    EXPECT_TRUE(wait_for_server_ack(alice_ws, "op-1"));
    EXPECT_TRUE(wait_for_server_ack(alice_ws, "op-2"));
    EXPECT_FALSE(wait_for_event(carol_ws, "book", "add", 500ms)) << "the resent add was applied again";
    EXPECT_FALSE(wait_for_event(bob_ws, "book", "add", 100ms));
    EXPECT_EQ(members("book", "alice"), (std::vector<std::string>{"alice", "bob"}));
}

TEST_F(GroupTest, TheSyncPathCreatesReadsAndRefuses) {
    system_->login("alice");
    auto bob = system_->login("bob");
    auto bob_ws = system_->connect(bob);

    auto reply = group_request("group_create", "alice", {{"name", "Sync"}, {"members", {"bob", "nobody"}}});
    EXPECT_EQ(reply.status, Status::bad_request);
    EXPECT_NE(reply.error.find("nobody"), std::string::npos) << reply.error;

    reply = group_request("group_create", "alice", {{"name", "Sync"}, {"members", {"bob"}}});
    ASSERT_EQ(reply.status, Status::ok) << reply.error;
    const std::string group = json::parse(reply.payload)["groupId"];
    EXPECT_EQ(group.size(), 36u); // a server UUID
    auto event = wait_for_event(bob_ws, group, "add");
    ASSERT_TRUE(event);
    EXPECT_EQ(members(group, "bob"), (std::vector<std::string>{"alice", "bob"}));
    EXPECT_EQ(group_request("group_get", "mallory", json::object(), group).status, Status::not_found);

    reply = group_request("group_list", "bob", json::object());
    ASSERT_EQ(reply.status, Status::ok);
    EXPECT_EQ(json::parse(reply.payload).size(), 1u);

    // And a message to the group made over REST.
    auto alice_ws = system_->connect(system_->login("alice"));
    alice_ws.send_text(group_text("gm-1", group, "sync group works").dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "gm-1"));
    EXPECT_TRUE(wait_for_id(bob_ws, "gm-1"));
}

TEST_F(GroupTest, TheRestRoutesReachTheGroupDaemon) {
    auto alice = system_->login("alice");
    system_->login("bob");
    const std::map<std::string, std::string> auth = {{"user", alice.user}, {"accesskey", alice.access_key},
                                                     {"content-type", "application/json"}};
    auto created = system_->http("POST", "/v1.0/group/create", json{{"name", "Rest"}, {"members", {"bob"}}}.dump(), auth);
    if (created.status == 404) GTEST_SKIP() << "the rest-gateway has no /group routes yet";
    ASSERT_EQ(created.status, 200) << created.body;
    const std::string group = json::parse(created.body)["groupId"];
    auto got = system_->http("GET", "/v1.0/groups/" + group, {}, auth);
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(json::parse(got.body)["members"].size(), 2u);
    auto listed = system_->http("GET", "/group/get", {}, auth);
    ASSERT_EQ(listed.status, 200) << listed.body;
    EXPECT_EQ(json::parse(listed.body).size(), 1u);
}

} // namespace
} // namespace vartalap::testing
