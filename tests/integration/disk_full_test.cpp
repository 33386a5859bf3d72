// Issue 14, section 7: the data directory on a small filesystem that fills up. Every store of
// topology/local.toml is on a tmpfs this test mounts (it needs root, or the test is skipped);
// offline messages fill it through the product. New messages are then refused (WebSocket: an
// error frame naming the message; REST /send: 507 with a JSON error), no daemon dies (they
// share this process: one abort ends the test), and once the tmpfs is remounted larger new
// messages are accepted again without a restart and every message that got a SERVER_ACK is
// delivered. ctest runs it in both durabilities (`process.` prefix: MDB_WRITEMAP stores).
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/tmpfs.hpp"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <thread>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;


bool is_frame(const json& m, const std::string& content_type) {
    return m.is_object() && m.contains("head") && m["head"].is_object() &&
           m["head"].value("contentType", "") == content_type;
}

// The value of the sample of metric `name` whose labels include `label`, or -1.
double metric_value(const std::string& text, const std::string& name, const std::string& label) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
        if (line.starts_with(name + "{") && line.find(label) != std::string::npos)
            return std::stod(line.substr(line.rfind(' ') + 1));
    return -1;
}

class DiskFullTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!tmpfs_.mounted())
            GTEST_SKIP() << "needs a tmpfs it can mount (" << tmpfs_.error()
                         << "): run the tests as root to cover a full disk";
        system_ = std::make_unique<RunningSystem>(local_topology(tmpfs_.path(), [](topology::Topology& t) {
            for (auto& daemon : t.daemons)
                if (daemon.kind == "session") {
                    // A handoff persistence refused (its store full) is offered again soon.
                    daemon.options.insert_or_assign("handoff_refused_retry_ms", 200);
                    daemon.options.insert_or_assign("ack_timeout_ms", 2000);
                }
        }));
    }
    void TearDown() override { system_.reset(); } // before the tmpfs goes

    TempDir data_;
    test::Tmpfs tmpfs_{data_.path() / "fs", "4m"};
    std::unique_ptr<RunningSystem> system_;
};

