// Issue 12, "Identity and keys" and "Cross-site use of cookie auth", against real daemons:
// each test tries one hole as an attacker would, sees the refusal (status, JSON error or
// error frame), and checks that another user is unaffected. docs/SECURITY.md lists them
// ("Abuse cases").
//
// Thread: the test's. One system for the suite (started once: each test uses its own
// users), with a known secret so a test can sign keys as a forger who had it would, and
// allowed_origins = ["https://app.example.com"] on both gateways.
#include "tests/integration/support/system_fixture.hpp"

#include "common/access_key.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sys/wait.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kSecret = "hex:5ec05ec05ec05ec05ec05ec05ec05ec05ec05ec05ec05ec05ec05ec05ec05ec0";
constexpr const char* kAllowedOrigin = "https://app.example.com";

std::uint64_t now_seconds() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

// The headers of a WebSocket upgrade, for sending one through http_request (which reads
// the refusal's body; WsClient only reports its status).
std::map<std::string, std::string> upgrade_headers() {
    return {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"},
            {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
}

std::string cookie_of(const LoggedIn& who) { return "user=" + who.user + "; accesskey=" + who.access_key; }

class SecurityAuthTest : public SharedSystemTest<SecurityAuthTest> {
protected:
    static void SetUpTestSuite() {
        start_shared([](topology::Topology& t) {
            t.secret = kSecret;
            for (auto& daemon : t.daemons)
                if (daemon.kind == "ws-gateway" || daemon.kind == "rest-gateway")
                    daemon.options.insert_or_assign("allowed_origins", toml::array{kAllowedOrigin});
        });
    }
    std::string own_origin() const { return "http://127.0.0.1:" + std::to_string(system_->rest_port()); }

    // A message from `from`'s socket to `to`, which `to_ws` receives: the delivery path works.
    void delivered(WsClient& from_ws, WsClient& to_ws, const std::string& to, const std::string& id) {
        ASSERT_TRUE(send_until_server_ack(from_ws, text_message(id, to, "hello").dump(), id));
        EXPECT_TRUE(wait_for_id(to_ws, id));
    }

};

// --- Identity and keys ------------------------------------------------------------------

TEST_F(SecurityAuthTest, AKeyDatedInTheFutureIsRefused) {
    // A forger with the secret (or a host with a wrong clock) dates a key a day ahead, so
    // that it would outlive any max age: both gateways refuse it.
    const LoggedIn alice = system().login("+911000000001");
    const AccessKeys keys(secret_from_config(kSecret));
    const LoggedIn ahead{alice.user, keys.issue(alice.user, now_seconds() + 86'400)};
    EXPECT_EQ(system().http("GET", "/v1.0/profile", {}, auth(ahead)).status, 401);
    auto ws = WsClient::connect("127.0.0.1", system().ws_port(), "/wss", auth(ahead));
    ASSERT_TRUE(std::holds_alternative<int>(ws));
    EXPECT_EQ(std::get<int>(ws), 401);
    // Within the allowed skew (a host's clock a little ahead), and the login's own key: fine.
    const LoggedIn skewed{alice.user, keys.issue(alice.user, now_seconds() + 60)};
    EXPECT_EQ(system().http("GET", "/v1.0/profile", {}, auth(skewed)).status, 200);
    EXPECT_EQ(system().http("GET", "/v1.0/profile", {}, auth(alice)).status, 200);
}

TEST_F(SecurityAuthTest, ReservedAndMalformedUsernamesCannotLogIn) {
    for (const std::string& name : std::vector<std::string>{"server", "SERVER", "~server:g:1", "0f8fad5b-d9cb-469f-a165-70867728950e",
                                   "../../etc", "a b", std::string(65, '9')}) {
        const json body = {{"username", name}, {"authToken", "dev-token"}, {"notificationToken", "x"}};
        const auto response = system().http("POST", "/v1.0/login", body.dump());
        EXPECT_EQ(response.status, 400) << name;
        const json reply = json::parse(response.body, nullptr, false);
        ASSERT_TRUE(reply.is_object()) << response.body;
        EXPECT_EQ(reply.value("error", "").rfind("invalid username: ", 0), 0u) << response.body;
    }
    // The app's usernames (E.164 phone numbers) log in as before.
    const LoggedIn phone = system().login("+911234567890");
    EXPECT_EQ(system().http("GET", "/v1.0/profile", {}, auth(phone)).status, 200);
}

TEST_F(SecurityAuthTest, AKeyForServerNeverAuthenticates) {
    // A user registered as `server` before the names were reserved still holds a correctly
    // signed key: it opens no socket (whose frames would pass for the server's) and no REST.
    const AccessKeys keys(secret_from_config(kSecret));
    const LoggedIn server{"server", keys.issue("server", now_seconds())};
    auto ws = WsClient::connect("127.0.0.1", system().ws_port(), "/wss", auth(server));
    ASSERT_TRUE(std::holds_alternative<int>(ws));
    EXPECT_EQ(std::get<int>(ws), 401);
    EXPECT_EQ(system().http("POST", "/send", text_message("s-1", "+911000000009", "x").dump(), auth(server)).status,
              401);
}

TEST_F(SecurityAuthTest, ReservedAndMalformedRecipientsAreRefusedOnTheSocket) {
    const LoggedIn alice = system().login("+911000000011");
    const LoggedIn bob = system().login("+911000000012");
    WsClient alice_ws = system().connect(alice);
    WsClient bob_ws = system().connect(bob);
    int n = 0;
    for (const std::string& to : std::vector<std::string>{"server", "~server:g:1", "0f8fad5b-d9cb-469f-a165-70867728950e",
                                 std::string("bob\0x", 5), "bob smith", "../../etc/passwd", "a\x01",
                                 std::string(300, 'b')}) {
        const std::string id = "bad-" + std::to_string(++n);
        ASSERT_TRUE(alice_ws.send_text(text_message(id, to, "x").dump()));
        const auto error = wait_for_id(alice_ws, id);
        ASSERT_TRUE(error) << "no answer for a message to " << to;
        EXPECT_EQ((*error)["head"].value("contentType", ""), "error");
        const std::string reason = (*error)["body"].value("error", "");
        EXPECT_TRUE(reason.starts_with("invalid recipient (head.to): ") ||
                    reason == "head field has the wrong type or is too long")
            << reason;
    }
    EXPECT_TRUE(alice_ws.is_open());
    delivered(alice_ws, bob_ws, bob.user, "ok-1"); // alice and bob unaffected
}

TEST_F(SecurityAuthTest, ReservedRecipientsAreRefusedOverRest) {
    const LoggedIn alice = system().login("+911000000021");
    const LoggedIn bob = system().login("+911000000022");
    WsClient bob_ws = system().connect(bob);
    const json body = json::array({text_message("r-1", "server", "x"), text_message("r-2", "a/../b", "x"),
                                   text_message("r-3", bob.user, "x")});
    const auto response = system().http("POST", "/send", body.dump(), auth(alice));
    ASSERT_EQ(response.status, 200) << response.body;
    const json results = json::parse(response.body)["results"];
    EXPECT_EQ(results[0]["status"], "refused");
    EXPECT_EQ(results[0]["reason"], "invalid recipient (head.to): reserved");
    EXPECT_EQ(results[1]["status"], "refused");
    EXPECT_EQ(results[2]["status"], "accepted");
    EXPECT_TRUE(wait_for_id(bob_ws, "r-3"));
}

TEST_F(SecurityAuthTest, ValidateRefusesTheDevelopmentProviderOnAPublicAddress) {
    TempDir dir;
    const auto file = dir.path() / "public.toml";
    write_local_topology(file, dir.path() / "data");
    std::string text;
    {
        std::ifstream in(file);
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto validate = [&](const std::string& topology) {
        std::ofstream(file) << topology;
        const std::string command = std::string(VARTALAPCTL_PATH) + " validate " + file.string() + " 2>&1";
        FILE* pipe = ::popen(command.c_str(), "r");
        std::string output;
        if (!pipe) return std::pair{-1, output};
        char chunk[4096];
        while (std::size_t got = std::fread(chunk, 1, sizeof chunk, pipe)) output.append(chunk, got);
        const int status = ::pclose(pipe);
        return std::pair{WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
    };
    const auto [ok_status, ok_output] = validate(text);
    EXPECT_EQ(ok_status, 0) << ok_output;
    // The same topology with the WebSocket gateway on every interface.
    const auto at = text.find("listen = \"127.0.0.1:0\"");
    ASSERT_NE(at, std::string::npos) << text;
    std::string exposed = text;
    exposed.replace(at, std::string("listen = \"127.0.0.1:0\"").size(), "listen = \"0.0.0.0:0\"");
    const auto [status, output] = validate(exposed);
    EXPECT_EQ(status, 1) << output;
    EXPECT_NE(output.find("identity_provider \"development\" accepts any identity token"), std::string::npos)
        << output;
    EXPECT_NE(output.find("non-loopback address '0.0.0.0:0'"), std::string::npos) << output;
}

// --- Cross-site use of cookie auth ------------------------------------------------------

TEST_F(SecurityAuthTest, ACookieUpgradeFromAForeignOriginIsRefused) {
    const LoggedIn alice = system().login("+911000000031");
    const LoggedIn bob = system().login("+911000000032");
    WsClient bob_ws = system().connect(bob);
    // evil.example's page opens a socket; the browser attaches alice's cookies.
    auto headers = upgrade_headers();
    headers["Cookie"] = cookie_of(alice);
    headers["Origin"] = "https://evil.example";
    const auto refused = http_request("127.0.0.1", system().ws_port(), "GET", "/wss", {}, headers);
    EXPECT_EQ(refused.status, 403);
    EXPECT_EQ(refused.body, R"({"error":"origin not allowed"})");
    headers["Origin"] = "null";
    EXPECT_EQ(http_request("127.0.0.1", system().ws_port(), "GET", "/wss", {}, headers).status, 403);
    // The server's own page, and the one allowed origin, may use the cookies.
    int n = 0;
    for (const std::string& origin : std::vector<std::string>{"http://127.0.0.1:" + std::to_string(system().ws_port()),
                                     std::string(kAllowedOrigin)}) {
        auto ws = WsClient::connect("127.0.0.1", system().ws_port(), "/wss?ack=true",
                                    {{"Cookie", cookie_of(alice)}, {"Origin", origin}});
        ASSERT_TRUE(std::holds_alternative<WsClient>(ws)) << origin << ": " << std::get<int>(ws);
        delivered(std::get<WsClient>(ws), bob_ws, bob.user, "c-" + std::to_string(++n));
    }
    // The app authenticates with headers: its Origin (if any) is not checked.
    auto app = WsClient::connect("127.0.0.1", system().ws_port(), "/wss?ack=true",
                                 {{"user", alice.user}, {"accesskey", alice.access_key}, {"Origin", "https://evil.example"}});
    ASSERT_TRUE(std::holds_alternative<WsClient>(app));
    delivered(std::get<WsClient>(app), bob_ws, bob.user, "c-app");
}

TEST_F(SecurityAuthTest, ACookiePostFromAForeignOriginIsRefused) {
    const LoggedIn alice = system().login("+911000000041");
    const LoggedIn bob = system().login("+911000000042");
    WsClient bob_ws = system().connect(bob);
    // A form-like text/plain POST /send (a "simple" request: no preflight) and a JSON one.
    for (const std::string& type : std::vector<std::string>{"text/plain", "application/json"}) {
        const auto refused = system().http("POST", "/send", text_message("x-" + type, bob.user, "pwned").dump(),
                                           {{"Cookie", cookie_of(alice)}, {"Origin", "https://evil.example"},
                                            {"Content-Type", type}});
        EXPECT_EQ(refused.status, 403) << type;
        EXPECT_EQ(refused.body, R"({"error":"origin not allowed"})");
    }
    // A logout (no body) is a write too: evil.example cannot sign alice out.
    EXPECT_EQ(system().http("POST", "/logout", {}, {{"Cookie", cookie_of(alice)}, {"Origin", "https://evil.example"}})
                  .status,
              403);
    // The server's own origin may.
    const auto own = system().http("POST", "/send", text_message("x-own", bob.user, "hi").dump(),
                                   {{"Cookie", cookie_of(alice)}, {"Origin", own_origin()}});
    EXPECT_EQ(own.status, 200) << own.body;
    ASSERT_TRUE(wait_for_id(bob_ws, "x-own"));
    // Nothing of the refused ones arrived; alice's key still works (no logout happened).
    EXPECT_FALSE(wait_for_id(bob_ws, "x-text/plain", 300ms));
    EXPECT_EQ(system().http("GET", "/v1.0/profile", {}, auth(alice)).status, 200);
}

TEST_F(SecurityAuthTest, RestWritesWithABodyMustBeJson) {
    const LoggedIn alice = system().login("+911000000051");
    const LoggedIn bob = system().login("+911000000052");
    WsClient bob_ws = system().connect(bob);
    for (const std::string& type : std::vector<std::string>{"text/plain", "application/x-www-form-urlencoded", ""}) {
        const auto refused = system().http("POST", "/send", text_message("j-1", bob.user, "x").dump(),
                                           {{"user", alice.user}, {"accesskey", alice.access_key},
                                            {"Content-Type", type}});
        EXPECT_EQ(refused.status, 415) << type;
        EXPECT_EQ(refused.body, R"({"error":"Content-Type must be application/json"})");
    }
    const json login = {{"username", "+911000000053"}, {"authToken", "dev"}};
    EXPECT_EQ(system().http("POST", "/login", login.dump(), {{"Content-Type", "text/plain"}}).status, 415);
    // What the app sends ("application/json; charset=utf-8", the test client's default).
    const auto sent = system().http("POST", "/send", text_message("j-2", bob.user, "x").dump(), auth(alice));
    EXPECT_EQ(sent.status, 200) << sent.body;
    EXPECT_TRUE(wait_for_id(bob_ws, "j-2"));
    EXPECT_FALSE(wait_for_id(bob_ws, "j-1", 300ms));
}

} // namespace
} // namespace vartalap::testing
