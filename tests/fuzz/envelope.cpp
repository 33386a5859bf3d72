// Fuzz target: the envelope decoder (common/wire/envelope), what every daemon runs on the
// bytes of its peers' frames (and on envelopes read back from its stores).
//
// Input: frame 0 (the first two bytes: version, kind) and frame 1 (the rest). Besides "no
// crash, no leak, no UB, no allocation beyond the limits": a decoded envelope respects
// DecodeLimits, and encoding it and decoding that again gives the same envelope (the
// encoder writes what the decoder reads).
#include "common/wire/envelope.hpp"
#include "tests/fuzz/fuzz_check.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using vartalap::Envelope;

// Small limits, so that inputs of a few KiB reach the "over the limit" paths too.
const vartalap::DecodeLimits kLimits{.max_frame_bytes = 64 * 1024,
                                     .max_string_bytes = 16 * 1024,
                                     .max_array_items = 64};

void check_within(const Envelope& e) {
    for (const std::string* s : {&e.id, &e.channel, &e.from, &e.to, &e.origin_gateway,
                                 &e.method, &e.error, &e.payload, &e.confirm_to})
        FUZZ_CHECK(s->size() <= kLimits.max_string_bytes);
    FUZZ_CHECK(e.ids.size() <= kLimits.max_array_items);
    FUZZ_CHECK(e.items.size() <= kLimits.max_array_items);
    FUZZ_CHECK(static_cast<std::uint8_t>(e.kind) >= 1 &&
               static_cast<std::uint8_t>(e.kind) <= vartalap::kMaxKind);
    FUZZ_CHECK(static_cast<std::uint8_t>(e.route) <= vartalap::kMaxRoute);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const std::string_view header = bytes.substr(0, 2);
    const std::string_view body = bytes.substr(header.size());
    std::string error;
    const auto decoded = vartalap::decode_envelope(header, body, &error, kLimits);
    if (!decoded) {
        FUZZ_CHECK(!error.empty());
        return 0;
    }
    check_within(*decoded);
    (void)vartalap::to_string(decoded->kind);
    (void)vartalap::to_string(decoded->status);
    (void)vartalap::to_string(decoded->route);

    const std::string frame0 = vartalap::header_frame(decoded->kind);
    const std::string frame1 = vartalap::encode_envelope(*decoded);
    const auto again = vartalap::decode_envelope(frame0, frame1, &error, kLimits);
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(vartalap::encode_envelope(*again) == frame1);
    return 0;
}
