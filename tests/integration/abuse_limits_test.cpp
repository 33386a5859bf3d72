// Issue 12, "Resource exhaustion", the per-user limits, against real daemons: each test
// spends one user's tokens (or fills one recipient's offline quota) as an attacker would,
// sees the refusal (error frame, 429 with Retry-After, per-message result), and checks that
// another user is served meanwhile. docs/SECURITY.md lists them ("Abuse cases").
//
// Thread: the test's. One system for the suite, with small limits on both gateways (each
// test uses its own users, so their buckets are their own).
#include "tests/integration/support/system_fixture.hpp"

#include "common/store/user_queue.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <thread>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// One token a second; bursts of 5 messages, 3 group operations, 10 contact-sync names.
constexpr std::int64_t kPerMinute = 60;
constexpr std::int64_t kSendBurst = 5;
constexpr std::int64_t kGroupBurst = 3;
constexpr std::int64_t kSyncBurst = 10;

// An HTTP answer with its Retry-After header.
struct Answer {
    int status = 0; // 0: no answer
    std::string body;
    std::string retry_after;
};

// One HTTP/1.1 request to 127.0.0.1:`port` with `Connection: close` over a plain socket,
// read until the server closes (5 s receive timeout).
Answer request(int port, const std::string& method, const std::string& target,
               const std::string& body, const LoggedIn* who) {
    Answer answer;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return answer;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    std::string text = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n";
    if (who) text += "user: " + who->user + "\r\naccesskey: " + who->access_key + "\r\n";
    text += "\r\n" + body;
    std::string all;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
        ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size())) {
        char buffer[4096];
        for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
            all.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    const auto head_end = all.find("\r\n\r\n");
    if (!all.starts_with("HTTP/1.1 ") || head_end == std::string::npos) return answer;
    answer.status = std::stoi(all.substr(9, 3));
    answer.body = all.substr(head_end + 4);
    const std::string head = all.substr(0, head_end);
    for (const std::string name : {"\r\nRetry-After: ", "\r\nretry-after: "})
        if (const auto at = head.find(name); at != std::string::npos)
            answer.retry_after = head.substr(at + name.size(), head.find("\r\n", at + 2) - at - name.size());
    return answer;
}

class AbuseLimitsTest : public SharedSystemTest<AbuseLimitsTest> {
protected:
    static void SetUpTestSuite() {
        start_shared([](topology::Topology& t) {
            for (auto& daemon : t.daemons)
                if (daemon.kind == "ws-gateway" || daemon.kind == "rest-gateway") {
                    daemon.options.insert_or_assign("send_rate_per_minute", kPerMinute);
                    daemon.options.insert_or_assign("send_burst", kSendBurst);
                    daemon.options.insert_or_assign("group_op_rate_per_minute", kPerMinute);
                    daemon.options.insert_or_assign("group_op_burst", kGroupBurst);
                    daemon.options.insert_or_assign("contact_sync_names_per_minute", kPerMinute);
                    daemon.options.insert_or_assign("contact_sync_burst", kSyncBurst);
                }
        });
    }
};

// The server's answer to message `id` on `ws`: "ack" (SERVER_ACK), the error text, or "".
// (Frames read past while waiting stay for later reads: read_json_matching keeps them.)
std::string answer_to(WsClient& ws, const std::string& id) {
    const auto frame = ws.read_json_matching(
        [&](const json& m) {
            return m.is_object() && m.value("id", "") == id && m.contains("head") &&
                   m["head"].value("from", "") == "server";
        },
        std::chrono::milliseconds(5000));
    if (!frame) return "";
    const std::string type = (*frame)["head"].value("contentType", "");
    if (type == "SERVER_ACK") return "ack";
    if (type == "error") return (*frame)["body"].value("error", "");
    return "other: " + type;
}

