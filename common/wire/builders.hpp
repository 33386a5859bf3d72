// The envelopes several daemons answer with, built in one place so that every daemon fills
// the same fields (docs/INTERNAL_PROTOCOL.md, "Envelope" and the flows that use them).
// Thread-safety: pure functions. Errors: none thrown beyond std::bad_alloc.
#pragma once

#include "common/wire/envelope.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace vartalap {

// The reply (kind reply) to `request`: its request_id and method, its id, from and to (so a
// gateway can match an asynchronous operation's answer), `status` and `error`. A refusal
// (status not ok) without a payload gets {"error": error}, the JSON a REST client reads.
Envelope make_reply(const Envelope& request, Status status, std::string payload = {},
                    std::string_view error = {});

// What a gateway needs to write a SERVER_ACK (status ok) or a refusal (status and reason in
// `error`) for message `id` of `sender` on `connection` of `gateway`.
struct ServerAck {
    std::string_view gateway;
    std::uint64_t connection = 0;
    std::uint64_t request_id = 0; // a rest-gateway's correlation of the send, else 0
    std::string_view id;
    std::string_view sender;
    std::string_view channel;     // "group" for group messages and operations, else ""
    Status status = Status::ok;
    std::string_view error;
};

// Fills `out` (a reused envelope, cleared first) with the server_ack `ack` describes.
void build_server_ack(Envelope& out, const ServerAck& ack);

} // namespace vartalap
