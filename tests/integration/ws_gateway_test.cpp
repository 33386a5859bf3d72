// The ws-gateway alone, with real sockets: WebSocket clients on a kernel-chosen loopback
// port, and the test playing every peer over inproc:// in a ZeroMQ context it owns — a PULL
// as the message-router, one PULL per session shard, and a DEALER as a session sending
// requests to the gateway's ROUTER. Every wait has a deadline; nothing sleeps.
// Thread: the test's (the gateway runs its own thread).
#include "common/access_key.hpp"
#include "common/clock.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/factories.hpp"
#include "tests/integration/support/ws_client.hpp"
#include "topology/shard_map.hpp"
#include "topology/topology.hpp"
#include "tests/support/deadline.hpp"
#include "tests/support/fixtures.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <thread>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kTopology = R"(
[system]
name = "wsgt"

[[daemon]]
kind = "ws-gateway"
name = "ws-test"
listen = "127.0.0.1:0"
router = "inproc://ws-test"
[daemon.options]
max_frame_bytes = 65536
idle_ping_seconds = 30

[[daemon]]
kind = "message-router"
name = "router-test"
pull = "inproc://router-test"

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
name = "profile-test"
router = "inproc://profile-test"
)";

// Receives one envelope within `deadline`; nullopt on timeout.
std::optional<Incoming> receive(zmq::socket_t& socket, bool router,
                                std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(deadline);
    while (true) {
        Incoming incoming;
        std::string error;
        const ReceiveResult result = receive_envelope(socket, router, incoming, &error);
        if (result == ReceiveResult::ok) return incoming;
        EXPECT_NE(result, ReceiveResult::malformed) << error;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, left);
    }
}

// As the profile daemon (a ROUTER): the first revocation poll gets an empty complete list;
// the gateway refuses upgrades (503) until then. Later polls go unanswered (lost polls,
// asked again; the list the gateway holds stays).
void answer_first_revocation_poll(zmq::socket_t& profile) {
    auto poll = receive(profile, true, 5s);
    ASSERT_TRUE(poll);
    ASSERT_EQ(poll->envelope.method, "revocations");
    Envelope reply;
    reply.kind = Kind::reply;
    reply.request_id = poll->envelope.request_id;
    reply.status = Status::ok;
    reply.payload = R"({"epoch":"e1","version":0,"complete":true,"entries":[]})";
    std::string scratch;
    ASSERT_EQ(send_envelope(profile, reply, scratch, poll->routing_id), SendResult::ok);
}

json text_message(const std::string& id, const std::string& to, const std::string& text) {
    return {{"_v", 2.1},
            {"id", id},
            {"head", {{"type", "individual"}, {"to", to}, {"from", "mallory"},
                      {"chatid", "chat-" + to}, {"contentType", "text"}, {"action", "message"}}},
            {"meta", {{"createdAt", 1700000000000LL}}},
            {"body", {{"text", text}, {"state", "new"}}}};
}

bool is_content_type(const json& m, const std::string& type) {
    return m.is_object() && m.contains("head") && m["head"].is_object() &&
           m["head"].value("contentType", "") == type;
}

class WsGatewayTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto loaded = topology::load_string(kTopology, "ws_gateway_test.toml");
        ASSERT_TRUE(loaded.topology) << (loaded.errors.empty() ? "" : loaded.errors[0].str());
        topology_ = std::move(*loaded.topology);
        for (auto& daemon : topology_.daemons)
            if (daemon.name == "ws-test") configure(daemon.options);
        self_ = topology_.find("ws-test");
        ASSERT_NE(self_, nullptr);

        // The fake peers bind first: the gateway connects to them in connect().
        router_pull_.bind("inproc://router-test");
        session_a_.bind("inproc://session-a");
        session_b_.bind("inproc://session-b");
        profile_.bind("inproc://profile-test");

        context_ = std::make_unique<DaemonContext>(DaemonContext{
            zmq_, topology_, *self_, std::filesystem::temp_directory_path(), keys_, clock_});
        gateway_ = make_ws_gateway(*context_);
        gateway_->bind();
        gateway_->connect();
        gateway_->start();

        const auto bound = gateway_->bound_endpoints();
        const std::string listen = bound.at("listen");
        port_ = std::stoi(listen.substr(listen.rfind(':') + 1));
        ASSERT_GT(port_, 0);
        EXPECT_EQ(bound.at("router"), "inproc://ws-test");
        dealer_.connect(bound.at("router"));

        answer_first_revocation_poll(profile_);
        const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(5s);
        while (!gateway_->serving() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(1ms); // polling a condition, not waiting for time
        ASSERT_TRUE(gateway_->serving());
    }

    void TearDown() override {
        if (gateway_) {
            gateway_->request_stop();
            gateway_->join();
        }
    }

    // Lets a test fixture change the gateway's [daemon.options] before it starts.
    virtual void configure(toml::table&) {}

    WsClient::Headers credentials(const std::string& user) {
        return {{"user", user}, {"accesskey", keys_.issue(user, clock_.wall_ms() / 1000)}};
    }

    WsClient open(const std::string& user, bool ack = false) {
        auto result = WsClient::connect("127.0.0.1", port_, ack ? "/wss?ack=true" : "/wss",
                                        credentials(user));
        if (auto* status = std::get_if<int>(&result))
            throw std::runtime_error("upgrade refused with HTTP " + std::to_string(*status));
        return std::move(std::get<WsClient>(result));
    }

    zmq::socket_t& shard_of(const std::string& user) {
        const topology::ShardMap shards(topology_, "session");
        return shards.instances()[shards.index_for(user)]->name == "session-a" ? session_a_
                                                                                : session_b_;
    }

    // The next connect/disconnect event for `user` on its shard.
    std::optional<Envelope> next_event(const std::string& user,
                                       std::chrono::milliseconds deadline = 5s) {
        auto incoming = receive(shard_of(user), false, deadline);
        if (!incoming) return std::nullopt;
        EXPECT_EQ(incoming->envelope.from, user);
        EXPECT_EQ(incoming->envelope.origin_gateway, "ws-test");
        return std::move(incoming->envelope);
    }

    // Opens a connection and returns it with the id announced in its connect event.
    std::pair<WsClient, std::uint64_t> open_connected(const std::string& user, bool ack = false) {
        WsClient client = open(user, ack);
        auto event = next_event(user);
        if (!event || event->kind != Kind::connect)
            throw std::runtime_error("no connect event for " + user);
        EXPECT_EQ(event->has(flag_wants_server_ack), ack);
        return {std::move(client), event->connection};
    }

    void send_request(const Envelope& request) {
        std::string scratch;
        ASSERT_EQ(send_envelope(dealer_, request, scratch), SendResult::ok);
    }

    std::optional<Envelope> next_reply(std::chrono::milliseconds deadline = 5s) {
        auto incoming = receive(dealer_, false, deadline);
        if (!incoming) return std::nullopt;
        return std::move(incoming->envelope);
    }

    // A session's server_ack: message `id` of `user`'s `connection` is durable.
    static Envelope server_ack_request(const std::string& id, std::uint64_t connection,
                                       const std::string& user) {
        Envelope ack;
        ack.kind = Kind::server_ack;
        ack.id = id;
        ack.connection = connection;
        ack.from = user;
        return ack;
    }

    Envelope deliver_request(std::uint64_t connection, std::uint64_t request_id,
                             std::string payload) {
        Envelope request;
        request.kind = Kind::deliver;
        request.connection = connection;
        request.request_id = request_id;
        request.payload = std::move(payload);
        return request;
    }

    zmq::context_t zmq_;
    AccessKeys keys_{std::string(32, 'k')};
    SystemClock clock_;
    topology::Topology topology_;
    const topology::DaemonSpec* self_ = nullptr;
    zmq::socket_t router_pull_ = make_socket(zmq_, zmq::socket_type::pull);
    zmq::socket_t session_a_ = make_socket(zmq_, zmq::socket_type::pull);
    zmq::socket_t session_b_ = make_socket(zmq_, zmq::socket_type::pull);
    zmq::socket_t profile_ = make_socket(zmq_, zmq::socket_type::router);
    zmq::socket_t dealer_ =
        make_socket(zmq_, zmq::socket_type::dealer, SocketOptions{.routing_id = "session-a"});
    std::unique_ptr<DaemonContext> context_;
    std::unique_ptr<Daemon> gateway_;
    int port_ = 0;
};

