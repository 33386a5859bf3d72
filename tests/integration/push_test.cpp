// The push daemon against local fakes of its providers: a real ZeroMQ context, the real
// profile daemon and the real push daemon, and a Beast server in a thread that plays the
// Google OAuth2 token endpoint and the FCM send endpoint over HTTPS (certificates from a CA
// the test makes at runtime) or a webhook over plain HTTP, recording every request exactly.
//
// Thread: the test's thread drives the daemons through their sockets; each fake server runs
// its own io_context on its own thread and shares only its records (under a mutex).
#include "common/wire/envelope.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/factories.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tests/integration/support/fake_http_server.hpp"
#include "tests/unit/push/test_crypto.hpp"
#include "tests/support/deadline.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

namespace vartalap {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

using testing_http::CannedResponse;
using testing_http::FakeHttpServer;
using testing_http::RecordedRequest;

// ---------------------------------------------------------------------------------------
// The daemons under test

constexpr const char* kProjectId = "test-project";
constexpr const char* kClientEmail = "push@test-project.iam.gserviceaccount.com";
const std::string kTokenTarget = "/token";
const std::string kSendTarget = std::string("/v1/projects/") + kProjectId + "/messages:send";

std::string decode_form_value(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') {
            out += ' ';
        } else if (text[i] == '%' && i + 2 < text.size()) {
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::map<std::string, std::string> decode_form(std::string_view body) {
    std::map<std::string, std::string> fields;
    while (!body.empty()) {
        const std::size_t amp = body.find('&');
        const std::string_view pair = body.substr(0, amp);
        const std::size_t eq = pair.find('=');
        fields[decode_form_value(pair.substr(0, eq))] =
            eq == std::string_view::npos ? "" : decode_form_value(pair.substr(eq + 1));
        body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    }
    return fields;
}

std::string message_json(const std::string& id, const std::string& to, const std::string& content_type = "text") {
    return json{{"_v", 2.1},
                {"id", id},
                {"head",
                 {{"type", "individual"},
                  {"to", to},
                  {"from", "bob"},
                  {"chatid", "bob"},
                  {"contentType", content_type},
                  {"action", "message"},
                  {"category", "message"}}},
                {"meta", {{"createdAt", 1700000000000}}},
                {"body", {{"text", "hello \"" + to + "\" ☺"}, {"ts", 1700000000}}}}
        .dump();
}

// A profile daemon and a push daemon from one topology, plus the test's own sockets: a
// DEALER to the profile ROUTER (to log users in and read their tokens) and a PUSH to the
// push daemon's PULL (playing persistence).
class PushSystem {
public:
    explicit PushSystem(const std::string& push_options) {
        const std::string text = R"([system]
name = "push-test"
data_dir = ')" + dir_.path().string() + R"('
log_level = "info"

# Not started: the file format wants a gateway, a router and a session in every topology.
[[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = "127.0.0.1:0"
router = "inproc://ws-1"

[[daemon]]
kind = "message-router"
name = "router-1"
pull = "inproc://router-1"

[[daemon]]
kind = "session"
name = "session-1"
pull = "inproc://session-1"

[[daemon]]
kind = "profile"
name = "profile-1"
router = "inproc://profile-1"

[[daemon]]
kind = "push"
name = "push-1"
pull = "inproc://push-1"
[daemon.options]
)" + push_options;
        auto loaded = topology::load_string(text, "push-test.toml");
        if (!loaded.topology) {
            std::string errors;
            for (const auto& e : loaded.errors) errors += e.str() + "\n";
            throw std::runtime_error("test topology does not load:\n" + errors);
        }
        topology_ = std::move(*loaded.topology);
        const auto* profile_spec = topology_.find("profile-1");
        const auto* push_spec = topology_.find("push-1");
        profile_context_ = std::make_unique<DaemonContext>(DaemonContext{
            zmq_, topology_, *profile_spec, dir_.path() / "profile-1", keys_, clock_});
        push_context_ = std::make_unique<DaemonContext>(DaemonContext{
            zmq_, topology_, *push_spec, dir_.path() / "push-1", keys_, clock_});
        profile_ = make_profile(*profile_context_);
        push_ = make_push(*push_context_);
        profile_->bind();
        push_->bind();
        profile_->connect();
        push_->connect();
        profile_->start();
        push_->start();

        dealer_ = make_socket(zmq_, zmq::socket_type::dealer);
        dealer_.connect("inproc://profile-1");
        persistence_ = make_socket(zmq_, zmq::socket_type::push);
        persistence_.connect("inproc://push-1");
    }

    ~PushSystem() {
        push_->request_stop();
        profile_->request_stop();
        push_->join();
        profile_->join();
        push_.reset();
        profile_.reset();
        dealer_.close();
        persistence_.close();
    }

    // A request to the profile daemon, as the push daemon (or a gateway) sends it.
    Envelope request(const std::string& method, const json& body) {
        Envelope envelope;
        envelope.kind = Kind::request;
        envelope.request_id = ++request_id_;
        envelope.method = method;
        envelope.payload = body.dump();
        std::string scratch;
        EXPECT_EQ(send_envelope(dealer_, envelope, scratch), SendResult::ok);
        const auto deadline = Clock::now() + vartalap::test::scaled(5s);
        Incoming incoming;
        while (Clock::now() < deadline) {
            zmq::pollitem_t item{dealer_.handle(), 0, ZMQ_POLLIN, 0};
            zmq::poll(&item, 1, 100ms);
            if (receive_envelope(dealer_, false, incoming) == ReceiveResult::ok &&
                incoming.envelope.request_id == envelope.request_id)
                return incoming.envelope;
        }
        ADD_FAILURE() << "no reply from the profile daemon to " << method;
        return {};
    }

    void login(const std::string& user, const std::string& device_token) {
        const Envelope reply = request("login", {{"username", user},
                                                 {"authToken", "dev"},
                                                 {"notificationToken", device_token},
                                                 {"deviceId", "default"}});
        ASSERT_EQ(reply.status, Status::ok) << reply.payload;
    }

    // The token the profile daemon holds for `user`, or "" when it answers not_found.
    std::string stored_token(const std::string& user) {
        const Envelope reply = request("notification_token", {{"username", user}});
        if (reply.status == Status::not_found) return "";
        EXPECT_EQ(reply.status, Status::ok);
        return json::parse(reply.payload).value("token", "?");
    }

    // Waits (re-asking the profile daemon) until `user`'s token is `expected`.
    bool wait_for_stored_token(const std::string& user, const std::string& expected,
                               std::chrono::milliseconds deadline = 10s) {
        const auto until = Clock::now() + vartalap::test::scaled(deadline);
        for (;;) {
            if (stored_token(user) == expected) return true;
            if (Clock::now() >= until) return false;
            // The profile daemon has no change notification to wait on: re-ask every 20 ms
            // until the deadline.
            std::this_thread::sleep_for(20ms);
        }
    }

    // What persistence sends for a message that went offline.
    void notify(const std::string& to, const std::string& id, const std::string& payload) {
        Envelope envelope;
        envelope.kind = Kind::offline_notify;
        envelope.to = to;
        envelope.id = id;
        envelope.payload = payload;
        std::string scratch;
        ASSERT_EQ(send_envelope(persistence_, envelope, scratch), SendResult::ok);
    }

    const std::filesystem::path& dir() const { return dir_.path(); }

private:
    testing::TempDir dir_;
    zmq::context_t zmq_;
    topology::Topology topology_;
    AccessKeys keys_{std::string(32, 'k')};
    SystemClock clock_;
    std::unique_ptr<DaemonContext> profile_context_;
    std::unique_ptr<DaemonContext> push_context_;
    std::unique_ptr<Daemon> profile_;
    std::unique_ptr<Daemon> push_;
    zmq::socket_t dealer_;
    zmq::socket_t persistence_;
    std::uint64_t request_id_ = 0;
};

void write_file(const std::filesystem::path& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary);
    out << content;
}

// The HTTPS fixture: a CA, a server certificate for localhost and 127.0.0.1, a service
// account whose key the test keeps to verify signatures, and the fake FCM server.
class FcmPushTest : public ::testing::Test {
protected:
    // RSA key generation takes a good fraction of a second: one CA, server certificate and
    // service-account key serve the whole suite.
    static void SetUpTestSuite() {
        ca_ = new testing_crypto::TestCa();
        server_certificate_ = new testing_crypto::Issued(ca_->issue({"localhost", "127.0.0.1"}));
        account_key_ = new testing_crypto::RsaKey(testing_crypto::RsaKey::generate(2048));
    }
    static void TearDownTestSuite() {
        delete account_key_;
        delete server_certificate_;
        delete ca_;
    }

    // Starts the fake with `handler` for sends (the token endpoint answers by itself) and the
    // daemons pointed at it. `extra_options` are appended to the push daemon's options.
    void start(FakeHttpServer::Handler send_handler, const std::string& extra_options = "",
               const testing_crypto::Issued* certificate = nullptr, bool trust_test_ca = true) {
        system_ = std::make_unique<PushSystem>(
            start_fake(std::move(send_handler), certificate, trust_test_ca) + extra_options);
    }

    // Starts only the fake and writes its files; returns the push daemon's options for it.
    std::string start_fake(FakeHttpServer::Handler send_handler,
                           const testing_crypto::Issued* certificate = nullptr,
                           bool trust_test_ca = true) {
        server_ = std::make_unique<FakeHttpServer>(
            [this, send_handler](const RecordedRequest& request, std::size_t nth) -> CannedResponse {
                if (request.target == kTokenTarget)
                    return {200,
                            json{{"access_token", "ya29.fake-" + std::to_string(nth + 1)},
                                 {"expires_in", 3599},
                                 {"token_type", "Bearer"}}
                                .dump(),
                            {}};
                if (request.target == kSendTarget) return send_handler(request, nth);
                return {404, "{}", {}};
            },
            certificate ? certificate : server_certificate_);
        base_url_ = "https://localhost:" + std::to_string(server_->port());
        token_uri_ = base_url_ + kTokenTarget;

        // The daemons' temp dir is made by PushSystem; write the files next to it.
        files_ = std::make_unique<testing::TempDir>();
        const auto ca_file = files_->path() / "ca.pem";
        write_file(ca_file, ca_->certificate_pem());
        const auto account_file = files_->path() / "service-account.json";
        write_file(account_file, json{{"type", "service_account"},
                                      {"project_id", kProjectId},
                                      {"private_key_id", "k1"},
                                      {"private_key", account_key_->private_pem()},
                                      {"client_email", kClientEmail},
                                      {"client_id", "1"},
                                      {"token_uri", token_uri_}}
                                     .dump(2));
        std::string options = "provider = \"fcm\"\nservice_account_file = '" + account_file.string() + "'\n" +
                              "fcm_endpoint = '" + base_url_ + kSendTarget + "'\n";
        if (trust_test_ca) options += "ca_file = '" + ca_file.string() + "'\n";
        return options;
    }

    static CannedResponse ok(const RecordedRequest&, std::size_t) {
        return {200, R"({"name":"projects/test-project/messages/0:1"})", {}};
    }

    static inline testing_crypto::TestCa* ca_ = nullptr;
    static inline testing_crypto::Issued* server_certificate_ = nullptr;
    static inline testing_crypto::RsaKey* account_key_ = nullptr;
    std::unique_ptr<testing::TempDir> files_;
    std::unique_ptr<FakeHttpServer> server_;
    std::string base_url_;
    std::string token_uri_;
    std::unique_ptr<PushSystem> system_;
};

TEST_F(FcmPushTest, SignedAssertionThenOneBearerForEverySend) {
    start(ok);
    system_->login("alice", "device-alice");
    const std::uint64_t before = static_cast<std::uint64_t>(std::time(nullptr));
    const std::string first = message_json("m1", "alice");
    const std::string second = message_json("m2", "alice");
    system_->notify("alice", "m1", first);
    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 1));
    system_->notify("alice", "m2", second);
    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 2));
    const std::uint64_t after = static_cast<std::uint64_t>(std::time(nullptr));

    // The token request: a form-encoded JWT bearer grant.
    const auto token_requests = server_->requests_to(kTokenTarget);
    ASSERT_EQ(token_requests.size(), 1u) << "the bearer token is fetched once and reused";
    const RecordedRequest& token_request = token_requests[0];
    EXPECT_EQ(token_request.method, "POST");
    EXPECT_EQ(token_request.header("content-type"), "application/x-www-form-urlencoded");
    EXPECT_EQ(token_request.sni, "localhost") << "SNI carries the host name";
    const auto form = decode_form(token_request.body);
    EXPECT_EQ(form.size(), 2u) << token_request.body;
    EXPECT_EQ(form.at("grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer");

    // The assertion: RS256 over the service account's claims, signed with its key.
    const auto parts = testing_crypto::split_jwt(form.at("assertion"));
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(json::parse(testing_crypto::base64url_decode(parts[0])), (json{{"alg", "RS256"}, {"typ", "JWT"}}));
    const json claims = json::parse(testing_crypto::base64url_decode(parts[1]));
    EXPECT_EQ(claims["iss"], kClientEmail);
    EXPECT_EQ(claims["scope"], "https://www.googleapis.com/auth/firebase.messaging");
    EXPECT_EQ(claims["aud"], token_uri_);
    const std::uint64_t issued_at = claims["iat"].get<std::uint64_t>();
    EXPECT_GE(issued_at, before);
    EXPECT_LE(issued_at, after);
    EXPECT_EQ(claims["exp"].get<std::uint64_t>(), issued_at + 3600);
    EXPECT_EQ(claims.size(), 5u) << claims.dump();
    EXPECT_TRUE(account_key_->verify_rs256(parts[0] + "." + parts[1], testing_crypto::base64url_decode(parts[2])))
        << "the signature verifies with the service account's public key";

    // The sends: the same bearer, the exact FCM v1 shape.
    const auto sends = server_->requests_to(kSendTarget);
    ASSERT_EQ(sends.size(), 2u);
    const std::string payloads[] = {first, second};
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(sends[i].method, "POST");
        EXPECT_EQ(sends[i].header("authorization"), "Bearer ya29.fake-1");
        EXPECT_EQ(sends[i].header("content-type"), "application/json");
        EXPECT_EQ(sends[i].header("host"), "localhost:" + std::to_string(server_->port()));
        const json body = json::parse(sends[i].body);
        EXPECT_EQ(body, (json{{"message",
                               {{"token", "device-alice"},
                                {"data", {{"message", payloads[i]}}},
                                {"android", {{"priority", "high"}}}}}}))
            << sends[i].body;
    }
    // Connections are kept alive and reused: three requests never take three connections.
    // (Two sends in flight at once may each need one, so two is the bound, not one.)
    std::set<std::size_t> connections;
    for (const auto& request : server_->requests()) connections.insert(request.connection);
    EXPECT_LE(connections.size(), 2u);
    EXPECT_LT(connections.size(), server_->requests().size());
}

