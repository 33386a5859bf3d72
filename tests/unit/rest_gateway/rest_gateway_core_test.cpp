// RestGatewayCore with a fake clock, a fake outbox and fake exchanges: request correlation,
// timeout answers, the REST → internal translation, send results.
#include "daemons/rest_gateway/rest_gateway_core.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

namespace vartalap::rest_gateway {
namespace {

using nlohmann::json;

class FakeClock final : public Clock {
public:
    std::uint64_t monotonic_ms() const override { return now_ms; }
    std::uint64_t wall_ms() const override { return 1'700'000'000'000 + now_ms; }
    std::uint64_t now_ms = 1000;
};

class FakeOutbox final : public RestOutbox {
public:
    bool has_owner(std::string_view kind) const override { return owners.count(std::string(kind)) > 0; }
    SendResult to_owner(std::string_view kind, const Envelope& request) override {
        if (busy) return SendResult::would_block;
        owner_requests.emplace_back(std::string(kind), request);
        return SendResult::ok;
    }
    SendResult to_router(const Envelope& message) override {
        if (busy) return SendResult::would_block;
        pushed.push_back(message);
        return SendResult::ok;
    }
    SendResult reply(std::string_view routing_id, const Envelope& reply) override {
        replies.emplace_back(std::string(routing_id), reply);
        return SendResult::ok;
    }
    void sent() override { ++sent_calls; }

    std::set<std::string> owners{"profile", "persistence", "group"};
    bool busy = false;
    std::vector<std::pair<std::string, Envelope>> owner_requests;
    std::vector<Envelope> pushed;
    std::vector<std::pair<std::string, Envelope>> replies;
    int sent_calls = 0;
};

class FakeExchange final : public RestExchange {
public:
    void respond(RestResponse r) override {
        ++responses;
        response = std::move(r);
    }
    int responses = 0;
    std::optional<RestResponse> response;
};

const std::string kSecret(32, 's');

class RestGatewayCoreTest : public ::testing::Test {
protected:
    RestGatewayCoreTest() : keys_(kSecret) {
        limits_.request_timeout_ms = 5000;
        limits_.send_timeout_ms = 10000;
        core_ = std::make_unique<RestGatewayCore>("rest-1", outbox_, clock_, keys_, limits_,
                                                  ClientMessageLimits{});
        sync_revocations();
    }

    // Answers the core's first revocation poll with an empty complete list (epoch "e0"):
    // authenticated paths are refused with 503 until then.
    void sync_revocations() {
        core_->expire();
        if (outbox_.owner_requests.empty()) return; // no profile daemon
        Envelope reply;
        reply.kind = Kind::reply;
        reply.request_id = outbox_.owner_requests.back().second.request_id;
        reply.status = Status::ok;
        reply.payload = json{{"epoch", "e0"}, {"version", 0}, {"complete", true},
                             {"entries", json::array()}}.dump();
        core_->on_reply(std::move(reply));
        outbox_.owner_requests.clear();
        clock_.now_ms += 300; // the next poll is due
    }

    // Sends one request as alice (with a valid key unless `user` is empty).
    std::shared_ptr<FakeExchange> request(std::string method, std::string target,
                                          std::string body = {}, std::string user = "alice") {
        RestRequest r;
        r.method = std::move(method);
        r.target = std::move(target);
        r.body = std::move(body);
        r.content_type = "application/json";
        if (!user.empty()) {
            r.access_key = key_of(user);
            r.user = std::move(user);
        }
        r.token = token_;
        auto exchange = std::make_shared<FakeExchange>();
        core_->handle(exchange, std::move(r));
        return exchange;
    }

    // One key per user for the whole test (each issue() makes a new one: a new nonce).
    const std::string& key_of(const std::string& user) {
        auto it = keys_of_.find(user);
        if (it == keys_of_.end()) it = keys_of_.emplace(user, keys_.issue(user, 1)).first;
        return it->second;
    }

    static json chat(const std::string& id, const std::string& to = "bob") {
        return {{"_v", 2.1}, {"id", id},
                {"head", {{"type", "individual"}, {"to", to}, {"chatid", "c1"},
                          {"contentType", "text"}, {"action", "message"}}},
                {"meta", {{"createdAt", 1}}},
                {"body", {{"text", "hi"}}}};
    }

