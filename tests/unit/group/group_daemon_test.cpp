// The group daemon adapter over real inproc sockets: the test plays a rest-gateway and a
// group-router (DEALERs to the daemon's ROUTER), the profile daemon (a ROUTER answering
// contactbook_sync) and a session shard (a PULL receiving group events). Waits are bounded
// polls on sockets, never sleeps.
// Thread: the test's own; the daemon runs its own thread.
#include "common/access_key.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/factories.hpp"

#include "tests/support/fanout_copies.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <set>

namespace vartalap::group {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::optional<Incoming> receive(zmq::socket_t& socket, bool router, std::chrono::milliseconds timeout = 3s) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(timeout);
    while (std::chrono::steady_clock::now() < deadline) {
        zmq::poll(&item, 1, 50ms);
        Incoming incoming;
        if (receive_envelope(socket, router, incoming) == ReceiveResult::ok) return incoming;
    }
    return std::nullopt;
}

class GroupDaemonTest : public ::testing::Test {
protected:
    test::TempDirectory dir_{"group-daemon"};
    topology::Topology topology_ = [] {
        auto loaded = topology::load_string(R"(
[[daemon]]
kind = "rest-gateway"
name = "rest-1"
listen = "127.0.0.1:0"
router = "inproc://gd-rest"
[[daemon]]
kind = "message-router"
name = "router-1"
pull = "inproc://gd-router"
[[daemon]]
kind = "session"
name = "session-1"
pull = "inproc://gd-session"
[[daemon]]
kind = "profile"
name = "profile-1"
router = "inproc://gd-profile"
[[daemon]]
kind = "group"
name = "group-1"
router = "inproc://gd-group"
)", "test.toml");
        if (!loaded.topology) throw std::runtime_error(loaded.errors.front().str());
        return *loaded.topology;
    }();
    zmq::context_t context_;
    SystemClock clock_;
    AccessKeys keys_{std::string(32, 'k')};
    zmq::socket_t profile_ = bound(zmq::socket_type::router, "inproc://gd-profile");
    zmq::socket_t session_ = bound(zmq::socket_type::pull, "inproc://gd-session");
    std::unique_ptr<Daemon> daemon_;
    zmq::socket_t rest_;
    std::string scratch_;

    zmq::socket_t bound(zmq::socket_type type, const std::string& endpoint) {
        auto socket = make_socket(context_, type);
        socket.bind(endpoint);
        return socket;
    }

    void SetUp() override {
        const DaemonContext context{context_, topology_, *topology_.find("group-1"), dir_.path() / "group-1",
                                    keys_, clock_};
        daemon_ = make_group(context);
        daemon_->bind();
        daemon_->connect();
        daemon_->start();
        rest_ = make_socket(context_, zmq::socket_type::dealer);
        rest_.connect("inproc://gd-group");
    }

    void TearDown() override {
        daemon_->request_stop();
        daemon_->join();
    }

    Envelope request(std::string method, std::string from, json body, std::uint64_t id) {
        Envelope e;
        e.kind = Kind::request;
        e.method = std::move(method);
        e.from = std::move(from);
        e.request_id = id;
        e.payload = body.dump();
        return e;
    }

    // Plays the profile daemon for one contactbook_sync: `registered` of the asked users.
    void answer_profile(const std::set<std::string>& registered) {
        auto asked = receive(profile_, true);
        ASSERT_TRUE(asked);
        EXPECT_EQ(asked->envelope.method, "contactbook_sync");
        json result = json::object();
        const json body = json::parse(asked->envelope.payload);
        for (const auto& user : body["users"])
            if (registered.count(user.get<std::string>())) result[user.get<std::string>()] = true;
        Envelope reply;
        reply.kind = Kind::reply;
        reply.request_id = asked->envelope.request_id;
        reply.payload = result.dump();
        ASSERT_EQ(send_envelope(profile_, reply, scratch_, asked->routing_id), SendResult::ok);
    }
};

