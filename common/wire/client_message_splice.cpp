// Thread: any (see client_message_splice.hpp).
//
// One forward pass of simdjson On-Demand over the client's text reads what the server needs
// (id, head, body.ids, body.text), validates everything else (On-Demand checks only what is
// read, so every value is read, which also bounds the nesting depth) and notes where the text
// must change: members to drop (the stamped keys, wherever and however often the client
// wrote them) and the insertion points (before the closing brace of head, body and the
// message). The payload is then the text copied around those edits, with the stamped
// members written in: no tree, no dump.
#include "common/wire/client_message_splice.hpp"

#include <charconv>

namespace vartalap::client_json {
namespace {

std::uint64_t seconds_of(std::uint64_t now_ms) { return now_ms / 1000; }

// A comma before a member written at the end of `out`, unless the object is open there or a
// dropped member left its comma.
void separate(std::string& out) {
    std::size_t end = out.size();
    while (end > 0 && is_json_space(out[end - 1])) --end;
    if (end > 0 && out[end - 1] != '{' && out[end - 1] != ',') out.push_back(',');
}

void append_member(std::string& out, std::string_view key, std::string_view value) {
    out.push_back(',');
    out.push_back('"');
    out += key;
    out += "\":";
    append_json_string(out, value);
}

} // namespace

error_code Splicer::walk(od::value value, std::size_t depth) {
    od::json_type type;
    VARTALAP_JSON_TRY(value.type().get(type));
    switch (type) {
    case od::json_type::object: {
        od::object object;
        VARTALAP_JSON_TRY(value.get_object().get(object));
        return walk_object(object, depth);
    }
    case od::json_type::array: {
        od::array array;
        VARTALAP_JSON_TRY(value.get_array().get(array));
        return walk_array(array, depth);
    }
    case od::json_type::string: {
        std::string_view s;
        return value.get_string().get(s);
    }
    case od::json_type::number: {
        double d;
        return value.get_double().get(d);
    }
    case od::json_type::boolean: {
        bool b;
        return value.get_bool().get(b);
    }
    case od::json_type::null: {
        bool is_null = false;
        VARTALAP_JSON_TRY(value.is_null().get(is_null));
        return is_null ? simdjson::SUCCESS : simdjson::INCORRECT_TYPE;
    }
    }
    return simdjson::INCORRECT_TYPE;
}

error_code Splicer::walk_object(od::object object, std::size_t depth) {
    if (depth > limits_.max_depth) {
        too_deep_ = true;
        return simdjson::DEPTH_ERROR;
    }
    for (auto item : object) {
        od::field field;
        VARTALAP_JSON_TRY(std::move(item).get(field));
        std::string_view key;
        VARTALAP_JSON_TRY(field.unescaped_key().get(key)); // checks the key's escapes
        VARTALAP_JSON_TRY(walk(field.value(), depth + 1));
    }
    return simdjson::SUCCESS;
}

error_code Splicer::walk_array(od::array array, std::size_t depth) {
    if (depth > limits_.max_depth) {
        too_deep_ = true;
        return simdjson::DEPTH_ERROR;
    }
    for (auto item : array) {
        od::value value;
        VARTALAP_JSON_TRY(std::move(item).get(value));
        VARTALAP_JSON_TRY(walk(value, depth + 1));
    }
    return simdjson::SUCCESS;
}

error_code Splicer::close_of_object(std::size_t& close) {
    const char* next = nullptr;
    VARTALAP_JSON_TRY(doc_.current_location().get(next));
    close = in_.offset(next);
    while (close > 0 && is_json_space(in_.data()[close - 1])) --close;
    if (close == 0 || in_.data()[close - 1] != '}') return simdjson::TAPE_ERROR;
    --close;
    return simdjson::SUCCESS;
}

error_code Splicer::read(std::string_view text, Read& r) {
    edits_.clear();
    ids_.clear();
    VARTALAP_JSON_TRY(in_.iterate(text, doc_));
    od::json_type type;
    VARTALAP_JSON_TRY(doc_.type().get(type));
    if (type == od::json_type::object) {
        r.top_is_object = true;
        od::object top;
        VARTALAP_JSON_TRY(doc_.get_object().get(top));
        VARTALAP_JSON_TRY(read_top(top, r));
    } else if (type == od::json_type::array) {
        od::array array;
        VARTALAP_JSON_TRY(doc_.get_array().get(array));
        VARTALAP_JSON_TRY(walk_array(array, 1));
    }
    // Nothing may follow the message.
    const char* trailing = nullptr;
    if (doc_.current_location().get(trailing) == simdjson::SUCCESS) return simdjson::TAPE_ERROR;
    return simdjson::SUCCESS;
}

error_code Splicer::read_top(od::object top, Read& r) {
    if (limits_.max_depth < 1) {
        too_deep_ = true;
        return simdjson::DEPTH_ERROR;
    }
    std::size_t drop = kNone;
    for (auto item : top) {
        od::field field;
        VARTALAP_JSON_TRY(std::move(item).get(field));
        const std::size_t key_at = in_.offset(field.key().raw()) - 1;
        end_drop(drop, key_at);
        std::string_view key;
        VARTALAP_JSON_TRY(field.unescaped_key().get(key));
        od::value value = field.value();
        if (key == "id") {
            if (r.id_seen && r.duplicate == nullptr) r.duplicate = "id";
            r.id_seen = true;
            VARTALAP_JSON_TRY(read_id(value, r));
        } else if (key == "head") {
            if (r.head_seen_once && r.duplicate == nullptr) r.duplicate = "head";
            r.head_seen_once = true;
            VARTALAP_JSON_TRY(read_head(value, r));
        } else if (key == "body") {
            if (r.body != BodyKind::absent && r.duplicate == nullptr) r.duplicate = "body";
            VARTALAP_JSON_TRY(read_body(value, r));
        } else if (key == "_v") {
            od::json_type type;
            VARTALAP_JSON_TRY(value.type().get(type));
            if (type == od::json_type::number) {
                VARTALAP_JSON_TRY(value.get_double().get(r.version));
                r.version_seen = true;
            } else {
                VARTALAP_JSON_TRY(walk(value, 2));
            }
        } else {
            if (is_legacy_key(key)) drop = open_drop(key_at);
            VARTALAP_JSON_TRY(walk(value, 2));
        }
    }
    // The document ended with this object: its close is the last non-space byte.
    std::size_t close = in_.size();
    while (close > 0 && is_json_space(in_.data()[close - 1])) --close;
    if (close == 0 || in_.data()[close - 1] != '}') return simdjson::TAPE_ERROR;
    r.top_close = close - 1;
    end_drop(drop, r.top_close);
    edits_.push_back({r.top_close, r.top_close, Stamp::top});
    return simdjson::SUCCESS;
}

error_code Splicer::read_id(od::value value, Read& r) {
    od::json_type type;
    VARTALAP_JSON_TRY(value.type().get(type));
    r.id_valid_type = false;
    r.id_is_string = false;
    if (type == od::json_type::string) {
        VARTALAP_JSON_TRY(value.get_string().get(r.id));
        r.id_valid_type = r.id_is_string = true;
        return simdjson::SUCCESS;
    }
    if (type == od::json_type::number) {
        // An integer id is used as its decimal text; a fraction or exponent is not an id.
        std::int64_t signed_id = 0;
        std::uint64_t unsigned_id = 0;
        std::to_chars_result written{};
        if (value.get_int64().get(signed_id) == simdjson::SUCCESS)
            written = std::to_chars(r.id_digits.data(), r.id_digits.data() + r.id_digits.size(),
                                    signed_id);
        else if (value.get_uint64().get(unsigned_id) == simdjson::SUCCESS)
            written = std::to_chars(r.id_digits.data(), r.id_digits.data() + r.id_digits.size(),
                                    unsigned_id);
        else
            return walk(value, 2);
        r.id = std::string_view(r.id_digits.data(),
                                static_cast<std::size_t>(written.ptr - r.id_digits.data()));
        r.id_valid_type = true;
        return simdjson::SUCCESS;
    }
    return walk(value, 2);
}

error_code Splicer::read_optional_string(od::value value, std::string_view& out, bool& present,
                                          bool& bad) {
    od::json_type type;
    VARTALAP_JSON_TRY(value.type().get(type));
    present = type == od::json_type::string;
    if (present) {
        VARTALAP_JSON_TRY(value.get_string().get(out));
        if (out.size() > limits_.max_field_bytes) bad = true;
        return simdjson::SUCCESS;
    }
    if (type != od::json_type::null) bad = true;
    return walk(value, 3); // null is absent
}

error_code Splicer::read_head(od::value value, Read& r) {
    od::json_type type;
    VARTALAP_JSON_TRY(value.type().get(type));
    r.head_is_object = type == od::json_type::object;
    if (!r.head_is_object) return walk(value, 2);
    if (limits_.max_depth < 2) {
        too_deep_ = true;
        return simdjson::DEPTH_ERROR;
    }
    od::object head;
    VARTALAP_JSON_TRY(value.get_object().get(head));
    std::size_t drop = kNone;
    for (auto item : head) {
        od::field field;
        VARTALAP_JSON_TRY(std::move(item).get(field));
        const std::size_t key_at = in_.offset(field.key().raw()) - 1;
        end_drop(drop, key_at);
        std::string_view key;
        VARTALAP_JSON_TRY(field.unescaped_key().get(key));
        od::value member = field.value();
        std::size_t k = 0;
        while (k < h_count && kHeadKeys[k] != key) ++k;
        if (k == h_count) {
            if (key == "from") drop = open_drop(key_at); // the server writes head.from
            VARTALAP_JSON_TRY(walk(member, 3));
            continue;
        }
        if ((r.head_seen & (1u << k)) != 0 && r.duplicate == nullptr)
            r.duplicate = k == h_type ? "head.type" : k == h_to ? "head.to"
                        : k == h_chatid ? "head.chatid" : k == h_content_type ? "head.contentType"
                        : k == h_action ? "head.action" : k == h_category ? "head.category"
                        : "head.ephemeral";
        r.head_seen |= 1u << k;
        if (k != h_ephemeral) {
            r.head[k] = {};
            bool present = false;
            VARTALAP_JSON_TRY(read_optional_string(member, r.head[k], present, r.head_bad));
            if (present) r.head_strings |= 1u << k;
            else r.head_strings &= ~(1u << k);
            continue;
        }
        od::json_type member_type;
        VARTALAP_JSON_TRY(member.type().get(member_type));
        if (member_type == od::json_type::boolean) {
            VARTALAP_JSON_TRY(member.get_bool().get(r.ephemeral));
        } else {
            if (member_type != od::json_type::null) r.ephemeral_bad = true;
            VARTALAP_JSON_TRY(walk(member, 3));
        }
    }
    std::size_t close = 0;
    VARTALAP_JSON_TRY(close_of_object(close));
    end_drop(drop, close);
    edits_.push_back({close, close, Stamp::head_from});
    return simdjson::SUCCESS;
}

error_code Splicer::read_body(od::value value, Read& r) {
    od::json_type type;
    VARTALAP_JSON_TRY(value.type().get(type));
    if (type == od::json_type::null) {
        r.body = BodyKind::null;
        const std::size_t at = in_.offset(value.raw_json_token().data());
        VARTALAP_JSON_TRY(walk(value, 2));
        edits_.push_back({at, at + 4, Stamp::body_object}); // null -> {"ts":...}
        return simdjson::SUCCESS;
    }
    if (type != od::json_type::object) {
        r.body = BodyKind::other;
        return walk(value, 2);
    }
    r.body = BodyKind::object;
    if (limits_.max_depth < 2) {
        too_deep_ = true;
        return simdjson::DEPTH_ERROR;
    }
    od::object body;
    VARTALAP_JSON_TRY(value.get_object().get(body));
    std::size_t drop = kNone;
    for (auto item : body) {
        od::field field;
        VARTALAP_JSON_TRY(std::move(item).get(field));
        const std::size_t key_at = in_.offset(field.key().raw()) - 1;
        end_drop(drop, key_at);
        std::string_view key;
        VARTALAP_JSON_TRY(field.unescaped_key().get(key));
        od::value member = field.value();
        if (key == "ids") {
            if (r.ids_seen && r.duplicate == nullptr) r.duplicate = "body.ids";
            r.ids_seen = true;
            VARTALAP_JSON_TRY(read_ids(member, r));
        } else if (key == "text") {
            if (r.text_seen && r.duplicate == nullptr) r.duplicate = "body.text";
            r.text_seen = true;
            od::json_type member_type;
            VARTALAP_JSON_TRY(member.type().get(member_type));
            if (member_type == od::json_type::string) {
                std::string_view token = member.raw_json_token();
                std::string_view unescaped;
                VARTALAP_JSON_TRY(member.get_string().get(unescaped));
                while (!token.empty() && is_json_space(token.back())) token.remove_suffix(1);
                r.text_raw = token;
            } else {
                VARTALAP_JSON_TRY(walk(member, 3));
            }
        } else {
            if (key == "ts") drop = open_drop(key_at); // the server writes body.ts
            VARTALAP_JSON_TRY(walk(member, 3));
        }
    }
    std::size_t close = 0;
    VARTALAP_JSON_TRY(close_of_object(close));
    end_drop(drop, close);
    edits_.push_back({close, close, Stamp::body_ts});
    return simdjson::SUCCESS;
}

error_code Splicer::read_ids(od::value value, Read& r) {
    od::json_type type;
    VARTALAP_JSON_TRY(value.type().get(type));
    ids_.clear();
    r.ids_bad_shape = r.ids_bad_item = false;
    if (type != od::json_type::array) {
        r.ids_bad_shape = true;
        return walk(value, 3);
    }
    if (limits_.max_depth < 3) {
        too_deep_ = true;
        return simdjson::DEPTH_ERROR;
    }
    od::array array;
    VARTALAP_JSON_TRY(value.get_array().get(array));
    std::size_t count = 0;
    for (auto item : array) {
        od::value element;
        VARTALAP_JSON_TRY(std::move(item).get(element));
        if (++count > limits_.max_ids) r.ids_bad_shape = true;
        od::json_type element_type;
        VARTALAP_JSON_TRY(element.type().get(element_type));
        if (element_type != od::json_type::string) {
            r.ids_bad_item = true;
            VARTALAP_JSON_TRY(walk(element, 4));
            continue;
        }
        std::string_view id;
        VARTALAP_JSON_TRY(element.get_string().get(id));
        if (id.empty() || id.size() > limits_.max_field_bytes)
            r.ids_bad_item = true;
        else if (count <= limits_.max_ids)
            ids_.push_back(id);
    }
    return simdjson::SUCCESS;
}

void Splicer::write(const Read& r, const ClientOrigin& origin, const Legacy& legacy,
                    std::string& out) const {
    const std::uint64_t ts = seconds_of(origin.now_ms);
    out.clear();
    out.reserve(in_.size() + 256 + r.text_raw.size() + 2 * origin.user.size());
    std::size_t at = 0;
    for (const Edit& edit : edits_) {
        out.append(in_.data() + at, edit.begin - at);
        at = edit.end;
        switch (edit.stamp) {
        case Stamp::none: break;
        case Stamp::head_from:
            separate(out);
            out += "\"from\":";
            append_json_string(out, origin.user);
            break;
        case Stamp::body_ts:
            separate(out);
            out += "\"ts\":";
            append_json_number(out, ts);
            break;
        case Stamp::body_object:
            out += "{\"ts\":";
            append_json_number(out, ts);
            out.push_back('}');
            break;
        case Stamp::top: {
            separate(out);
            if (r.body == BodyKind::absent) {
                out += "\"body\":{\"ts\":";
                append_json_number(out, ts);
                out += "},";
            }
            out += "\"from\":";
            append_json_string(out, origin.user);
            append_member(out, "to", legacy.to);
            append_member(out, "msgId", legacy.msg_id);
            append_member(out, "type", legacy.type);
            append_member(out, "chatId", legacy.chat_id);
            if (!r.text_raw.empty()) {
                out += ",\"text\":";
                out += r.text_raw;
            }
            append_member(out, "module", legacy.module);
            append_member(out, "action", legacy.action);
            append_member(out, "chatType", legacy.chat_type);
            break;
        }
        }
    }
    out.append(in_.data() + at, in_.size() - at);
}

} // namespace vartalap::client_json
