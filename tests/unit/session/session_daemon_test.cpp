// The session daemon adapter over real inproc sockets: the test plays the message-router
// (a PUSH into the session's PULL) and a ws-gateway (a ROUTER the session's DEALER connects
// to). Waits are bounded polls on sockets, never sleeps.
// Thread: the test's own; the daemon runs its own thread.
#include "common/access_key.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/factories.hpp"
#include "daemons/session/session_core.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <unistd.h>

namespace vartalap::session {
namespace {

using namespace std::chrono_literals;

class NullOutbox final : public Outbox {
public:
    bool deliver(std::string_view, const Envelope&) override { return true; }
    void server_ack(std::string_view, std::uint64_t, std::string_view, std::string_view) override {}
    void refuse(std::string_view, std::uint64_t, std::string_view, std::string_view, Status,
                std::string_view) override {}
    void close_connection(std::string_view, std::uint64_t, std::string_view) override {}
};

// Receives one envelope from a ROUTER (or, with router = false, a PULL) within `timeout`.
// A gateway's ROUTER first gets the session's start-up resync request (kind resync):
// counted in *resyncs when given, and skipped.
std::optional<Incoming> receive(zmq::socket_t& socket, std::chrono::milliseconds timeout,
                                bool router = true, int* resyncs = nullptr) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(timeout);
    while (std::chrono::steady_clock::now() < deadline) {
        zmq::poll(&item, 1, 50ms);
        Incoming incoming;
        if (receive_envelope(socket, router, incoming) != ReceiveResult::ok) continue;
        if (router && incoming.envelope.kind == Kind::resync) {
            if (resyncs) ++*resyncs;
            continue;
        }
        return incoming;
    }
    return std::nullopt;
}

// `durability`: the session's option of that name, unset when empty.
void stores_delivers_and_deletes_on_ack(const std::string& durability) {
    const std::filesystem::path directory =
        std::filesystem::temp_directory_path() /
        ("vartalap_session_daemon_test_" + std::to_string(::getpid()) + durability);
    std::filesystem::remove_all(directory);

    topology::Topology topology;
    topology::DaemonSpec gateway;
    gateway.kind = "ws-gateway";
    gateway.name = "ws-1";
    gateway.endpoints["router"] = "inproc://session-test-ws-1";
    topology::DaemonSpec session;
    session.kind = "session";
    session.name = "session-1";
    session.endpoints["pull"] = "inproc://session-test-pull";
    session.options.insert("window", 8);
    if (!durability.empty()) session.options.insert("durability", durability);
    topology.daemons = {gateway, session};

    zmq::context_t context;
    SystemClock clock;
    AccessKeys keys(std::string(32, 'k'));
    zmq::socket_t router = make_socket(context, zmq::socket_type::router);
    router.bind(gateway.endpoints["router"]);

    {
        const DaemonContext daemon_context{context, topology, topology.daemons[1], directory,
                                           keys, clock};
        auto daemon = make_session(daemon_context);
        daemon->bind();
        daemon->connect();
        daemon->start();

        zmq::socket_t push = make_socket(context, zmq::socket_type::push);
        push.connect(daemon->bound_endpoints().at("pull"));
        std::string scratch;

        Envelope connect;
        connect.kind = Kind::connect;
        connect.from = "bob";
        connect.origin_gateway = "ws-1";
        connect.connection = 5;
        ASSERT_EQ(send_envelope(push, connect, scratch), SendResult::ok);

        Envelope chat;
        chat.kind = Kind::deliver;
        chat.id = "m1";
        chat.from = "alice";
        chat.to = "bob";
        chat.origin_gateway = "ws-1";
        chat.connection = 7;
        chat.flags = flag_wants_server_ack;
        chat.payload = "{\"id\":\"m1\"}";
        ASSERT_EQ(send_envelope(push, chat, scratch), SendResult::ok);

        std::optional<Envelope> server_ack;
        std::optional<Envelope> deliver;
        for (int i = 0; i < 2; ++i) {
            auto incoming = receive(router, 5s);
            ASSERT_TRUE(incoming.has_value());
            EXPECT_EQ(incoming->routing_id, "session-1");
            if (incoming->envelope.kind == Kind::server_ack) server_ack = incoming->envelope;
            if (incoming->envelope.kind == Kind::deliver) deliver = incoming->envelope;
        }
        ASSERT_TRUE(server_ack.has_value());
        EXPECT_EQ(server_ack->id, "m1");
        EXPECT_EQ(server_ack->connection, 7u);
        ASSERT_TRUE(deliver.has_value());
        EXPECT_EQ(deliver->connection, 5u);
        EXPECT_EQ(deliver->payload, chat.payload);

        Envelope result;
        result.kind = Kind::deliver_result;
        result.request_id = deliver->request_id;
        result.status = Status::ok;
        ASSERT_EQ(send_envelope(router, result, scratch, "session-1"), SendResult::ok);

        Envelope ack;
        ack.kind = Kind::ack;
        ack.from = "bob";
        ack.ids = {"m1"};
        ASSERT_EQ(send_envelope(push, ack, scratch), SendResult::ok);

        // A message for an offline user stays stored across the daemon's stop.
        chat.id = "m2";
        chat.to = "carol";
        ASSERT_EQ(send_envelope(push, chat, scratch), SendResult::ok);
        auto second_ack = receive(router, 5s);
        ASSERT_TRUE(second_ack.has_value());
        EXPECT_EQ(second_ack->envelope.kind, Kind::server_ack);
        EXPECT_EQ(second_ack->envelope.id, "m2");

        push.close();
        const auto stop_started = std::chrono::steady_clock::now();
        daemon->request_stop();
        daemon->join();
        EXPECT_LT(std::chrono::steady_clock::now() - stop_started, 2s);
    }

    // The ack was committed before the stop (it was sent before m2, whose server_ack came
    // back, and one PUSH->PULL pipe keeps order).
    {
        lmdb::Env env(directory);
        NullOutbox outbox;
        SessionCore core(env, outbox, clock);
        EXPECT_FALSE(core.is_stored("bob", "m1"));
        EXPECT_TRUE(core.is_stored("carol", "m2"));
    }
    router.close();
    std::filesystem::remove_all(directory);
}

TEST(SessionDaemonTest, StoresDeliversAndDeletesOnAckOverRealSockets) {
    stores_delivers_and_deletes_on_ack("");
}

// "process" durability (MDB_NOSYNC, periodic sync, a sync at stop): the same behaviour.
TEST(SessionDaemonTest, ProcessDurabilityBehavesTheSame) {
    stores_delivers_and_deletes_on_ack("process");
}

TEST(SessionDaemonTest, AnUnknownDurabilityRefusesToStart) {
    topology::Topology topology;
    topology::DaemonSpec session;
    session.kind = "session";
    session.name = "session-1";
    session.endpoints["pull"] = "inproc://session-test-durability";
    session.options.insert("durability", "sometimes");
    topology.daemons = {session};
    zmq::context_t context;
    SystemClock clock;
    AccessKeys keys(std::string(32, 'k'));
    const DaemonContext daemon_context{context, topology, topology.daemons[0],
                                       std::filesystem::temp_directory_path(), keys, clock};
    try {
        make_session(daemon_context);
        FAIL() << "a session with durability \"sometimes\" was created";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("durability must be"), std::string::npos) << e.what();
    }
}

