// Issue 13, section 3: one system on three hosts. Each host is a network namespace (root
// only; skipped otherwise) joined to the others by veth pairs, with an address from
// 198.18.0.0/15 (support/host_network.hpp). The topology is written as an operator would:
// tcp:// endpoints on the hosts' addresses, CURVE keys made by `vartalapctl keys`, each
// host's part rendered by `vartalapctl units --host`; each host runs `ip netns exec NS
// vartalapctl up FILE --spawn --host H`. Checked: a chat between users on gateways of two
// hosts, an offline message stored on one host delivered through another, `vartalapctl
// status` across the hosts, and every process of a host killed with SIGKILL at once (a host
// crash) and started again without losing a message that had its SERVER_ACK.
//
//   host-a: ws-1, router-1, session-1, persistence-1  (slots 0-8191)
//   host-b: ws-2, router-2, session-2, persistence-2  (slots 8192-16383)  <- crashed
//   host-c: rest-1, profile-1 (Firebase tokens, signed by the test), group-1, group-router-1
#include "tests/integration/support/host_network.hpp"
#include "tests/integration/support/spawned_supervisor.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/id_tokens.hpp"
#include "topology/shard_map.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kProject = "vartalap-three-hosts";
const std::vector<std::string> kHosts = {"host-a", "host-b", "host-c"};

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The three-host topology on the network's addresses; `keys` are the [host.*] tables that
// `vartalapctl keys` printed.
std::string three_host_topology(const HostNetwork& net, const std::filesystem::path& dir,
                                const std::string& keys) {
    const std::string a = net.address_of("host-a");
    const std::string b = net.address_of("host-b");
    const std::string c = net.address_of("host-c");
    const char* durability_env = std::getenv("VARTALAP_TEST_DURABILITY");
    const std::string durability = durability_env ? durability_env : "fsync";
    std::ostringstream t;
    t << "[system]\nname = \"three-hosts\"\ndata_dir = \"" << (dir / "data").string() << "\"\n"
      << "log_level = \"warn\"\n"
      << "secret = \"hex:" << std::string(64, 'a') << "3c\"   # the same on every host\n\n"
      << keys;
    auto daemon = [&](const std::string& kind, const std::string& name, const std::string& host,
                      const std::string& endpoints) {
        t << "\n[[daemon]]\nkind = \"" << kind << "\"\nname = \"" << name << "\"\nhost = \"" << host
          << "\"\n" << endpoints;
    };
    auto tcp = [](const std::string& address, int port) {
        return "\"tcp://" + address + ":" + std::to_string(port) + "\"";
    };
    for (const auto& [host, address, n, slots] :
         {std::tuple{std::string("host-a"), a, 1, "0-8191"}, std::tuple{std::string("host-b"), b, 2, "8192-16383"}}) {
        const std::string i = std::to_string(n);
        daemon("ws-gateway", "ws-" + i, host,
               "listen = \"" + address + ":8080\"\nrouter = " + tcp(address, 6001) +
                   "\ncontrol = " + tcp(address, 6901) + "\n");
        daemon("message-router", "router-" + i, host,
               "pull = " + tcp(address, 6101) + "\ncontrol = " + tcp(address, 6911) + "\n");
        daemon("session", "session-" + i, host,
               "pull = " + tcp(address, 6201) + "\nslots = \"" + slots + "\"\ncontrol = " +
                   tcp(address, 6921) + "\n[daemon.options]\ndurability = \"" + durability + "\"\n");
        daemon("persistence", "persistence-" + i, host,
               "pull = " + tcp(address, 6301) + "\nrouter = " + tcp(address, 6302) + "\nslots = \"" +
                   slots + "\"\ncontrol = " + tcp(address, 6931) + "\n[daemon.options]\ndurability = \"" +
                   durability + "\"\n");
    }
    daemon("rest-gateway", "rest-1", "host-c",
           "listen = \"" + c + ":8081\"\nrouter = " + tcp(c, 6002) + "\ncontrol = " + tcp(c, 6902) + "\n");
    daemon("profile", "profile-1", "host-c",
           "router = " + tcp(c, 6401) + "\ncontrol = " + tcp(c, 6941) +
               "\n[daemon.options]\nidentity_provider = \"firebase\"\nfirebase_project_id = \"" + kProject +
               "\"\nfirebase_certificates_file = \"" + (dir / "certificates.json").string() + "\"\n");
    daemon("group", "group-1", "host-c", "router = " + tcp(c, 6501) + "\ncontrol = " + tcp(c, 6951) + "\n");
    daemon("group-router", "group-router-1", "host-c",
           "pull = " + tcp(c, 6601) + "\nrouter = " + tcp(c, 6602) + "\ncontrol = " + tcp(c, 6961) + "\n");
    return t.str();
}