TEST_F(AbuseLimitsTest, ASenderPastTheSendBucketIsRefusedOnTheSocket) {
    const LoggedIn mallory = system().login("+911300000001");
    const LoggedIn alice = system().login("+911300000002");
    const LoggedIn bob = system().login("+911300000003");
    WsClient mallory_ws = system().connect(mallory);
    WsClient alice_ws = system().connect(alice);
    WsClient bob_ws = system().connect(bob);
    // 15 messages at once: the burst (5) passes, and at one token a second nearly all the
    // rest are refused with the error frame a client retries on.
    constexpr int kFlood = 15;
    for (int i = 0; i < kFlood; ++i)
        ASSERT_TRUE(mallory_ws.send_text(text_message("f-" + std::to_string(i), bob.user, "x").dump()));
    int acked = 0;
    int limited = 0;
    for (int i = 0; i < kFlood; ++i) {
        const std::string answer = answer_to(mallory_ws, "f-" + std::to_string(i));
        if (answer == "ack") ++acked;
        else if (answer == "rate limited, retry") ++limited;
        else ADD_FAILURE() << "f-" << i << ": " << answer;
    }
    EXPECT_GE(acked, kSendBurst);
    EXPECT_LE(acked, kSendBurst + 3); // at most a few tokens refilled meanwhile
    EXPECT_EQ(acked + limited, kFlood);
    EXPECT_TRUE(mallory_ws.is_open());
    // Meanwhile another user is served at once.
    ASSERT_TRUE(alice_ws.send_text(text_message("a-1", bob.user, "hi").dump()));
    EXPECT_EQ(answer_to(alice_ws, "a-1"), "ack");
    EXPECT_TRUE(wait_for_id(bob_ws, "a-1"));
    // Receipts are never limited: mallory's bucket is empty, his receipt still passes.
    ASSERT_TRUE(mallory_ws.send_text(receipt("rc-1", alice.user, {"a-1"}).dump()));
    EXPECT_TRUE(wait_for_id(alice_ws, "rc-1"));
    // (The refill, one token a second, is unit-tested: rate_limit_test, ws_gateway_core_test.)
    EXPECT_TRUE(mallory_ws.is_open());
}

TEST_F(AbuseLimitsTest, ASenderPastTheSendBucketGets429OverRest) {
    const LoggedIn mallory = system().login("+911300000011");
    const LoggedIn alice = system().login("+911300000012");
    const LoggedIn bob = system().login("+911300000013");
    json flood = json::array();
    for (int i = 0; i < 10; ++i) flood.push_back(text_message("r-" + std::to_string(i), bob.user, "x"));
    auto response = request(system().rest_port(), "POST", "/send", flood.dump(), &mallory);
    ASSERT_EQ(response.status, 200) << response.body; // some were taken: per-message results
    const json results = json::parse(response.body)["results"];
    int accepted = 0;
    int limited = 0;
    for (const auto& r : results) {
        if (r["status"] == "accepted") ++accepted;
        else if (r.value("reason", "") == "rate limited, retry") ++limited;
    }
    EXPECT_GE(accepted, kSendBurst);
    EXPECT_LE(accepted, kSendBurst + 2);
    EXPECT_EQ(accepted + limited, 10);
    // The bucket is empty now: a send whose messages are all over it is a 429.
    response = request(system().rest_port(), "POST", "/send",
                       json::array({text_message("r-x", bob.user, "x")}).dump(), &mallory);
    EXPECT_EQ(response.status, 429) << response.body;
    EXPECT_EQ(json::parse(response.body)["error"], "rate limited, retry");
    EXPECT_FALSE(response.retry_after.empty());
    EXPECT_GE(std::stoi(response.retry_after), 1);
    // Another user is served meanwhile.
    response = request(system().rest_port(), "POST", "/send",
                       json::array({text_message("a-1", bob.user, "x")}).dump(), &alice);
    EXPECT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(json::parse(response.body)["results"][0]["status"], "accepted");
}

TEST_F(AbuseLimitsTest, GroupOperationsPastTheirBucketAreRefused) {
    const LoggedIn mallory = system().login("+911300000021");
    const LoggedIn alice = system().login("+911300000022");
    const LoggedIn bob = system().login("+911300000023");
    const std::string create = json{{"name", "g"}, {"members", {bob.user}}}.dump();
    int created = 0;
    int limited = 0;
    std::string retry_after;
    for (int i = 0; i < 8; ++i) {
        const auto response = request(system().rest_port(), "POST", "/group/create", create, &mallory);
        if (response.status == 200) ++created;
        else if (response.status == 429) {
            ++limited;
            retry_after = response.retry_after;
            EXPECT_EQ(json::parse(response.body)["error"], "rate limited, retry");
        } else ADD_FAILURE() << response.status << " " << response.body;
    }
    EXPECT_GE(created, kGroupBurst);
    EXPECT_GE(limited, 3);
    EXPECT_FALSE(retry_after.empty());
    // The plural path is the same operation, and limited by the same bucket.
    const auto add = system().http("POST", "/groups", create, auth(mallory));
    EXPECT_EQ(add.status, 429) << add.body;
    // Another user creates a group meanwhile; and mallory can still read his groups.
    EXPECT_EQ(system().http("POST", "/group/create", create, auth(alice)).status, 200);
    EXPECT_EQ(system().http("GET", "/group/get", "", auth(mallory)).status, 200);
}