TEST_F(FcmPushTest, ServiceUnavailableWithRetryAfterIsRetriedOnceItHasPassed) {
    start([](const RecordedRequest& request, std::size_t nth) -> CannedResponse {
        const std::string id = json::parse(json::parse(request.body)["message"]["data"]["message"].get<std::string>())["id"];
        if (id == "m1" && nth == 0) return {503, R"({"error":{"code":503,"status":"UNAVAILABLE"}})", {{"Retry-After", "1"}}};
        return ok(request, nth);
    });
    system_->login("alice", "device-alice");
    system_->notify("alice", "m1", message_json("m1", "alice"));
    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 2));
    // A later notification goes through after m1's success: had m1 been retried again, its
    // third attempt would be recorded before this one.
    system_->notify("alice", "m2", message_json("m2", "alice"));
    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 3));

    const auto sends = server_->requests_to(kSendTarget);
    ASSERT_EQ(sends.size(), 3u);
    EXPECT_EQ(sends[0].body, sends[1].body) << "the retry sends the same push";
    EXPECT_EQ(json::parse(json::parse(sends[2].body)["message"]["data"]["message"].get<std::string>())["id"], "m2");
    EXPECT_GE(sends[1].at - sends[0].at, 950ms) << "Retry-After: 1 is honoured";
    EXPECT_EQ(server_->requests_to(kTokenTarget).size(), 1u);
}

