// The client JSON codec (PROTOCOL.md, Vartalap v2.1).
//
// A gateway parses each client message exactly once, here (simdjson On-Demand, one forward
// pass): it validates the whole text and the head, and writes the payload by splicing into
// the client's own text what the server stamps: head.from (the authenticated user), body.ts
// (server time, epoch seconds) and the flat legacy keys old app versions read. No tree is
// built and nothing else of the client's text changes (key order, spacing, escapes and
// numbers stay as sent). That text is the envelope payload: every later hop carries it as
// opaque bytes and the recipient's gateway writes it to the socket unchanged.
//
// Stamped keys: every `from` in head, every `ts` in body and every top-level legacy key the
// client wrote is dropped (compared after unescaping, however often it appears), and the
// server's are written once, so no recipient can read a client-forged `from`, whichever
// duplicate its parser keeps. A key the server reads (id, head, body; head.type, to, chatid,
// contentType, action, category, ephemeral; body.ids, body.text) given twice is refused:
// the server and the recipient could otherwise read different values.
//
// Thread-safety: any thread; each thread keeps its own padded input copy and simdjson
// parser (common/wire/json_input.hpp), so after the first messages a parse allocates only
// what the envelope's own strings need. Errors: never throw; a bad message yields false +
// reason.
#pragma once

#include "common/wire/envelope.hpp"

#include <string>
#include <string_view>

namespace vartalap {

struct ClientMessageLimits {
    std::size_t max_bytes = 64 * 1024; // one message; gateways close larger frames (1009)
    std::size_t max_ids = 1000;        // ids in one receipt
    std::size_t max_field_bytes = 256; // id, to, chatid, usernames
    // Objects and arrays nested in one another (the message object is level 1). The pass
    // that validates every value recurses once per level, and so would any reader that
    // builds a tree of the message: a 64 KiB frame of '[' must not reach them. App messages
    // nest a few levels.
    std::size_t max_depth = 64;
};

// Message ids the server makes (group events) begin with this prefix; a client message
// whose id does is refused ("reserved message id"), so no client can pre-send a server id
// and have the real message deduped away (docs/INTERNAL_PROTOCOL.md, "Group events").
inline constexpr std::string_view kServerIdPrefix = "~server:";
inline bool is_server_id(std::string_view id) { return id.starts_with(kServerIdPrefix); }

// Whether `text` nests JSON objects and arrays deeper than `max_depth` (simdjson On-Demand
// walks the containers; brackets inside strings do not count). For input that another
// parser will turn into a tree and write out again (nlohmann's dump recurses once per
// level). Text that is not JSON answers false: that parser refuses it.
bool nested_deeper_than(std::string_view text, std::size_t max_depth);

// The value of the top-level string member `key` of the JSON object `json` (the first one,
// unescaped); empty if there is none, it is not a string, or `json` is not an object. Reads
// no further than that member.
std::string peek_string_member(std::string_view json, std::string_view key);

// Whether a parsed client message's payload (the text parse_client_message made, with the
// flat legacy keys) is a group operation: top-level `action` create, add or remove (the
// rule of the group-router, which sends those to the group daemon).
bool is_group_operation_payload(std::string_view payload);

struct ClientOrigin {
    std::string_view user;     // authenticated user: becomes head.from
    std::string_view gateway;  // gateway instance name
    std::uint64_t connection = 0;
    bool wants_server_ack = false;
    std::uint64_t now_ms = 0;  // wall clock
};

// Parses one message object. On success fills `out` (kind client_message; `out` is reset
// first, its string buffers kept for reuse) and returns true. On failure `out.id` is the
// message's id if the text is valid JSON whose `id` is a string of at most max_field_bytes
// (so that an error frame can name it), else empty.
bool parse_client_message(std::string_view text, const ClientOrigin& origin, Envelope& out,
                          std::string& error, const ClientMessageLimits& limits = {});

// The SERVER_ACK frame for message `id` of `to` (PROTOCOL.md "Acknowledgements").
std::string server_ack_json(std::string_view id, std::string_view to, std::uint64_t now_ms);

// An error frame for the client: {"_v":2.1,"id":...,"head":{"type":"individual",
// "from":"server","to":user,"contentType":"error","ephemeral":true},"body":{"error":reason}}
std::string error_json(std::string_view reason, std::string_view id, std::string_view to,
                       std::uint64_t now_ms);

// The error of a message the server did not take for now (no router or shard could take it
// in time): the client resends it, with the same id.
inline constexpr std::string_view kBusyRetry = "server busy, retry";

} // namespace vartalap
