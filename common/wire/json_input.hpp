// simdjson On-Demand over a reused, padded copy of the input (internal to common/wire: only
// .cpp files include this header, so the 30,000 lines of simdjson.h stay out of the rest).
//
// simdjson reads up to SIMDJSON_PADDING bytes past the end of its input, which a frame in a
// Beast buffer or a std::string does not promise; JsonInput copies the input into a buffer
// that does and keeps that buffer and the parser's own (structural index, unescaped strings)
// from one document to the next, growing them geometrically: after the first few messages a
// parse allocates nothing.
//
// Thread: one JsonInput per thread (thread_json_input()). A document and every string_view
// read from it stay valid until the next iterate() on the same JsonInput.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

// Returns the simdjson error of `expr`, if any, from the enclosing function.
#define VARTALAP_JSON_TRY(expr)                                                              \
    do {                                                                                     \
        if (const simdjson::error_code vartalap_json_error_ = (expr);                       \
            vartalap_json_error_ != simdjson::SUCCESS)                                       \
            return vartalap_json_error_;                                                     \
    } while (false)

namespace vartalap {

class JsonInput {
public:
    // Copies `text` into the padded buffer (a leading UTF-8 byte order mark dropped, as JSON
    // parsers may) and starts iterating it. Stage 1 runs here: invalid UTF-8 and unbalanced
    // strings fail at once, the rest as the document is read.
    simdjson::error_code iterate(std::string_view text, simdjson::ondemand::document& doc);

    // The copy being iterated (without padding): positions simdjson reports point into it.
    const char* data() const { return buffer_.get(); }
    std::size_t size() const { return size_; }
    std::size_t offset(const char* p) const { return static_cast<std::size_t>(p - buffer_.get()); }

private:
    simdjson::ondemand::parser parser_;
    std::unique_ptr<char[]> buffer_;
    std::size_t capacity_ = 0; // bytes of buffer_, padding included
    std::size_t size_ = 0;
};

// This thread's JsonInput.
JsonInput& thread_json_input();

// JSON whitespace (RFC 8259): space, tab, line feed, carriage return.
inline bool is_json_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Appends `s` as a JSON string (quotes, backslashes and control characters escaped). Text
// simdjson parsed is valid UTF-8; other text (a user name from a header) that is not has
// each non-ASCII byte written as U+FFFD.
void append_json_string(std::string& out, std::string_view s);
void append_json_number(std::string& out, std::uint64_t n);

} // namespace vartalap