std::string user_on_shard(const topology::ShardMap& shards, std::size_t shard, const std::string& prefix) {
    for (int n = 0;; ++n) {
        std::string user = prefix + "-" + std::to_string(n);
        if (shards.index_for(user) == shard) return user;
    }
}

std::set<std::string> instances_on(const topology::Topology& topo, const std::string& host) {
    std::set<std::string> names;
    for (const auto& spec : topo.daemons)
        if (spec.host == host) names.insert(spec.name);
    return names;
}

class ThreeHostsTest : public ::testing::Test {
protected:
    void SetUp() override {
        net_ = std::make_unique<HostNetwork>(kHosts);
        if (!net_->ok()) GTEST_SKIP() << "three hosts need network namespaces: " << net_->error();
    }

    // `ip netns exec NS vartalapctl up FILE --spawn --host H` until it prints "ready".
    std::unique_ptr<Supervisor> start_host(const std::string& host) {
        auto supervisor = std::make_unique<Supervisor>(std::vector<std::string>{
            net_->ip(), "netns", "exec", net_->namespace_of(host), VARTALAPCTL_PATH, "up",
            file_.string(), "--spawn", "--host", host});
        return supervisor;
    }

    LoggedIn login(const std::string& user) {
        const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch()).count();
        const json body = {{"username", user},
                           {"authToken", signer_.token(testing_tokens::header("k1"),
                                                       testing_tokens::claims(kProject, "sub-" + user, now))},
                           {"notificationToken", "fcm-" + user}, {"deviceId", "default"}};
        const auto response = http_request(net_->address_of("host-c"), 8081, "POST", "/v1.0/login", body.dump(), {});
        const auto reply = json::parse(response.body, nullptr, false);
        if (response.status != 200 || !reply.is_object() || !reply.contains("accesskey"))
            throw std::runtime_error("login of " + user + ": HTTP " + std::to_string(response.status) + " " +
                                     response.body);
        return {user, reply["accesskey"].get<std::string>()};
    }

    // A WebSocket (with SERVER_ACKs) to the ws-gateway of `host`.
    WsClient connect(const std::string& host, const LoggedIn& who) {
        auto result = WsClient::connect(net_->address_of(host), 8080, "/wss?ack=true", auth(who));
        if (auto* status = std::get_if<int>(&result))
            throw std::runtime_error("upgrade at " + host + " answered HTTP " + std::to_string(*status));
        return std::move(std::get<WsClient>(result));
    }

    // Every process of `host`'s namespace stopped (SIGSTOP, so the supervisor restarts
    // nothing), then killed with SIGKILL: no daemon drains or syncs anything.
    void crash_host(const std::string& host) {
        std::set<pid_t> stopped;
        for (bool more = true; more;) { // until no process appeared since the last look
            more = false;
            for (pid_t pid : net_->pids(host))
                if (stopped.insert(pid).second) {
                    ::kill(pid, SIGSTOP);
                    more = true;
                }
        }
        ASSERT_GE(stopped.size(), 5u) << "the supervisor and its four daemons";
        for (pid_t pid : stopped) ::kill(pid, SIGKILL);
        // kill() returns before the processes are gone; their sockets close as they exit.
        ASSERT_TRUE(wait_until([&] { return net_->pids(host).empty(); }, 10s))
            << "processes of " << host << " still there 10 s after SIGKILL";
    }

    // As a client with ack=true does (PROTOCOL.md): a message without a SERVER_ACK within 5 s
    // is sent again, same id (the server drops the duplicate). A message the gateway pushed
    // to a router at the moment that router's host died is lost before anything acknowledged
    // it (the gateway's ZeroMQ thread has not yet read the connection's end, so its PUSH
    // still round-robins onto it); the resend covers it. Receipts too: they get a SERVER_ACK
    // like any stored message.
    static bool send_as_app(WsClient& from, const std::string& text, const std::string& id) {
        for (int attempt = 0; attempt < 3; ++attempt) {
            if (send_until_server_ack(from, text, id, 5s)) return true;
            std::printf("no SERVER_ACK for %s within 5 s: sent again\n", id.c_str());
        }
        return false;
    }

    void send_and_deliver(WsClient& from, WsClient& to, const std::string& to_user, const std::string& id) {
        ASSERT_TRUE(send_as_app(from, text_message(id, to_user, "text of " + id).dump(), id))
            << "no SERVER_ACK for " << id << "\n" << counters_of_every_daemon();
        auto got = wait_for_id(to, id, 10s);
        ASSERT_TRUE(got) << id << " not delivered\n" << counters_of_every_daemon();
        EXPECT_EQ((*got)["body"]["text"], "text of " + id);
    }

    void receipt_reaches_sender(WsClient& reader, WsClient& sender, const std::string& sender_user,
                                const std::string& id) {
        ASSERT_TRUE(send_as_app(reader, receipt("rc-" + id, sender_user, {id}).dump(), "rc-" + id))
            << "no SERVER_ACK for the receipt of " << id << "\n" << counters_of_every_daemon();
        auto got = wait_for_id(sender, "rc-" + id, 10s);
        ASSERT_TRUE(got) << "receipt of " << id << " not delivered\n" << counters_of_every_daemon();
        EXPECT_EQ((*got)["body"]["ids"], json::array({id}));
    }

    // For a failure's message: the non-zero counters of every daemon that answers
    // (`vartalapctl status --json`), one line each, to show where a message stopped.
    std::string counters_of_every_daemon() const {
        const CommandResult status = run_command({VARTALAPCTL_PATH, "status", "--json", file_.string()});
        const json daemons = json::parse(status.output, nullptr, false);
        if (!daemons.is_array()) return "vartalapctl status: " + status.output;
        std::string out;
        for (const json& daemon : daemons) {
            out += daemon.value("instance", "?") + " (" + daemon.value("health", "?") + "):";
            if (daemon.contains("counters") && daemon["counters"].is_object())
                for (const auto& [name, value] : daemon["counters"].items())
                    if (value.is_number() && value.get<double>() != 0) out += " " + name + "=" + value.dump();
            out += "\n";
        }
        return out;
    }

    // `vartalapctl status FILE` from the test's namespace: every daemon of every host ok.
    void expect_status_ok(std::size_t daemons) {
        const CommandResult status = run_command({VARTALAPCTL_PATH, "status", file_.string()});
        EXPECT_EQ(status.status, 0) << status.output;
        const std::string all = std::to_string(daemons);
        EXPECT_NE(status.output.find(all + " daemons: " + all + " ok"), std::string::npos) << status.output;
        for (const std::string& host : kHosts) EXPECT_NE(status.output.find(host), std::string::npos);
    }

    std::unique_ptr<HostNetwork> net_;
    TempDir dir_;
    std::filesystem::path file_ = dir_.path() / "three-hosts.toml";
    testing_crypto::TestCa ca_;
    testing_tokens::Signer signer_{ca_};
};

