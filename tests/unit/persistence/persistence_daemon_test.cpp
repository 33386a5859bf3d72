// The persistence daemon adapter over real inproc sockets: the test plays a session (a
// DEALER to the persistence ROUTER and a PUSH into its PULL), a rest-gateway (another
// DEALER) and a push daemon (a PULL the persistence PUSH connects to). Waits are bounded
// polls on sockets, never sleeps.
// Thread: the test's own; the daemon runs its own thread.
#include "common/access_key.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/daemon.hpp"
#include "daemons/persistence/persistence_core.hpp"
#include "daemons/persistence/persistence_daemon.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <unistd.h>

namespace vartalap::persistence {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class NullOutbox final : public PersistenceOutbox {
public:
    void reply(std::string_view, const Envelope&) override {}
    bool has_push() const override { return false; }
    bool notify(const Envelope&) override { return false; }
};

// Receives one envelope from a DEALER or PULL within `timeout`.
std::optional<Envelope> receive(zmq::socket_t& socket, std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(timeout);
    while (std::chrono::steady_clock::now() < deadline) {
        zmq::poll(&item, 1, 50ms);
        Incoming incoming;
        if (receive_envelope(socket, false, incoming) == ReceiveResult::ok)
            return incoming.envelope;
    }
    return std::nullopt;
}

struct Fixture {
    std::filesystem::path directory = std::filesystem::temp_directory_path() /
                                      ("vartalap_persistence_daemon_test_" +
                                       std::to_string(::getpid()));
    topology::Topology topology;
    zmq::context_t context;
    SystemClock clock;
    AccessKeys keys{std::string(32, 'k')};

    Fixture() {
        std::filesystem::remove_all(directory);
        topology::DaemonSpec persistence;
        persistence.kind = "persistence";
        persistence.name = "persistence-1";
        persistence.endpoints["pull"] = "inproc://persistence-test-pull";
        persistence.endpoints["router"] = "inproc://persistence-test-router";
        persistence.options.insert("durability", "process");
        persistence.options.insert("sync_interval_ms", 50);
        topology::DaemonSpec push;
        push.kind = "push";
        push.name = "push-1";
        push.endpoints["pull"] = "inproc://persistence-test-push";
        topology.daemons = {persistence, push};
    }
    ~Fixture() { std::filesystem::remove_all(directory); }
    DaemonContext daemon_context() {
        return DaemonContext{context, topology, topology.daemons[0], directory, keys, clock};
    }
};

TEST(PersistenceDaemonTest, StoresNotifiesServesAndDeletesOverRealSockets) {
    Fixture fixture;
    zmq::socket_t push_daemon = make_socket(fixture.context, zmq::socket_type::pull);
    push_daemon.bind(fixture.topology.daemons[1].endpoints["pull"]);

    {
        auto daemon = make_persistence(fixture.daemon_context());
        daemon->bind();
        daemon->connect();
        daemon->start();
        const auto endpoints = daemon->bound_endpoints();

        SocketOptions session_options;
        session_options.routing_id = "session-1";
        zmq::socket_t session = make_socket(fixture.context, zmq::socket_type::dealer, session_options);
        session.connect(endpoints.at("router"));
        zmq::socket_t session_acks = make_socket(fixture.context, zmq::socket_type::push);
        session_acks.connect(endpoints.at("pull"));
        zmq::socket_t rest = make_socket(fixture.context, zmq::socket_type::dealer);
        rest.connect(endpoints.at("router"));
        std::string scratch;

        Envelope message;
        message.kind = Kind::offline_store;
        message.id = "m1";
        message.from = "alice";
        message.to = "bob";
        message.request_id = 17;
        message.payload = R"({"id":"m1","head":{"contentType":"text"},"body":{"text":"hi"}})";
        ASSERT_EQ(send_envelope(session, message, scratch), SendResult::ok);
        message.id = "m2";
        message.request_id = 18;
        message.payload = R"({"id":"m2","head":{"contentType":"text"},"body":{"text":"yo"}})";
        ASSERT_EQ(send_envelope(session, message, scratch), SendResult::ok);

        for (std::uint64_t request_id : {17u, 18u}) {
            auto stored = receive(session, 5s);
            ASSERT_TRUE(stored.has_value());
            EXPECT_EQ(stored->kind, Kind::offline_stored);
            EXPECT_EQ(stored->request_id, request_id);
            EXPECT_EQ(stored->status, Status::ok);
        }
        auto notification = receive(push_daemon, 5s);
        ASSERT_TRUE(notification.has_value());
        EXPECT_EQ(notification->kind, Kind::offline_notify);
        EXPECT_EQ(notification->to, "bob");
        EXPECT_EQ(notification->id, "m1");

        Envelope fetch;
        fetch.kind = Kind::fetch;
        fetch.to = "bob";
        fetch.limit = 10;
        fetch.request_id = 19;
        ASSERT_EQ(send_envelope(session, fetch, scratch), SendResult::ok);
        auto fetched = receive(session, 5s);
        ASSERT_TRUE(fetched.has_value());
        EXPECT_EQ(fetched->kind, Kind::fetched);
        EXPECT_EQ(fetched->request_id, 19u);
        ASSERT_EQ(fetched->items.size(), 2u);

        Envelope request;
        request.kind = Kind::request;
        request.method = "messages";
        request.from = "bob";
        request.request_id = 5;
        request.payload = R"({"limit":1})";
        ASSERT_EQ(send_envelope(rest, request, scratch), SendResult::ok);
        auto reply = receive(rest, 5s);
        ASSERT_TRUE(reply.has_value());
        EXPECT_EQ(reply->kind, Kind::reply);
        EXPECT_EQ(reply->status, Status::ok);
        const json page = json::parse(reply->payload);
        ASSERT_EQ(page["messages"].size(), 1u);
        EXPECT_EQ(page["messages"][0]["id"], "m1");
        EXPECT_TRUE(page["next"].is_string());

        Envelope ack;
        ack.kind = Kind::ack;
        ack.from = "bob";
        ack.ids = {"m1"};
        ASSERT_EQ(send_envelope(session_acks, ack, scratch), SendResult::ok);
        // The ack (PULL) and the fetches (ROUTER) travel on different pipes: fetch until the
        // ack shows, within a bound.
        const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(5s);
        std::size_t items = 2;
        while (items != 1 && std::chrono::steady_clock::now() < deadline) {
            ++fetch.request_id;
            ASSERT_EQ(send_envelope(session, fetch, scratch), SendResult::ok);
            auto again = receive(session, 5s);
            ASSERT_TRUE(again.has_value());
            items = again->items.size();
        }
        EXPECT_EQ(items, 1u);

        session.close();
        session_acks.close();
        rest.close();
        const auto stop_started = std::chrono::steady_clock::now();
        daemon->request_stop();
        daemon->join();
        EXPECT_LT(std::chrono::steady_clock::now() - stop_started, 2s);
    }

    // What was confirmed is on disk after the drain (process durability syncs at the end).
    {
        lmdb::Env env(fixture.directory);
        NullOutbox outbox;
        PersistenceCore core(env, outbox, fixture.clock);
        EXPECT_FALSE(core.is_stored("bob", "m1"));
        EXPECT_TRUE(core.is_stored("bob", "m2"));
    }
    push_daemon.close();
}

TEST(PersistenceDaemonTest, RefusesAnUnknownDurabilityMode) {
    Fixture fixture;
    fixture.topology.daemons[0].options.insert_or_assign("durability", "sometimes");
    EXPECT_THROW(make_persistence(fixture.daemon_context()), std::invalid_argument);
}

} // namespace
} // namespace vartalap::persistence
