// The internal transport over tcp:// (docs/SECURITY.md, "Internal transport"): the daemons of
// local.toml on two hosts' CURVE keys and loopback tcp:// ports, a chat through them, and
// what a host without the keys (or with a key the topology does not name) can do: nothing.
#include "tests/integration/support/child_process.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/deadline.hpp"
#include "tools/vartalapctl/status.hpp"

#include "common/wire/envelope.hpp"
#include "common/zmq/curve.hpp"
#include "common/zmq/socket.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <netinet/in.h>
#include <regex>
#include <sys/socket.h>
#include <unistd.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A loopback port the kernel picks (bound, read, released: the daemons bind it next).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t size = sizeof address;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
        ::close(fd);
        throw std::runtime_error("no free port");
    }
    ::close(fd);
    return ntohs(address.sin_port);
}

// local.toml with every ZeroMQ endpoint (control included) on a loopback tcp:// port, the gateways on host
// "edge" and the rest on host "core", each host with a key pair of its own.
struct CurveCluster {
    TempDir dir;
    CurveKeyPair edge = generate_curve_keypair();
    CurveKeyPair core = generate_curve_keypair();
    topology::Topology topology;

    CurveCluster() {
        const auto edge_file = dir.path() / "edge.key";
        const auto core_file = dir.path() / "core.key";
        write_curve_secret_file(edge_file, edge.secret_key);
        write_curve_secret_file(core_file, core.secret_key);
        topology = local_topology(dir.path() / "data", [&](topology::Topology& t) {
            for (auto& daemon : t.daemons) {
                const bool gateway = daemon.kind == "ws-gateway" || daemon.kind == "rest-gateway";
                daemon.host = gateway ? "edge" : "core";
                for (auto& [role, endpoint] : daemon.endpoints)
                    if (endpoint.rfind("inproc://", 0) == 0 || role == "control")
                        endpoint = "tcp://127.0.0.1:0";
            }
            t.host_keys["edge"] = {edge.public_key, edge_file.string(), 0};
            t.host_keys["core"] = {core.public_key, core_file.string(), 0};
        });
    }

    // Fresh ports the kernel picked for every tcp:// endpoint.
    void pick_ports() {
        for (auto& daemon : topology.daemons)
            for (auto& [role, endpoint] : daemon.endpoints)
                if (endpoint.rfind("tcp://", 0) == 0)
                    endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
    }

    // Starts the system on fresh ports the kernel picked. A port is released between
    // free_port() and the daemon's bind, so a parallel test may take it: then again.
    std::unique_ptr<RunningSystem> start() {
        for (int attempt = 1;; ++attempt) {
            pick_ports();
            try {
                return std::make_unique<RunningSystem>(topology);
            } catch (const std::runtime_error& e) {
                if (attempt == 5 || !port_taken(e)) throw;
            }
        }
    }
    // Whether `e` is a bind that found its port taken (worth new ports and another try).
    static bool port_taken(const std::exception& e) {
        return std::string(e.what()).find("Address already in use") != std::string::npos;
    }
    std::string endpoint(const std::string& instance, const std::string& role) const {
        return topology.find(instance)->endpoint(role);
    }
};

// A socket of an outsider (no keys), of a host with `own` keys, in its own context.
struct Outsider {
    zmq::context_t context{1};
    zmq::socket_t socket;
    Outsider(zmq::socket_type type, const std::string& endpoint, const CurveKeyPair* own = nullptr,
             const std::string& server_key = {}) {
        socket = make_socket(context, type);
        socket.set(zmq::sockopt::linger, 0);
        if (own) make_curve_client(socket, *own, server_key);
        socket.connect(endpoint);
    }
};

// GET /messages of `user`, as the rest-gateway asks persistence: the reply, if one comes.
std::optional<Envelope> ask_messages(zmq::socket_t& dealer, const std::string& user,
                                     std::chrono::milliseconds wait) {
    Envelope request;
    request.kind = Kind::request;
    request.request_id = 7;
    request.method = "messages";
    request.from = user;
    request.payload = "{}";
    std::string scratch;
    send_envelope(dealer, request, scratch); // queued until a connection is up (or never)
    const auto deadline = Clock::now() + wait;
    Incoming incoming;
    while (Clock::now() < deadline) {
        zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, 50ms);
        if (receive_envelope(dealer, false, incoming) == ReceiveResult::ok) return incoming.envelope;
    }
    return std::nullopt;
}

// A client_message from `from` to `to` as a gateway pushes it to a message-router.
void push_message(zmq::socket_t& push, const std::string& from, const std::string& to,
                  const std::string& id) {
    Envelope message;
    message.kind = Kind::client_message;
    message.id = id;
    message.channel = "individual";
    message.from = from;
    message.to = to;
    message.route = Route::chat;
    message.created_at_ms = 1;
    nlohmann::json payload = text_message(id, to, "forged");
    payload["head"]["from"] = from;
    message.payload = payload.dump();
    std::string scratch;
    ASSERT_EQ(send_envelope(push, message, scratch), SendResult::ok);
}

