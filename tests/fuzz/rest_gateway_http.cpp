// Fuzz target: the rest-gateway's request handling in memory: the bytes of one client
// connection (one request, or several pipelined) through what the gateway runs on them, with
// no network (Beast's in-memory test stream, a fake outbox and clock):
//   the HTTP parser with the gateway's limits, to_rest_request (credentials from headers or
//   cookies, the token header), RestGatewayCore::handle (routing, authentication, send
//   bodies, the client JSON codec, the REST → internal translation), the answers that come
//   back (owner replies, server_acks, timeouts, the drain), and to_http_response written back.
//
// Seed inputs carry a valid access key for "alice" (secret: 32 's' bytes, issued at
// 1700000000), so the fuzzer starts past authentication. Besides "no crash, no leak, no UB":
// every request is answered exactly once, with a JSON body unless it is /alive's "OK";
// every message sent on is from the authenticated user with a valid JSON payload; nothing is
// left pending after the drain.
#include "common/access_key.hpp"
#include "daemons/rest_gateway/rest_gateway_core.hpp"
#include "daemons/rest_gateway/rest_http.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/support/fixtures.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using namespace vartalap;
using namespace vartalap::rest_gateway;

class CheckingOutbox final : public RestOutbox {
public:
    std::string user; // the user of the request being handled
    bool authenticated = false; // whether its credentials verify
    std::vector<Envelope> owner_requests;
    std::vector<std::uint64_t> stored_tokens;

    bool has_owner(std::string_view kind) const override { return kind != "push"; }
    SendResult to_owner(std::string_view, const Envelope& request) override {
        FUZZ_CHECK(request.kind == Kind::request);
        // login and the periodic revocation poll carry no user; the rest need credentials.
        if (request.method == "login" || request.method == "revocations") FUZZ_CHECK(request.from.empty());
        else FUZZ_CHECK(authenticated && request.from == user);
        FUZZ_CHECK(nlohmann::json::accept(request.payload));
        owner_requests.push_back(request);
        return request.request_id % 7 == 6 ? SendResult::would_block : SendResult::ok;
    }
    SendResult to_router(const Envelope& message) override {
        FUZZ_CHECK(message.kind == Kind::client_message);
        FUZZ_CHECK(authenticated && message.from == user);
        FUZZ_CHECK(nlohmann::json::accept(message.payload));
        if (message.connection % 5 == 4) return SendResult::would_block;
        if (message.route != Route::ack && !message.has(flag_ephemeral))
            stored_tokens.push_back(message.connection);
        return SendResult::ok;
    }
    SendResult reply(std::string_view, const Envelope&) override { return SendResult::ok; }
};

class Exchange final : public RestExchange {
public:
    void respond(RestResponse response) override {
        FUZZ_CHECK(!answer); // exactly once
        if (response.content_type == "application/json")
            FUZZ_CHECK(nlohmann::json::accept(response.body));
        answer.emplace(std::move(response));
    }
    std::optional<RestResponse> answer;
};

const AccessKeys& access_keys() {
    static const AccessKeys keys(std::string(32, 's'));
    return keys;
}

// What comes back for the request just handled: owner replies and server_acks, some left
// out so that the timeouts answer them.
void answer_upstream(RestGatewayCore& core, CheckingOutbox& outbox, test::ManualClock& clock) {
    for (Envelope& request : outbox.owner_requests) {
        if (request.request_id % 3 == 0) continue; // times out
        Envelope reply;
        reply.kind = Kind::reply;
        reply.request_id = request.request_id;
        reply.status = static_cast<Status>(request.request_id % 8);
        reply.payload = R"({"ok":true})";
        core.on_reply(std::move(reply));
    }
    outbox.owner_requests.clear();
    for (const std::uint64_t token : outbox.stored_tokens) {
        if (token % 4 == 0) continue; // not confirmed in time
        Envelope ack;
        ack.kind = Kind::server_ack;
        ack.connection = token;
        ack.status = token % 3 == 0 ? Status::refused : Status::ok;
        core.on_router("session-1", ack);
        core.on_router("session-1", ack); // a resend's second ack is ignored
    }
    outbox.stored_tokens.clear();
    clock.advance(static_cast<std::uint64_t>(
                      std::max(core.limits().request_timeout_ms, core.limits().send_timeout_ms)) +
                  1);
    core.expire();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    net::io_context ioc;
    beast::test::stream server(ioc), client(ioc);
    server.connect(client);
    server.append(std::string_view(reinterpret_cast<const char*>(data), size));
    server.close_remote();

    CheckingOutbox outbox;
    test::ManualClock clock;
    clock.wall += clock.monotonic; // the wall time this target has always used
    RestLimits limits;
    limits.max_body_bytes = 16 * 1024; // small, so that inputs of a few KiB reach the limit
    limits.max_messages_per_request = 16;
    ClientMessageLimits message_limits;
    RestGatewayCore core("rest-fuzz", outbox, clock, access_keys(), limits, message_limits);

    beast::flat_buffer buffer;
    for (;;) { // HttpSession: read a request, answer it, read the next one
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
        parser.body_limit(limits.max_body_bytes);
        beast::error_code ec;
        http::read(server, buffer, parser, ec);
        if (ec) break; // answered 400 or 413 and closed, or the client is gone
        http::request<http::string_body> request = parser.release();
        RestRequest rest = to_rest_request(request);
        outbox.user = rest.user;
        outbox.authenticated = !rest.user.empty() && access_keys().verify(rest.user, rest.access_key);
        auto exchange = std::make_shared<Exchange>();
        core.handle(exchange, std::move(rest));
        answer_upstream(core, outbox, clock);
        FUZZ_CHECK(exchange->answer.has_value());
        FUZZ_CHECK(core.pending_requests() == 0 && core.pending_sends() == 0);

        http::response<http::string_body> response;
        const bool keep_alive = request.keep_alive();
        to_http_response(std::move(*exchange->answer), request.version(), keep_alive, response);
        http::write(server, response, ec);
        client.clear();
        if (ec || !keep_alive) break;
    }
    core.drain();
    FUZZ_CHECK(core.pending_requests() == 0 && core.pending_sends() == 0);
    return 0;
}
