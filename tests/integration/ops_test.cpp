// The ops endpoints of real daemons (docs/INTERNAL_PROTOCOL.md, "Operations"): every daemon
// of local.toml answers `status` on its control socket and serves Prometheus text on its
// metrics port, and `vartalapctl status` (the real binary) reports them ok, then down.
//
// Only what the ops thread itself emits is checked (identity, health, vartalap_up, build
// info, uptime): each kind's own counters are free to change.
#include "tests/integration/support/child_process.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <csignal>
#include <fstream>
#include <regex>
#include <set>
#include <thread>
#include <unistd.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// A DEALER asking one control socket, as `vartalapctl status` does.
class ControlClient {
public:
    ControlClient(zmq::context_t& context, const std::string& endpoint)
        : socket_(context, zmq::socket_type::dealer) {
        socket_.set(zmq::sockopt::linger, 0);
        socket_.connect(endpoint);
    }

    // The reply to `request`, or nullopt if none arrives within `deadline`.
    std::optional<std::string> ask(const std::string& request, std::chrono::milliseconds deadline) {
        socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(request));
        zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, deadline) == 0) return std::nullopt;
        std::vector<zmq::message_t> frames;
        zmq::message_t frame;
        bool more = true;
        while (more && socket_.recv(frame, zmq::recv_flags::dontwait)) {
            more = frame.more();
            frames.push_back(std::move(frame));
        }
        // [empty delimiter, reply]
        if (frames.size() != 2 || frames[0].size() != 0) return std::nullopt;
        return frames[1].to_string();
    }

    // Asks `status` until the daemon reports health "ok" or `deadline` passes (loops publish
    // once a second); returns the last reply (null if none came).
    json status_when_ok(std::chrono::milliseconds deadline) {
        const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(deadline);
        json last;
        while (true) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                until - std::chrono::steady_clock::now());
            if (left.count() <= 0) return last;
            const auto reply = ask("status", left);
            if (!reply) return last;
            last = json::parse(*reply, nullptr, false);
            if (last.is_object() && last.value("health", "") == "ok") return last;
            // Not yet: look again shortly (a poll on the socket paces the retries).
            zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
            zmq::poll(&item, 1, std::min(left, std::chrono::milliseconds(100)));
        }
    }

private:
    zmq::socket_t socket_;
};

// Runs `vartalapctl status <args...>` to completion: its exit code and stdout.
struct StatusRun {
    int exit_code = -1;
    std::string output;
};
StatusRun run_status(std::vector<std::string> args) {
    args.insert(args.begin(), {VARTALAPCTL_PATH, "status"});
    Child child(std::move(args));
    StatusRun run;
    run.output = child.output(15s);
    run.exit_code = child.wait_exit(5s).value_or(-1);
    return run;
}

TEST(OpsTest, EveryDaemonAnswersStatusOnItsControlSocket) {
    TempDir dir;
    RunningSystem system(local_topology(dir.path()));
    zmq::context_t context(1);
    const auto& topology = system.system().topology();
    ASSERT_FALSE(topology.daemons.empty());
    for (const auto& daemon : topology.daemons) {
        SCOPED_TRACE(daemon.name);
        const std::string control = system.endpoint(daemon.name, "control");
        EXPECT_EQ(control.rfind("ipc://" + dir.path().string(), 0), 0u) << control;
        ControlClient client(context, control);
        const json status = client.status_when_ok(15s);
        ASSERT_TRUE(status.is_object()) << "no status reply from " << control;
        EXPECT_EQ(status.value("instance", ""), daemon.name);
        EXPECT_EQ(status.value("kind", ""), daemon.kind);
        EXPECT_EQ(status.value("host", ""), "localhost");
        EXPECT_EQ(status.value("health", ""), "ok") << status.dump();
        EXPECT_EQ(status.value("pid", 0), static_cast<int>(::getpid()));
        EXPECT_FALSE(status.value("version", "").empty());
        EXPECT_TRUE(status["uptime_seconds"].is_number());
        EXPECT_TRUE(status["last_publish_age_ms"].is_number()); // it has published
        EXPECT_TRUE(status["counters"].is_object());
        EXPECT_TRUE(status["gauges"].is_object());
    }

    ControlClient session(context, system.endpoint("session-1", "control"));
    const auto unknown = session.ask("reboot", 5s);
    ASSERT_TRUE(unknown);
    const json error = json::parse(*unknown, nullptr, false);
    ASSERT_TRUE(error.is_object()) << *unknown;
    EXPECT_EQ(error.value("error", ""), "unknown command \"reboot\"; commands: status, metrics");

    const auto metrics = session.ask("metrics", 5s);
    ASSERT_TRUE(metrics);
    const json text = json::parse(*metrics, nullptr, false);
    ASSERT_TRUE(text.is_object()) << *metrics;
    EXPECT_NE(text.value("text", "").find("# TYPE vartalap_up gauge"), std::string::npos);
}

