// Thread: any (each thread parses with its own JsonInput and scratch buffers).
#include "common/wire/client_message.hpp"

#include "common/names.hpp"
#include "common/wire/client_message_splice.hpp"
#include "common/wire/legacy_message.hpp"

#include <algorithm>

namespace vartalap {
namespace {

using namespace client_json;

std::uint64_t seconds_of(std::uint64_t now_ms) { return now_ms / 1000; }

// ASCII case-insensitive equality with a lower-case `lower` (the original server upper-cased
// head.type and contentType before comparing: chat-server v2.8.3,
// libs/event-args/message.js, MessageEvent.fromString).
bool equals_lower(std::string_view s, std::string_view lower) {
    return std::equal(s.begin(), s.end(), lower.begin(), lower.end(), [](char a, char b) {
        return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
    });
}

// Resets a reused envelope: assigning Envelope{} resets every field, including those later
// revisions add; the strings filled for every message keep their buffers.
void reset_keeping_buffers(Envelope& e) {
    std::string id = std::move(e.id), channel = std::move(e.channel), from = std::move(e.from),
                to = std::move(e.to), gateway = std::move(e.origin_gateway),
                payload = std::move(e.payload);
    std::vector<std::string> ids = std::move(e.ids);
    e = Envelope{};
    id.clear(), channel.clear(), from.clear(), to.clear(), gateway.clear(), payload.clear();
    ids.clear();
    e.id = std::move(id);
    e.channel = std::move(channel);
    e.from = std::move(from);
    e.to = std::move(to);
    e.origin_gateway = std::move(gateway);
    e.payload = std::move(payload);
    e.ids = std::move(ids);
}

} // namespace

bool parse_client_message(std::string_view text, const ClientOrigin& origin, Envelope& out,
                          std::string& error, const ClientMessageLimits& limits) {
    reset_keeping_buffers(out);
    if (text.size() > limits.max_bytes) {
        error = "message too large";
        return false;
    }
    Read r;
    Splicer splicer(thread_json_input(), limits);
    if (splicer.read(text, r) != simdjson::SUCCESS) {
        error = splicer.too_deep() ? "message nested too deeply (at most " +
                                         std::to_string(limits.max_depth) + " levels)"
                                   : "invalid JSON";
        return false;
    }
    if (!r.top_is_object) {
        error = "a message must be a JSON object";
        return false;
    }
    if (!r.head_seen_once && !(r.version_seen && r.version >= 2.0)) {
        // The flat shape of app versions up to v2.4.0: read as the v2.1 message it stands
        // for (legacy_message.hpp). That text has a head, so this branch is not taken again.
        if (r.duplicate != nullptr) {
            error = std::string("duplicate key ") + r.duplicate;
            return false;
        }
        std::string v2;
        if (!legacy_to_v2(text, v2)) {
            error = "invalid JSON";
            return false;
        }
        ClientMessageLimits v2_limits = limits;
        v2_limits.max_bytes = std::max(limits.max_bytes, v2.size());
        return parse_client_message(v2, origin, out, error, v2_limits);
    }
    // From here on an error frame can name the message.
    if (r.id_is_string && r.id.size() <= limits.max_field_bytes) out.id = r.id;
    if (r.duplicate != nullptr) {
        error = std::string("duplicate key ") + r.duplicate;
        return false;
    }
    if (!r.id_seen || !r.id_valid_type) {
        error = "missing message id";
        return false;
    }
    if (r.id.empty() || r.id.size() > limits.max_field_bytes) {
        error = "invalid message id";
        return false;
    }
    if (!r.head_seen_once || !r.head_is_object) {
        error = "missing head";
        return false;
    }
    if (r.head_bad) {
        error = "head field has the wrong type or is too long";
        return false;
    }
    // head.type in any letter case ("INDIVIDUAL", "Group"), as the original server took it;
    // the server's own readings (channel, the flat keys) are lower case.
    std::string_view type =
        (r.head_strings & (1u << h_type)) != 0 ? r.head[h_type] : std::string_view("individual");
    if (equals_lower(type, "individual")) {
        type = "individual";
    } else if (equals_lower(type, "group")) {
        type = "group";
    } else {
        error = "head.type must be individual or group";
        return false;
    }
    const std::string_view to = r.head[h_to];
    if (to.empty()) {
        error = "missing head.to";
        return false;
    }
    if (r.ephemeral_bad) {
        error = "head.ephemeral must be a boolean";
        return false;
    }
    const std::string_view content_type = r.head[h_content_type];
    const bool client_ack = equals_lower(content_type, "client_ack");
    // A CLIENT_ACK's id is the id it acks, which for a group event is one of the server's:
    // that is the one use of those ids a client has (the app acks events so).
    if (is_server_id(r.id) && !client_ack) {
        error = "reserved message id (the prefix \"~server:\" is the server's)";
        return false;
    }
    std::string_view action = r.head[h_action];
    std::string_view category = r.head[h_category];
    if (category.empty()) category = (action == "state" || action == "ack") ? "system" : "message";
    if (action.empty()) action = "message";
    if (r.body == BodyKind::other) {
        error = "body must be an object";
        return false;
    }

    out.kind = Kind::client_message;
    out.id = r.id;
    out.channel = type;
    out.from = origin.user;
    out.to = to;
    out.origin_gateway = origin.gateway;
    out.connection = origin.connection;
    out.created_at_ms = origin.now_ms;
    out.route = Route::chat;
    if (type == "group") out.flags |= flag_group;
    if (origin.wants_server_ack) out.flags |= flag_wants_server_ack;

    if (client_ack || action == "state") {
        // Receipts and CLIENT_ACK name the ids they acknowledge.
        if (r.ids_seen) {
            if (r.ids_bad_shape) {
                error = "body.ids must be an array of at most " + std::to_string(limits.max_ids);
                return false;
            }
            if (r.ids_bad_item) {
                error = "body.ids must hold message ids";
                return false;
            }
            out.ids.assign(splicer.ids().begin(), splicer.ids().end());
        } else if (client_ack) {
            out.ids.emplace_back(r.id); // CLIENT_ACK: the message's own id is the acked id
        } else {
            error = "a state message needs body.ids";
            return false;
        }
        if (client_ack || to == "server") {
            out.route = Route::ack;
        } else {
            out.route = Route::receipt;
            out.flags |= flag_system;
        }
    }
    // The recipient: a user (the login rule, common/names.hpp) or, for head.type group, a
    // group id (or the original sender of a receipt: a username passes that rule too). An
    // ack's `to` names nobody (it is often "server") and is not checked.
    if (out.route != Route::ack) {
        const NameProblem problem = type == "group" ? check_group_id(to) : check_username(to);
        if (problem != NameProblem::none) {
            error = "invalid recipient (head.to): " + std::string(describe(problem));
            return false;
        }
    }
    if (r.ephemeral || action == "typing") out.flags |= flag_ephemeral;
    if (category == "system") out.flags |= flag_system;

    // What the recipient reads: the client's text with head.from, body.ts and the flat
    // legacy keys written by the server.
    const Legacy legacy{to, r.id, content_type.empty() ? std::string_view("text") : content_type,
                        r.head[h_chatid], category, action, type};
    splicer.write(r, origin, legacy, out.payload);
    return true;
}

namespace {

// {"_v":2.1,"id":<id>,"head":{"type":"individual","from":"server","to":<to>,
// "contentType":<content_type>,"ephemeral":true},"body":{<body>"ts":<seconds>}}
std::string server_frame(std::string_view id, std::string_view to, std::string_view content_type,
                         std::string_view error, std::uint64_t now_ms) {
    std::string out;
    out.reserve(160 + id.size() + to.size() + error.size());
    out += "{\"_v\":2.1,\"id\":";
    append_json_string(out, id);
    out += ",\"head\":{\"type\":\"individual\",\"from\":\"server\",\"to\":";
    append_json_string(out, to);
    out += ",\"contentType\":";
    append_json_string(out, content_type);
    out += ",\"ephemeral\":true},\"body\":{";
    if (!content_type.empty() && content_type == "error") {
        out += "\"error\":";
        append_json_string(out, error);
        out.push_back(',');
    }
    out += "\"ts\":";
    append_json_number(out, seconds_of(now_ms));
    out += "}}";
    return out;
}

} // namespace

std::string server_ack_json(std::string_view id, std::string_view to, std::uint64_t now_ms) {
    return server_frame(id, to, "SERVER_ACK", {}, now_ms);
}

std::string error_json(std::string_view reason, std::string_view id, std::string_view to,
                       std::uint64_t now_ms) {
    return server_frame(id, to, "error", reason, now_ms);
}

bool is_group_operation_payload(std::string_view payload) {
    const std::string action = peek_string_member(payload, "action");
    return action == "create" || action == "add" || action == "remove";
}

} // namespace vartalap
