// The web client (web/, served by the rest-gateway at /app/) in a real browser: headless
// Chromium driven over the DevTools protocol (the project's Beast WebSocket client speaks
// it), against local.toml on kernel-chosen ports. Two browser contexts (separate cookies and
// storage) log in as two users, chat both ways with delivered and read ticks, see the typing
// indicator, create a group (add and remove a member) and exchange a group message, and one
// of them gets messages sent while its page was closed: over GET /messages from a page whose
// WebSocket cannot open, and over the WebSocket on connect. Every wait polls the page's DOM
// (Runtime.evaluate of a promise that resolves when a condition holds, or at its deadline).
// Saves a screenshot as web-client.png in the build tree.
//
// Skipped (GTEST_SKIP) only when no chromium is installed (Debian's `chromium`, which
// `make test` installs).
#include "tests/integration/support/child_process.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <string>

namespace vartalap::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The chromium binary: $VARTALAP_CHROMIUM, else the first `chromium` (or
// `chromium-browser`) on PATH; "" when there is none.
std::string find_chromium() {
    if (const char* forced = std::getenv("VARTALAP_CHROMIUM"); forced && *forced) return forced;
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    for (const char* name : {"chromium", "chromium-browser"}) {
        std::size_t start = 0;
        while (start <= dirs.size()) {
            const std::size_t end = std::min(dirs.find(':', start), dirs.size());
            const std::filesystem::path candidate =
                std::filesystem::path(dirs.substr(start, end - start)) / name;
            if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
            start = end + 1;
        }
    }
    return {};
}

std::string base64_decode(const std::string& text) {
    std::string out(text.size() / 4 * 3 + 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0) throw std::runtime_error("bad base64");
    std::size_t size = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts the padding's zero bytes too.
    for (std::size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --size;
    out.resize(size);
    return out;
}

// One browser-level DevTools connection; commands to a page carry its session id
// (Target.attachToTarget with flatten).
class DevTools {
public:
    explicit DevTools(WsClient ws) : ws_(std::move(ws)) {}

    // The command's result; throws with the browser's error, or when no answer comes.
    json call(const std::string& method, json params = json::object(),
              const std::string& session = {}, std::chrono::milliseconds deadline = 10s) {
        const int id = ++next_id_;
        json command{{"id", id}, {"method", method}, {"params", std::move(params)}};
        if (!session.empty()) command["sessionId"] = session;
        if (!ws_.send_text(command.dump())) throw std::runtime_error("DevTools socket closed");
        auto answer = ws_.read_json_matching(
            [id](const json& m) { return m.is_object() && m.value("id", -1) == id; }, deadline);
        if (!answer) throw std::runtime_error("no answer to " + method);
        if (answer->contains("error")) throw std::runtime_error(method + ": " + (*answer)["error"].dump());
        return (*answer)["result"];
    }

private:
    WsClient ws_;
    int next_id_ = 0;
};

// A page (tab) in a browser context.
class Page {
public:
    Page(DevTools& devtools, const std::string& context, const std::string& url)
        : devtools_(devtools) {
        target_ = devtools_.call("Target.createTarget",
                                 {{"url", url}, {"browserContextId", context}})["targetId"];
        session_ = devtools_.call("Target.attachToTarget",
                                  {{"targetId", target_}, {"flatten", true}})["sessionId"];
    }

    // The value of a JavaScript expression (a promise is awaited).
    json eval(const std::string& expression, std::chrono::milliseconds deadline = 10s) {
        const json result = devtools_.call(
            "Runtime.evaluate",
            {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}},
            session_, deadline);
        if (result.contains("exceptionDetails"))
            throw std::runtime_error("page: " + result["exceptionDetails"].dump());
        return result["result"].value("value", json());
    }

    // Waits until `condition` (a JavaScript expression) is true in the page: the page checks
    // it every 25 ms up to the deadline. An evaluation the page could not finish (a
    // navigation replaced its document) is tried again.
    bool wait_for(const std::string& condition, std::chrono::milliseconds deadline = 10s) {
        const auto scaled_deadline = test::scaled(deadline);
        const auto until = std::chrono::steady_clock::now() + scaled_deadline;
        while (std::chrono::steady_clock::now() < until) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                until - std::chrono::steady_clock::now());
            const std::string probe =
                "new Promise((resolve) => { const end = Date.now() + " +
                std::to_string(left.count()) + "; const check = () => { let ok = false; "
                "try { ok = !!(" + condition + "); } catch (e) {} "
                "if (ok) resolve(true); else if (Date.now() > end) resolve(false); "
                "else setTimeout(check, 25); }; check(); })";
            try {
                return eval(probe, left + 2s).get<bool>();
            } catch (const std::exception&) {
                // the document went away mid-wait (navigation): ask the new one
            }
        }
        return false;
    }

    // Runs statements in the page.
    void act(const std::string& statements) { eval("(() => { " + statements + " })()"); }

    // The value of a DOM expression, for failure messages.
    std::string show(const std::string& expression) {
        try {
            return eval(expression).dump();
        } catch (const std::exception& e) {
            return e.what();
        }
    }

    std::string screenshot_png() {
        return base64_decode(devtools_.call("Page.captureScreenshot", {{"format", "png"}},
                                            session_)["data"].get<std::string>());
    }

    void close() { devtools_.call("Target.closeTarget", {{"targetId", target_}}); }