// The offline path over real sockets: the test also plays a rest-gateway (its ROUTER gets
// server_acks and refusals for REST senders) and a persistence shard (a ROUTER for
// offline_store/fetch, a PULL for forwarded acks).
TEST(SessionDaemonTest, HandsOffToPersistenceAndAnswersRestSendersOverRealSockets) {
    const std::filesystem::path directory =
        std::filesystem::temp_directory_path() /
        ("vartalap_session_daemon_offline_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(directory);

    topology::Topology topology;
    topology::DaemonSpec ws;
    ws.kind = "ws-gateway";
    ws.name = "ws-1";
    ws.endpoints["router"] = "inproc://session-offline-test-ws-1";
    topology::DaemonSpec rest;
    rest.kind = "rest-gateway";
    rest.name = "rest-1";
    rest.endpoints["router"] = "inproc://session-offline-test-rest-1";
    topology::DaemonSpec rest_without_router; // an older rest-gateway: skipped
    rest_without_router.kind = "rest-gateway";
    rest_without_router.name = "rest-2";
    topology::DaemonSpec session;
    session.kind = "session";
    session.name = "session-1";
    session.endpoints["pull"] = "inproc://session-offline-test-pull";
    topology::DaemonSpec persistence;
    persistence.kind = "persistence";
    persistence.name = "persistence-1";
    persistence.endpoints["router"] = "inproc://session-offline-test-persistence-router";
    persistence.endpoints["pull"] = "inproc://session-offline-test-persistence-pull";
    topology.daemons = {ws, rest, rest_without_router, session, persistence};

    zmq::context_t context;
    SystemClock clock;
    AccessKeys keys(std::string(32, 'k'));
    zmq::socket_t ws_router = make_socket(context, zmq::socket_type::router);
    ws_router.bind(ws.endpoints["router"]);
    zmq::socket_t rest_router = make_socket(context, zmq::socket_type::router);
    rest_router.bind(rest.endpoints["router"]);
    zmq::socket_t persistence_router = make_socket(context, zmq::socket_type::router);
    persistence_router.bind(persistence.endpoints["router"]);
    zmq::socket_t persistence_pull = make_socket(context, zmq::socket_type::pull);
    persistence_pull.bind(persistence.endpoints["pull"]);

    {
        const DaemonContext daemon_context{context, topology, topology.daemons[3], directory,
                                           keys, clock};
        auto daemon = make_session(daemon_context);
        daemon->bind();
        daemon->connect();
        daemon->start();
        zmq::socket_t push = make_socket(context, zmq::socket_type::push);
        push.connect(daemon->bound_endpoints().at("pull"));
        std::string scratch;

        // A REST sender's message for offline carol: server_ack to the rest-gateway, then
        // the handoff to persistence.
        Envelope chat;
        chat.kind = Kind::deliver;
        chat.id = "m1";
        chat.from = "alice";
        chat.to = "carol";
        chat.origin_gateway = "rest-1";
        chat.connection = 7;
        chat.flags = flag_wants_server_ack;
        chat.payload = "{\"id\":\"m1\"}";
        ASSERT_EQ(send_envelope(push, chat, scratch), SendResult::ok);
        auto server_ack = receive(rest_router, 5s);
        ASSERT_TRUE(server_ack.has_value());
        EXPECT_EQ(server_ack->routing_id, "session-1");
        EXPECT_EQ(server_ack->envelope.kind, Kind::server_ack);
        EXPECT_EQ(server_ack->envelope.status, Status::ok);
        EXPECT_EQ(server_ack->envelope.connection, 7u);
        auto store = receive(persistence_router, 5s);
        ASSERT_TRUE(store.has_value());
        EXPECT_EQ(store->routing_id, "session-1");
        EXPECT_EQ(store->envelope.kind, Kind::offline_store);
        EXPECT_EQ(store->envelope.to, "carol");
        EXPECT_EQ(store->envelope.id, "m1");
        EXPECT_EQ(store->envelope.payload, chat.payload);

        // An invalid message gets a refusal instead of silence.
        Envelope invalid = chat;
        invalid.id.assign(1000, 'x');
        invalid.connection = 8;
        ASSERT_EQ(send_envelope(push, invalid, scratch), SendResult::ok);
        auto refusal = receive(rest_router, 5s);
        ASSERT_TRUE(refusal.has_value());
        EXPECT_EQ(refusal->envelope.kind, Kind::server_ack);
        EXPECT_EQ(refusal->envelope.status, Status::bad_request);
        EXPECT_EQ(refusal->envelope.connection, 8u);
        EXPECT_FALSE(refusal->envelope.error.empty());

        // carol connects: a fetch of her queue in persistence first (it holds the older
        // messages), then the local copy.
        Envelope connect;
        connect.kind = Kind::connect;
        connect.from = "carol";
        connect.origin_gateway = "ws-1";
        connect.connection = 5;
        ASSERT_EQ(send_envelope(push, connect, scratch), SendResult::ok);
        auto fetch = receive(persistence_router, 5s);
        ASSERT_TRUE(fetch.has_value());
        EXPECT_EQ(fetch->envelope.kind, Kind::fetch);
        EXPECT_EQ(fetch->envelope.to, "carol");
        EXPECT_EQ(fetch->envelope.cursor, 0u);
        EXPECT_GT(fetch->envelope.limit, 0u);
        Envelope fetched; // nothing there yet (m1's handoff is not confirmed)
        fetched.kind = Kind::fetched;
        fetched.to = "carol";
        fetched.request_id = fetch->envelope.request_id;
        ASSERT_EQ(send_envelope(persistence_router, fetched, scratch, "session-1"), SendResult::ok);
        int resyncs = 0;
        auto deliver = receive(ws_router, 5s, true, &resyncs);
        EXPECT_EQ(resyncs, 1); // the shard asked the gateway to announce its users again
        ASSERT_TRUE(deliver.has_value());
        EXPECT_EQ(deliver->envelope.kind, Kind::deliver);
        EXPECT_EQ(deliver->envelope.id, "m1");

        Envelope stored;
        stored.kind = Kind::offline_stored;
        stored.request_id = store->envelope.request_id;
        ASSERT_EQ(send_envelope(persistence_router, stored, scratch, "session-1"), SendResult::ok);
        Envelope result;
        result.kind = Kind::deliver_result;
        result.request_id = deliver->envelope.request_id;
        ASSERT_EQ(send_envelope(ws_router, result, scratch, "session-1"), SendResult::ok);

        // carol's ack reaches persistence, which holds (or is about to confirm) the copy.
        Envelope ack;
        ack.kind = Kind::ack;
        ack.from = "carol";
        ack.ids = {"m1"};
        ASSERT_EQ(send_envelope(push, ack, scratch), SendResult::ok);
        auto forwarded = receive(persistence_pull, 5s, /*router=*/false);
        ASSERT_TRUE(forwarded.has_value());
        EXPECT_EQ(forwarded->envelope.kind, Kind::ack);
        EXPECT_EQ(forwarded->envelope.from, "carol");
        EXPECT_EQ(forwarded->envelope.ids, std::vector<std::string>{"m1"});

        push.close();
        daemon->request_stop();
        daemon->join();
    }

    {
        lmdb::Env env(directory);
        NullOutbox outbox;
        SessionCore core(env, outbox, clock);
        EXPECT_FALSE(core.is_stored("carol", "m1"));
    }
    ws_router.close();
    rest_router.close();
    persistence_router.close();
    persistence_pull.close();
    std::filesystem::remove_all(directory);
}

} // namespace
} // namespace vartalap::session