TEST_F(ThreeHostsTest, ChatOfflineDeliveryStatusAndAHostCrash) {
    // The operator's steps: keys for the three hosts, the file, validate, each host's units.
    const CommandResult keys = run_command({VARTALAPCTL_PATH, "keys", (dir_.path() / "curve").string(),
                                            "--host", "host-a", "--host", "host-b", "--host", "host-c"});
    ASSERT_EQ(keys.status, 0) << keys.output;
    std::ofstream(dir_.path() / "certificates.json") << json{{"k1", signer_.certificate_pem()}}.dump();
    std::ofstream(file_) << three_host_topology(*net_, dir_.path(), keys.output);
    const CommandResult valid = run_command({VARTALAPCTL_PATH, "validate", file_.string()});
    ASSERT_EQ(valid.status, 0) << valid.output << read_file(file_);
    auto loaded = topology::load_file(file_);
    ASSERT_TRUE(loaded.topology);
    const topology::Topology& topo = *loaded.topology;
    for (const std::string& host : kHosts) {
        const auto units = dir_.path() / ("units-" + host);
        const CommandResult rendered =
            run_command({VARTALAPCTL_PATH, "units", "--host", host, file_.string(), units.string()});
        ASSERT_EQ(rendered.status, 0) << rendered.output;
        std::set<std::string> wanted;
        const std::string target = read_file(units / "vartalap.target");
        const std::regex wants(R"(Wants=vartalap-[a-z-]+@(\S+)\.service)");
        for (auto it = std::sregex_iterator(target.begin(), target.end(), wants); it != std::sregex_iterator(); ++it)
            wanted.insert((*it)[1]);
        EXPECT_EQ(wanted, instances_on(topo, host)) << target;
    }

    const topology::ShardMap sessions(topo, "session");
    ASSERT_EQ(sessions.instances().size(), 2u);
    ASSERT_EQ(sessions.instances()[1]->host, "host-b");
    const std::string alice_id = user_on_shard(sessions, 0, "alice"); // session on host-a
    const std::string erin_id = user_on_shard(sessions, 0, "erin");
    const std::string bob_id = user_on_shard(sessions, 1, "bob"); // session on host-b
    const std::string carol_id = user_on_shard(sessions, 1, "carol");
    const std::string dave_id = user_on_shard(sessions, 1, "dave");

    const auto started = std::chrono::steady_clock::now();
    std::map<std::string, std::unique_ptr<Supervisor>> hosts;
    for (const std::string& host : kHosts) hosts[host] = start_host(host);
    for (const std::string& host : kHosts) {
        ASSERT_TRUE(hosts[host]->wait_for("ready", 30s)) << host << " did not print ready within 30 s";
        std::set<std::string> spawned;
        for (const auto& [instance, pid] : hosts[host]->pids()) spawned.insert(instance);
        EXPECT_EQ(spawned, instances_on(topo, host));
    }
    std::printf("three hosts ready in %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());

    const LoggedIn alice = login(alice_id), erin = login(erin_id), bob = login(bob_id);
    const LoggedIn carol = login(carol_id), dave = login(dave_id);

    // A chat between a user on host-a's gateway and one on host-b's, both ways, with receipts.
    WsClient alice_ws = connect("host-a", alice);
    auto bob_ws = std::make_unique<WsClient>(connect("host-b", bob));
    send_and_deliver(alice_ws, *bob_ws, bob.user, "a-1");
    receipt_reaches_sender(*bob_ws, alice_ws, alice.user, "a-1");
    send_and_deliver(*bob_ws, alice_ws, alice.user, "b-1");
    receipt_reaches_sender(alice_ws, *bob_ws, bob.user, "b-1");
    if (HasFatalFailure()) return;

    // carol is offline: the message is stored on host-b (her shard), she connects through
    // host-a's gateway and gets it there.
    ASSERT_TRUE(send_as_app(alice_ws, text_message("off-1", carol.user, "for carol").dump(), "off-1"));
    {
        WsClient carol_ws = connect("host-a", carol);
        auto got = wait_for_id(carol_ws, "off-1", 10s);
        ASSERT_TRUE(got) << "the offline message did not arrive through host-a";
        EXPECT_EQ((*got)["body"]["text"], "for carol");
        receipt_reaches_sender(carol_ws, alice_ws, alice.user, "off-1");
    }

    expect_status_ok(topo.daemons.size());

    // Messages with a SERVER_ACK held by host-b: 20 for dave (offline), one delivered to bob
    // and not acked by him.
    std::vector<std::string> for_dave;
    for (int i = 0; i < 20; ++i) {
        for_dave.push_back("d-" + std::to_string(i));
        ASSERT_TRUE(send_as_app(alice_ws, text_message(for_dave.back(), dave.user, "d").dump(), for_dave.back()));
    }
    send_and_deliver(alice_ws, *bob_ws, bob.user, "a-pending");
    if (HasFatalFailure()) return;

    crash_host("host-b");
    if (HasFatalFailure()) return;
    EXPECT_EQ(hosts["host-b"]->wait_exit(10s), 128 + SIGKILL);
    EXPECT_FALSE(bob_ws->read_text(5s)) << "bob's socket on host-b stayed open";
    bob_ws.reset();

    // host-a and host-c do not wait for host-b: users of host-a's shard chat on.
    {
        WsClient erin_ws = connect("host-a", erin);
        send_and_deliver(alice_ws, erin_ws, erin.user, "a-e-1");
        receipt_reaches_sender(erin_ws, alice_ws, alice.user, "a-e-1");
    }
    if (HasFatalFailure()) return;

    // host-b comes back (as after a reboot): every acked message is still there.
    const auto restarted = std::chrono::steady_clock::now();
    hosts["host-b"] = start_host("host-b");
    ASSERT_TRUE(hosts["host-b"]->wait_for("ready", 30s)) << "host-b did not start again";
    std::printf("host-b ready again in %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - restarted).count());
    {
        WsClient dave_ws = connect("host-a", dave);
        for (const std::string& id : for_dave) EXPECT_TRUE(wait_for_id(dave_ws, id, 15s)) << id << " lost";
    }
    bob_ws = std::make_unique<WsClient>(connect("host-b", bob));
    auto pending = wait_for_id(*bob_ws, "a-pending", 15s);
    ASSERT_TRUE(pending) << "the message bob had not acked was lost";
    receipt_reaches_sender(*bob_ws, alice_ws, alice.user, "a-pending");
    send_and_deliver(*bob_ws, alice_ws, alice.user, "b-2");
    send_and_deliver(alice_ws, *bob_ws, bob.user, "a-2");
    expect_status_ok(topo.daemons.size());

    // SIGTERM: each host drains and its supervisor exits 0; the gateways close the
    // WebSockets with 1001 (going away) and wait for the clients' closing handshake.
    for (const std::string& host : kHosts) hosts[host]->signal(SIGTERM);
    for (WsClient* ws : {&alice_ws, bob_ws.get()}) {
        while (ws->read_text(5s)) {
        } // frames not read yet, then the close
        EXPECT_EQ(ws->close_code(), 1001);
    }
    for (const std::string& host : kHosts) EXPECT_EQ(hosts[host]->wait_exit(15s), 0) << host;
}

} // namespace
} // namespace vartalap::testing