    Envelope server_ack(std::uint64_t token, Status status = Status::ok, std::string error = {}) {
        Envelope e;
        e.kind = Kind::server_ack;
        e.connection = token;
        e.status = status;
        e.error = std::move(error);
        return e;
    }

    FakeClock clock_;
    FakeOutbox outbox_;
    AccessKeys keys_;
    RestLimits limits_;
    std::optional<std::string> token_;
    std::map<std::string, std::string> keys_of_;
    std::unique_ptr<RestGatewayCore> core_;
};

TEST_F(RestGatewayCoreTest, LocalAnswersNeedNoDaemon) {
    auto alive = request("GET", "/v1.0/alive", {}, "");
    ASSERT_TRUE(alive->response);
    EXPECT_EQ(alive->response->status, HttpStatus::ok);
    EXPECT_EQ(alive->response->body, "OK");
    EXPECT_EQ(alive->response->content_type, "text/plain");
    auto missing = request("GET", "/nowhere");
    EXPECT_EQ(missing->response->status, HttpStatus::not_found);
    EXPECT_EQ(missing->response->body, R"({"error":"not found"})");
    auto wrong = request("DELETE", "/messages");
    EXPECT_EQ(wrong->response->status, HttpStatus::method_not_allowed);
    EXPECT_EQ(wrong->response->allow, "GET, POST");
    auto anonymous = request("GET", "/profile", {}, "");
    EXPECT_EQ(anonymous->response->status, HttpStatus::unauthorized);
    EXPECT_EQ(anonymous->response->body, "{}");
    EXPECT_TRUE(outbox_.owner_requests.empty());
}

TEST_F(RestGatewayCoreTest, WrongKeyIsUnauthorized) {
    RestRequest r;
    r.method = "GET";
    r.target = "/profile";
    r.user = "bob";
    r.access_key = keys_.issue("alice", 1);
    auto exchange = std::make_shared<FakeExchange>();
    core_->handle(exchange, std::move(r));
    EXPECT_EQ(exchange->response->status, HttpStatus::unauthorized);
}

TEST_F(RestGatewayCoreTest, LogoutForwardsTheRequestsOwnKey) {
    for (const auto& [method, path] : {std::pair{"POST", "/logout"}, std::pair{"POST", "/v1.0/logout"},
                                       std::pair{"DELETE", "/login"}}) {
        outbox_.owner_requests.clear();
        request(method, path, R"({"accesskey":"someone else's"})");
        ASSERT_EQ(outbox_.owner_requests.size(), 1u) << path;
        const Envelope& sent = outbox_.owner_requests[0].second;
        EXPECT_EQ(outbox_.owner_requests[0].first, "profile");
        EXPECT_EQ(sent.method, "logout");
        EXPECT_EQ(sent.from, "alice");
        EXPECT_EQ(json::parse(sent.payload)["accesskey"], key_of("alice"));
        EXPECT_EQ(json::parse(sent.payload).size(), 1u);
    }
    // No body, or one that is not JSON: a logout all the same.
    outbox_.owner_requests.clear();
    request("POST", "/logout", "");
    request("DELETE", "/v1.0/login", "not json");
    EXPECT_EQ(outbox_.owner_requests.size(), 2u);
    EXPECT_EQ(request("POST", "/logout", {}, "")->response->status, HttpStatus::unauthorized);
}

TEST_F(RestGatewayCoreTest, ALogoutThisGatewayForwardedIsRefusedHereAtOnce) {
    auto logout = request("POST", "/logout");
    ASSERT_EQ(outbox_.owner_requests.size(), 1u);
    // Refused by profile: the key stays good.
    Envelope refused;
    refused.kind = Kind::reply;
    refused.request_id = outbox_.owner_requests[0].second.request_id;
    refused.status = Status::internal;
    core_->on_reply(Envelope(refused));
    ASSERT_TRUE(logout->response);
    EXPECT_NE(logout->response->status, HttpStatus::ok);
    EXPECT_FALSE(request("GET", "/profile")->response); // forwarded: not refused
    // Confirmed: refused here before any poll answer.
    auto again = request("POST", "/logout");
    Envelope ok;
    ok.kind = Kind::reply;
    ok.request_id = outbox_.owner_requests.back().second.request_id;
    ok.status = Status::ok;
    ok.payload = "{}";
    core_->on_reply(Envelope(ok));
    ASSERT_TRUE(again->response);
    EXPECT_EQ(again->response->status, HttpStatus::ok);
    auto after = request("GET", "/profile");
    ASSERT_TRUE(after->response);
    EXPECT_EQ(after->response->status, HttpStatus::unauthorized);
    EXPECT_EQ(after->response->body, R"({"error":"access key revoked"})");
}

TEST_F(RestGatewayCoreTest, AuthenticatedPathsWaitForTheFirstRevocationList) {
    core_ = std::make_unique<RestGatewayCore>("rest-1", outbox_, clock_, keys_, limits_,
                                              ClientMessageLimits{});
    EXPECT_FALSE(core_->serving());
    auto early = request("GET", "/profile");
    ASSERT_TRUE(early->response);
    EXPECT_EQ(early->response->status, HttpStatus::service_unavailable);
    EXPECT_EQ(early->response->body, R"({"error":"server starting, retry"})");
    EXPECT_EQ(core_->counters().starting_refused, 1u);
    // A bad key is still 401, and paths without authentication are served.
    auto anonymous = request("GET", "/profile", {}, "");
    EXPECT_EQ(anonymous->response->status, HttpStatus::unauthorized);
    EXPECT_EQ(request("GET", "/v1.0/alive", {}, "")->response->status, HttpStatus::ok);
    // An incomplete answer (more follow) is not enough.
    core_->expire();
    ASSERT_EQ(outbox_.owner_requests.size(), 1u);
    Envelope reply;
    reply.kind = Kind::reply;
    reply.request_id = outbox_.owner_requests[0].second.request_id;
    reply.status = Status::ok;
    reply.payload = json{{"epoch", "e1"}, {"version", 1}, {"complete", false},
                         {"entries", {{{"seq", 1}, {"user", "carol"}, {"key", "k"}, {"expires", 0}}}}}
                        .dump();
    core_->on_reply(std::move(reply));
    EXPECT_FALSE(core_->serving());
    EXPECT_EQ(request("GET", "/profile")->response->status, HttpStatus::service_unavailable);
    ASSERT_EQ(outbox_.owner_requests.size(), 2u); // the rest asked at once
    Envelope rest;
    rest.kind = Kind::reply;
    rest.request_id = outbox_.owner_requests[1].second.request_id;
    rest.status = Status::ok;
    rest.payload = json{{"epoch", "e1"}, {"version", 1}, {"complete", true},
                        {"entries", json::array()}}.dump();
    core_->on_reply(std::move(rest));
    EXPECT_TRUE(core_->serving());
    EXPECT_FALSE(request("GET", "/profile")->response); // forwarded to profile
    // Without a profile daemon there is no list to wait for.
    outbox_.owners.erase("profile");
    core_ = std::make_unique<RestGatewayCore>("rest-1", outbox_, clock_, keys_, limits_,
                                              ClientMessageLimits{});
    EXPECT_TRUE(core_->serving());
}

TEST_F(RestGatewayCoreTest, ARevokedKeyIsRefusedOnceThePollBringsIt) {
    core_->expire();
    ASSERT_EQ(outbox_.owner_requests.size(), 1u);
    Envelope poll = outbox_.owner_requests[0].second;
    EXPECT_EQ(poll.method, "revocations");
    EXPECT_EQ(json::parse(poll.payload), (json{{"epoch", "e0"}, {"since", 0}}));
    // Not again while it is in flight.
    clock_.now_ms += 300;
    core_->expire();
    EXPECT_EQ(outbox_.owner_requests.size(), 1u);

    Envelope reply;
    reply.kind = Kind::reply;
    reply.request_id = poll.request_id;
    reply.status = Status::ok;
    reply.payload = json{{"epoch", "e1"}, {"version", 1}, {"complete", true},
                         {"entries", {{{"seq", 1}, {"user", "alice"}, {"key", key_of("alice")}, {"expires", 0}}}}}
                        .dump();
    core_->on_reply(std::move(reply));
    EXPECT_TRUE(core_->revocations().synced());
    auto refused = request("GET", "/profile");
    EXPECT_EQ(refused->response->status, HttpStatus::unauthorized);
    EXPECT_EQ(refused->response->body, R"({"error":"access key revoked"})");
    EXPECT_EQ(core_->counters().revoked_refused, 1u);
    // alice's key from another login (another device) still works.
    RestRequest other;
    other.method = "GET";
    other.target = "/profile";
    other.user = "alice";
    other.access_key = keys_.issue("alice", 2);
    auto exchange = std::make_shared<FakeExchange>();
    core_->handle(exchange, std::move(other));
    EXPECT_FALSE(exchange->response); // forwarded to profile
    // The next poll asks for what follows.
    clock_.now_ms += 300;
    core_->expire();
    const Envelope& next = outbox_.owner_requests.back().second;
    EXPECT_EQ(next.method, "revocations");
    EXPECT_EQ(json::parse(next.payload), (json{{"epoch", "e1"}, {"since", 1}}));
}

TEST_F(RestGatewayCoreTest, ReplyIsCorrelatedByRequestId) {
    auto first = request("GET", "/profile");
    auto second = request("GET", "/v1.0/messages?limit=5&cursor=c9");
    ASSERT_EQ(outbox_.owner_requests.size(), 2u);
    EXPECT_FALSE(first->response);
    EXPECT_EQ(core_->pending_requests(), 2u);
    const auto& [kind1, r1] = outbox_.owner_requests[0];
    const auto& [kind2, r2] = outbox_.owner_requests[1];
    EXPECT_EQ(kind1, "profile");
    EXPECT_EQ(r1.kind, Kind::request);
    EXPECT_EQ(r1.method, "profile");
    EXPECT_EQ(r1.from, "alice");
    EXPECT_EQ(json::parse(r1.payload), json::object());
    EXPECT_EQ(kind2, "persistence");
    EXPECT_EQ(r2.method, "messages");
    EXPECT_EQ(json::parse(r2.payload), (json{{"limit", 5}, {"cursor", "c9"}}));
    EXPECT_NE(r1.request_id, r2.request_id);
    EXPECT_GE(outbox_.sent_calls, 2);

    Envelope reply;
    reply.kind = Kind::reply;
    reply.request_id = r2.request_id;
    reply.status = Status::refused;
    reply.payload = R"({"error":"no"})";
    core_->on_reply(Envelope(reply));
    EXPECT_FALSE(first->response);
    ASSERT_TRUE(second->response);
    EXPECT_EQ(second->response->status, HttpStatus::forbidden);
    EXPECT_EQ(second->response->body, R"({"error":"no"})");
    core_->on_reply(std::move(reply)); // a duplicate is ignored
    EXPECT_EQ(second->responses, 1);
    EXPECT_EQ(core_->counters().replied, 1u);
    EXPECT_EQ(core_->pending_requests(), 1u);

    Envelope not_a_reply;
    not_a_reply.kind = Kind::deliver;
    core_->on_reply(std::move(not_a_reply));
    EXPECT_EQ(core_->counters().malformed, 1u);
}

TEST_F(RestGatewayCoreTest, UnansweredRequestTimesOutWith504) {
    auto exchange = request("GET", "/profile");
    const std::uint64_t id = outbox_.owner_requests.at(0).second.request_id;
    clock_.now_ms += 4999;
    core_->expire();
    EXPECT_FALSE(exchange->response);
    clock_.now_ms += 1;
    core_->expire();
    ASSERT_TRUE(exchange->response);
    EXPECT_EQ(exchange->response->status, HttpStatus::gateway_timeout);
    EXPECT_EQ(exchange->response->body, R"({"error":"upstream timeout"})");
    EXPECT_EQ(core_->counters().upstream_timeouts, 1u);
    Envelope late;
    late.kind = Kind::reply;
    late.request_id = id;
    core_->on_reply(std::move(late));
    EXPECT_EQ(exchange->responses, 1);
}

TEST_F(RestGatewayCoreTest, TranslationOfBodiesQueriesAndHeaders) {
    token_ = "id-token";
    request("POST", "/login", R"({"username":"alice"})", "");
    request("POST", "/group/g-1/add", R"({"members":["bob"]})");
    request("DELETE", "/groups/g-1/members");
    ASSERT_EQ(outbox_.owner_requests.size(), 3u);
    EXPECT_EQ(outbox_.owner_requests[0].second.method, "login");
    EXPECT_EQ(outbox_.owner_requests[0].second.from, "");
    EXPECT_EQ(json::parse(outbox_.owner_requests[0].second.payload),
              (json{{"username", "alice"}, {"authToken", "id-token"}}));
    EXPECT_EQ(outbox_.owner_requests[1].first, "group");
    EXPECT_EQ(outbox_.owner_requests[1].second.method, "group_add");
    EXPECT_EQ(json::parse(outbox_.owner_requests[1].second.payload),
              (json{{"members", {"bob"}}, {"groupId", "g-1"}}));
    EXPECT_EQ(outbox_.owner_requests[2].second.method, "group_remove");
    EXPECT_EQ(json::parse(outbox_.owner_requests[2].second.payload), (json{{"groupId", "g-1"}}));
    // The body's authToken wins over the header.
    request("POST", "/login", R"({"authToken":"in-body"})", "");
    EXPECT_EQ(json::parse(outbox_.owner_requests.back().second.payload)["authToken"], "in-body");

    auto not_object = request("POST", "/contactbook/sync", "[1]");
    EXPECT_EQ(not_object->response->status, HttpStatus::bad_request);
    EXPECT_EQ(not_object->response->body, R"({"error":"body must be a JSON object"})");
    auto bad_limit = request("GET", "/messages?limit=ten");
    EXPECT_EQ(bad_limit->response->status, HttpStatus::bad_request);
    EXPECT_EQ(bad_limit->response->body, R"({"error":"limit must be a number"})");
    auto deep = request("POST", "/contactbook/sync", std::string(100, '[') + std::string(100, ']'));
    EXPECT_EQ(deep->response->status, HttpStatus::bad_request);
}

TEST_F(RestGatewayCoreTest, MissingOwnerIs404) {
    outbox_.owners.erase("group");
    auto no_group = request("GET", "/groups/g-7");
    ASSERT_TRUE(no_group->response);
    EXPECT_EQ(no_group->response->status, HttpStatus::not_found);
    EXPECT_EQ(no_group->response->body, R"({"error":"this deployment runs no group daemon"})");
}

TEST_F(RestGatewayCoreTest, BusyOwnerIs503) {
    outbox_.busy = true;
    auto exchange = request("GET", "/profile");
    EXPECT_EQ(exchange->response->status, HttpStatus::service_unavailable);
    EXPECT_EQ(exchange->response->body, R"({"error":"server busy, retry"})");
    EXPECT_EQ(core_->counters().busy, 1u);
    EXPECT_EQ(core_->pending_requests(), 0u);
}

TEST_F(RestGatewayCoreTest, SendIsAnsweredWhenEveryMessageIsDurable) {
    const json body = json::array({chat("m1"), chat("m2"), json{{"id", "bad"}}});
    auto exchange = request("POST", "/send", body.dump());
    ASSERT_EQ(outbox_.pushed.size(), 2u);
    const Envelope& m1 = outbox_.pushed[0];
    EXPECT_EQ(m1.from, "alice");
    EXPECT_EQ(m1.origin_gateway, "rest-1");
    EXPECT_TRUE(m1.has(flag_wants_server_ack));
    EXPECT_EQ(m1.created_at_ms, clock_.wall_ms());
    EXPECT_NE(m1.connection, outbox_.pushed[1].connection);
    EXPECT_FALSE(exchange->response);
    EXPECT_EQ(core_->pending_sends(), 1u);

    core_->on_router("session-1", server_ack(outbox_.pushed[1].connection, Status::refused, "full"));
    EXPECT_FALSE(exchange->response);
    core_->on_router("session-1", server_ack(m1.connection));
    ASSERT_TRUE(exchange->response);
    EXPECT_EQ(exchange->response->status, HttpStatus::ok);
    const json results = json::parse(exchange->response->body)["results"];
    EXPECT_EQ(results[0], (json{{"id", "m1"}, {"status", "accepted"}}));
    EXPECT_EQ(results[1]["reason"], "full");
    EXPECT_EQ(results[2]["status"], "refused");
    EXPECT_EQ(core_->pending_sends(), 0u);
    core_->on_router("session-1", server_ack(m1.connection)); // a resend's ack: ignored
    EXPECT_EQ(exchange->responses, 1);
}

// Issue 11, section 3: the original's POST /messages?ack=true answered {"acks":[...]}, one
// SERVER_ACK frame (a string) per message; here beside the results, for accepted messages.
TEST_F(RestGatewayCoreTest, MessagesWithAckTrueCarryTheAcksBesideTheResults) {
    const json body = json::array({chat("m1").dump(), chat("m2").dump(), "{oops"});
    auto exchange = request("POST", "/v1.0/messages?ack=true", body.dump());
    ASSERT_EQ(outbox_.pushed.size(), 2u);
    core_->on_router("s", server_ack(outbox_.pushed[0].connection));
    core_->on_router("s", server_ack(outbox_.pushed[1].connection, Status::refused, "no"));
    ASSERT_TRUE(exchange->response);
    EXPECT_EQ(exchange->response->status, HttpStatus::created);
    const json answer = json::parse(exchange->response->body);
    EXPECT_EQ(answer["results"].size(), 3u);
    ASSERT_EQ(answer["acks"].size(), 1u);
    ASSERT_TRUE(answer["acks"][0].is_string());
    const json ack = json::parse(answer["acks"][0].get<std::string>());
    EXPECT_EQ(ack["id"], "m1");
    EXPECT_EQ(ack["head"]["contentType"], "SERVER_ACK");
    EXPECT_EQ(ack["head"]["to"], "alice");
    EXPECT_EQ(ack["head"]["from"], "server");
    EXPECT_EQ(ack["body"]["ts"], clock_.wall_ms() / 1000);
    // Without ack=true (and on /send) there is no "acks".
    auto plain = request("POST", "/messages?ack=false", json::array({chat("m3").dump()}).dump());
    core_->on_router("s", server_ack(outbox_.pushed.back().connection));
    ASSERT_TRUE(plain->response);
    EXPECT_FALSE(json::parse(plain->response->body).contains("acks"));
    auto send = request("POST", "/send?ack=true", chat("m4").dump());
    core_->on_router("s", server_ack(outbox_.pushed.back().connection));
    ASSERT_TRUE(send->response);
    EXPECT_FALSE(json::parse(send->response->body).contains("acks"));
}

// Issue 11, section 3: the app's /group/... routes answer as the original did; the
// REST-style /groups/... keep their codes.
TEST_F(RestGatewayCoreTest, AppGroupRoutesAnswerWithStatus) {
    auto answer = [this](const std::shared_ptr<FakeExchange>& exchange, Status status,
                         std::string payload, std::string error) {
        Envelope reply;
        reply.kind = Kind::reply;
        reply.request_id = outbox_.owner_requests.back().second.request_id;
        reply.status = status;
        reply.error = std::move(error);
        reply.payload = payload.empty() ? json{{"error", reply.error}}.dump() : std::move(payload);
        core_->on_reply(std::move(reply));
        EXPECT_TRUE(exchange->response);
    };
    auto added = request("POST", "/group/g-1/add", R"({"members":["bob"]})");
    answer(added, Status::ok, R"({"groupId":"g-1","members":[]})", "");
    EXPECT_EQ(added->response->status, HttpStatus::ok);
    EXPECT_EQ(json::parse(added->response->body)["status"], true);
    EXPECT_EQ(json::parse(added->response->body)["groupId"], "g-1");

    auto refused = request("POST", "/v1.0/group/g-1/remove", R"({"member":"carol"})");
    answer(refused, Status::refused, "", "only an admin can remove other members");
    EXPECT_EQ(refused->response->status, HttpStatus::ok);
    EXPECT_EQ(json::parse(refused->response->body),
              (json{{"status", false}, {"error", "only an admin can remove other members"}}));

    auto missing = request("POST", "/group/g-9/add", R"({"members":["bob"]})");
    answer(missing, Status::not_found, "", "no such group");
    EXPECT_EQ(missing->response->status, HttpStatus::not_found);
    EXPECT_EQ(json::parse(missing->response->body), (json{{"status", false}, {"error", "no such group"}}));

    auto rest_style = request("DELETE", "/groups/g-1/members", R"({"member":"carol"})");
    answer(rest_style, Status::refused, "", "only an admin can remove other members");
    EXPECT_EQ(rest_style->response->status, HttpStatus::forbidden);
    EXPECT_EQ(json::parse(rest_style->response->body),
              (json{{"error", "only an admin can remove other members"}}));

    auto created = request("POST", "/group/create", R"({"name":"n","members":[]})");
    answer(created, Status::ok, R"({"groupId":"g-2"})", "");
    EXPECT_EQ(created->response->body, R"({"groupId":"g-2"})");
}

TEST_F(RestGatewayCoreTest, AMessageRefusedForAFullStoreMakesTheSendA507WithItsResults) {
    const json body = json::array({chat("m1"), chat("m2")});
    auto exchange = request("POST", "/send", body.dump());
    ASSERT_EQ(outbox_.pushed.size(), 2u);
    core_->on_router("session-1", server_ack(outbox_.pushed[0].connection));
    core_->on_router("session-1", server_ack(outbox_.pushed[1].connection, Status::storage_full,
                                             "server storage full"));
    ASSERT_TRUE(exchange->response);
    EXPECT_EQ(exchange->response->status, HttpStatus::insufficient_storage);
    const json answer = json::parse(exchange->response->body);
    EXPECT_EQ(answer["error"], "server storage full");
    EXPECT_EQ(answer["results"][0], (json{{"id", "m1"}, {"status", "accepted"}}));
    EXPECT_EQ(answer["results"][1],
              (json{{"id", "m2"}, {"status", "refused"}, {"reason", "server storage full"}}));
    // An owner daemon's storage_full reply (a login the profile store cannot take) is 507 too.
    EXPECT_EQ(http_status(Status::storage_full), HttpStatus::insufficient_storage);
}

TEST_F(RestGatewayCoreTest, UnconfirmedMessagesTimeOut) {
    const json body = json::array({chat("m1").dump(), chat("m2").dump()});
    auto exchange = request("POST", "/v1.0/messages", body.dump());
    ASSERT_EQ(outbox_.pushed.size(), 2u);
    core_->on_router("s", server_ack(outbox_.pushed[0].connection));
    clock_.now_ms += 9999;
    core_->expire();
    EXPECT_FALSE(exchange->response);
    clock_.now_ms += 1;
    core_->expire();
    ASSERT_TRUE(exchange->response);
    EXPECT_EQ(exchange->response->status, HttpStatus::created);
    const json results = json::parse(exchange->response->body)["results"];
    EXPECT_EQ(results[0]["status"], "accepted");
    EXPECT_EQ(results[1]["reason"], "not confirmed");
    core_->on_router("s", server_ack(outbox_.pushed[1].connection)); // too late
    EXPECT_EQ(exchange->responses, 1);
}

TEST_F(RestGatewayCoreTest, DeliverIsAnsweredNotConnected) {
    Envelope deliver;
    deliver.kind = Kind::deliver;
    deliver.request_id = 77;
    core_->on_router("session-2", deliver);
    ASSERT_EQ(outbox_.replies.size(), 1u);
    EXPECT_EQ(outbox_.replies[0].first, "session-2");
    EXPECT_EQ(outbox_.replies[0].second.kind, Kind::deliver_result);
    EXPECT_EQ(outbox_.replies[0].second.request_id, 77u);
    EXPECT_EQ(outbox_.replies[0].second.status, Status::not_connected);
}

// Issue 12, "Cross-site use of cookie auth": a browser attaches the user's cookies to a
// POST another site's page makes it send; only the Origin says who asked.
TEST_F(RestGatewayCoreTest, CookieAuthenticatedWritesFromAForeignOriginAre403) {
    const auto cookie_send = [&](const std::string& origin, const std::string& method = "POST",
                                 const std::string& target = "/send") {
        RestRequest r;
        r.method = method;
        r.target = target;
        r.body = chat("x1").dump();
        r.content_type = "application/json";
        r.user = "alice";
        r.access_key = key_of("alice");
        r.cookie_auth = true;
        r.origin = origin;
        r.host = "chat.example.org";
        auto exchange = std::make_shared<FakeExchange>();
        core_->handle(exchange, std::move(r));
        return exchange;
    };
    auto evil = cookie_send("https://evil.example");
    ASSERT_TRUE(evil->response);
    EXPECT_EQ(evil->response->status, HttpStatus::forbidden);
    EXPECT_EQ(evil->response->body, R"({"error":"origin not allowed"})");
    EXPECT_EQ(cookie_send("null")->response->status, HttpStatus::forbidden);
    EXPECT_EQ(cookie_send("https://evil.example", "DELETE", "/groups/g-1/members")->response->status,
              HttpStatus::forbidden);
    EXPECT_TRUE(outbox_.pushed.empty());
    EXPECT_EQ(core_->counters().origin_refused, 3u);
    // The server's own origin, and a request with no Origin, go through.
    EXPECT_FALSE(cookie_send("https://chat.example.org")->response); // waits for its server_ack
    EXPECT_FALSE(cookie_send("")->response);
    EXPECT_EQ(outbox_.pushed.size(), 2u);
    // A listed origin goes through too.
    limits_.allowed_origins = {"https://app.example.com"};
    core_->set_limits(limits_, ClientMessageLimits{});
    EXPECT_FALSE(cookie_send("https://app.example.com")->response);
    EXPECT_EQ(outbox_.pushed.size(), 3u);
    // Headers (the app) are never checked for their Origin.
    RestRequest app;
    app.method = "POST";
    app.target = "/send";
    app.body = chat("x2").dump();
    app.content_type = "application/json";
    app.user = "alice";
    app.access_key = key_of("alice");
    app.origin = "https://evil.example";
    auto exchange = std::make_shared<FakeExchange>();
    core_->handle(exchange, std::move(app));
    EXPECT_FALSE(exchange->response);
    EXPECT_EQ(outbox_.pushed.size(), 4u);
    EXPECT_EQ(core_->counters().origin_refused, 3u);
}

TEST_F(RestGatewayCoreTest, WritesWithABodyMustBeJson) {
    const auto send_as = [&](const std::string& content_type, const std::string& target = "/send",
                             const std::string& body = {}) {
        RestRequest r;
        r.method = "POST";
        r.target = target;
        r.body = body.empty() ? chat("y1").dump() : body;
        r.content_type = content_type;
        r.user = "alice";
        r.access_key = key_of("alice");
        auto exchange = std::make_shared<FakeExchange>();
        core_->handle(exchange, std::move(r));
        return exchange;
    };
    for (const std::string& type : std::vector<std::string>{"text/plain", "", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=b"}) {
        auto refused = send_as(type);
        ASSERT_TRUE(refused->response) << type;
        EXPECT_EQ(refused->response->status, HttpStatus::unsupported_media_type) << type;
        EXPECT_EQ(refused->response->body, R"({"error":"Content-Type must be application/json"})");
    }
    EXPECT_EQ(send_as("text/plain", "/login", R"({"username":"bob"})")->response->status,
              HttpStatus::unsupported_media_type);
    EXPECT_TRUE(outbox_.pushed.empty());
    EXPECT_TRUE(outbox_.owner_requests.empty());
    EXPECT_EQ(core_->counters().content_type_refused, 5u);
    // What the app's Dart client sends.
    EXPECT_FALSE(send_as("application/json; charset=utf-8")->response);
    EXPECT_EQ(outbox_.pushed.size(), 1u);
    // A logout has no body: no Content-Type needed.
    RestRequest logout;
    logout.method = "POST";
    logout.target = "/logout";
    logout.user = "alice";
    logout.access_key = key_of("alice");
    auto exchange = std::make_shared<FakeExchange>();
    core_->handle(exchange, std::move(logout));
    EXPECT_FALSE(exchange->response); // forwarded to profile
}

TEST_F(RestGatewayCoreTest, ARecipientThatCannotBeAUserIsRefusedPerMessage) {
    auto exchange = request("POST", "/send", json::array({chat("z1", "server"), chat("z2", "bob")}).dump());
    ASSERT_EQ(outbox_.pushed.size(), 1u);
    EXPECT_EQ(outbox_.pushed[0].to, "bob");
    EXPECT_EQ(core_->counters().messages_refused, 1u);
    core_->on_router("session-1", server_ack(outbox_.pushed[0].connection));
    ASSERT_TRUE(exchange->response);
    const json body = json::parse(exchange->response->body);
    EXPECT_EQ(body["results"][0]["status"], "refused") << body;
    EXPECT_EQ(body["results"][0]["reason"], "invalid recipient (head.to): reserved") << body;
    EXPECT_EQ(body["results"][1]["status"], "accepted") << body;
}

TEST_F(RestGatewayCoreTest, DrainAnswersEverythingWaiting) {
    auto waiting = request("GET", "/profile");
    auto sending = request("POST", "/send", chat("m1").dump());
    core_->drain();
    ASSERT_TRUE(waiting->response);
    EXPECT_EQ(waiting->response->status, HttpStatus::service_unavailable);
    EXPECT_EQ(waiting->response->body, R"({"error":"shutting down"})");
    ASSERT_TRUE(sending->response);
    EXPECT_EQ(json::parse(sending->response->body)["results"][0]["reason"], "not confirmed");
    EXPECT_EQ(core_->pending_requests(), 0u);
    EXPECT_EQ(core_->pending_sends(), 0u);
}

} // namespace
} // namespace vartalap::rest_gateway
