// Thread: any (pure functions).
#include "common/wire/client_message.hpp"

#include <nlohmann/json.hpp>

namespace vartalap {
namespace {

using nlohmann::json;

// Reads an optional string member; false if present with another type or too long.
bool optional_string(const json& object, const char* key, std::string& out, std::size_t max) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return true;
    if (!it->is_string()) return false;
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > max) return false;
    out = s;
    return true;
}

std::uint64_t seconds_of(std::uint64_t now_ms) { return now_ms / 1000; }

} // namespace

bool nested_deeper_than(std::string_view text, std::size_t max_depth) {
    std::size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        switch (c) {
        case '"': in_string = true; break;
        case '{':
        case '[':
            if (++depth > max_depth) return true;
            break;
        case '}':
        case ']':
            if (depth > 0) --depth;
            break;
        default: break;
        }
    }
    return false;
}

bool parse_client_message(std::string_view text, const ClientOrigin& origin, Envelope& out,
                          std::string& error, const ClientMessageLimits& limits) {
    if (text.size() > limits.max_bytes) {
        error = "message too large";
        return false;
    }
    if (nested_deeper_than(text, limits.max_depth)) {
        error = "message nested too deeply (at most " + std::to_string(limits.max_depth) + " levels)";
        return false;
    }
    // nlohmann's parser is iterative (no recursion on nesting) and the size is bounded
    // above, so hostile input costs at most max_bytes of work and memory.
    json message = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (message.is_discarded()) {
        error = "invalid JSON";
        return false;
    }
    if (!message.is_object()) {
        error = "a message must be a JSON object";
        return false;
    }
    std::string id;
    {
        auto it = message.find("id");
        if (it == message.end() || !(it->is_string() || it->is_number_integer())) {
            error = "missing message id";
            return false;
        }
        id = it->is_string() ? it->get<std::string>() : it->dump();
        if (id.empty() || id.size() > limits.max_field_bytes) {
            error = "invalid message id";
            return false;
        }
    }
    auto head_it = message.find("head");
    if (head_it == message.end() || !head_it->is_object()) {
        error = "missing head";
        return false;
    }
    json& head = *head_it;
    std::string type = "individual", to, chat_id, content_type, action, category;
    const std::size_t max = limits.max_field_bytes;
    if (!optional_string(head, "type", type, max) || !optional_string(head, "to", to, max) ||
        !optional_string(head, "chatid", chat_id, max) ||
        !optional_string(head, "contentType", content_type, max) ||
        !optional_string(head, "action", action, max) ||
        !optional_string(head, "category", category, max)) {
        error = "head field has the wrong type or is too long";
        return false;
    }
    if (type != "individual" && type != "group") {
        error = "head.type must be individual or group";
        return false;
    }
    if (to.empty()) {
        error = "missing head.to";
        return false;
    }
    bool ephemeral = false;
    if (auto it = head.find("ephemeral"); it != head.end() && !it->is_null()) {
        if (!it->is_boolean()) {
            error = "head.ephemeral must be a boolean";
            return false;
        }
        ephemeral = it->get<bool>();
    }
    if (category.empty()) category = (action == "state" || action == "ack") ? "system" : "message";
    if (action.empty()) action = "message";

    json& body = message["body"]; // null when absent
    if (body.is_null()) body = json::object();
    if (!body.is_object()) {
        error = "body must be an object";
        return false;
    }

    out = Envelope{};
    out.kind = Kind::client_message;
    out.id = id;
    out.channel = type;
    out.from = std::string(origin.user);
    out.to = to;
    out.origin_gateway = std::string(origin.gateway);
    out.connection = origin.connection;
    out.created_at_ms = origin.now_ms;
    out.route = Route::chat;
    if (type == "group") out.flags |= flag_group;
    if (origin.wants_server_ack) out.flags |= flag_wants_server_ack;

    const bool client_ack = content_type == "CLIENT_ACK";
    if (client_ack || action == "state") {
        // Receipts and CLIENT_ACK name the ids they acknowledge.
        if (auto it = body.find("ids"); it != body.end()) {
            if (!it->is_array() || it->size() > limits.max_ids) {
                error = "body.ids must be an array of at most " + std::to_string(limits.max_ids);
                return false;
            }
            for (const auto& acked : *it) {
                if (!acked.is_string() || acked.get_ref<const std::string&>().empty() ||
                    acked.get_ref<const std::string&>().size() > max) {
                    error = "body.ids must hold message ids";
                    return false;
                }
                out.ids.push_back(acked.get<std::string>());
            }
        } else if (client_ack) {
            out.ids.push_back(id); // CLIENT_ACK: the message's own id is the acked id
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
    if (ephemeral || action == "typing") out.flags |= flag_ephemeral;
    if (category == "system") out.flags |= flag_system;

    // What the recipient reads: the same object, from overwritten, server time added, and
    // the flat legacy keys older app versions read.
    head["from"] = origin.user;
    body["ts"] = seconds_of(origin.now_ms);
    message["from"] = origin.user;
    message["to"] = to;
    message["msgId"] = id;
    message["type"] = content_type.empty() ? "text" : content_type;
    message["chatId"] = chat_id;
    if (auto it = body.find("text"); it != body.end() && it->is_string()) message["text"] = *it;
    message["module"] = category;
    message["action"] = action;
    message["chatType"] = type;
    out.payload = message.dump(-1, ' ', false, json::error_handler_t::replace);
    return true;
}

std::string server_ack_json(std::string_view id, std::string_view to, std::uint64_t now_ms) {
    json ack = {{"_v", 2.1},
                {"id", id},
                {"head",
                 {{"type", "individual"},
                  {"from", "server"},
                  {"to", to},
                  {"contentType", "SERVER_ACK"},
                  {"ephemeral", true}}},
                {"body", {{"ts", seconds_of(now_ms)}}}};
    return ack.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_json(std::string_view reason, std::string_view id, std::string_view to,
                       std::uint64_t now_ms) {
    json error = {{"_v", 2.1},
                  {"id", id},
                  {"head",
                   {{"type", "individual"},
                    {"from", "server"},
                    {"to", to},
                    {"contentType", "error"},
                    {"ephemeral", true}}},
                  {"body", {{"error", reason}, {"ts", seconds_of(now_ms)}}}};
    return error.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace vartalap
