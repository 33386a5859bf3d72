// Fuzz target: access-key parsing (common/access_key, common/http/http_auth's cookie
// reader), what every gateway runs on each request's credentials before anything else.
//
// Input: "<user>\n<key>" (no newline: all of it is the key for user "alice"). Besides "no
// crash, no leak, no UB": only the key issued for exactly that user verifies (a key that
// verifies has a v1 or v2 prefix and a decimal timestamp at most 300 s ahead, and its user
// is a valid username), and a key verifies for no other user;
// the configured-secret parser and the cookie reader take any text.
#include "common/access_key.hpp"
#include "common/http/http_auth.hpp"
#include "common/names.hpp"
#include "tests/fuzz/fuzz_check.hpp"

#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

const vartalap::AccessKeys& keys() {
    static const vartalap::AccessKeys k(std::string(32, 's'));
    return k;
}

// The issued_at field of a "v1.<seconds>.<signature>" or "v2.<seconds>.<nonce>.<signature>"
// key, if it is a plain decimal.
bool issued_at(std::string_view key, std::uint64_t& seconds) {
    if (key.substr(0, 3) != "v1." && key.substr(0, 3) != "v2.") return false;
    const auto dot = key.find('.', 3);
    if (dot == std::string_view::npos) return false;
    const std::string_view digits = key.substr(3, dot - 3);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seconds);
    return ec == std::errc() && end == digits.data() + digits.size();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto newline = input.find('\n');
    const std::string_view user = newline == std::string_view::npos ? "alice" : input.substr(0, newline);
    const std::string_view key = newline == std::string_view::npos ? input : input.substr(newline + 1);

    const std::uint64_t now = 1'800'000'000;
    if (keys().verify(user, key, now)) {
        FUZZ_CHECK(vartalap::valid_username(user));
        std::uint64_t seconds = 0;
        FUZZ_CHECK(issued_at(key, seconds));
        FUZZ_CHECK(seconds <= now + vartalap::kAccessKeyMaxFutureSkewSeconds);
        FUZZ_CHECK(!keys().verify(std::string(user) + "x", key, now));
    }
    // A key issued for a valid username verifies for it, unless dated too far ahead; no key
    // verifies for a name the rule refuses (common/names.hpp).
    const bool valid = vartalap::valid_username(user);
    FUZZ_CHECK(keys().verify(user, keys().issue(user, size), now) == valid);
    FUZZ_CHECK(!keys().verify(user, keys().issue(user, now + vartalap::kAccessKeyMaxFutureSkewSeconds + 1 + size), now));

    try {
        const std::string secret = vartalap::secret_from_config(input);
        if (input.substr(0, 4) != "hex:") FUZZ_CHECK(secret == input);
    } catch (const std::runtime_error&) { // documented: "hex:" followed by no valid hex
        FUZZ_CHECK(input.substr(0, 4) == "hex:");
    }
    const std::string encoded = vartalap::base64url_encode(input);
    FUZZ_CHECK(encoded.size() <= (input.size() + 2) / 3 * 4);
    FUZZ_CHECK(encoded.find_first_of("+/=") == std::string::npos);
    std::string decoded;
    FUZZ_CHECK(vartalap::base64url_decode(encoded, decoded) && decoded == input);

    (void)vartalap::cookie_value(input, "user");
    (void)vartalap::cookie_value(input, "accesskey");
    return 0;
}
