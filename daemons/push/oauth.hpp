// Google service-account OAuth2 (RFC 7523 JWT bearer grant) for FCM HTTP v1: read the
// service-account JSON, build and RS256-sign the assertion, encode the token request, and
// read the token response. No sockets here: FcmProvider does the HTTP.
//
// Secrets: the private key, the assertion and the access token are secrets. Nothing here
// logs, and the exceptions name the field that is wrong, never its value.
// Thread-safety: RsaSigner's const methods are safe from any thread (OpenSSL EVP_PKEY is
// reference-counted and immutable after loading); the rest are pure functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

typedef struct evp_pkey_st EVP_PKEY;

namespace vartalap::push {

inline constexpr std::string_view kFcmScope = "https://www.googleapis.com/auth/firebase.messaging";
inline constexpr std::string_view kJwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
// Google accepts assertions valid for at most one hour.
inline constexpr std::uint64_t kAssertionLifetimeSeconds = 3600;

struct ServiceAccount {
    std::string client_email;
    std::string private_key_pem; // secret
    std::string token_uri;
    std::string project_id;
};

// Parses a service-account JSON document. Throws std::invalid_argument("service account:
// <field> missing or not a string") for a missing field.
ServiceAccount parse_service_account(std::string_view json_text);
// Reads and parses the file; throws std::invalid_argument naming the path if unreadable.
ServiceAccount load_service_account(const std::filesystem::path& file);

// An RSA private key that signs RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3).
class RsaSigner {
public:
    // Throws std::invalid_argument("private_key is not a PEM RSA private key").
    static RsaSigner from_pem(std::string_view pem);
    // The raw signature of `data`. Throws std::runtime_error if OpenSSL fails (it does not
    // for a valid key: that would be a broken library).
    std::string sign(std::string_view data) const;

private:
    explicit RsaSigner(EVP_PKEY* key);
    std::shared_ptr<EVP_PKEY> key_;
};

struct AssertionClaims {
    std::string issuer;   // iss: the service account's client_email
    std::string scope;    // scope: what the token may do
    std::string audience; // aud: the token endpoint the assertion is posted to
    std::uint64_t issued_at_seconds = 0; // iat; exp = iat + kAssertionLifetimeSeconds
};

// "<b64url(header)>.<b64url(claims)>.<b64url(signature)>", header {"alg":"RS256","typ":"JWT"}.
std::string build_assertion(const AssertionClaims& claims, const RsaSigner& signer);

// application/x-www-form-urlencoded encoding of one value (WHATWG URL: everything but
// ALPHA / DIGIT / "*-._" is %XX, space is '+').
std::string form_encode(std::string_view value);
// "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=<jwt>"
std::string token_request_body(std::string_view assertion);

struct AccessToken {
    std::string token;            // secret
    std::uint64_t expires_in_seconds = 0;
};
// Reads {"access_token": "...", "expires_in": N, ...}; nullopt if either is missing.
std::optional<AccessToken> parse_token_response(std::string_view body);

// Keeps the bearer token until shortly before it expires, so one token serves every send
// of the next hour. Time is monotonic ms from the caller's clock. Thread: its owner's.
class AccessTokenCache {
public:
    // Refresh this long before expiry, so a token never expires between our check and
    // Google's (clock skew, a slow request).
    static constexpr std::uint64_t kMarginMs = 60000;

    // The cached token if it is still good at `now_ms`, else nullptr.
    const std::string* valid(std::uint64_t now_ms) const;
    // A token that lives `expires_in_seconds`; a very short-lived one is kept for half its
    // life (the margin would otherwise make it useless at once).
    void store(std::string token, std::uint64_t expires_in_seconds, std::uint64_t now_ms);
    // Forget the token if it is still `token` (a 401 said it is no good); a newer token that
    // another send fetched meanwhile is kept.
    void invalidate(std::string_view token);

private:
    std::string token_;
    std::uint64_t refresh_at_ms_ = 0;
};

} // namespace vartalap::push
