// Fuzz target: the client JSON codec (common/wire/client_message*, json_input), v2.1 messages
// and the flat legacy shapes, as a gateway parses a WebSocket frame or a REST send item.
//
// Input: the text of one client message. Properties checked besides "no crash, no leak, no
// UB": an accepted message's payload is valid JSON whose head.from is the authenticated
// user (once, and no client-written `from` is left anywhere a reader looks), whose body.ts
// is the server's, and which the codec accepts again; the frames the server writes back
// (SERVER_ACK, error) are valid JSON whatever id they echo.
#include "common/wire/client_message.hpp"
#include "tests/fuzz/fuzz_check.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using vartalap::ClientOrigin;
using vartalap::Envelope;

constexpr std::uint64_t kNowMs = 1'700'000'000'123;
constexpr std::string_view kUser = "+911234567890";

bool valid_json(std::string_view text) { return nlohmann::json::accept(text); }

void check_accepted(const Envelope& envelope, const ClientOrigin& origin) {
    FUZZ_CHECK(envelope.from == origin.user);
    FUZZ_CHECK(!envelope.id.empty());
    FUZZ_CHECK(valid_json(envelope.payload));
    const nlohmann::json payload = nlohmann::json::parse(envelope.payload);
    FUZZ_CHECK(payload.is_object());
    FUZZ_CHECK(payload.contains("head") && payload["head"].is_object());
    FUZZ_CHECK(payload["head"].value("from", std::string()) == origin.user);
    FUZZ_CHECK(payload.value("from", std::string()) == origin.user); // the legacy key
    if (payload.contains("body") && payload["body"].is_object())
        FUZZ_CHECK(payload["body"].value("ts", std::uint64_t{0}) == kNowMs / 1000);
    // What the server wrote must parse again (a recipient's app, or a resend through REST),
    // unless the stamps took it over the size limit.
    if (envelope.payload.size() > vartalap::ClientMessageLimits{}.max_bytes) return;
    Envelope again;
    std::string error;
    FUZZ_CHECK(vartalap::parse_client_message(envelope.payload, origin, again, error));
    FUZZ_CHECK(again.id == envelope.id && again.to == envelope.to);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    ClientOrigin origin;
    origin.user = kUser;
    origin.gateway = "ws-1";
    origin.connection = 7;
    origin.wants_server_ack = (size % 2) == 1;
    origin.now_ms = kNowMs;

    Envelope envelope;
    std::string error;
    if (vartalap::parse_client_message(text, origin, envelope, error))
        check_accepted(envelope, origin);
    else
        FUZZ_CHECK(!error.empty());

    // What the gateway writes back echoes the id (whatever the client sent) and the user.
    FUZZ_CHECK(valid_json(vartalap::server_ack_json(envelope.id, origin.user, kNowMs)));
    FUZZ_CHECK(valid_json(vartalap::error_json(error, envelope.id, text.substr(0, 64), kNowMs)));

    // The readers other daemons use on payloads.
    (void)vartalap::nested_deeper_than(text, 64);
    (void)vartalap::peek_string_member(text, "action");
    return 0;
}