TEST_F(GroupDaemonTest, CreateChecksRegistrationWithTheProfileDaemonAndSendsEvents) {
    ASSERT_EQ(send_envelope(rest_, request("group_create", "alice", {{"name", "team"}, {"members", {"bob", "zed"}}}, 1),
                            scratch_),
              SendResult::ok);
    answer_profile({"bob"});
    auto reply = receive(rest_, false);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->envelope.kind, Kind::reply);
    EXPECT_EQ(reply->envelope.request_id, 1u);
    EXPECT_EQ(reply->envelope.status, Status::bad_request);
    EXPECT_EQ(reply->envelope.error, "unknown users (not registered): zed");

    ASSERT_EQ(send_envelope(rest_, request("group_create", "alice", {{"name", "team"}, {"members", {"bob"}}}, 2),
                            scratch_),
              SendResult::ok);
    answer_profile({"bob"});
    reply = receive(rest_, false);
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->envelope.status, Status::ok) << reply->envelope.error;
    const std::string group = json::parse(reply->envelope.payload)["groupId"];
    EXPECT_EQ(group.size(), 36u);

    std::set<std::string> notified;
    for (int i = 0; i < 2; ++i) {
        auto event = receive(session_, false);
        ASSERT_TRUE(event);
        EXPECT_EQ(event->envelope.kind, Kind::deliver);
        EXPECT_EQ(json::parse(event->envelope.payload)["head"]["to"], group);
        notified.insert(event->envelope.to);
    }
    EXPECT_EQ(notified, (std::set<std::string>{"alice", "bob"}));

    // Reads and removals need no profile check.
    ASSERT_EQ(send_envelope(rest_, request("group_get", "bob", {{"groupId", group}}, 3), scratch_), SendResult::ok);
    reply = receive(rest_, false);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->envelope.status, Status::ok);
    EXPECT_EQ(json::parse(reply->envelope.payload)["members"].size(), 2u);
}

TEST_F(GroupDaemonTest, AsyncOperationsAreAnsweredWithTheirRequestId) {
    auto dealer = make_socket(context_, zmq::socket_type::dealer);
    dealer.connect("inproc://gd-group");
    Envelope op;
    op.kind = Kind::group_op;
    op.id = "m1";
    op.from = "alice";
    op.to = "trip";
    op.request_id = 99;
    op.payload = json{{"head", {{"type", "group"}, {"to", "trip"}, {"action", "create"}}},
                      {"body", {{"name", "trip"}}}}.dump();
    ASSERT_EQ(send_envelope(dealer, op, scratch_), SendResult::ok);
    auto reply = receive(dealer, false);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->envelope.request_id, 99u);
    EXPECT_EQ(reply->envelope.status, Status::ok) << reply->envelope.error;
    auto event = receive(session_, false);
    ASSERT_TRUE(event);
    EXPECT_EQ(event->envelope.to, "alice");
    EXPECT_EQ(event->envelope.id, "~server:trip:1");
}

// Events are kept until the session shard confirms them (copies_stored to the daemon's
// ROUTER); an unconfirmed one is sent again after confirm_timeout_ms.
class ConfirmedEventsTest : public GroupDaemonTest {
protected:
    void SetUp() override {
        for (auto& daemon : topology_.daemons)
            if (daemon.name == "group-1") daemon.options.insert_or_assign("confirm_timeout_ms", 300);
        GroupDaemonTest::SetUp();
    }
};

TEST_F(ConfirmedEventsTest, AnEventIsSentAgainUntilItsSessionConfirmsIt) {
    auto dealer = make_socket(context_, zmq::socket_type::dealer);
    dealer.connect("inproc://gd-group");
    Envelope op;
    op.kind = Kind::group_op;
    op.id = "m1";
    op.from = "alice";
    op.to = "trip";
    op.request_id = 1;
    op.payload = json{{"head", {{"type", "group"}, {"to", "trip"}, {"action", "create"}}},
                      {"body", {{"name", "trip"}}}}.dump();
    ASSERT_EQ(send_envelope(dealer, op, scratch_), SendResult::ok);
    auto event = receive(session_, false);
    ASSERT_TRUE(event);
    EXPECT_EQ(event->envelope.confirm_to, "group-1");
    // Not confirmed (the shard lost it, say): the same copy comes again.
    auto again = receive(session_, false);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->envelope.id, event->envelope.id);
    EXPECT_EQ(again->envelope.to, "alice");
    EXPECT_EQ(again->envelope.request_id, event->envelope.request_id);

    // The session confirms it, as a session shard does after its commit.
    auto session = make_socket(context_, zmq::socket_type::dealer);
    session.set(zmq::sockopt::routing_id, "session-1");
    session.connect("inproc://gd-group");
    Envelope confirmation;
    confirmation.kind = Kind::copies_stored;
    confirmation.request_id = event->envelope.request_id;
    confirmation.ids = {"alice"};
    ASSERT_EQ(send_envelope(session, confirmation, scratch_), SendResult::ok);
    // A resend already on its way may still come; then nothing for several timeouts.
    int late = 0;
    while (late < 3 && receive(session_, false, 500ms)) ++late;
    EXPECT_LT(late, 3) << "the event is still being sent again after its confirmation";
    EXPECT_FALSE(receive(session_, false, 1000ms));
}

} // namespace
} // namespace vartalap::group
