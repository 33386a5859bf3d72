// Signed access keys: what /login issues and what every gateway verifies without a lookup.
//
// Format: "v2.<issued_at_seconds>.<nonce>.<base64url(HMAC-SHA256(secret,
// "v2|user|issued_at|nonce"))>", the nonce 8 random bytes in base64url, so that two logins
// of one user in the same second (two devices) get different keys and a logout revokes
// only its own. Keys of the earlier format "v1.<issued_at>.<HMAC of "v1|user|issued_at">"
// still verify. The user is not inside the key: the client sends it beside the key (header
// or cookie `user`), and the signature binds the two, so a key is useless for any other user.
// Thread-safety: const methods are safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace vartalap {

// A key whose issue time is further than this ahead of the verifier's clock is refused: a
// key dated in the future would outlive the max age, and no honest issuer's clock is that
// far ahead (profile and gateways keep NTP time; a few minutes cover a drifting host).
inline constexpr std::uint64_t kAccessKeyMaxFutureSkewSeconds = 300;

class AccessKeys {
public:
    // `secret`: raw bytes, at least 32 (checked: throws std::invalid_argument).
    // `max_age_seconds`: keys issued longer ago are refused (0: keys never expire).
    explicit AccessKeys(std::string secret, std::uint64_t max_age_seconds = 0);

    std::string issue(std::string_view user, std::uint64_t now_seconds) const;
    // Constant-time comparison of the signature. Rejects users that are not valid usernames
    // (common/names.hpp: empty, reserved, bad characters), malformed keys, keys issued more
    // than kAccessKeyMaxFutureSkewSeconds after `now_seconds` (by default the system
    // clock's), and keys older than the max age at `now_seconds`.
    bool verify(std::string_view user, std::string_view key) const;
    bool verify(std::string_view user, std::string_view key, std::uint64_t now_seconds) const;
    // When a revocation of `key` may be forgotten: issued_at + max age (0: never, or a
    // malformed key).
    std::uint64_t expires_at(std::string_view key) const;
    std::uint64_t max_age_seconds() const { return max_age_; }

private:
    std::string sign(std::string_view message) const;
    std::string secret_;
    std::uint64_t max_age_;
};

// Reads the secret from `file`; if the file does not exist, generates 32 random bytes
// (OpenSSL RAND_bytes), writes them hex-encoded with mode 0600, and returns them, so keys
// survive restarts. Throws std::runtime_error with the path on I/O errors.
std::string load_or_create_secret(const std::filesystem::path& file);

// Hex of a configured secret string ("hex:..." or plain text), as raw bytes.
std::string secret_from_config(std::string_view configured);

std::string base64url_encode(std::string_view bytes);
// False (and `out` unspecified) unless `text` is unpadded base64url: the JWT segments.
bool base64url_decode(std::string_view text, std::string& out);

} // namespace vartalap