TEST_F(WsGatewayTest, UpgradeNeedsValidCredentials) {
    auto status_of = [&](const WsClient::Headers& headers, const std::string& path = "/wss") {
        auto result = WsClient::connect("127.0.0.1", port_, path, headers);
        auto* status = std::get_if<int>(&result);
        return status ? *status : 101;
    };
    const std::string alice_key = keys_.issue("alice", clock_.wall_ms() / 1000);
    const std::string bob_key = keys_.issue("bob", clock_.wall_ms() / 1000);
    EXPECT_EQ(status_of({}), 401);
    EXPECT_EQ(status_of({{"user", "alice"}}), 401);
    EXPECT_EQ(status_of({{"user", "alice"}, {"accesskey", "v1.1700000000.forged"}}), 401);
    EXPECT_EQ(status_of({{"user", "alice"}, {"accesskey", bob_key}}), 401);
    // A key signed with another secret.
    AccessKeys other{std::string(32, 'x')};
    EXPECT_EQ(status_of({{"user", "alice"}, {"accesskey", other.issue("alice", 1700000000)}}), 401);
    EXPECT_EQ(status_of({{"Cookie", "user=alice; accesskey=" + bob_key}}), 401);
    // Nothing was announced for the refused attempts.
    EXPECT_FALSE(receive(shard_of("alice"), false, 100ms));

    EXPECT_EQ(status_of({{"user", "alice"}, {"accesskey", alice_key}}), 101);
    EXPECT_EQ(status_of({{"Cookie", "user=alice; accesskey=" + alice_key}}), 101);
    EXPECT_EQ(status_of({{"user", "alice"}, {"accesskey", alice_key}}, "/?ack=true"), 101);
    EXPECT_EQ(status_of({{"user", "alice"}, {"accesskey", alice_key}}, "/elsewhere"), 404);

    // Plain HTTP: the WebSocket paths want an upgrade, other paths do not exist; 401 has an
    // empty body.
    EXPECT_EQ(http_request("127.0.0.1", port_, "GET", "/wss", "", {}).status, 426);
    EXPECT_EQ(http_request("127.0.0.1", port_, "GET", "/nope", "", {}).status, 404);
    const auto unauthorized = http_request(
        "127.0.0.1", port_, "GET", "/wss", "",
        {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"},
         {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}});
    EXPECT_EQ(unauthorized.status, 401);
    EXPECT_EQ(unauthorized.body, "");
}

TEST_F(WsGatewayTest, PingGetsPong) {
    auto [alice, id] = open_connected("alice");
    ASSERT_TRUE(alice.send_text("ping"));
    EXPECT_EQ(alice.read_text(5s), "pong");
    ASSERT_TRUE(alice.send_text("ping"));
    EXPECT_EQ(alice.read_text(5s), "pong");
}

TEST_F(WsGatewayTest, MessageReachesRouterWithAuthenticatedSender) {
    auto [alice, id] = open_connected("alice", /*ack=*/true);
    ASSERT_TRUE(alice.send_text(text_message("m-1", "bob", "hello").dump()));
    auto incoming = receive(router_pull_, false, 5s);
    ASSERT_TRUE(incoming);
    const Envelope& e = incoming->envelope;
    EXPECT_EQ(e.kind, Kind::client_message);
    EXPECT_EQ(e.id, "m-1");
    EXPECT_EQ(e.from, "alice");
    EXPECT_EQ(e.to, "bob");
    EXPECT_EQ(e.origin_gateway, "ws-test");
    EXPECT_EQ(e.connection, id);
    EXPECT_TRUE(e.has(flag_wants_server_ack));
    EXPECT_EQ(e.route, Route::chat);
    EXPECT_TRUE(e.method.empty()); // method names request operations only
    const json payload = json::parse(e.payload);
    EXPECT_EQ(payload["head"]["from"], "alice"); // "mallory" was overwritten
    EXPECT_EQ(payload["body"]["text"], "hello");
    // No SERVER_ACK at ingress: it comes only once a session says the message is durable.
    EXPECT_FALSE(alice.read_text(200ms));
}

TEST_F(WsGatewayTest, BadMessagesGetErrorFramesAndTheSocketStaysOpen) {
    auto [alice, id] = open_connected("alice");
    ASSERT_TRUE(alice.send_text("{not json"));
    auto error = alice.read_json_matching([](const json& m) { return is_content_type(m, "error"); }, 5s);
    ASSERT_TRUE(error);
    EXPECT_TRUE((*error)["body"]["error"].is_string());
    EXPECT_EQ((*error)["head"]["to"], "alice");

    ASSERT_TRUE(alice.send_text(R"({"id":"x-1","head":{"type":"individual"}})")); // no head.to
    error = alice.read_json_matching([](const json& m) { return is_content_type(m, "error"); }, 5s);
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["id"], "x-1"); // the error names the message when it can

    ASSERT_TRUE(alice.send_binary("\x01\x02"));
    ASSERT_TRUE(alice.read_json_matching([](const json& m) { return is_content_type(m, "error"); }, 5s));

    ASSERT_TRUE(alice.send_text("ping"));
    EXPECT_EQ(alice.read_text(5s), "pong");
    EXPECT_TRUE(alice.is_open());
    EXPECT_FALSE(receive(router_pull_, false, 100ms)); // nothing invalid went downstream
}