TEST(OpsTest, MetricsPortServesPrometheusText) {
    TempDir dir;
    RunningSystem system(local_topology(dir.path()));
    zmq::context_t context(1);
    for (const auto& [instance, kind] :
         {std::pair<std::string, std::string>{"session-1", "session"}, {"ws-1", "ws-gateway"}}) {
        SCOPED_TRACE(instance);
        // vartalap_up is 1 once the daemon's loop has published.
        ControlClient client(context, system.endpoint(instance, "control"));
        ASSERT_EQ(client.status_when_ok(15s).value("health", ""), "ok");

        const std::string address = system.endpoint(instance, "metrics");
        EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
        const auto response = http_at(address, "GET", "/metrics");
        ASSERT_EQ(response.status, 200) << response.body;
        const std::string labels =
            "instance=\"" + instance + "\",kind=\"" + kind + "\",host=\"localhost\"";
        const std::string& body = response.body;
        EXPECT_NE(body.find("# TYPE vartalap_up gauge\n"), std::string::npos) << body;
        EXPECT_NE(body.find("\nvartalap_up{" + labels + "} 1\n"), std::string::npos) << body;
        EXPECT_NE(body.find("# TYPE vartalap_build_info gauge\n"), std::string::npos) << body;
        EXPECT_TRUE(std::regex_search(
            body, std::regex("\nvartalap_build_info\\{" + labels + ",version=\"[^\"]+\"\\} 1\n")))
            << body;
        EXPECT_TRUE(std::regex_search(
            body, std::regex("\nvartalap_uptime_seconds\\{" + labels + "\\} [0-9.e+]+\n")))
            << body;

        EXPECT_EQ(http_at(address, "GET", "/").status, 404);
        EXPECT_EQ(http_at(address, "GET", "/metricsx").status, 404);
        EXPECT_EQ(http_at(address, "POST", "/metrics").status, 405);
    }
}

// The value of the sample `name{labels}` in Prometheus text, or nullopt.
std::optional<double> sample(const std::string& body, const std::string& name_and_labels) {
    const std::string key = "\n" + name_and_labels + " ";
    const auto at = body.find(key);
    if (at == std::string::npos) return std::nullopt;
    return std::stod(body.substr(at + key.size(), body.find('\n', at + key.size()) - at - key.size()));
}

// Scrapes `address` until `name_and_labels` reaches at least `want` (daemons publish once a
// second) or the deadline passes; returns the last value seen.
std::optional<double> scrape_until(const std::string& address, const std::string& name_and_labels,
                                   double want, std::chrono::milliseconds deadline = 10s) {
    const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(deadline);
    std::optional<double> value;
    while (std::chrono::steady_clock::now() < until) {
        const auto response = http_at(address, "GET", "/metrics");
        if (response.status == 200) value = sample(response.body, name_and_labels);
        if (value && *value >= want) return value;
        std::this_thread::sleep_for(100ms); // polling a once-a-second publish, not synchronising
    }
    return value;
}

TEST(OpsTest, MetricsCountAMessageThroughTheSystem) {
    TempDir dir;
    RunningSystem system(local_topology(dir.path()));
    auto alice = system.login("alice");
    auto bob = system.login("bob");
    auto alice_ws = system.connect(alice);
    auto bob_ws = system.connect(bob);
    alice_ws.send_text(text_message("m-1", bob.user, "counted").dump());
    ASSERT_TRUE(wait_for_server_ack(alice_ws, "m-1"));
    ASSERT_TRUE(wait_for_id(bob_ws, "m-1"));
    bob_ws.send_text(receipt("rc-1", alice.user, {"m-1"}).dump());
    ASSERT_TRUE(wait_for_id(alice_ws, "rc-1"));

    const std::string session = system.endpoint("session-1", "metrics");
    const std::string s = R"({instance="session-1",kind="session",host="localhost")";
    // m-1 and the receipt rc-1 are both stored and delivered; m-1 is acked by rc-1.
    EXPECT_GE(scrape_until(session, "vartalap_messages_in_total" + s + "}", 2).value_or(0), 2);
    EXPECT_GE(scrape_until(session, "vartalap_messages_out_total" + s + "}", 2).value_or(0), 2);
    EXPECT_GE(scrape_until(session, "vartalap_acks_total" + s + "}", 1).value_or(0), 1);
    EXPECT_GE(scrape_until(session, "vartalap_delivery_latency_seconds_count" + s + "}", 1).value_or(0), 1);
    EXPECT_GE(scrape_until(session, "vartalap_ack_latency_seconds_count" + s + "}", 1).value_or(0), 1);
    EXPECT_EQ(scrape_until(session, "vartalap_connections" + s + "}", 2).value_or(0), 2);
    EXPECT_GT(scrape_until(session, "vartalap_lmdb_map_used_bytes" + s + R"(,env="session"})", 1)
                  .value_or(0), 0);

    const std::string ws = system.endpoint("ws-1", "metrics");
    const std::string w = R"({instance="ws-1",kind="ws-gateway",host="localhost")";
    EXPECT_GE(scrape_until(ws, "vartalap_messages_in_total" + w + "}", 2).value_or(0), 2);
    EXPECT_EQ(scrape_until(ws, "vartalap_connections" + w + "}", 2).value_or(0), 2);

    const std::string router = system.endpoint("router-1", "metrics");
    const std::string r = R"({instance="router-1",kind="message-router",host="localhost")";
    EXPECT_GE(scrape_until(router, "vartalap_messages_in_total" + r + "}", 2).value_or(0), 2);
}