TEST_F(FcmPushTest, UnregisteredTokenIsRemovedFromTheProfile) {
    start([](const RecordedRequest&, std::size_t) -> CannedResponse {
        return {404,
                json{{"error",
                      {{"code", 404},
                       {"message", "Requested entity was not found."},
                       {"status", "NOT_FOUND"},
                       {"details", json::array({{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"},
                                                 {"errorCode", "UNREGISTERED"}}})}}}}
                    .dump(),
                {}};
    });
    system_->login("alice", "device-alice");
    ASSERT_EQ(system_->stored_token("alice"), "device-alice");
    system_->notify("alice", "m1", message_json("m1", "alice"));
    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 1));
    EXPECT_TRUE(system_->wait_for_stored_token("alice", "")) << "notification_token answers not_found";
    EXPECT_EQ(server_->requests_to(kSendTarget).size(), 1u) << "an unregistered token is not retried";
}

// The whole chain through the real daemons of local.toml plus a push daemon: a message to
// an offline user is handed to persistence, announced once, pushed once to (fake) FCM with
// the device token from /login, listed by GET /messages, delivered on connect, gone after
// the ack, and never pushed again.
TEST_F(FcmPushTest, OfflineMessageThroughTheWholeSystemIsPushedOnce) {
    const std::string options = start_fake(ok);
    testing::TempDir data;
    testing::RunningSystem system(testing::local_topology(data.path(), [&](topology::Topology& t) {
        topology::DaemonSpec push;
        push.kind = "push";
        push.name = "push-1";
        push.endpoints["pull"] = "inproc://push-1";
        push.options = toml::parse(options);
        t.daemons.push_back(std::move(push));
    }));
    const auto alice = system.login("alice");
    const auto bob = system.login("bob"); // notificationToken "fcm-bob"
    auto alice_ws = system.connect(alice);
    alice_ws.send_text(testing::text_message("push-e2e-1", bob.user, "wake up").dump());
    ASSERT_TRUE(testing::wait_for_server_ack(alice_ws, "push-e2e-1"));

    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 1));
    auto sends = server_->requests_to(kSendTarget);
    ASSERT_EQ(sends.size(), 1u);
    const json body = json::parse(sends[0].body);
    EXPECT_EQ(body["message"]["token"], "fcm-bob");
    EXPECT_EQ(body["message"]["android"]["priority"], "high");
    const json pushed = json::parse(body["message"]["data"]["message"].get<std::string>());
    EXPECT_EQ(pushed["id"], "push-e2e-1");
    EXPECT_EQ(pushed["head"]["from"], "alice");

    const std::map<std::string, std::string> bob_auth = {{"user", bob.user}, {"accesskey", bob.access_key}};
    EXPECT_NE(system.http("GET", "/messages", "", bob_auth).body.find("push-e2e-1"), std::string::npos);
    auto bob_ws = system.connect(bob);
    ASSERT_TRUE(testing::wait_for_id(bob_ws, "push-e2e-1"));
    bob_ws.send_text(testing::receipt("push-e2e-rc", alice.user, {"push-e2e-1"}).dump());
    ASSERT_TRUE(testing::wait_for_id(alice_ws, "push-e2e-rc"));
    const auto gone_by = std::chrono::steady_clock::now() + vartalap::test::scaled(std::chrono::seconds(10));
    while (system.http("GET", "/messages", "", bob_auth).body.find("push-e2e-1") != std::string::npos &&
           std::chrono::steady_clock::now() < gone_by) {
    }
    EXPECT_EQ(system.http("GET", "/messages", "", bob_auth).body.find("push-e2e-1"), std::string::npos);
    EXPECT_EQ(server_->requests_to(kSendTarget).size(), 1u) << "pushed once";
}