private:
    DevTools& devtools_;
    std::string target_;
    std::string session_;
};

std::string quoted(const std::string& text) { return json(text).dump(); }

// Fills the input `selector` with `text`, firing the input event as typing does.
std::string type_into(const std::string& selector, const std::string& text) {
    return "{ const i = document.querySelector(" + quoted(selector) + "); i.value = " +
           quoted(text) + "; i.dispatchEvent(new Event('input', {bubbles: true})); }";
}

std::string submit(const std::string& form) {
    return "document.querySelector(" + quoted(form) + ").requestSubmit();";
}

std::string click(const std::string& selector) {
    return "document.querySelector(" + quoted(selector) + ").click();";
}

// The state of my message with `text` in the open conversation ("" when absent).
std::string tick_of(const std::string& text) {
    return "([...document.querySelectorAll('#messages li.mine')].find((li) => "
           "li.querySelector('.text').textContent === " + quoted(text) +
           ")?.querySelector('.ticks')?.dataset.state || '')";
}

std::string has_message(const std::string& text) {
    return "[...document.querySelectorAll('#messages li .text')].some((t) => t.textContent === " +
           quoted(text) + ")";
}

std::string chat_item(const std::string& chat) {
    return "document.querySelector('#chat-list li[data-chat=' + CSS.escape(" + quoted(chat) + ") + ']')";
}