TEST_F(AbuseLimitsTest, ContactSyncPastItsBucketIs429) {
    const LoggedIn mallory = system().login("+911300000031");
    const LoggedIn alice = system().login("+911300000032");
    json names = json::array();
    for (int i = 0; i < 8; ++i) names.push_back("+9199000000" + std::to_string(10 + i));
    const std::string body = json{{"users", names}}.dump();
    auto response = request(system().rest_port(), "POST", "/contactbook/sync", body, &mallory);
    EXPECT_EQ(response.status, 200) << response.body;
    // 8 of 10 names spent: another 8 are over the bucket (enumeration is throttled).
    response = request(system().rest_port(), "POST", "/contactbook/sync", body, &mallory);
    EXPECT_EQ(response.status, 429) << response.body;
    EXPECT_EQ(json::parse(response.body)["error"], "rate limited, retry");
    EXPECT_GE(std::stoi(response.retry_after.empty() ? "0" : response.retry_after), 1);
    // Another user's sync is answered meanwhile.
    response = request(system().rest_port(), "POST", "/profile/user/sync", body, &alice);
    EXPECT_EQ(response.status, 200) << response.body;
}

TEST_F(AbuseLimitsTest, OversizedProfileFieldsAreRefusedAtLogin) {
    const auto login = [&](const std::string& user, json extra) {
        json body = {{"username", user}, {"authToken", "dev"}};
        body.update(extra);
        return system().http("POST", "/login", body.dump());
    };
    auto response = login("+911300000041", {{"deviceId", std::string(129, 'd')}});
    EXPECT_EQ(response.status, 400) << response.body;
    EXPECT_EQ(json::parse(response.body)["error"], "deviceId too long (at most 128 bytes)");
    response = login("+911300000041", {{"notificationToken", std::string(5000, 't')}});
    EXPECT_EQ(response.status, 400) << response.body;
    EXPECT_EQ(json::parse(response.body)["error"], "notificationToken too long (at most 1024 bytes)");
    // The app's login (a short device id, an FCM-sized token) and another user meanwhile.
    response = login("+911300000041", {{"deviceId", "pixel-7"}, {"notificationToken", std::string(163, 'f')}});
    EXPECT_EQ(response.status, 200) << response.body;
    system().login("+911300000042");
}

// --- The per-recipient offline quota -------------------------------------------------------

constexpr std::int64_t kQuota = 3; // messages per recipient in persistence

class OfflineQuotaTest : public SharedSystemTest<OfflineQuotaTest> {
protected:
    static void SetUpTestSuite() {
        start_shared([](topology::Topology& t) {
            for (auto& daemon : t.daemons) {
                if (daemon.kind == "persistence")
                    daemon.options.insert_or_assign("max_messages_per_recipient", kQuota);
                if (daemon.kind == "session")
                    daemon.options.insert_or_assign("handoff_refused_retry_ms", std::int64_t{300});
            }
        });
    }
};