TEST(OpsTest, VartalapctlStatusReportsOkThenDown) {
    TempDir dir;
    const auto file = dir.path() / "test.toml";
    write_local_topology(file, dir.path() / "data");
    const auto loaded = topology::load_file(file);
    ASSERT_TRUE(loaded.topology);
    const auto& daemons = loaded.topology->daemons;

    Child up({VARTALAPCTL_PATH, "up", file.string()});
    std::set<std::string> controls;
    bool ready = false;
    while (auto line = up.line(20s)) {
        std::smatch m;
        if (std::regex_match(*line, m, std::regex(R"(listening (\S+) control (\S+))")))
            controls.insert(m[1]);
        if (*line == "ready") {
            ready = true;
            break;
        }
    }
    ASSERT_TRUE(ready);
    EXPECT_EQ(controls.size(), daemons.size());

    // The loops publish their first heartbeat right after start: ask until all are ok.
    StatusRun ok;
    const auto until = std::chrono::steady_clock::now() + vartalap::test::scaled(15s);
    do {
        ok = run_status({file.string()});
    } while (ok.exit_code != 0 && std::chrono::steady_clock::now() < until);
    EXPECT_EQ(ok.exit_code, 0) << ok.output;
    EXPECT_EQ(ok.output.rfind("INSTANCE", 0), 0u) << ok.output;
    for (const auto& daemon : daemons)
        EXPECT_TRUE(std::regex_search(ok.output, std::regex("(^|\n)" + daemon.name + " +" +
                                                            daemon.kind + " +localhost +ok ")))
            << daemon.name << ":\n" << ok.output;
    EXPECT_NE(ok.output.find(std::to_string(daemons.size()) + " daemons: " +
                             std::to_string(daemons.size()) + " ok\n"),
              std::string::npos)
        << ok.output;

    const StatusRun as_json = run_status({file.string(), "--json"});
    EXPECT_EQ(as_json.exit_code, 0);
    const json array = json::parse(as_json.output, nullptr, false);
    ASSERT_TRUE(array.is_array()) << as_json.output;
    ASSERT_EQ(array.size(), daemons.size());
    for (std::size_t i = 0; i < daemons.size(); ++i) {
        EXPECT_EQ(array[i].value("instance", ""), daemons[i].name);
        EXPECT_EQ(array[i].value("health", ""), "ok");
    }

    up.signal(SIGTERM);
    const auto exited = up.wait_exit(10s);
    ASSERT_TRUE(exited);
    EXPECT_EQ(*exited, 0);

    const auto asked = std::chrono::steady_clock::now();
    const StatusRun down = run_status({file.string(), "--timeout-ms", "300"});
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 5s); // LINGER 0: no wait at exit
    EXPECT_EQ(down.exit_code, 1) << down.output;
    for (const auto& daemon : daemons)
        EXPECT_TRUE(std::regex_search(down.output, std::regex("(^|\n)" + daemon.name + " .* down ")))
            << daemon.name << ":\n" << down.output;

    // A file that does not load: its errors, exit 2.
    const auto bad = dir.path() / "bad.toml";
    std::ofstream(bad) << "[[daemon]]\nkind = \"no-such-kind\"\n";
    EXPECT_EQ(run_status({bad.string()}).exit_code, 2);
}

} // namespace
} // namespace vartalap::testing