TEST_F(FcmPushTest, NotificationContentAndUsersWithoutATokenAreNotPushed) {
    start(ok);
    system_->login("alice", "device-alice");
    system_->notify("alice", "g1", message_json("g1", "alice", "notification"));
    system_->notify("carol", "c1", message_json("c1", "carol")); // never logged in: no token
    system_->notify("alice", "m1", message_json("m1", "alice"));
    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 1));
    // m1 came after the other two on the same socket; a sentinel after it makes sure nothing
    // else was on its way.
    system_->notify("alice", "m2", message_json("m2", "alice"));
    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 2));
    std::vector<std::string> ids;
    for (const auto& send : server_->requests_to(kSendTarget))
        ids.push_back(json::parse(json::parse(send.body)["message"]["data"]["message"].get<std::string>())["id"]);
    EXPECT_EQ(ids, (std::vector<std::string>{"m1", "m2"}));
}

TEST_F(FcmPushTest, A401RefreshesTheBearerOnceAndResends) {
    start([](const RecordedRequest& request, std::size_t nth) -> CannedResponse {
        if (nth == 0) return {401, R"({"error":{"code":401,"status":"UNAUTHENTICATED"}})", {}};
        return ok(request, nth);
    });
    system_->login("alice", "device-alice");
    system_->notify("alice", "m1", message_json("m1", "alice"));
    ASSERT_TRUE(server_->wait_for_requests(kSendTarget, 2));
    const auto sends = server_->requests_to(kSendTarget);
    EXPECT_EQ(sends[0].header("authorization"), "Bearer ya29.fake-1");
    EXPECT_EQ(sends[1].header("authorization"), "Bearer ya29.fake-2");
    EXPECT_EQ(server_->requests_to(kTokenTarget).size(), 2u);
}

