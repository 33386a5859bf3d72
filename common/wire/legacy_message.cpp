// Thread: any (a pure function; see legacy_message.hpp).
#include "common/wire/legacy_message.hpp"

#include <nlohmann/json.hpp>

#include <array>

namespace vartalap {

bool legacy_to_v2(std::string_view text, std::string& out) {
    using nlohmann::ordered_json;
    ordered_json flat = ordered_json::parse(text.begin(), text.end(), nullptr, false);
    if (flat.is_discarded() || !flat.is_object()) return false;

    // The first of `keys` present and not null (the original read `a || b`).
    auto first = [&flat](std::initializer_list<const char*> keys) -> const ordered_json* {
        for (const char* key : keys)
            if (auto it = flat.find(key); it != flat.end() && !it->is_null()) return &*it;
        return nullptr;
    };
    ordered_json message = ordered_json::object();
    message["_v"] = 2.1;
    if (const auto* id = first({"msgId", "id"})) message["id"] = *id;
    ordered_json head = ordered_json::object();
    const auto* type = first({"chatType", "module"});
    head["type"] = type ? *type : ordered_json("individual");
    if (const auto* to = first({"to"})) head["to"] = *to;
    if (const auto* chat_id = first({"chatId", "chatid"})) head["chatid"] = *chat_id;
    const auto* content_type = first({"type"});
    head["contentType"] = content_type ? *content_type : ordered_json("text");
    const auto* action = first({"action"});
    head["action"] = action ? *action : ordered_json("message");
    if (const auto* state = first({"state"})) head["state"] = *state;
    message["head"] = std::move(head);

    ordered_json body = ordered_json::object();
    if (auto it = flat.find("body"); it != flat.end() && !it->is_null()) body = *it;
    if (const auto* text_value = first({"text"}); text_value && body.is_object() && !body.contains("text"))
        body["text"] = *text_value;
    message["body"] = std::move(body);

    // Everything else the client sent stays; the flat keys are the server's to write.
    static constexpr std::array<std::string_view, 14> read{
        "_v", "id", "msgId", "to", "from", "type", "chatId", "chatid", "text",
        "state", "module", "action", "chatType", "body"};
    for (const auto& [key, value] : flat.items()) {
        bool taken = false;
        for (const auto k : read) taken = taken || k == key;
        if (!taken) message[key] = value;
    }
    out = message.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
    return true;
}

} // namespace vartalap