// A sample of `instance`'s metrics port: `name{...}` whose labels match `labels` (-1: none).
double metric(const RunningSystem& system, const std::string& instance, const std::string& name,
              const std::string& labels = "") {
    const auto response = http_at(system.endpoint(instance, "metrics"), "GET", "/metrics");
    const std::regex line("\\n" + name + "\\{[^}]*" + labels + "[^}]*\\} ([0-9.e+]+)");
    std::smatch match;
    if (!std::regex_search(response.body, match, line)) return -1;
    return std::stod(match[1]);
}

// The daemon's vartalap_internal_refused_total{reason=...}.
double refused(const RunningSystem& system, const std::string& instance, const std::string& reason) {
    return metric(system, instance, "vartalap_internal_refused_total", "reason=\"" + reason + "\"");
}

TEST(CurveTest, ChatBetweenTwoUsersOverCurveTcp) {
    CurveCluster cluster;
    auto running = cluster.start();
    RunningSystem& system = *running;
    const LoggedIn alice = system.login("alice");
    const LoggedIn bob = system.login("bob");
    WsClient bob_ws = system.connect(bob);
    WsClient alice_ws = system.connect(alice);
    const auto hello = text_message("c-1", "bob", "hello over curve");
    ASSERT_TRUE(send_until_server_ack(alice_ws, hello.dump(), "c-1", test::scaled(10s)));
    const auto got = wait_for_id(bob_ws, "c-1", test::scaled(5s));
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)["body"]["text"], "hello over curve");
    EXPECT_EQ(refused(system, "persistence-1", "key"), 0);
}

TEST(CurveTest, PersistenceAnswersNoDealerWithoutTheKeys) {
    CurveCluster cluster;
    auto running = cluster.start();
    RunningSystem& system = *running;
    const std::string router = cluster.endpoint("persistence-1", "router");
    const auto wait = test::scaled(1500ms);

    // No keys at all: the handshake fails (NULL against CURVE).
    Outsider plain(zmq::socket_type::dealer, router);
    EXPECT_FALSE(ask_messages(plain.socket, "alice", wait));
    EXPECT_TRUE(wait_until([&] { return refused(system, "persistence-1", "handshake") >= 1; }, 5s));

    // A key pair of its own, and the server's real public key: ZAP refuses the key.
    const CurveKeyPair stranger = generate_curve_keypair();
    Outsider forged(zmq::socket_type::dealer, router, &stranger, cluster.core.public_key);
    EXPECT_FALSE(ask_messages(forged.socket, "alice", wait));
    EXPECT_TRUE(wait_until([&] { return refused(system, "persistence-1", "key") >= 1; }, 5s));

    // The same request with a host's keys is answered: the refusals above are the keys'.
    Outsider host(zmq::socket_type::dealer, router, &cluster.edge, cluster.core.public_key);
    const auto reply = ask_messages(host.socket, "alice", test::scaled(5s));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->kind, Kind::reply);
    EXPECT_EQ(reply->status, Status::ok);
}

TEST(CurveTest, PushWithoutTheKeysDeliversNothing) {
    CurveCluster cluster;
    auto running = cluster.start();
    RunningSystem& system = *running;
    WsClient bob_ws = system.connect(system.login("bob"));
    const std::string pull = cluster.endpoint("router-1", "pull");

    Outsider plain(zmq::socket_type::push, pull);
    push_message(plain.socket, "alice", "bob", "forged-1");
    const CurveKeyPair stranger = generate_curve_keypair();
    Outsider forged(zmq::socket_type::push, pull, &stranger, cluster.core.public_key);
    push_message(forged.socket, "alice", "bob", "forged-2");
    EXPECT_TRUE(wait_until([&] { return refused(system, "router-1", "key") >= 1 &&
                                        refused(system, "router-1", "handshake") >= 1; }, 5s));
    EXPECT_FALSE(wait_for_id(bob_ws, "forged-1", test::scaled(1s)));
    EXPECT_FALSE(wait_for_id(bob_ws, "forged-2", test::scaled(200ms)));

    // With a host's keys the same push is delivered: what stopped the others was CURVE.
    Outsider host(zmq::socket_type::push, pull, &cluster.edge, cluster.core.public_key);
    push_message(host.socket, "alice", "bob", "hosted-3");
    EXPECT_TRUE(wait_for_id(bob_ws, "hosted-3", test::scaled(5s)));
}