TEST_F(FcmPushTest, CertificatesAreVerified) {
    // Trusting only the system store, the test CA's certificate is refused.
    start(ok, "max_attempts = 1\n", nullptr, /*trust_test_ca=*/false);
    system_->login("alice", "device-alice");
    system_->notify("alice", "m1", message_json("m1", "alice"));
    ASSERT_TRUE(server_->wait([](const auto&, std::size_t failed) { return failed >= 1; }));
    EXPECT_TRUE(server_->requests().empty());
}

TEST_F(FcmPushTest, TheHostNameIsVerified) {
    // A certificate from the trusted CA, but for another name.
    const testing_crypto::Issued wrong_name = ca_->issue({"push.example.org"});
    start(ok, "max_attempts = 1\n", &wrong_name);
    system_->login("alice", "device-alice");
    system_->notify("alice", "m1", message_json("m1", "alice"));
    ASSERT_TRUE(server_->wait([](const auto&, std::size_t failed) { return failed >= 1; }));
    EXPECT_TRUE(server_->requests().empty());
}

TEST(PushProfileTokens, RemoveTokenRemovesOnlyTheCurrentToken) {
    // A webhook daemon that never gets a notification: only the profile is exercised.
    PushSystem system("provider = \"webhook\"\nwebhook_url = \"http://127.0.0.1:9/unused\"\n");
    EXPECT_EQ(system.request("notification_token", {{"username", "nobody"}}).status, Status::not_found);
    EXPECT_EQ(system.request("notification_token", json::object()).status, Status::bad_request);
    system.login("alice", "device-old");
    system.login("alice", "device-new"); // the app re-registered while a push was in flight
    Envelope reply = system.request("remove_token", {{"username", "alice"}, {"token", "device-old"}});
    EXPECT_EQ(reply.status, Status::ok);
    EXPECT_EQ(json::parse(reply.payload)["removed"], false);
    EXPECT_EQ(system.stored_token("alice"), "device-new");
    reply = system.request("remove_token", {{"username", "alice"}, {"token", "device-new"}});
    EXPECT_EQ(json::parse(reply.payload)["removed"], true);
    EXPECT_EQ(system.stored_token("alice"), "");
    // The user is still there: only the token went.
    EXPECT_EQ(system.request("login", {{"username", "alice"}, {"authToken", "dev"}}).status, Status::ok);
    EXPECT_EQ(json::parse(system.request("login", {{"username", "alice"}, {"authToken", "dev"}}).payload)["isNew"],
              false);
}

