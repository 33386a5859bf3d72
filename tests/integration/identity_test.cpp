// Identity and revocation against real daemons (issue 11 sections 1-2): the profile daemon
// with identity_provider = "firebase" fetching its certificates over HTTPS from a local fake
// (a CA made at runtime that the daemon is told to trust), tokens signed by test RSA keys,
// certificate rotation without a restart, the username-sub binding, and logout: 401 on REST
// and on the upgrade, the open WebSocket closed with 4001, another device's key unaffected,
// and the revocation still there after a restart of every daemon.
//
// Thread: the test's; the fake HTTPS server runs on its own thread.
#include "tests/integration/support/fake_http_server.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/id_tokens.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <mutex>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing_http::CannedResponse;
using testing_http::FakeHttpServer;
using testing_http::RecordedRequest;
using testing_tokens::claims;
using testing_tokens::header;
using testing_tokens::Signer;

constexpr const char* kProject = "vartalap-it";

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Calls `attempt` until it returns true or `deadline` passes (a condition with a deadline;
// each attempt is a real round trip, so no pause is needed between them).
bool eventually(const std::function<bool()>& attempt, std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    do {
        if (attempt()) return true;
    } while (std::chrono::steady_clock::now() < until);
    return false;
}

HttpResponse login(RunningSystem& system, const std::string& user, const std::string& token) {
    const json body = {{"username", user}, {"authToken", token}, {"notificationToken", "fcm-" + user}};
    return system.http("POST", "/v1.0/login", body.dump());
}

// The fake of Google's x509 endpoint: serves `document` with a max-age.
class CertificateEndpoint {
public:
    explicit CertificateEndpoint(const testing_crypto::Issued& tls)
        : server_([this](const RecordedRequest&, std::size_t) {
                      std::lock_guard lock(mutex_);
                      return CannedResponse{200, document_.dump(),
                                            {{"Cache-Control", "public, max-age=3600"}}};
                  },
                  &tls) {}
    void serve(json document) {
        std::lock_guard lock(mutex_);
        document_ = std::move(document);
    }
    std::string url() const { return "https://127.0.0.1:" + std::to_string(server_.port()) + "/certs"; }
    FakeHttpServer& server() { return server_; }

private:
    std::mutex mutex_;
    json document_ = json::object();
    FakeHttpServer server_;
};

class IdentityTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ca_ = new testing_crypto::TestCa();
        tls_ = new testing_crypto::Issued(ca_->issue({"127.0.0.1"}));
        first_ = new Signer(*ca_);
        second_ = new Signer(*ca_);
    }
    static void TearDownTestSuite() {
        delete second_;
        delete first_;
        delete tls_;
        delete ca_;
    }

    // local.toml with the firebase provider pointed at the fake, trusting the test CA.
    topology::Topology firebase_topology() {
        const auto ca_file = dir_.path() / "test-ca.pem";
        std::ofstream(ca_file) << ca_->certificate_pem();
        return local_topology(dir_.path() / "data", [&](topology::Topology& t) {
            for (auto& spec : t.daemons)
                if (spec.kind == "profile") {
                    spec.options.insert_or_assign("identity_provider", "firebase");
                    spec.options.insert_or_assign("firebase_project_id", kProject);
                    spec.options.insert_or_assign("firebase_certificates_url", endpoint_.url());
                    spec.options.insert_or_assign("firebase_ca_file", ca_file.string());
                    spec.options.insert_or_assign("firebase_refresh_min_interval_seconds", 0);
                }
        });
    }

    static testing_crypto::TestCa* ca_;
    static testing_crypto::Issued* tls_;
    static Signer* first_;
    static Signer* second_;
    TempDir dir_;
    CertificateEndpoint endpoint_{*tls_};
};

testing_crypto::TestCa* IdentityTest::ca_ = nullptr;
testing_crypto::Issued* IdentityTest::tls_ = nullptr;
Signer* IdentityTest::first_ = nullptr;
Signer* IdentityTest::second_ = nullptr;