// Between messages a connection holds no read buffer: it waits with a one-byte read and then
// reads the rest of the message (websocket_session.hpp). Messages of 0, 1 and 2 bytes, and
// messages in many frames, still arrive whole.
TEST_F(WsGatewayTest, ShortAndFragmentedMessagesArriveWhole) {
    auto [alice, id] = open_connected("alice");
    for (const std::string text : {"", "x", "{}"}) {
        ASSERT_TRUE(alice.send_text(text));
        auto error = alice.read_json_matching([](const json& m) { return is_content_type(m, "error"); }, 5s);
        ASSERT_TRUE(error) << "'" << text << "'";
        EXPECT_EQ((*error)["body"]["error"], text == "{}" ? "missing message id" : "invalid JSON");
    }
    const std::string long_text(3000, 'y'); // more than a fresh read buffer holds
    for (const std::size_t fragment : {1u, 7u, 1000u}) {
        const std::string message_id = "frag-" + std::to_string(fragment);
        ASSERT_TRUE(alice.send_text_fragmented(text_message(message_id, "bob", long_text).dump(), fragment));
        auto incoming = receive(router_pull_, false, 5s);
        ASSERT_TRUE(incoming);
        EXPECT_EQ(incoming->envelope.id, message_id);
        EXPECT_EQ(json::parse(incoming->envelope.payload)["body"]["text"], long_text);
    }
    ASSERT_TRUE(alice.send_text("ping"));
    EXPECT_EQ(alice.read_text(5s), "pong");
}

TEST_F(WsGatewayTest, OversizeFrameClosesWith1009) {
    auto [alice, id] = open_connected("alice");
    // Far above the limit: the client is still sending when the gateway fails the
    // connection, and must still get the close frame (see client_socket.hpp).
    alice.send_text(std::string(200 * 1024, 'x'));
    EXPECT_FALSE(alice.read_text(5s));
    EXPECT_EQ(alice.close_code(), 1009);
    auto event = next_event("alice");
    ASSERT_TRUE(event);
    EXPECT_EQ(event->kind, Kind::disconnect);
    EXPECT_EQ(event->connection, id);
}

TEST_F(WsGatewayTest, DeliverWritesTheFrameThenRepliesOk) {
    auto [bob, id] = open_connected("bob");
    const std::string payload = text_message("d-1", "bob", "for bob").dump();
    send_request(deliver_request(id, 42, payload));
    EXPECT_EQ(bob.read_text(5s), payload);
    auto reply = next_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->kind, Kind::deliver_result);
    EXPECT_EQ(reply->request_id, 42u);
    EXPECT_EQ(reply->status, Status::ok);

    // Several in a row keep their order, each answered.
    for (std::uint64_t r = 100; r < 110; ++r)
        send_request(deliver_request(id, r, "frame-" + std::to_string(r)));
    for (std::uint64_t r = 100; r < 110; ++r) EXPECT_EQ(bob.read_text(5s), "frame-" + std::to_string(r));
    std::set<std::uint64_t> answered;
    for (int i = 0; i < 10; ++i) {
        auto result = next_reply();
        ASSERT_TRUE(result);
        EXPECT_EQ(result->status, Status::ok);
        answered.insert(result->request_id);
    }
    EXPECT_EQ(answered.size(), 10u);
}

// Frames that queue while a write is in flight leave together: JSON objects as one frame
// holding an array of them, anything else ("pong", these plain texts) alone. The client sees
// every object once, in order, and every deliver is answered ok.
TEST_F(WsGatewayTest, QueuedJsonFramesAreCoalescedInOrder) {
    auto [bob, id] = open_connected("bob");
    std::vector<std::string> sent;
    for (std::uint64_t r = 200; r < 240; ++r) {
        const std::string payload = r == 220 ? "plain-220" : json{{"n", r}, {"s", std::string(r, 'x')}}.dump();
        sent.push_back(payload);
        send_request(deliver_request(id, r, payload));
    }
    std::vector<std::string> received;
    std::size_t frames = 0;
    while (received.size() < sent.size()) {
        auto frame = bob.read_text(5s);
        ASSERT_TRUE(frame) << "after " << received.size() << " messages";
        ++frames;
        const json parsed = json::parse(*frame, nullptr, false);
        if (parsed.is_array()) {
            ASSERT_GE(parsed.size(), 2u); // a lone object is never wrapped
            for (const auto& element : parsed) received.push_back(element.dump());
        } else {
            received.push_back(parsed.is_discarded() ? *frame : parsed.dump());
        }
    }
    EXPECT_EQ(received, sent);
    EXPECT_LE(frames, sent.size());
    std::set<std::uint64_t> answered;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        auto result = next_reply();
        ASSERT_TRUE(result);
        EXPECT_EQ(result->status, Status::ok);
        answered.insert(result->request_id);
    }
    EXPECT_EQ(answered.size(), sent.size());
}

TEST_F(WsGatewayTest, DeliverToUnknownConnectionIsNotConnected) {
    send_request(deliver_request(123456789, 7, "nobody"));
    auto reply = next_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->kind, Kind::deliver_result);
    EXPECT_EQ(reply->request_id, 7u);
    EXPECT_EQ(reply->status, Status::not_connected);

    // And to a connection that has closed.
    auto [bob, id] = open_connected("bob");
    bob.close();
    auto event = next_event("bob");
    ASSERT_TRUE(event);
    EXPECT_EQ(event->kind, Kind::disconnect);
    send_request(deliver_request(id, 8, "too late"));
    reply = next_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->request_id, 8u);
    EXPECT_EQ(reply->status, Status::not_connected);
}

