// topology/local-multiprocess.toml as real processes: `vartalapctl up --spawn` starts one
// vartalapd per daemon over ipc://, users on the two ws-gateways chat, one session shard is
// killed with SIGKILL and restarted by the supervisor, and SIGTERM stops everything cleanly.
#include "tests/integration/support/group_load.hpp"
#include "tests/integration/support/spawned_supervisor.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "topology/shard_map.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// local-multiprocess.toml with kernel-chosen listen ports, its ipc:// socket files under
// `dir`/ipc and its data under `dir`/data, written to `file`.
void write_test_topology(const std::filesystem::path& file, const std::filesystem::path& dir) {
    std::ifstream in(std::filesystem::path(VARTALAP_SOURCE_DIR) / "topology/local-multiprocess.toml");
    std::stringstream text;
    text << in.rdbuf();
    std::string toml = std::regex_replace(text.str(), std::regex(R"(127\.0\.0\.1:\d+)"), "127.0.0.1:0");
    toml = std::regex_replace(toml, std::regex(R"(ipc:///tmp/vartalap-local/)"),
                              "ipc://" + (dir / "ipc").string() + "/");
    toml = std::regex_replace(toml, std::regex(R"(data_dir\s*=\s*"[^"]*")"),
                              "data_dir = \"" + (dir / "data").string() + "\"");
    // The group-copies test sends 500 messages from one user at once.
    std::ofstream(file) << without_send_limit(toml);
}

// A user id whose session shard (index into ShardMap::instances()) is `shard`.
std::string user_on_shard(const topology::ShardMap& shards, std::size_t shard, const std::string& prefix) {
    for (int n = 0;; ++n) {
        std::string user = prefix + "-" + std::to_string(n);
        if (shards.index_for(user) == shard) return user;
    }
}

LoggedIn login(int rest_port, const std::string& user) {
    const json body = {{"username", user}, {"authToken", "dev-token"},
                       {"notificationToken", "fcm-" + user}, {"deviceId", "default"}};
    const auto response = http_request("127.0.0.1", rest_port, "POST", "/v1.0/login", body.dump(), {});
    EXPECT_EQ(response.status, 200) << response.body;
    const auto reply = json::parse(response.body, nullptr, false);
    if (response.status != 200 || !reply.is_object() || !reply.contains("accesskey"))
        throw std::runtime_error("login of " + user + " failed: " + response.body);
    return {user, reply["accesskey"].get<std::string>()};
}

WsClient connect(int ws_port, const LoggedIn& who) {
    auto result = WsClient::connect("127.0.0.1", ws_port, "/wss?ack=true",
                                    {{"user", who.user}, {"accesskey", who.access_key}});
    if (auto* status = std::get_if<int>(&result))
        throw std::runtime_error("WebSocket upgrade refused with HTTP " + std::to_string(*status));
    return std::move(std::get<WsClient>(result));
}

// `from` sends `id` to `to`: SERVER_ACK to the sender, the message to the recipient.
void send_and_deliver(WsClient& from_ws, WsClient& to_ws, const std::string& to,
                      const std::string& id, std::chrono::milliseconds deadline = 5s) {
    ASSERT_TRUE(send_until_server_ack(from_ws, text_message(id, to, "text of " + id).dump(), id, deadline))
        << "no SERVER_ACK for " << id << " (close code " << from_ws.close_code() << ", reason '"
        << from_ws.close_reason() << "')";
    auto got = wait_for_id(to_ws, id, deadline);
    ASSERT_TRUE(got) << id << " not delivered";
    EXPECT_EQ((*got)["body"]["text"], "text of " + id);
}

// `reader` acks `id` (sent by `sender`) with a delivered receipt, which reaches the sender.
void receipt_reaches_sender(WsClient& reader_ws, WsClient& sender_ws, const std::string& sender,
                            const std::string& id) {
    const std::string receipt_id = "rc-" + id;
    ASSERT_TRUE(reader_ws.send_text(receipt(receipt_id, sender, {id}).dump()));
    auto got = wait_for_id(sender_ws, receipt_id);
    ASSERT_TRUE(got) << "receipt of " << id << " not delivered";
    EXPECT_EQ((*got)["head"]["action"], "state");
    EXPECT_EQ((*got)["body"]["ids"], json::array({id}));
}

TEST(MultiprocessTest, ChatAcrossGatewaysSurvivesKillOfASessionShard) {
    TempDir dir;
    const auto file = dir.path() / "multiprocess.toml";
    write_test_topology(file, dir.path());
    auto loaded = topology::load_file(file);
    ASSERT_TRUE(loaded.topology) << (loaded.errors.empty() ? "" : loaded.errors.front().str());
    const topology::Topology& topo = *loaded.topology;
    const topology::ShardMap sessions(topo, "session");
    ASSERT_EQ(sessions.instances().size(), 2u);
    ASSERT_EQ(topo.of_kind("ws-gateway").size(), 2u);
    ASSERT_EQ(topo.of_kind("rest-gateway").size(), 1u);

    // alice and carol on the shard that stays up, bob on the one that is killed.
    const std::string alice_id = user_on_shard(sessions, 0, "alice");
    const std::string carol_id = user_on_shard(sessions, 0, "carol");
    const std::string bob_id = user_on_shard(sessions, 1, "bob");
    const std::string killed = sessions.instances()[1]->name;

    Supervisor supervisor({VARTALAPCTL_PATH, "up", file.string(), "--spawn"});
    std::map<std::string, int> listen_ports;
    bool ready = false;
    while (auto text = supervisor.line(30s)) {
        std::smatch m;
        if (std::regex_match(*text, m, std::regex(R"(listening (\S+) listen 127\.0\.0\.1:(\d+))")))
            listen_ports[m[1]] = std::stoi(m[2]);
        if (*text == "ready") {
            ready = true;
            break;
        }
    }
    ASSERT_TRUE(ready) << "the supervisor did not print ready within 30 s";
    ASSERT_EQ(supervisor.pids().size(), topo.daemons.size());
    const int ws1_port = listen_ports[topo.of_kind("ws-gateway")[0]->name];
    const int ws2_port = listen_ports[topo.of_kind("ws-gateway")[1]->name];
    const int rest_port = listen_ports[topo.of_kind("rest-gateway")[0]->name];
    ASSERT_NE(ws1_port, 0);
    ASSERT_NE(ws2_port, 0);
    ASSERT_NE(rest_port, 0);

    const LoggedIn alice = login(rest_port, alice_id);
    const LoggedIn bob = login(rest_port, bob_id);
    const LoggedIn carol = login(rest_port, carol_id);
    WsClient alice_ws = connect(ws1_port, alice); // gateway 1
    WsClient bob_ws = connect(ws2_port, bob);     // gateway 2
    WsClient carol_ws = connect(ws2_port, carol); // gateway 2

    // Across the two gateways and the two session shards, both ways, with receipts.
    send_and_deliver(alice_ws, bob_ws, bob.user, "a-1");
    receipt_reaches_sender(bob_ws, alice_ws, alice.user, "a-1");
    send_and_deliver(bob_ws, alice_ws, alice.user, "b-1");
    receipt_reaches_sender(alice_ws, bob_ws, bob.user, "b-1");
    if (HasFatalFailure()) return;

    // Accepted (SERVER_ACK: durable at bob's shard) and delivered, but bob does not ack it.
    send_and_deliver(alice_ws, bob_ws, bob.user, "a-pending");
    if (HasFatalFailure()) return;

    const int old_pid = supervisor.pid_of(killed);
    ASSERT_GT(old_pid, 0);
    ASSERT_EQ(::kill(old_pid, SIGKILL), 0);

    // The other shard does not notice: alice (gateway 1) and carol (gateway 2) chat on.
    send_and_deliver(alice_ws, carol_ws, carol.user, "a-c-1");
    receipt_reaches_sender(carol_ws, alice_ws, alice.user, "a-c-1");
    send_and_deliver(carol_ws, alice_ws, alice.user, "c-a-1");
    receipt_reaches_sender(alice_ws, carol_ws, carol.user, "c-a-1");
    if (HasFatalFailure()) return;

    // The supervisor saw the crash and starts the shard again after its 1 s backoff.
    ASSERT_TRUE(supervisor.wait_for("exited " + killed + " pid " + std::to_string(old_pid) +
                                        " killed by signal 9 \\(SIGKILL\\)",
                                    10s));
    ASSERT_TRUE(supervisor.wait_for("ready " + killed, 15s)) << killed << " was not restarted";
    EXPECT_NE(supervisor.pid_of(killed), old_pid);

    // The restarted shard asks the gateways who is connected (a resync), so bob, who stayed
    // connected throughout, gets the message accepted before the crash without reconnecting.
    auto pending = wait_for_id(bob_ws, "a-pending", 20s);
    ASSERT_TRUE(pending) << "the message accepted before the crash was not delivered";
    EXPECT_EQ((*pending)["body"]["text"], "text of a-pending");
    receipt_reaches_sender(bob_ws, alice_ws, alice.user, "a-pending");

    // And the restarted shard serves new traffic both ways.
    send_and_deliver(alice_ws, bob_ws, bob.user, "a-2", 10s);
    receipt_reaches_sender(bob_ws, alice_ws, alice.user, "a-2");
    send_and_deliver(bob_ws, alice_ws, alice.user, "b-2", 10s);
    if (HasFatalFailure()) return;

    // SIGTERM: every child drains and exits, the supervisor exits 0, within 10 s.
    const auto pids = supervisor.pids();
    const auto started = std::chrono::steady_clock::now();
    supervisor.signal(SIGTERM);
    // The gateways close the WebSockets with 1001 (going away) as they drain.
    for (WsClient* ws : {&alice_ws, &bob_ws, &carol_ws}) {
        EXPECT_FALSE(ws->read_text(5s));
        EXPECT_EQ(ws->close_code(), 1001);
    }
    const auto status = supervisor.wait_exit(10s);
    ASSERT_TRUE(status) << "the supervisor did not exit within 10 s of SIGTERM";
    EXPECT_EQ(*status, 0);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
    for (const auto& [instance, pid] : pids) {
        errno = 0;
        EXPECT_EQ(::kill(pid, 0), -1) << instance << " (pid " << pid << ") is still running";
        EXPECT_EQ(errno, ESRCH) << instance;
    }
}

// Issue 14, section 1: a session shard killed with SIGKILL 0.3 s after a REST send of 500
// group messages to 100 members was accepted loses none of the 50,000 copies: those in its
// receive queue were never confirmed, so the group-router sends them again (after its
// confirm_timeout_ms, 2 s here), and the restarted shard stores them.
TEST(MultiprocessTest, GroupCopiesSurviveTheKillOfASessionShard) {
    TempDir dir;
    const auto file = dir.path() / "multiprocess.toml";
    write_test_topology(file, dir.path());
    {
        std::ifstream in(file);
        std::stringstream text;
        text << in.rdbuf();
        in.close();
        const std::string toml = std::regex_replace(text.str(), std::regex(R"(# confirm_timeout_ms = 10000)"),
                                                    "confirm_timeout_ms = 2000");
        ASSERT_NE(toml, text.str()) << "no confirm_timeout_ms line in local-multiprocess.toml";
        std::ofstream(file) << toml;
    }
    auto loaded = topology::load_file(file);
    ASSERT_TRUE(loaded.topology) << (loaded.errors.empty() ? "" : loaded.errors.front().str());
    const topology::ShardMap sessions(*loaded.topology, "session");
    ASSERT_EQ(sessions.instances().size(), 2u);
    const std::string killed = sessions.instances()[1]->name;

    Supervisor supervisor({VARTALAPCTL_PATH, "up", file.string(), "--spawn"});
    int rest_port = 0;
    while (auto text = supervisor.line(30s)) {
        std::smatch m;
        if (std::regex_match(*text, m, std::regex(R"(listening rest-\S+ listen 127\.0\.0\.1:(\d+))")))
            rest_port = std::stoi(m[1]);
        if (*text == "ready") break;
    }
    ASSERT_NE(rest_port, 0) << "the supervisor did not print ready within 30 s";

    GroupLoad load(rest_port, "shard", 100);
    std::size_t on_killed = 0;
    for (const std::string& member : load.member_names()) on_killed += sessions.index_for(member) == 1;
    ASSERT_GT(on_killed, 20u); // a fair share of the copies go to the shard that is killed

    ASSERT_NO_FATAL_FAILURE(load.create_group());
    const auto accepted = load.send_messages(500);
    ASSERT_TRUE(accepted);
    std::this_thread::sleep_until(*accepted + 300ms); // the scenario's delay, not a wait for a condition
    const int old_pid = supervisor.pid_of(killed);
    ASSERT_GT(old_pid, 0);
    ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
    ASSERT_TRUE(supervisor.wait_for("ready " + killed, 15s)) << killed << " was not restarted";

    const auto started = std::chrono::steady_clock::now();
    const GroupLoad::Count count = load.wait_for_every_copy(60s);
    std::printf("group copies: %zu of %zu readable %.1f s after %s restarted (%zu duplicates)\n",
                count.present, load.expected(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                killed.c_str(), count.duplicates);
    EXPECT_EQ(count.present, load.expected()) << "group copies lost: " << load.expected() - count.present;

    supervisor.signal(SIGTERM);
    EXPECT_TRUE(supervisor.wait_exit(15s));
}

// Issue 11, section 2: a logout at the rest-gateway reaches both ws-gateway processes within
// a second (the open socket closes with 4001, the other gateway refuses the upgrade), the
// other device's key stays good, and the revocation outlives a SIGKILL of the profile daemon
// and of a gateway.
TEST(MultiprocessTest, LogoutReachesEveryGatewayProcessAndSurvivesKills) {
    TempDir dir;
    const auto file = dir.path() / "multiprocess.toml";
    write_test_topology(file, dir.path());
    auto loaded = topology::load_file(file);
    ASSERT_TRUE(loaded.topology);
    const topology::Topology& topo = *loaded.topology;
    const std::string ws1 = topo.of_kind("ws-gateway")[0]->name;
    const std::string ws2 = topo.of_kind("ws-gateway")[1]->name;
    const std::string profile = topo.of_kind("profile")[0]->name;

    Supervisor supervisor({VARTALAPCTL_PATH, "up", file.string(), "--spawn"});
    std::map<std::string, int> ports;
    bool ready = false;
    while (auto text = supervisor.line(30s)) {
        std::smatch m;
        if (std::regex_match(*text, m, std::regex(R"(listening (\S+) listen 127\.0\.0\.1:(\d+))")))
            ports[m[1]] = std::stoi(m[2]);
        if (*text == "ready") {
            ready = true;
            break;
        }
    }
    ASSERT_TRUE(ready) << "the supervisor did not print ready within 30 s";
    const int rest_port = ports[topo.of_kind("rest-gateway")[0]->name];
    const LoggedIn phone = login(rest_port, "alice");
    const LoggedIn tablet = login(rest_port, "alice");
    ASSERT_NE(phone.access_key, tablet.access_key);
    auto upgrade_status = [](int port, const LoggedIn& who) {
        auto result = WsClient::connect("127.0.0.1", port, "/wss", {{"user", who.user}, {"accesskey", who.access_key}});
        return std::holds_alternative<int>(result) ? std::get<int>(result) : 101;
    };
    auto rest_status = [&](const LoggedIn& who) {
        return http_request("127.0.0.1", rest_port, "GET", "/v1.0/profile", {},
                            {{"user", who.user}, {"accesskey", who.access_key}}).status;
    };
    // Within `deadline`, `check` holds (each call is a round trip to a gateway).
    auto within = [](std::chrono::milliseconds deadline, const std::function<bool()>& check) {
        const auto until = std::chrono::steady_clock::now() + deadline;
        do {
            if (check()) return true;
        } while (std::chrono::steady_clock::now() < until);
        return false;
    };

    WsClient phone_ws = connect(ports[ws1], phone);
    const auto logout = http_request("127.0.0.1", rest_port, "POST", "/logout", {},
                                     {{"user", "alice"}, {"accesskey", phone.access_key}});
    ASSERT_EQ(logout.status, 200) << logout.body;
    const auto logged_out = std::chrono::steady_clock::now();
    EXPECT_FALSE(phone_ws.read_json_matching([](const json&) { return false; }, 1500ms));
    EXPECT_EQ(phone_ws.close_code(), 4001);
    EXPECT_LT(std::chrono::steady_clock::now() - logged_out, 1s) << "the socket was closed too late";
    EXPECT_TRUE(within(1s, [&] { return upgrade_status(ports[ws2], phone) == 401; }));
    EXPECT_LT(std::chrono::steady_clock::now() - logged_out, 1500ms);
    EXPECT_EQ(rest_status(phone), 401);
    EXPECT_EQ(rest_status(tablet), 200);
    EXPECT_EQ(upgrade_status(ports[ws2], tablet), 101);

    // SIGKILL the profile daemon and the second gateway; the supervisor restarts both.
    for (const std::string& instance : {profile, ws2}) {
        const int pid = supervisor.pid_of(instance);
        ASSERT_GT(pid, 0);
        ASSERT_EQ(::kill(pid, SIGKILL), 0);
        if (instance == ws2) {
            auto port = supervisor.wait_for("listening " + ws2 + R"( listen 127\.0\.0\.1:(\d+))", 15s);
            ASSERT_TRUE(port) << ws2 << " was not restarted";
            ports[ws2] = std::stoi((*port)[1]);
        }
        ASSERT_TRUE(supervisor.wait_for("ready " + instance, 15s)) << instance << " was not restarted";
    }
    EXPECT_TRUE(within(1s, [&] { return upgrade_status(ports[ws2], phone) == 401; }));
    EXPECT_EQ(upgrade_status(ports[ws1], phone), 401);
    EXPECT_EQ(upgrade_status(ports[ws2], tablet), 101);
    // The restarted profile daemon still has the list and takes a new logout.
    EXPECT_EQ(http_request("127.0.0.1", rest_port, "POST", "/logout", {},
                           {{"user", "alice"}, {"accesskey", tablet.access_key}}).status, 200);
    EXPECT_TRUE(within(1s, [&] { return upgrade_status(ports[ws1], tablet) == 401; }));

    supervisor.signal(SIGTERM);
    EXPECT_TRUE(supervisor.wait_exit(15s));
}

TEST(MultiprocessTest, SpawnRefusesInprocTopology) {
    // local.toml wires its daemons over inproc://, which only works inside one process.
    Supervisor supervisor({VARTALAPCTL_PATH, "up",
                           (std::filesystem::path(VARTALAP_SOURCE_DIR) / "topology/local.toml").string(),
                           "--spawn"});
    const auto status = supervisor.wait_exit(10s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 1);
}

} // namespace
} // namespace vartalap::testing