TEST_F(DiskFullTest, NewMessagesAreRefusedNothingAckedIsLostAndServiceResumesWhenSpaceIsFreed) {
    const auto alice = system_->login("alice");
    const auto bob = system_->login("bob");
    WsClient alice_ws = system_->connect(alice);
    const std::string text(32 * 1024, 'x'); // about 8 pages in each store

    // Fill the tmpfs with messages to bob, who is offline, 8 in flight, until one is refused.
    std::set<std::string> acked;
    std::string refused_id;
    std::string refusal;
    std::set<std::string> unanswered;
    int sent = 0;
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (refused_id.empty() && std::chrono::steady_clock::now() < until && sent < 400) {
        while (unanswered.size() < 8 && sent < 400) {
            const std::string id = "fill-" + std::to_string(sent++);
            ASSERT_TRUE(alice_ws.send_text(text_message(id, bob.user, text).dump()));
            unanswered.insert(id);
        }
        const auto frame = alice_ws.read_json_matching(
            [&](const json& m) {
                return (is_frame(m, "SERVER_ACK") || is_frame(m, "error")) &&
                       unanswered.count(m.value("id", "")) != 0;
            },
            5s);
        ASSERT_TRUE(frame) << "no answer to " << unanswered.size() << " messages after " << sent
                           << " sent (" << acked.size() << " acked)";
        const std::string id = (*frame)["id"];
        unanswered.erase(id);
        if (is_frame(*frame, "SERVER_ACK")) {
            acked.insert(id);
        } else {
            refused_id = id;
            refusal = (*frame)["body"].value("error", "");
        }
    }
    ASSERT_FALSE(refused_id.empty()) << "the 4 MiB tmpfs never filled: " << acked.size() << " acked";
    EXPECT_EQ(refusal, "server storage full");
    EXPECT_GT(acked.size(), 10u);
    // The rest of the window: acked or refused, nothing unanswered.
    while (!unanswered.empty()) {
        const auto frame = alice_ws.read_json_matching(
            [&](const json& m) {
                return (is_frame(m, "SERVER_ACK") || is_frame(m, "error")) &&
                       unanswered.count(m.value("id", "")) != 0;
            },
            5s);
        ASSERT_TRUE(frame) << unanswered.size() << " messages unanswered";
        unanswered.erase((*frame)["id"].get<std::string>());
        if (is_frame(*frame, "SERVER_ACK")) acked.insert((*frame)["id"].get<std::string>());
    }

    // Still full: WebSocket refuses again, REST /send answers 507 with a JSON error.
    ASSERT_TRUE(alice_ws.send_text(text_message("full-ws", bob.user, text).dump()));
    const auto again = alice_ws.read_json_matching(
        [](const json& m) { return m.value("id", "") == "full-ws"; }, 5s);
    ASSERT_TRUE(again);
    EXPECT_TRUE(is_frame(*again, "error")) << again->dump().substr(0, 300);
    const auto rest = system_->http("POST", "/send", text_message("full-rest", bob.user, text).dump(),
                                    auth(alice));
    EXPECT_EQ(rest.status, 507) << rest.body;
    const json rest_body = json::parse(rest.body, nullptr, false);
    ASSERT_TRUE(rest_body.is_object()) << rest.body;
    EXPECT_EQ(rest_body.value("error", ""), "server storage full") << rest.body;
    ASSERT_TRUE(rest_body["results"].is_array()) << rest.body;
    EXPECT_EQ(rest_body["results"][0].value("status", ""), "refused") << rest.body;

    // Counted where it happened (metrics are published once a second: wait for it).
    double counted = -1;
    const auto metrics_until = std::chrono::steady_clock::now() + 5s;
    while (counted <= 0 && std::chrono::steady_clock::now() < metrics_until) {
        const auto metrics = http_at(system_->endpoint("session-1", "metrics"), "GET", "/metrics");
        counted = metric_value(metrics.body, "vartalap_store_full_refusals_total", "reason=\"disk_full\"");
        if (counted <= 0) std::this_thread::sleep_for(50ms); // polling a condition, with a deadline
    }
    EXPECT_GT(counted, 0);

    // Space freed: accepted again, without a restart.
    ASSERT_TRUE(tmpfs_.resize("64m"));
    bool accepted = false;
    for (int attempt = 0; !accepted && attempt < 50; ++attempt) {
        const std::string id = "after-" + std::to_string(attempt);
        ASSERT_TRUE(alice_ws.send_text(text_message(id, bob.user, "space again").dump()));
        const auto frame = alice_ws.read_json_matching(
            [&](const json& m) {
                return (is_frame(m, "SERVER_ACK") || is_frame(m, "error")) && m.value("id", "") == id;
            },
            5s);
        ASSERT_TRUE(frame) << id << " unanswered";
        accepted = is_frame(*frame, "SERVER_ACK");
        if (accepted) acked.insert(id);
    }
    ASSERT_TRUE(accepted);
    const auto resent = system_->http("POST", "/send", text_message("after-rest", bob.user, "rest").dump(),
                                      auth(alice));
    EXPECT_EQ(resent.status, 200) << resent.body;
    EXPECT_NE(resent.body.find("\"accepted\""), std::string::npos) << resent.body;
    acked.insert("after-rest");

    // Every acked message reaches bob when he connects (he acks each, so the window moves on).
    WsClient bob_ws = system_->connect(bob);
    std::set<std::string> missing = acked;
    const auto deliver_until = std::chrono::steady_clock::now() + 15s;
    while (!missing.empty() && std::chrono::steady_clock::now() < deliver_until) {
        const auto got = bob_ws.read_json_matching(
            [](const json& m) { return m.is_object() && m.contains("id") && !is_frame(m, "SERVER_ACK"); },
            5s);
        if (!got) break;
        const std::string id = (*got)["id"];
        missing.erase(id);
        bob_ws.send_text(receipt("rc-" + id, alice.user, {id}).dump());
    }
    EXPECT_TRUE(missing.empty()) << missing.size() << " of " << acked.size()
                                 << " acked messages not delivered, e.g. " << *missing.begin();
}

} // namespace
} // namespace vartalap::testing