TEST_F(WsGatewayTest, ServerAckOnlyForConnectionsThatAskedForIt) {
    auto [alice, alice_id] = open_connected("alice", /*ack=*/true);
    auto [carol, carol_id] = open_connected("carol", /*ack=*/false);

    Envelope ack = server_ack_request("m-7", alice_id, "alice");
    send_request(ack);
    auto frame = alice.read_json_matching([](const json& m) { return is_content_type(m, "SERVER_ACK"); }, 5s);
    ASSERT_TRUE(frame);
    EXPECT_EQ((*frame)["id"], "m-7");
    EXPECT_EQ((*frame)["head"]["from"], "server");
    EXPECT_EQ((*frame)["head"]["to"], "alice");
    EXPECT_TRUE((*frame)["body"].contains("ts"));

    // carol did not ask: no SERVER_ACK. The deliver sent after it (same pipe, so handled
    // after it) is the first frame carol sees.
    ack.connection = carol_id;
    ack.from = "carol";
    send_request(ack);
    send_request(deliver_request(carol_id, 9, "after the ack"));
    ASSERT_TRUE(next_reply());
    EXPECT_EQ(carol.read_text(5s), "after the ack");
}

TEST_F(WsGatewayTest, SecondConnectionOfAUserReplacesTheFirst) {
    auto [first, first_id] = open_connected("alice");
    auto [second, second_id] = open_connected("alice");
    EXPECT_NE(first_id, second_id);
    EXPECT_FALSE(first.read_text(5s));
    EXPECT_EQ(first.close_code(), 4000);
    EXPECT_EQ(first.close_reason(), "replaced");

    // Deliveries to the old connection fail, to the new one succeed.
    send_request(deliver_request(first_id, 1, "old"));
    auto reply = next_reply();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, Status::not_connected);
    send_request(deliver_request(second_id, 2, "new"));
    EXPECT_EQ(second.read_text(5s), "new");
    ASSERT_TRUE(next_reply());

    // The replaced connection sends no disconnect; the current one does when it closes.
    second.close();
    auto event = next_event("alice");
    ASSERT_TRUE(event);
    EXPECT_EQ(event->kind, Kind::disconnect);
    EXPECT_EQ(event->connection, second_id);
}

TEST_F(WsGatewayTest, CloseConnectionRequestClosesWithoutDisconnect) {
    auto [alice, id] = open_connected("alice");
    Envelope request;
    request.kind = Kind::close_connection;
    request.connection = id;
    request.from = "alice";
    send_request(request);
    EXPECT_FALSE(alice.read_text(5s));
    EXPECT_EQ(alice.close_code(), 4000);
    // The next event for alice is the connect of a new connection, not a disconnect.
    auto [again, again_id] = open_connected("alice");
    EXPECT_NE(again_id, id);
}

TEST_F(WsGatewayTest, ConnectAndDisconnectGoToTheUsersShard) {
    // Two users on different shards.
    std::string on_a, on_b;
    const topology::ShardMap shards(topology_, "session");
    for (int i = 0; on_a.empty() || on_b.empty(); ++i) {
        const std::string user = "+9100000" + std::to_string(i);
        (shards.instances()[shards.index_for(user)]->name == "session-a" ? on_a : on_b) = user;
    }
    auto [a, a_id] = open_connected(on_a);
    auto [b, b_id] = open_connected(on_b);
    EXPECT_NE(a_id, b_id);
    a.close();
    b.close();
    auto a_event = next_event(on_a);
    ASSERT_TRUE(a_event);
    EXPECT_EQ(a_event->kind, Kind::disconnect);
    EXPECT_EQ(a_event->connection, a_id);
    auto b_event = next_event(on_b);
    ASSERT_TRUE(b_event);
    EXPECT_EQ(b_event->kind, Kind::disconnect);
    EXPECT_EQ(b_event->connection, b_id);
}

TEST_F(WsGatewayTest, StopClosesWith1001AndSendsDisconnects) {
    auto [alice, id] = open_connected("alice");
    const auto started = std::chrono::steady_clock::now();
    gateway_->request_stop();
    EXPECT_FALSE(alice.read_text(5s));
    EXPECT_EQ(alice.close_code(), 1001);
    auto event = next_event("alice");
    ASSERT_TRUE(event);
    EXPECT_EQ(event->kind, Kind::disconnect);
    EXPECT_EQ(event->connection, id);
    gateway_->join();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
    // The listener is closed.
    EXPECT_EQ(http_request("127.0.0.1", port_, "GET", "/wss", "", {}, 1s).status, 0);
}

