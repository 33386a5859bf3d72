// The gateway's pass over a client message (internal to common/wire; client_message.cpp
// is its one user). See client_message.hpp for the contract and client_message_splice.cpp
// for how the pass reads and how the payload is spliced.
//
// Thread: a Splicer lives for one parse on one thread and uses that thread's JsonInput and
// scratch vectors (capacity kept from message to message).
#pragma once

#include "common/wire/client_message.hpp"
#include "common/wire/json_input.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::client_json {

namespace od = simdjson::ondemand;
using simdjson::error_code;

inline constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

// The flat keys old app versions read at the top level (PROTOCOL.md): the server writes them,
// so any the client sent are dropped.
inline bool is_legacy_key(std::string_view key) {
    static constexpr std::array<std::string_view, 9> keys{
        "from", "to", "msgId", "type", "chatId", "text", "module", "action", "chatType"};
    for (const auto k : keys)
        if (k == key) return true;
    return false;
}

// head's string members, in the order their errors are checked.
enum HeadKey : std::uint8_t { h_type, h_to, h_chatid, h_content_type, h_action, h_category,
                              h_ephemeral, h_count };
inline constexpr std::array<std::string_view, h_count> kHeadKeys{
    "type", "to", "chatid", "contentType", "action", "category", "ephemeral"};

// What replaces an edited range of the client's text.
enum class Stamp : std::uint8_t {
    none,        // the range is dropped
    head_from,   // "from":<user> before head's closing brace
    body_ts,     // "ts":<seconds> before body's closing brace
    body_object, // {"ts":<seconds>} for a null body
    top,         // the legacy keys (and "body":{...} when absent) before the last brace
};

struct Edit {
    std::size_t begin;
    std::size_t end; // kNone while the dropped member's end is not known yet
    Stamp stamp;
};

enum class BodyKind : std::uint8_t { absent, null, object, other };

// What the pass read. String views point into the JsonInput (the copy or simdjson's
// unescaped strings) and live until the next parse on this thread.
struct Read {
    bool top_is_object = false;
    const char* duplicate = nullptr; // the first key the server reads that came twice
    std::uint32_t head_seen = 0;     // bits of HeadKey: the key was there
    std::uint32_t head_strings = 0;  // bits of HeadKey: the value was a string
    bool version_seen = false; // a top-level `_v` number (version its value)
    double version = 0;
    bool id_seen = false, id_valid_type = false, id_is_string = false;
    std::string_view id;
    std::array<char, 24> id_digits{};
    bool head_seen_once = false, head_is_object = false, head_bad = false;
    std::array<std::string_view, h_count> head{};
    bool ephemeral = false, ephemeral_bad = false;
    BodyKind body = BodyKind::absent;
    bool ids_seen = false, ids_bad_shape = false, ids_bad_item = false;
    bool text_seen = false;
    std::string_view text_raw; // body.text as written (a JSON string token), if a string
    std::size_t top_close = 0;
};

// The values of the flat legacy keys, defaults applied.
struct Legacy {
    std::string_view to, msg_id, type, chat_id, module, action, chat_type;
};

class Splicer {
public:
    Splicer(JsonInput& input, const ClientMessageLimits& limits) : in_(input), limits_(limits) {}

    // The pass. Any error: the text is not valid JSON or nests too deeply (too_deep_).
    error_code read(std::string_view text, Read& r);
    bool too_deep() const { return too_deep_; }
    const std::vector<std::string_view>& ids() const { return ids_; }
    // The payload: the text around the edits, stamps written in.
    void write(const Read& r, const ClientOrigin& origin, const Legacy& legacy,
               std::string& out) const;

private:
    error_code walk(od::value value, std::size_t depth);
    error_code walk_object(od::object object, std::size_t depth);
    error_code walk_array(od::array array, std::size_t depth);
    error_code read_top(od::object top, Read& r);
    error_code read_id(od::value value, Read& r);
    error_code read_head(od::value value, Read& r);
    error_code read_body(od::value value, Read& r);
    error_code read_ids(od::value value, Read& r);
    // A string member that may be null or absent: `present` when it is a string.
    error_code read_optional_string(od::value value, std::string_view& out, bool& present,
                                    bool& bad);
    // The close of the object just iterated: the last non-space byte before the next token.
    error_code close_of_object(std::size_t& close);
    std::size_t open_drop(std::size_t key_at) {
        edits_.push_back({key_at, kNone, Stamp::none});
        return edits_.size() - 1;
    }
    void end_drop(std::size_t& drop, std::size_t at) {
        if (drop != kNone) edits_[drop].end = at;
        drop = kNone;
    }

    JsonInput& in_;
    const ClientMessageLimits& limits_;
    od::document doc_;
    bool too_deep_ = false;
    std::vector<Edit>& edits_ = scratch().edits;
    std::vector<std::string_view>& ids_ = scratch().ids;

    struct Scratch {
        std::vector<Edit> edits;
        std::vector<std::string_view> ids;
    };
    static Scratch& scratch() {
        thread_local Scratch s;
        return s;
    }
};

} // namespace vartalap::client_json
