// The client JSON codec (PROTOCOL.md, Vartalap v2.1).
//
// A gateway parses each client message exactly once, here: it validates the head, sets
// head.from to the authenticated user, adds body.ts (server time, epoch seconds) and the
// flat legacy keys old app versions read, and serializes the result once. That text is the
// envelope payload: every later hop carries it as opaque bytes and the recipient's gateway
// writes it to the socket unchanged.
//
// Thread-safety: pure functions. Errors: never throw; a bad message yields false + reason.
#pragma once

#include "common/wire/envelope.hpp"

#include <string>
#include <string_view>

namespace vartalap {

struct ClientMessageLimits {
    std::size_t max_bytes = 64 * 1024; // one message; gateways close larger frames (1009)
    std::size_t max_ids = 1000;        // ids in one receipt
    std::size_t max_field_bytes = 256; // id, to, chatid, usernames
    // Objects and arrays nested in one another. The parser is iterative, but writing the
    // message back out (nlohmann's dump) recurses once per level: without a bound, a 64 KiB
    // frame of '[' would overflow the gateway thread's stack. App messages nest a few levels.
    std::size_t max_depth = 64;
};

// Whether `text` nests JSON objects and arrays deeper than `max_depth` (brackets inside
// strings do not count): one pass over the bytes, to run before parsing input whose parsed
// form will be written out again (nlohmann's dump recurses once per level).
bool nested_deeper_than(std::string_view text, std::size_t max_depth);

struct ClientOrigin {
    std::string_view user;     // authenticated user: becomes head.from
    std::string_view gateway;  // gateway instance name
    std::uint64_t connection = 0;
    bool wants_server_ack = false;
    std::uint64_t now_ms = 0;  // wall clock
};

// Parses one message object. On success fills `out` (kind client_message) and returns true.
bool parse_client_message(std::string_view text, const ClientOrigin& origin, Envelope& out,
                          std::string& error, const ClientMessageLimits& limits = {});

// The SERVER_ACK frame for message `id` of `to` (PROTOCOL.md "Acknowledgements").
std::string server_ack_json(std::string_view id, std::string_view to, std::uint64_t now_ms);

// An error frame for the client: {"_v":2.1,"id":...,"head":{"type":"individual",
// "from":"server","to":user,"contentType":"error","ephemeral":true},"body":{"error":reason}}
std::string error_json(std::string_view reason, std::string_view id, std::string_view to,
                       std::uint64_t now_ms);

} // namespace vartalap