TEST(WebhookPush, PostsTheMessageAndRemovesGoneTokens) {
    FakeHttpServer server([](const RecordedRequest& request, std::size_t) -> CannedResponse {
        const json body = json::parse(request.body);
        const std::string id = json::parse(body["message"].get<std::string>())["id"];
        if (id == "m2") return {410, "{}", {}};
        return {204, "", {}};
    });
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/hook";
    PushSystem system("provider = \"webhook\"\nwebhook_url = \"" + url + "\"\n");
    system.login("alice", "device-alice");
    const std::string first = message_json("m1", "alice");
    system.notify("alice", "m1", first);
    ASSERT_TRUE(server.wait_for_requests("/hook", 1));
    const RecordedRequest hook = server.requests_to("/hook")[0];
    EXPECT_EQ(hook.method, "POST");
    EXPECT_EQ(hook.header("content-type"), "application/json");
    EXPECT_EQ(hook.header("authorization"), "");
    EXPECT_EQ(json::parse(hook.body), (json{{"token", "device-alice"}, {"to", "alice"}, {"message", first}}));

    system.notify("alice", "m2", message_json("m2", "alice"));
    ASSERT_TRUE(server.wait_for_requests("/hook", 2));
    EXPECT_TRUE(system.wait_for_stored_token("alice", ""));
}

} // namespace
} // namespace vartalap