TEST(WsGatewayOptionsTest, OutOfRangeOptionIsRejectedAtCreation) {
    auto loaded = topology::load_string(kTopology, "ws_gateway_test.toml");
    ASSERT_TRUE(loaded.topology);
    topology::Topology topology = std::move(*loaded.topology);
    for (auto& daemon : topology.daemons)
        if (daemon.name == "ws-test") daemon.options.insert_or_assign("write_queue_limit", 0);
    zmq::context_t zmq;
    AccessKeys keys{std::string(32, 'k')};
    SystemClock clock;
    const DaemonContext context{zmq, topology, *topology.find("ws-test"),
                                std::filesystem::temp_directory_path(), keys, clock};
    EXPECT_THROW(make_ws_gateway(context), std::invalid_argument);
}

// A message-router that takes a message and dies without answering (its host lost power):
// the gateway pushes the message again until a server_ack comes, and after max_resends tells
// the client to resend it.
class WsGatewayResendTest : public WsGatewayTest {
protected:
    void configure(toml::table& options) override {
        options.insert_or_assign("resend_after_ms", 200);
        options.insert_or_assign("max_resends", 2);
    }
};

TEST_F(WsGatewayResendTest, AMessageWithoutAServerAckIsPushedAgainUntilAnswered) {
    auto [alice, id] = open_connected("alice", /*ack=*/true);
    ASSERT_TRUE(alice.send_text(text_message("m-1", "bob", "hello").dump()));
    auto first = receive(router_pull_, false, 5s);
    ASSERT_TRUE(first);
    // Not answered: the same message comes again, same id, connection and payload.
    auto again = receive(router_pull_, false, 5s);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->envelope.id, "m-1");
    EXPECT_EQ(again->envelope.connection, id);
    EXPECT_EQ(again->envelope.payload, first->envelope.payload);
    EXPECT_TRUE(again->envelope.has(flag_wants_server_ack));

    send_request(server_ack_request("m-1", id, "alice"));
    auto frame = alice.read_json_matching([](const json& m) { return is_content_type(m, "SERVER_ACK"); }, 5s);
    ASSERT_TRUE(frame);
    EXPECT_EQ((*frame)["id"], "m-1");
    // Answered: pushed no more (three resend periods of silence; a resend already on its
    // way when the ack arrived would be the second copy, so at most one more).
    int more = 0;
    while (receive(router_pull_, false, 600ms)) ++more;
    EXPECT_LE(more, 1);
}

TEST_F(WsGatewayResendTest, NoServerAckAfterMaxResendsTellsTheClientToRetry) {
    auto [carol, id] = open_connected("carol", /*ack=*/false);
    ASSERT_TRUE(carol.send_text(text_message("m-2", "bob", "hello").dump()));
    // The first push and max_resends = 2 more, then the error frame naming the message.
    for (int push = 0; push < 3; ++push) {
        auto incoming = receive(router_pull_, false, 5s);
        ASSERT_TRUE(incoming) << "push " << push;
        EXPECT_EQ(incoming->envelope.id, "m-2");
        // carol did not ask for SERVER_ACKs, but the gateway needs the server_ack itself.
        EXPECT_TRUE(incoming->envelope.has(flag_wants_server_ack));
    }
    auto error = carol.read_json_matching([](const json& m) { return is_content_type(m, "error"); }, 5s);
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["id"], "m-2");
    EXPECT_EQ((*error)["body"]["error"], "server busy, retry");
    EXPECT_FALSE(receive(router_pull_, false, 400ms)); // given up: no fourth push
}

// Idle sockets are pinged after idle_ping_seconds and closed after twice that without data.
class WsGatewayIdleTest : public WsGatewayTest {
protected:
    void configure(toml::table& options) override { options.insert_or_assign("idle_ping_seconds", 1); }
};

TEST_F(WsGatewayIdleTest, LiveClientsArePingedAndKeptDeadOnesClosed) {
    auto [live, live_id] = open_connected("alice");
    auto [dead, dead_id] = open_connected("bob");
    // `dead` runs no I/O from here on, so it never answers the server's pings: within 2 s
    // the gateway closes it and announces the disconnect. `live` keeps a read pending
    // (its Beast stream answers pings by itself) while the test watches for that event.
    std::optional<Envelope> event;
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(6s);
    while (!event && std::chrono::steady_clock::now() < deadline) {
        EXPECT_FALSE(live.read_text(100ms)); // the server sends no data frames
        if (auto incoming = receive(shard_of("bob"), false, 0ms)) event = incoming->envelope;
    }
    ASSERT_TRUE(event);
    EXPECT_EQ(event->kind, Kind::disconnect);
    EXPECT_EQ(event->connection, dead_id);
    // `live` stays open through more silence on its side than the idle limit.
    EXPECT_FALSE(live.read_text(3s));
    EXPECT_TRUE(live.is_open());
    ASSERT_TRUE(live.send_text("ping"));
    EXPECT_EQ(live.read_text(5s), "pong");
    EXPECT_FALSE(dead.read_text(2s));
    EXPECT_FALSE(dead.is_open());
}