TEST(CurveTest, OversizedFrameIsDroppedAndTheRouterGoesOn) {
    CurveCluster cluster;
    auto running = cluster.start();
    RunningSystem& system = *running;
    const LoggedIn alice = system.login("alice");
    WsClient bob_ws = system.connect(system.login("bob"));
    const auto counter = [&](const std::string& name) {
        return metric(system, "router-1", "vartalap_message_router_" + name + "_total");
    };
    Outsider host(zmq::socket_type::push, cluster.endpoint("router-1", "pull"), &cluster.edge,
                  cluster.core.public_key);
    const auto send_frame = [&](std::size_t bytes) {
        const std::string body(bytes, 'x');
        host.socket.send(zmq::buffer(header_frame(Kind::client_message)), zmq::send_flags::sndmore);
        host.socket.send(zmq::buffer(body), zmq::send_flags::none);
    };
    // Over the envelope decoder's limit but under ZMQ_MAXMSGSIZE: read, counted malformed.
    send_frame(DecodeLimits{}.max_frame_bytes + 1);
    ASSERT_TRUE(wait_until([&] { return counter("malformed") == 1; }, 5s));
    // Over ZMQ_MAXMSGSIZE: ZeroMQ drops the connection before the frame is buffered, so the
    // decoder never sees it; the PUSH reconnects and the next message goes through.
    send_frame(static_cast<std::size_t>(kMaxInternalFrameBytes) + 1);
    // A message pushed right after it may still go down the connection the router is
    // dropping (ZeroMQ writes it behind the huge frame): as a sender without acks would,
    // push a new one every 200 ms until one arrives.
    bool arrived = false;
    for (int n = 0; !arrived && n < 25; ++n) {
        const std::string id = "after-huge-" + std::to_string(n);
        push_message(host.socket, "alice", "bob", id);
        arrived = wait_for_id(bob_ws, id, 200ms).has_value();
    }
    EXPECT_TRUE(arrived) << "nothing routed within 5 s after the oversized frame";
    ASSERT_TRUE(wait_until([&] { return counter("routed") >= 1; }, 5s));
    EXPECT_EQ(counter("malformed"), 1);

    WsClient alice_ws = system.connect(alice);
    const auto hello = text_message("c-2", "bob", "still here");
    ASSERT_TRUE(send_until_server_ack(alice_ws, hello.dump(), "c-2", test::scaled(10s)));
    EXPECT_TRUE(wait_for_id(bob_ws, "c-2", test::scaled(5s)));
}

TEST(CurveTest, StatusAsksCurveControlSocketsWithAHostKey) {
    CurveCluster cluster;
    auto running = cluster.start();
    RunningSystem& system = *running;
    // vartalapctl status: a host's readable secret key file makes it a CURVE client.
    EXPECT_TRUE(wait_until(
        [&] {
            const auto statuses = ctl::query_status(cluster.topology, "", test::scaled(2s));
            return ctl::status_exit_code(statuses) == 0 && statuses.size() == cluster.topology.daemons.size();
        },
        10s));
    // A plain DEALER gets no status from the same control socket.
    Outsider plain(zmq::socket_type::dealer, cluster.endpoint("session-1", "control"));
    plain.socket.send(zmq::message_t(), zmq::send_flags::sndmore);
    plain.socket.send(zmq::str_buffer("status"), zmq::send_flags::none);
    zmq::pollitem_t item{plain.socket.handle(), 0, ZMQ_POLLIN, 0};
    EXPECT_EQ(zmq::poll(&item, 1, test::scaled(1s)), 0);
    EXPECT_TRUE(wait_until([&] { return refused(system, "session-1", "handshake") >= 1; }, 5s));
}

TEST(CurveTest, ADaemonRefusesAKeyFileOthersCanReadOrOfAnotherHost) {
    CurveCluster cluster;
    const auto edge_file = cluster.topology.keys_of("edge")->secret_key_file;
    std::filesystem::permissions(edge_file, std::filesystem::perms::group_read,
                                 std::filesystem::perm_options::add);
    try {
        System system(cluster.topology);
        system.start();
        ADD_FAILURE() << "started with a key file of mode 0640";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("has mode 0640"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
    }
    std::filesystem::permissions(edge_file, std::filesystem::perms::group_read,
                                 std::filesystem::perm_options::remove);
    // core's secret file named for edge: its public key is not edge's.
    cluster.topology.host_keys["edge"].secret_key_file = cluster.topology.keys_of("core")->secret_key_file;
    try {
        System system(cluster.topology);
        system.start();
        ADD_FAILURE() << "started with another host's key";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("does not belong to host 'edge'"), std::string::npos)
            << e.what();
    }
}

