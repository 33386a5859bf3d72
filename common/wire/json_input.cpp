// Thread: any; each thread has its own JsonInput (see json_input.hpp).
#include "common/wire/json_input.hpp"

#include "common/wire/client_message.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace vartalap {
namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;

// Room kept from the first document on: a chat message is a few hundred bytes.
constexpr std::size_t kInitialCapacity = 4096;

} // namespace

simdjson::error_code JsonInput::iterate(std::string_view text,
                                        simdjson::ondemand::document& doc) {
    if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.remove_prefix(3);
    const std::size_t needed = text.size() + simdjson::SIMDJSON_PADDING;
    if (capacity_ < needed) {
        const std::size_t grown =
            std::max({needed, 2 * capacity_, kInitialCapacity + simdjson::SIMDJSON_PADDING});
        buffer_ = std::make_unique_for_overwrite<char[]>(grown);
        capacity_ = grown;
    }
    if (parser_.capacity() < text.size()) {
        const std::size_t grown = std::max({text.size(), 2 * parser_.capacity(), kInitialCapacity});
        if (const auto error = parser_.allocate(grown); error != simdjson::SUCCESS) return error;
    }
    if (!text.empty()) std::memcpy(buffer_.get(), text.data(), text.size());
    std::memset(buffer_.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    size_ = text.size();
    return parser_.iterate(buffer_.get(), size_, capacity_).get(doc);
}

JsonInput& thread_json_input() {
    thread_local JsonInput input;
    return input;
}

void append_json_string(std::string& out, std::string_view s) {
    const bool utf8 = simdjson::validate_utf8(s.data(), s.size());
    out.push_back('"');
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
        case '"': out += "\\\""; continue;
        case '\\': out += "\\\\"; continue;
        case '\n': out += "\\n"; continue;
        case '\r': out += "\\r"; continue;
        case '\t': out += "\\t"; continue;
        case '\b': out += "\\b"; continue;
        case '\f': out += "\\f"; continue;
        default: break;
        }
        if (u < 0x20) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\u00";
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 0xF]);
        } else if (u >= 0x80 && !utf8) {
            out += "\\ufffd";
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

void append_json_number(std::string& out, std::uint64_t n) {
    char digits[24];
    const auto written = std::to_chars(digits, digits + sizeof digits, n);
    out.append(digits, written.ptr);
}

bool nested_deeper_than(std::string_view text, std::size_t max_depth) {
    JsonInput& in = thread_json_input();
    od::document doc;
    if (in.iterate(text, doc) != simdjson::SUCCESS) return false;
    // Depth only: containers are walked, values are not checked (the caller's parser does).
    struct Depth {
        std::size_t max;
        bool deeper = false;
        error_code value(od::value v, std::size_t depth) {
            od::json_type type;
            VARTALAP_JSON_TRY(v.type().get(type));
            if (type == od::json_type::object) {
                od::object o;
                VARTALAP_JSON_TRY(v.get_object().get(o));
                return object(o, depth);
            }
            if (type == od::json_type::array) {
                od::array a;
                VARTALAP_JSON_TRY(v.get_array().get(a));
                return array(a, depth);
            }
            return simdjson::SUCCESS;
        }
        error_code object(od::object o, std::size_t depth) {
            if (depth > max) return deeper = true, simdjson::DEPTH_ERROR;
            for (auto item : o) {
                od::field field;
                VARTALAP_JSON_TRY(std::move(item).get(field));
                VARTALAP_JSON_TRY(value(field.value(), depth + 1));
            }
            return simdjson::SUCCESS;
        }
        error_code array(od::array a, std::size_t depth) {
            if (depth > max) return deeper = true, simdjson::DEPTH_ERROR;
            for (auto item : a) {
                od::value v;
                VARTALAP_JSON_TRY(std::move(item).get(v));
                VARTALAP_JSON_TRY(value(v, depth + 1));
            }
            return simdjson::SUCCESS;
        }
    } depth{max_depth};
    od::json_type type;
    if (doc.type().get(type) != simdjson::SUCCESS) return false;
    if (type == od::json_type::object) {
        od::object o;
        if (doc.get_object().get(o) == simdjson::SUCCESS) (void)depth.object(o, 1);
    } else if (type == od::json_type::array) {
        od::array a;
        if (doc.get_array().get(a) == simdjson::SUCCESS) (void)depth.array(a, 1);
    }
    return depth.deeper;
}

std::string peek_string_member(std::string_view json, std::string_view key) {
    JsonInput& in = thread_json_input();
    od::document doc;
    od::object object;
    if (in.iterate(json, doc) != simdjson::SUCCESS ||
        doc.get_object().get(object) != simdjson::SUCCESS)
        return {};
    for (auto item : object) {
        od::field field;
        std::string_view name;
        if (std::move(item).get(field) != simdjson::SUCCESS ||
            field.unescaped_key().get(name) != simdjson::SUCCESS)
            return {};
        if (name != key) continue;
        std::string_view value;
        if (field.value().get_string().get(value) != simdjson::SUCCESS) return {};
        return std::string(value);
    }
    return {};
}

} // namespace vartalap