// A client that does not read: its write queue fills (the socket buffers first).
class WsGatewaySlowClientTest : public WsGatewayTest {
protected:
    void configure(toml::table& options) override {
        options.insert_or_assign("write_queue_limit", 4);
        options.insert_or_assign("overflow_close_after", overflow_close_after_);
    }
    // Sends 64 KiB deliveries to `connection` one at a time until exactly one is refused,
    // collecting every reply. After each request a probe (a deliver to a connection that
    // does not exist, answered at once) marks the point by which an immediate refusal of
    // that request has arrived: the gateway handles requests in order and the ROUTER ->
    // DEALER pipe keeps it. Bounded so that a broken policy fails instead of hanging.
    std::vector<Envelope> fill_queue(std::uint64_t connection, std::uint64_t max_requests = 4000) {
        std::vector<Envelope> replies;
        const std::string payload(64 * 1024, 'p');
        constexpr std::uint64_t kProbe = 1u << 30;
        for (std::uint64_t r = 1; r <= max_requests; ++r) {
            send_request(deliver_request(connection, r, payload));
            send_request(deliver_request(1, kProbe + r, {}));
            bool refused = false;
            while (auto reply = receive(dealer_, false, 5s)) {
                if (reply->envelope.request_id == kProbe + r) break;
                refused = refused || (reply->envelope.request_id == r &&
                                      reply->envelope.status == Status::overloaded);
                replies.push_back(reply->envelope);
            }
            if (refused) break;
        }
        return replies;
    }
    std::int64_t overflow_close_after_ = 1000;
};

TEST_F(WsGatewaySlowClientTest, FullQueueAnswersOverloadedAndKeepsTheClient) {
    auto [slow, id] = open_connected("bob");
    const auto replies = fill_queue(id);
    ASSERT_FALSE(replies.empty());
    EXPECT_EQ(replies.back().status, Status::overloaded);
    // Frames written to the socket (until its buffers filled) were answered ok; then the
    // queue filled and the last one was refused. Nothing was lost or closed.
    std::size_t ok = 0;
    std::uint64_t refused = 0;
    for (const auto& reply : replies) {
        if (reply.status == Status::ok) ++ok;
        else if (reply.status == Status::overloaded) refused = reply.request_id;
        else ADD_FAILURE() << "unexpected status " << to_string(reply.status);
    }
    ASSERT_GT(refused, 4u); // more than the queue: the socket's buffers took frames first
    // One full queue is not fatal: the client reads its backlog (every accepted frame, in
    // order), every one is answered ok, and it is still served.
    const std::uint64_t accepted = refused - 1;
    for (std::uint64_t i = 0; i < accepted; ++i) {
        auto frame = slow.read_text(5s);
        ASSERT_TRUE(frame);
        ASSERT_EQ(frame->size(), 64u * 1024);
    }
    while (ok < accepted) {
        auto reply = receive(dealer_, false, 5s);
        ASSERT_TRUE(reply);
        EXPECT_EQ(reply->envelope.status, Status::ok);
        ++ok;
    }
    ASSERT_TRUE(slow.send_text("ping"));
    EXPECT_EQ(slow.read_text(5s), "pong");
    EXPECT_TRUE(slow.is_open());
}

class WsGatewayStuckClientTest : public WsGatewaySlowClientTest {
protected:
    void configure(toml::table& options) override {
        overflow_close_after_ = 3;
        WsGatewaySlowClientTest::configure(options);
    }
};

TEST_F(WsGatewayStuckClientTest, RepeatedOverflowClosesWith1008) {
    auto [stuck, id] = open_connected("bob");
    // Keep delivering to a client that reads nothing. Refusals count towards
    // overflow_close_after (3) and a completed write resets the count (the kernel may still
    // take data for a while), so send until the connection is gone rather than a fixed
    // number; probes (see fill_queue) keep each step in order.
    const std::string payload(64 * 1024, 'p');
    constexpr std::uint64_t kProbe = 1u << 30;
    std::size_t overloaded = 0;
    bool closed = false;
    for (std::uint64_t r = 1; r <= 4000 && !closed; ++r) {
        send_request(deliver_request(id, r, payload));
        send_request(deliver_request(1, kProbe + r, {}));
        while (auto reply = receive(dealer_, false, 5s)) {
            if (reply->envelope.request_id == kProbe + r) break;
            if (reply->envelope.request_id != r) continue; // earlier frames written or dropped
            if (reply->envelope.status == Status::overloaded) ++overloaded;
            if (reply->envelope.status == Status::not_connected) closed = true;
        }
    }
    ASSERT_TRUE(closed);
    EXPECT_GE(overloaded, 3u);
    // The close frame waits behind the frame being written: the client finds it after its
    // backlog, and the socket's end sends the disconnect.
    while (stuck.read_text(5s)) {
    }
    EXPECT_EQ(stuck.close_code(), 1008);
    EXPECT_EQ(stuck.close_reason(), "slow consumer");
    auto event = next_event("bob");
    ASSERT_TRUE(event);
    EXPECT_EQ(event->kind, Kind::disconnect);
    EXPECT_EQ(event->connection, id);
}

