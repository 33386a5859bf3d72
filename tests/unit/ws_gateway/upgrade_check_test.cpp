// The ws-gateway's upgrade decisions (check_upgrade, http_session.hpp): the order of refusals,
// and that upgrades wait for the first complete revocation list from the profile daemon.
#include "daemons/ws_gateway/http_session.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vartalap::ws_gateway {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;

const std::string kSecret(32, 's');

http::request<http::string_body> upgrade_request(const std::string& user, const std::string& key) {
    http::request<http::string_body> r{http::verb::get, "/wss/", 11};
    r.set(http::field::host, "localhost");
    r.set(http::field::connection, "Upgrade");
    r.set(http::field::upgrade, "websocket");
    r.set(http::field::sec_websocket_version, "13");
    r.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    r.set("user", user);
    r.set("accesskey", key);
    return r;
}

// Answers `list`'s pending poll with `entries` (complete or not).
void answer(RevocationList& list, std::uint64_t now_ms, json entries, bool complete) {
    auto poll = list.poll(now_ms, now_ms, 250);
    ASSERT_TRUE(poll);
    Envelope reply;
    reply.kind = Kind::reply;
    reply.request_id = poll->request_id;
    reply.status = Status::ok;
    reply.payload = json{{"epoch", "e1"}, {"version", 1}, {"complete", complete},
                         {"entries", std::move(entries)}}.dump();
    std::vector<std::pair<std::string, std::string>> added;
    ASSERT_TRUE(list.apply(reply, 1'700'000'000, added));
}

TEST(UpgradeCheck, WaitsForTheFirstCompleteRevocationList) {
    AccessKeys keys(kSecret);
    const std::string good = keys.issue("alice", 1);
    const std::string revoked = keys.issue("alice", 2);
    RevocationList list;

    // Before any answer: a good key is told to retry (503), a bad one is still 401.
    UpgradeVerdict early = check_upgrade(upgrade_request("alice", good), keys, false, false, &list);
    EXPECT_EQ(early.status, http::status::service_unavailable);
    EXPECT_EQ(early.error, R"({"error":"server starting, retry"})");
    EXPECT_EQ(check_upgrade(upgrade_request("alice", "nonsense"), keys, false, false, &list).status,
              http::status::unauthorized);

    // Part of the list (more follow): still waiting.
    answer(list, 1000, json::array({{{"seq", 1}, {"user", "alice"}, {"key", revoked}, {"expires", 0}}}),
           false);
    EXPECT_EQ(check_upgrade(upgrade_request("alice", revoked), keys, false, false, &list).status,
              http::status::service_unavailable);

    answer(list, 1001, json::array(), true);
    EXPECT_EQ(check_upgrade(upgrade_request("alice", good), keys, false, false, &list).status,
              http::status::switching_protocols);
    EXPECT_EQ(check_upgrade(upgrade_request("alice", revoked), keys, false, false, &list).status,
              http::status::unauthorized);
    // At capacity: 503 "server busy, retry".
    UpgradeVerdict full = check_upgrade(upgrade_request("alice", good), keys, false, true, &list);
    EXPECT_EQ(full.status, http::status::service_unavailable);
    EXPECT_EQ(full.error, R"({"error":"server busy, retry"})");
    // No list at all (no profile daemon in the topology): nothing to wait for.
    EXPECT_EQ(check_upgrade(upgrade_request("alice", good), keys, false, false, nullptr).status,
              http::status::switching_protocols);
}

TEST(UpgradeCheck, WaitsForAConnectedMessageRouter) {
    AccessKeys keys(kSecret);
    const std::string good = keys.issue("alice", 1);
    // The list is complete but no router is connected yet: 503 "server starting, retry".
    UpgradeVerdict early = check_upgrade(upgrade_request("alice", good), keys, false, false, nullptr,
                                         {}, /*routable=*/false);
    EXPECT_EQ(early.status, http::status::service_unavailable);
    EXPECT_EQ(early.error, R"({"error":"server starting, retry"})");
    // A bad key is still 401 first.
    EXPECT_EQ(check_upgrade(upgrade_request("alice", "nonsense"), keys, false, false, nullptr, {}, false).status,
              http::status::unauthorized);
    EXPECT_EQ(check_upgrade(upgrade_request("alice", good), keys, false, false, nullptr, {}, true).status,
              http::status::switching_protocols);
}

} // namespace
} // namespace vartalap::ws_gateway