TEST_F(IdentityTest, FirebaseLoginBindsTheSubAndFollowsARotation) {
    endpoint_.serve({{"k1", first_->certificate_pem()}});
    RunningSystem system(firebase_topology());
    const std::int64_t now = now_seconds();
    const std::string alice_token = first_->token(header("k1"), claims(kProject, "uid-alice", now));

    // The first fetch happens at start, over HTTPS with the test CA.
    ASSERT_TRUE(endpoint_.server().wait_for_requests("/certs", 1));
    HttpResponse ok;
    ASSERT_TRUE(eventually([&] { return (ok = login(system, "+911000", alice_token)).status == 200; }, 5s))
        << ok.status << " " << ok.body;
    const json body = json::parse(ok.body);
    EXPECT_EQ(body["status"], true);
    EXPECT_EQ(body["isNew"], true);
    const LoggedIn alice{"+911000", body["accesskey"]};
    EXPECT_EQ(system.http("GET", "/v1.0/profile", {}, {{"user", alice.user}, {"accesskey", alice.access_key}}).status, 200);
    // The token also comes in the `token` header.
    EXPECT_EQ(system.http("POST", "/v1.0/login", json{{"username", "+911000"}, {"notificationToken", "n"}}.dump(),
                          {{"token", alice_token}}).status, 200);

    // Refusals: a 401 with a JSON error that never quotes the token.
    auto expired_claims = claims(kProject, "uid-alice", now);
    expired_claims["exp"] = now - 3600;
    // alice's header and signature around another payload.
    const auto first_dot = alice_token.find('.');
    const auto last_dot = alice_token.rfind('.');
    const std::string forged = alice_token.substr(0, first_dot + 1) +
                               base64url_encode(claims(kProject, "uid-mallory", now).dump()) +
                               alice_token.substr(last_dot);
    for (const std::string& bad : {first_->token(header("k1"), expired_claims),
                                   first_->token(header("k1"), claims("other-project", "uid-alice", now)),
                                   second_->token(header("k1"), claims(kProject, "uid-alice", now)),
                                   forged, std::string("not-a-token")}) {
        const auto refused = login(system, "+911000", bad);
        EXPECT_EQ(refused.status, 401) << refused.body;
        const json error = json::parse(refused.body, nullptr, false);
        ASSERT_TRUE(error.is_object()) << refused.body;
        EXPECT_TRUE(error.contains("error")) << refused.body;
        EXPECT_EQ(refused.body.find(bad.substr(bad.size() > 30 ? bad.size() - 30 : 0)), std::string::npos);
    }

    // The username is bound to uid-alice: another sub is refused, even with a valid token.
    const auto taken = login(system, "+911000", first_->token(header("k1"), claims(kProject, "uid-mallory", now)));
    EXPECT_EQ(taken.status, 401);
    EXPECT_EQ(json::parse(taken.body)["error"], "username is bound to another identity");

    // Rotation: tokens signed with a new kid. The set has no k2 yet: refused, and a fetch is
    // asked for; once the endpoint serves k2, the same token logs in, without a restart.
    const std::string rotated = second_->token(header("k2"), claims(kProject, "uid-bob", now));
    const std::size_t fetches = endpoint_.server().requests_to("/certs").size();
    endpoint_.serve({{"k1", first_->certificate_pem()}, {"k2", second_->certificate_pem()}});
    ASSERT_TRUE(eventually([&] { return login(system, "+912000", rotated).status == 200; }, 5s));
    EXPECT_GT(endpoint_.server().requests_to("/certs").size(), fetches);
    // Every fetch came over TLS with the host's name or address checked (SNI absent for an IP).
    EXPECT_EQ(endpoint_.server().failed_handshakes(), 0u);
}

TEST_F(IdentityTest, LogoutRevokesOneKeyEverywhereAndSurvivesARestart) {
    const auto data = dir_.path() / "data";
    LoggedIn phone, tablet;
    {
        RunningSystem system(local_topology(data));
        phone = system.login("alice");
        tablet = system.login("alice"); // another device, the same second
        ASSERT_NE(phone.access_key, tablet.access_key);
        const std::map<std::string, std::string> phone_auth = {{"user", "alice"}, {"accesskey", phone.access_key}};
        const std::map<std::string, std::string> tablet_auth = {{"user", "alice"}, {"accesskey", tablet.access_key}};
        WsClient socket = system.connect(phone);

        const auto logout = system.http("POST", "/v1.0/logout", {}, phone_auth);
        ASSERT_EQ(logout.status, 200) << logout.body;
        EXPECT_EQ(json::parse(logout.body), (json{{"status", true}}));
        const auto logged_out = std::chrono::steady_clock::now();
        // The open WebSocket of that key closes with 4001 within a second.
        EXPECT_FALSE(socket.read_json_matching([](const json&) { return false; }, 1500ms));
        EXPECT_EQ(socket.close_code(), 4001);
        EXPECT_EQ(socket.close_reason(), "access key revoked");
        EXPECT_LT(std::chrono::steady_clock::now() - logged_out, 1s);
        // REST and the upgrade refuse the key.
        EXPECT_EQ(system.http("GET", "/v1.0/profile", {}, phone_auth).status, 401);
        auto upgrade = WsClient::connect("127.0.0.1", system.ws_port(), "/wss", phone_auth);
        ASSERT_TRUE(std::holds_alternative<int>(upgrade));
        EXPECT_EQ(std::get<int>(upgrade), 401);
        // The other device's key is untouched.
        EXPECT_EQ(system.http("GET", "/v1.0/profile", {}, tablet_auth).status, 200);
        auto tablet_socket = WsClient::connect("127.0.0.1", system.ws_port(), "/wss", tablet_auth);
        EXPECT_TRUE(std::holds_alternative<WsClient>(tablet_socket));
        // DELETE /login is the same logout, for the tablet this time.
        EXPECT_EQ(system.http("DELETE", "/login", {}, tablet_auth).status, 200);
        EXPECT_TRUE(eventually([&] { return system.http("GET", "/profile", {}, tablet_auth).status == 401; }, 1s));
    }
    // Every daemon restarted on the same data: the revocations are still there (once the
    // gateways' first poll has answered, within a second), and a fresh login works.
    RunningSystem again(local_topology(data));
    const std::map<std::string, std::string> phone_auth = {{"user", "alice"}, {"accesskey", phone.access_key}};
    EXPECT_TRUE(eventually([&] { return again.http("GET", "/profile", {}, phone_auth).status == 401; }, 1s));
    EXPECT_TRUE(eventually([&] {
        auto upgrade = WsClient::connect("127.0.0.1", again.ws_port(), "/wss", phone_auth);
        return std::holds_alternative<int>(upgrade) && std::get<int>(upgrade) == 401;
    }, 1s));
    const LoggedIn fresh = again.login("alice");
    EXPECT_EQ(again.http("GET", "/profile", {}, {{"user", "alice"}, {"accesskey", fresh.access_key}}).status, 200);
}

} // namespace
} // namespace vartalap::testing