class WsGatewayCapacityTest : public WsGatewayTest {
protected:
    void configure(toml::table& options) override { options.insert_or_assign("max_connections", 1); }
};

TEST_F(WsGatewayCapacityTest, UpgradesAboveMaxConnectionsGet503) {
    auto [alice, id] = open_connected("alice");
    auto result = WsClient::connect("127.0.0.1", port_, "/wss", credentials("bob"));
    ASSERT_TRUE(std::holds_alternative<int>(result));
    EXPECT_EQ(std::get<int>(result), 503);
    alice.close();
    ASSERT_TRUE(next_event("alice")); // disconnect: the slot is free again
    auto [bob, bob_id] = open_connected("bob");
    EXPECT_TRUE(bob.is_open());
}

// A gateway whose message-router is not listening yet (over ipc://, as on a host where the
// router starts later) refuses upgrades as "server starting" (503): a client let in would
// have every message refused at once. Once the router binds, the gateway serves.
TEST(WsGatewayStartTest, UpgradesWaitForAConnectedMessageRouter) {
    test::TempDirectory dir("ws-start");
    const std::string router_endpoint = "ipc://" + (dir.path() / "router").string();
    const std::string text = R"(
[system]
name = "wsst"

[[daemon]]
kind = "ws-gateway"
name = "ws-start"
listen = "127.0.0.1:0"
router = "inproc://ws-start"

[[daemon]]
kind = "message-router"
name = "router-late"
pull = ")" + router_endpoint + R"("

[[daemon]]
kind = "session"
name = "session-s"
pull = "inproc://session-s"
slots = "0-16383"

[[daemon]]
kind = "profile"
name = "profile-s"
router = "inproc://profile-s"
)";
    auto loaded = topology::load_string(text, "ws_start_test.toml");
    ASSERT_TRUE(loaded.topology) << (loaded.errors.empty() ? "" : loaded.errors[0].str());
    const topology::Topology topology = std::move(*loaded.topology);
    zmq::context_t zmq;
    zmq::socket_t session = make_socket(zmq, zmq::socket_type::pull);
    session.bind("inproc://session-s");
    zmq::socket_t profile = make_socket(zmq, zmq::socket_type::router);
    profile.bind("inproc://profile-s");
    AccessKeys keys(std::string(32, 'k'));
    SystemClock clock;
    DaemonContext context{zmq, topology, *topology.find("ws-start"), dir.path(), keys, clock};
    auto gateway = make_ws_gateway(context);
    gateway->bind();
    gateway->connect();
    gateway->start();
    const std::string listen = gateway->bound_endpoints().at("listen");
    const int port = std::stoi(listen.substr(listen.rfind(':') + 1));
    const WsClient::Headers credentials{{"user", "alice"}, {"accesskey", keys.issue("alice", clock.wall_ms() / 1000)}};
    answer_first_revocation_poll(profile); // the list is complete: only the router is missing

    auto early = WsClient::connect("127.0.0.1", port, "/wss", credentials);
    ASSERT_TRUE(std::holds_alternative<int>(early));
    EXPECT_EQ(std::get<int>(early), 503);
    EXPECT_FALSE(gateway->serving());

    zmq::socket_t router = make_socket(zmq, zmq::socket_type::pull);
    router.bind(router_endpoint);
    const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(5s);
    while (!gateway->serving() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms); // polling a condition, not waiting for time
    ASSERT_TRUE(gateway->serving());
    auto later = WsClient::connect("127.0.0.1", port, "/wss", credentials);
    ASSERT_TRUE(std::holds_alternative<WsClient>(later));
    WsClient& alice = std::get<WsClient>(later);
    ASSERT_TRUE(alice.send_text(text_message("m1", "bob", "hi").dump()));
    auto routed = receive(router, false, 5s);
    ASSERT_TRUE(routed);
    EXPECT_EQ(routed->envelope.id, "m1");

    gateway->request_stop();
    gateway->join();
}

} // namespace
} // namespace vartalap::testing