TEST_F(OfflineQuotaTest, MessagesPastTheRecipientsQuotaAreRefusedToTheSender) {
    const LoggedIn mallory = system().login("+911400000001");
    const LoggedIn victim = system().login("+911400000002");
    const LoggedIn alice = system().login("+911400000003");
    const LoggedIn carol = system().login("+911400000004");
    WsClient mallory_ws = system().connect(mallory);
    // The victim is offline: every message goes to persistence. Mallory sends one at a time
    // until the refusal comes: the quota's 3, then the few the session took before the
    // first refused handoff came back.
    std::vector<std::string> acked;
    std::string refused;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (int i = 0; refused.empty() && std::chrono::steady_clock::now() < deadline; ++i) {
        const std::string id = "q-" + std::to_string(i);
        ASSERT_TRUE(mallory_ws.send_text(text_message(id, victim.user, "x").dump()));
        const std::string answer = answer_to(mallory_ws, id);
        if (answer == "ack") acked.push_back(id);
        else if (answer == std::string(kRecipientQuotaFull)) refused = id;
        else FAIL() << id << ": " << answer;
    }
    ASSERT_FALSE(refused.empty()) << "no refusal after " << acked.size() << " acks";
    EXPECT_GE(static_cast<std::int64_t>(acked.size()), kQuota);
    // Over REST the sender hears it as that message's result.
    const auto response = system().http(
        "POST", "/send", json::array({text_message("q-rest", victim.user, "x")}).dump(), auth(mallory));
    ASSERT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(json::parse(response.body)["results"][0]["status"], "refused");
    EXPECT_EQ(json::parse(response.body)["results"][0]["reason"], std::string(kRecipientQuotaFull));
    // Another offline recipient is served meanwhile.
    WsClient alice_ws = system().connect(alice);
    EXPECT_TRUE(send_until_server_ack(alice_ws, text_message("c-1", carol.user, "x").dump(), "c-1"));
    // Nothing that was acked is lost: the victim gets every acked message when it connects,
    // and none of the refused ones.
    WsClient victim_ws = system().connect(victim);
    for (const std::string& id : acked) EXPECT_TRUE(wait_for_id(victim_ws, id, 10s)) << id;
    EXPECT_FALSE(wait_for_id(victim_ws, refused, 500ms));
    // Online, the victim takes messages again.
    EXPECT_TRUE(send_until_server_ack(mallory_ws, text_message("q-late", victim.user, "x").dump(),
                                      "q-late"));
    EXPECT_TRUE(wait_for_id(victim_ws, "q-late"));
}

// --- The short TTL for names that never registered ----------------------------------------

// The value of the first sample of `name` on the metrics port at `host_port` (0 if absent).
double counter(const std::string& host_port, const std::string& name) {
    const HttpResponse response = http_at(host_port, "GET", "/metrics");
    const auto at = response.body.find("\n" + name + "{");
    if (response.status != 200 || at == std::string::npos) return 0;
    const auto value = response.body.find("} ", at) + 2;
    return std::stod(response.body.substr(value, response.body.find('\n', value) - value));
}

// Polls `sample` (published about once a second) until it reaches `at_least` or 10 s pass.
bool wait_for_counter(const std::string& host_port, const std::string& sample, double at_least) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (counter(host_port, sample) >= at_least) return true;
        std::this_thread::sleep_for(20ms); // the publish period's poll, not a synchronisation
    }
    return false;
}

TEST(ShortTtlTest, MessagesToANameThatNeverRegisteredExpireFirst) {
    // A short TTL of 1 s against the normal hour, so that the test sees it pass.
    TempDir dir;
    RunningSystem system(local_topology(dir.path(), [](topology::Topology& t) {
        for (auto& daemon : t.daemons)
            if (daemon.kind == "persistence") {
                daemon.options.insert_or_assign("ttl_seconds", std::int64_t{3600});
                daemon.options.insert_or_assign("short_ttl_seconds", std::int64_t{1});
            }
    }));
    const LoggedIn mallory = system.login("+911500000001");
    const LoggedIn bob = system.login("+911500000002"); // registered, offline
    const std::string ghost = "+911500000009";          // never registered (yet)
    WsClient mallory_ws = system.connect(mallory);
    ASSERT_TRUE(send_until_server_ack(mallory_ws, text_message("to-ghost", ghost, "x").dump(), "to-ghost"));
    ASSERT_TRUE(send_until_server_ack(mallory_ws, text_message("to-bob", bob.user, "x").dump(), "to-bob"));
    // Persistence asks the profile daemon, then its expiry run deletes the ghost's message.
    const std::string metrics = system.endpoint("persistence-1", "metrics");
    EXPECT_TRUE(wait_for_counter(metrics, "vartalap_persistence_unregistered_recipients_total", 1));
    ASSERT_TRUE(wait_for_counter(metrics, "vartalap_persistence_expired_total", 1));
    // The name registers now: nothing waits for it. Bob, registered, gets his message.
    const LoggedIn late = system.login(ghost);
    WsClient ghost_ws = system.connect(late);
    WsClient bob_ws = system.connect(bob);
    EXPECT_TRUE(wait_for_id(bob_ws, "to-bob"));
    EXPECT_FALSE(wait_for_id(ghost_ws, "to-ghost", 1s));
}

} // namespace
} // namespace vartalap::testing
