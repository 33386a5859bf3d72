// The internal envelope: what every daemon sends to every other daemon.
// The contract is docs/INTERNAL_PROTOCOL.md (wire version 2); this header is its code.
//
// Thread-safety: plain values; encode/decode are pure functions, safe from any thread.
// Errors: decode_envelope never throws; it returns std::nullopt and a reason for bytes that
// are not a valid envelope (untrusted input from the network must not crash a daemon).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap {

// Wire version carried in the first byte of frame 0 of every internal message.
// Version 2 gave the routing class of a client message its own field (`route`; version 1
// carried it in `method`), so a version-1 decoder would misroute: versions are not mixed.
inline constexpr std::uint8_t kWireVersion = 2;

// Frame 0 is two bytes: {kWireVersion, Kind}. Frame 1 is the MessagePack envelope.
enum class Kind : std::uint8_t {
    client_message = 1,   // gateway -> message-router: a parsed client message
    deliver = 2,          // router -> session: store and deliver to `to`;
                          // session -> gateway: write payload to connection `connection`
    ack = 3,              // router -> session: user `from` acked message ids `ids`
    connect = 4,          // gateway -> session: user `from` is on (origin_gateway, connection)
    disconnect = 5,       // gateway -> session: that connection closed
    deliver_result = 6,   // gateway -> session: reply to deliver, `status`
    server_ack = 7,       // session -> gateway: write SERVER_ACK for `id` to `connection`
    close_connection = 8, // session -> gateway: close `connection` (user connected elsewhere)
    request = 9,          // rest-gateway -> owner daemon: `method` + JSON `payload`
    reply = 10,           // owner daemon -> rest-gateway: `status` + JSON `payload`
    offline_store = 11,   // session -> persistence: store `payload` for `to` (reply: offline_stored)
    offline_stored = 12,  // persistence -> session: `status` of offline_store `request_id`
    fetch = 13,           // session -> persistence: up to `limit` messages of `to` after `cursor`
    fetched = 14,         // persistence -> session: `items` (envelopes), next `cursor`
    offline_notify = 15,  // persistence -> push: `to` has a new offline message `payload`
    group_message = 16,   // message-router -> group-router: a group chat message or operation
    group_op = 17,        // group-router -> group: apply a group operation (reply: reply)
    resync = 18,          // session -> gateway: send a connect for each of your connections
                          // whose user this shard owns (sent when a shard starts)
    copies_stored = 19,   // session -> the outbox owner named in a copy's `confirm_to`:
                          // the copies of outbox entry `request_id` to users `ids` are stored
};
inline constexpr std::uint8_t kMaxKind = 19;

// Bits of Envelope::flags.
enum EnvelopeFlag : std::uint32_t {
    flag_ephemeral = 1u << 0,        // deliver only if online; never stored (typing)
    flag_wants_server_ack = 1u << 1, // sender's connection asked for SERVER_ACK (ack=true)
    flag_system = 1u << 2,           // category "system" (receipts): socket write is the ack
    flag_group = 1u << 3,            // head.type == "group"
};

// How the message-router routes a client_message (Envelope::route).
enum class Route : std::uint8_t {
    none = 0,    // not a client message
    chat = 1,    // deliver to `to`
    receipt = 2, // deliver to `to` AND ack `ids` on the acker's shard
    ack = 3,     // ack `ids` only (CLIENT_ACK, addressed to "server")
};
inline constexpr std::uint8_t kMaxRoute = 3;

// Status values of deliver_result and reply.
enum class Status : std::uint8_t {
    ok = 0,            // delivered to the socket / request served
    not_connected = 1, // the connection is gone
    overloaded = 2,    // the connection's write queue is full
    refused = 3,       // request refused (reason in `error`)
    bad_request = 4,
    unauthorized = 5,
    not_found = 6,
    internal = 7,
    storage_full = 8,  // a store is full (its LMDB map, or the disk): not taken, retry later
};

struct Envelope {
    Kind kind = Kind::client_message;
    std::string id;                   // the client's message id (unique per sender)
    std::string channel;              // "individual" | "group" | "" (not a chat message)
    std::string from;                 // authenticated sender (or the acking/connecting user)
    std::string to;                   // recipient user or group id
    std::vector<std::string> ids;     // acked message ids (kind ack); group recipients later
    std::string origin_gateway;       // gateway instance the sender is connected to
    std::uint64_t connection = 0;     // connection id within a gateway
    std::uint64_t created_at_ms = 0;  // server receive time (epoch ms)
    std::uint32_t retry_count = 0;
    std::uint32_t flags = 0;          // EnvelopeFlag bits
    std::uint64_t request_id = 0;     // correlates deliver/deliver_result, request/reply
    Status status = Status::ok;
    std::string method;               // request/reply: the operation ("login", "group_create", ...)
    std::string error;                // human-readable reason when status != ok
    std::string payload;              // opaque bytes: the client's JSON as it will be written
    // Fields 15..17 (appended in revision 1.1; absent in 1.0 senders' envelopes = defaults)
    std::uint64_t cursor = 0;         // fetch/fetched: position in a user's stored queue
    std::uint32_t limit = 0;          // fetch: most items wanted
    std::vector<std::string> items;   // fetched: encoded envelopes; batches of anything
    // Field 18 (wire version 2)
    Route route = Route::none;        // client_message: how the message-router routes it
    // Field 19 (appended; absent in older envelopes = "")
    std::string confirm_to;           // deliver from a fan-out outbox: the instance to send
                                      // copies_stored to once the copy is committed

    bool has(EnvelopeFlag f) const { return (flags & f) != 0; }
};

// Limits for decoding untrusted envelopes; a frame over any of them is rejected.
struct DecodeLimits {
    std::size_t max_frame_bytes = 4u << 20;  // 4 MiB: above any allowed client frame + head
    std::size_t max_string_bytes = 4u << 20;
    std::size_t max_array_items = 10000;     // ack ids / recipients in one envelope
};

// Frame 0 of a message of this kind.
std::string header_frame(Kind kind);
// Frame 1: the MessagePack encoding of `envelope`, appended to `out` (cleared first).
void encode_envelope(const Envelope& envelope, std::string& out);
std::string encode_envelope(const Envelope& envelope);

// Decode frame 0 + frame 1. On failure returns nullopt and sets *error (if given).
std::optional<Envelope> decode_envelope(std::string_view header, std::string_view body,
                                        std::string* error = nullptr,
                                        const DecodeLimits& limits = {});

const char* to_string(Kind kind);
const char* to_string(Status status);
const char* to_string(Route route);

} // namespace vartalap
