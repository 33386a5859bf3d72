// The Firebase identity provider's socket-free parts: the certificate set (kid -> RSA public
// key, from Google's x509 JSON document), the ID-token checks, and the provider itself over
// a CertificateStore that the daemon's CertificateFetcher (cert_fetcher.hpp) fills.
// docs/INTERNAL_PROTOCOL.md, "Identity and revocation", says what is checked and why the
// JWT is read here rather than with libjwt or cpp-jwt.
//
// Thread-safety: CertificateSet is immutable once parsed (shared between threads through
// shared_ptr<const>); CertificateStore is safe from any thread (a mutex around one
// shared_ptr); verify_firebase_token is a pure function; FirebaseIdentityProvider::verify
// runs on the profile loop and calls `on_unknown_kid` there.
#pragma once

#include "common/clock.hpp"
#include "daemons/profile/profile_core.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

typedef struct evp_pkey_st EVP_PKEY; // <openssl/types.h>

namespace vartalap::profile {

class CertificateSet {
public:
    // `{"<kid>": "-----BEGIN CERTIFICATE-----\n...", ...}`: every value must be a PEM X.509
    // certificate with an RSA key. nullopt and `error` for anything else (an empty object
    // too: a set with no key can verify nothing).
    static std::optional<CertificateSet> parse(std::string_view json_text, std::string& error);

    // The key named `kid`, or nullptr.
    EVP_PKEY* key(std::string_view kid) const;
    std::size_t size() const { return keys_.size(); }

private:
    std::map<std::string, std::shared_ptr<EVP_PKEY>, std::less<>> keys_;
};

// The current set and until when it may be used (wall ms; 0 = no end: a local file).
class CertificateStore {
public:
    struct Current {
        std::shared_ptr<const CertificateSet> set;
        std::uint64_t expires_at_ms = 0;
    };
    void replace(std::shared_ptr<const CertificateSet> set, std::uint64_t expires_at_ms);
    // The set, or nullptr when there is none or it expired at `now_ms`.
    std::shared_ptr<const CertificateSet> usable(std::uint64_t now_ms) const;
    Current current() const;

private:
    mutable std::mutex mutex_;
    Current current_;
};

struct TokenRules {
    std::string project_id;
    std::int64_t leeway_seconds = 60;
};

enum class TokenVerdict : std::uint8_t { ok, unknown_kid, refused };

// Checks a Firebase ID token against `certs` at `now_seconds`. ok: `identity` holds `sub`
// and `phone_number` (empty when absent). Otherwise `reason` says why (never quoting the
// token); unknown_kid: well-formed RS256 header whose kid is not in `certs`.
TokenVerdict verify_firebase_token(std::string_view token, const CertificateSet& certs,
                                   const TokenRules& rules, std::int64_t now_seconds,
                                   Identity& identity, std::string& reason);

// Cache-Control's max-age in seconds (how long a fetched set is kept), or -1 when absent or
// malformed.
long long cache_max_age(std::string_view cache_control);

class FirebaseIdentityProvider final : public IdentityProvider {
public:
    // `on_unknown_kid`: asks the fetcher for a fresh set (it rate-limits). `require_phone_match`:
    // a token's phone_number, when present, must equal the username.
    FirebaseIdentityProvider(TokenRules rules, bool require_phone_match,
                             const CertificateStore& store, const Clock& clock,
                             std::function<void()> on_unknown_kid);
    bool verify(std::string_view username, std::string_view token, Identity& identity,
                std::string& reason) const override;

private:
    TokenRules rules_;
    bool require_phone_match_;
    const CertificateStore& store_;
    const Clock& clock_;
    std::function<void()> on_unknown_kid_;
};

} // namespace vartalap::profile