TEST(CurveTest, ValidateRefusesPlainTcpUnlessInsecureTcp) {
    TempDir dir;
    std::ifstream in(std::filesystem::path(VARTALAP_SOURCE_DIR) / "topology/cluster-example.toml");
    std::stringstream text;
    text << in.rdbuf();
    // The example without its [host.*] keys.
    const std::string plain = std::regex_replace(
        text.str(), std::regex(R"(\[host\.[a-z-]+\]\npublic_key = "[^"]*"\nsecret_key_file = "[^"]*"\n)"), "");
    ASSERT_EQ(plain.find("public_key"), std::string::npos);
    const auto run = [&](const std::string& toml) {
        const auto file = dir.path() / "t.toml";
        std::ofstream(file) << toml;
        Child child({VARTALAPCTL_PATH, "validate", file.string()}, /*merge_stderr=*/true);
        const std::string output = child.output(10s);
        return std::make_pair(child.wait_exit(10s).value_or(-1), output);
    };
    const auto [keys_code, keys_output] = run(text.str());
    EXPECT_EQ(keys_code, 0) << keys_output;
    const auto [plain_code, plain_output] = run(plain);
    EXPECT_EQ(plain_code, 1);
    EXPECT_NE(plain_output.find("is tcp:// without CURVE keys"), std::string::npos) << plain_output;
    const auto [insecure_code, insecure_output] =
        run(std::regex_replace(plain, std::regex(R"(\[system\]\n)"), "[system]\ninsecure_tcp = true\n"));
    EXPECT_EQ(insecure_code, 0) << insecure_output;
    EXPECT_NE(insecure_output.find("insecure_tcp = true"), std::string::npos) << insecure_output;
}

TEST(CurveTest, ARestartedGatewayServesOnlyOnceItHoldsTheRevocationList) {
    // alice logs out; then the gateways restart while the profile daemon is down. Until
    // they hold the revocation list they cannot tell her revoked key from a good one, so
    // every authenticated request is refused with 503 "server starting, retry" (never
    // served); once profile is back, bob is served and alice's key is refused with 401.
    CurveCluster cluster;
    LoggedIn alice, bob;
    {
        auto running = cluster.start();
        alice = running->login("alice");
        bob = running->login("bob");
        const auto logout = running->http("POST", "/v1.0/logout", {}, auth(alice));
        ASSERT_EQ(logout.status, 200) << logout.body;
    }
    // The edge starts first, on fresh ports; the core's ports are picked with them, and
    // until the core binds them the edge keeps connecting to them. A connect to a port
    // nobody listens on can take it as its own local port (the kernel's TCP self-connect,
    // held until ZeroMQ's handshake gives up), so a core that cannot bind starts the
    // restart again on new ports.
    // The HTTP status of a WebSocket upgrade of `who` at `edge` (101: upgraded).
    const auto upgrade_at = [](RunningSystem& edge, const LoggedIn& who) {
        auto client = WsClient::connect("127.0.0.1", edge.ws_port(), "/wss/", auth(who));
        return std::holds_alternative<int>(client) ? std::get<int>(client) : 101;
    };
    std::unique_ptr<RunningSystem> edge_system, core;
    for (int attempt = 1; !core; ++attempt) {
        core.reset();
        edge_system.reset();
        cluster.pick_ports();
        try {
            edge_system = std::make_unique<RunningSystem>(cluster.topology, "edge", /*wait_serving=*/false);
        } catch (const std::runtime_error& e) {
            if (attempt == 5 || !CurveCluster::port_taken(e)) throw;
            continue;
        }
        RunningSystem& edge = *edge_system;
        EXPECT_EQ(edge.system().wait_serving(300ms).size(), 2u); // both gateways wait
        EXPECT_EQ(upgrade_at(edge, alice), 503);
        EXPECT_EQ(upgrade_at(edge, bob), 503);
        const auto early = edge.http("GET", "/v1.0/profile", {}, auth(alice));
        EXPECT_EQ(early.status, 503) << early.body;
        EXPECT_EQ(early.body, R"({"error":"server starting, retry"})");
        EXPECT_EQ(edge.http("GET", "/v1.0/alive").status, 200); // unauthenticated paths serve
        try {
            core = std::make_unique<RunningSystem>(cluster.topology, "core");
        } catch (const std::runtime_error& e) {
            if (attempt == 5 || !CurveCluster::port_taken(e)) throw;
        }
    }
    RunningSystem& edge = *edge_system;
    EXPECT_TRUE(edge.system().wait_serving(test::scaled(10s)).empty());
    EXPECT_EQ(upgrade_at(edge, bob), 101);
    EXPECT_EQ(upgrade_at(edge, alice), 401);
    EXPECT_EQ(edge.http("GET", "/v1.0/profile", {}, auth(alice)).status, 401);
    EXPECT_EQ(edge.http("GET", "/v1.0/profile", {}, auth(bob)).status, 200);
}

} // namespace
} // namespace vartalap::testing