TEST(WebClientTest, TwoBrowsersChatWithTicksTypingGroupsAndOfflineMessages) {
    const std::string chromium = find_chromium();
    if (chromium.empty())
        GTEST_SKIP() << "chromium is not installed (Debian package `chromium`; `make test` "
                        "installs it): the web client's browser test does not run";

    TempDir dir;
    RunningSystem sys(local_topology(dir.path() / "data"));
    // The pages come from the rest-gateway; their WebSocket goes to the ws-gateway on
    // another port, which must accept their origin for a cookie-authenticated upgrade.
    const std::string origin = "http://127.0.0.1:" + std::to_string(sys.rest_port());
    auto fresh = local_topology(dir.path() / "data", [&](topology::Topology& t) {
        for (auto& daemon : t.daemons)
            if (daemon.kind == "ws-gateway")
                daemon.options.insert_or_assign("allowed_origins", toml::array{origin});
    });
    // Endpoints differ (port 0 in `fresh`); only options are applied.
    sys.reload(fresh);
    sys.login("carol-web"); // a registered user to add to the group

    // --log-level=3: only fatal log lines, so what the browser writes to the pipe we stop
    // reading after its first lines stays far below the pipe's 64 KiB.
    const std::filesystem::path profile = dir.path() / "chromium";
    Child browser({chromium, "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                   "--disable-extensions", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync",
                   "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                   "--disable-backgrounding-occluded-windows", "--window-size=1000,640", "--log-level=3",
                   "--user-data-dir=" + profile.string(), "--remote-debugging-port=0",
                   "about:blank"},
                  true);
    // "DevTools listening on ws://127.0.0.1:<port>/devtools/browser/<id>" on stderr.
    std::smatch match;
    const std::regex listening(R"(DevTools listening on ws://127\.0\.0\.1:(\d+)(/\S+))");
    std::string line;
    const auto until = std::chrono::steady_clock::now() + test::scaled(20s);
    while (std::chrono::steady_clock::now() < until) {
        auto next = browser.line(std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now()));
        if (!next) break;
        line = *next;
        if (std::regex_search(line, match, listening)) break;
    }
    ASSERT_FALSE(match.empty()) << "chromium did not start its DevTools server; last line: " << line;
    auto socket = WsClient::connect("127.0.0.1", std::stoi(match[1]), match[2], {}, 10s);
    ASSERT_TRUE(std::holds_alternative<WsClient>(socket)) << "DevTools upgrade refused";
    DevTools devtools(std::move(std::get<WsClient>(socket)));

    const std::string url = origin + "/app/?ws=" + "ws://127.0.0.1:" + std::to_string(sys.ws_port()) + "/wss";
    const std::string alice_context =
        devtools.call("Target.createBrowserContext")["browserContextId"];
    const std::string bob_context = devtools.call("Target.createBrowserContext")["browserContextId"];
    Page alice(devtools, alice_context, url);
    Page bob(devtools, bob_context, url);

    for (auto [page, user] : {std::pair{&alice, "alice-web"}, std::pair{&bob, "bob-web"}}) {
        ASSERT_TRUE(page->wait_for("document.readyState === 'complete' && "
                                   "document.querySelector('#identity-note').textContent !== ''"))
            << user << ": the login page did not load: "
            << page->show("location.href + ' ' + document.readyState + ' ' + document.title + ' ' + document.documentElement.outerHTML.slice(0, 300)");
        page->act(type_into("#username", user) + submit("#login-form"));
    }
    for (auto [page, user] : {std::pair{&alice, "alice-web"}, std::pair{&bob, "bob-web"}})
        ASSERT_TRUE(page->wait_for("document.querySelector('#status').textContent === 'online'"))
            << user << " not connected: " << page->show("document.querySelector('#status').title")
            << page->show("document.querySelector('#login-error').textContent");

    // alice → bob: sent, then delivered (bob's page received it), then read (bob opens it).
    alice.act(type_into("#new-chat-name", "bob-web") + submit("#new-chat-form"));
    ASSERT_TRUE(alice.wait_for("document.querySelector('#chat-title').textContent === 'bob-web'"))
        << alice.show("document.querySelector('#sidebar-error').textContent");
    alice.act(type_into("#message-input", "hello bob") + submit("#compose"));
    ASSERT_TRUE(bob.wait_for(chat_item("alice-web") + "?.querySelector('.last')?.textContent === 'hello bob'"))
        << bob.show("document.querySelector('#chat-list').textContent");
    EXPECT_TRUE(bob.wait_for(chat_item("alice-web") + ".querySelector('.unread').textContent === '1'"));
    EXPECT_TRUE(alice.wait_for(tick_of("hello bob") + " === 'delivered'"))
        << alice.show(tick_of("hello bob"));
    bob.act(click("#chat-list li[data-chat='alice-web']"));
    ASSERT_TRUE(bob.wait_for(has_message("hello bob")));
    EXPECT_TRUE(alice.wait_for(tick_of("hello bob") + " === 'read'")) << alice.show(tick_of("hello bob"));

    // Typing: alice types, bob (who has the chat open) sees it.
    alice.act(type_into("#message-input", "still typ"));
    EXPECT_TRUE(bob.wait_for("document.querySelector('#typing').textContent === 'typing…'"))
        << bob.show("document.querySelector('#typing').textContent");
    alice.act("document.querySelector('#message-input').value = '';");

    // bob → alice.
    bob.act(type_into("#message-input", "hi alice") + submit("#compose"));
    ASSERT_TRUE(alice.wait_for(has_message("hi alice")));
    EXPECT_TRUE(bob.wait_for(tick_of("hi alice") + " === 'read'")) << bob.show(tick_of("hi alice"));

    // A group: alice creates it with bob, adds and removes carol, and posts to it.
    alice.act(type_into("#new-group-name", "Team") + type_into("#new-group-members", "bob-web") +
              submit("#new-group-form"));
    ASSERT_TRUE(alice.wait_for("document.querySelector('#chat-title').textContent === 'Team' && "
                               "document.querySelectorAll('#members li').length === 2"))
        << alice.show("document.querySelector('#sidebar-error').textContent");
    alice.act(type_into("#add-member-name", "carol-web") + submit("#add-member-form"));
    ASSERT_TRUE(alice.wait_for("!!document.querySelector('#members li[data-user=\"carol-web\"]')"))
        << alice.show("document.querySelector('#sidebar-error').textContent");
    alice.act(click("#members button.remove[data-user='carol-web']"));
    ASSERT_TRUE(alice.wait_for("!document.querySelector('#members li[data-user=\"carol-web\"]') && "
                               "document.querySelectorAll('#members li').length === 2"));
    alice.act(type_into("#message-input", "hello team") + submit("#compose"));
    EXPECT_TRUE(alice.wait_for(tick_of("hello team") + " === 'delivered'")) << alice.show(tick_of("hello team"));
    ASSERT_TRUE(bob.wait_for("[...document.querySelectorAll('#chat-list li')].some((li) => "
                             "li.querySelector('.name').textContent.startsWith('# Team') && "
                             "li.querySelector('.last').textContent === 'alice-web: hello team')"))
        << bob.show("document.querySelector('#chat-list').textContent");
    bob.act("[...document.querySelectorAll('#chat-list li')].find((li) => "
            "li.querySelector('.name').textContent.startsWith('# Team')).click();");
    EXPECT_TRUE(bob.wait_for(has_message("hello team") + " && " + has_message("alice-web added carol-web") +
                             " && " + has_message("alice-web removed carol-web")))
        << bob.show("document.querySelector('#messages').textContent");
    EXPECT_TRUE(alice.wait_for(tick_of("hello team") + " === 'read'"));

    // Offline, over REST: bob's page goes away; alice's message is stored (sent: its
    // SERVER_ACK). A page in bob's context (same cookies and storage: logged in) whose
    // WebSocket cannot open (the URL is the rest-gateway's, which upgrades nothing) fetches it
    // with GET /messages and sends its receipt over POST /send.
    bob.close();
    alice.act(click("#chat-list li[data-chat='bob-web']"));
    alice.act(type_into("#message-input", "while you were away") + submit("#compose"));
    ASSERT_TRUE(alice.wait_for(tick_of("while you were away") + " === 'sent'"))
        << alice.show(tick_of("while you were away"));
    Page bob_rest(devtools, bob_context, origin + "/app/?ws=ws://127.0.0.1:" +
                                             std::to_string(sys.rest_port()) + "/wss");
    ASSERT_TRUE(bob_rest.wait_for(
        "document.querySelector('#status')?.textContent === 'offline' && " + chat_item("alice-web") +
        "?.querySelector('.last')?.textContent === 'while you were away'"))
        << bob_rest.show("document.querySelector('#chat-list')?.textContent");
    EXPECT_TRUE(alice.wait_for(tick_of("while you were away") + " === 'delivered'"))
        << alice.show(tick_of("while you were away"));
    bob_rest.close();

    // Offline, on connect: a message sent while bob has no page arrives over the WebSocket
    // when a page of his opens; opening the chat marks both read.
    alice.act(type_into("#message-input", "see you") + submit("#compose"));
    ASSERT_TRUE(alice.wait_for(tick_of("see you") + " === 'sent'")) << alice.show(tick_of("see you"));
    Page bob_again(devtools, bob_context, url);
    ASSERT_TRUE(bob_again.wait_for(
        "document.querySelector('#status')?.textContent === 'online' && " + chat_item("alice-web") +
        "?.querySelector('.last')?.textContent === 'see you'"))
        << bob_again.show("document.querySelector('#chat-list')?.textContent");
    EXPECT_TRUE(alice.wait_for(tick_of("see you") + " === 'delivered'"));
    bob_again.act(click("#chat-list li[data-chat='alice-web']"));
    EXPECT_TRUE(alice.wait_for(tick_of("see you") + " === 'read' && " + tick_of("while you were away") +
                               " === 'read'"))
        << alice.show(tick_of("while you were away"));

    // Typing the other way round, for the screenshot too.
    bob_again.act(type_into("#message-input", "on my w"));
    EXPECT_TRUE(alice.wait_for("document.querySelector('#typing').textContent === 'typing…'"));

    const std::string png = alice.screenshot_png();
    ASSERT_GT(png.size(), 1000u);
    EXPECT_EQ(png.substr(1, 3), "PNG");
    std::ofstream(std::filesystem::path(VARTALAP_TEST_BINARY_DIR) / "web-client.png", std::ios::binary)
        << png;

    devtools.call("Browser.close");
    EXPECT_TRUE(browser.wait_exit(10s).has_value());
}

} // namespace
} // namespace vartalap::testing
