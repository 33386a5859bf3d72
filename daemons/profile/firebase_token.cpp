// Firebase ID tokens: certificate set, checks, provider (firebase_token.hpp).
// Thread: see the header.
#include "daemons/profile/firebase_token.hpp"

#include "common/access_key.hpp"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cctype>
#include <charconv>

namespace vartalap::profile {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxSubBytes = 128; // Firebase's own limit on a uid

// Reads the public key of the PEM certificate `pem`; nullptr unless it is an RSA key.
std::shared_ptr<EVP_PKEY> rsa_key_of(std::string_view pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    if (!bio) return nullptr;
    std::unique_ptr<X509, decltype(&X509_free)> cert(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
    if (!cert) return nullptr;
    std::shared_ptr<EVP_PKEY> key(X509_get_pubkey(cert.get()), EVP_PKEY_free);
    if (!key || EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) return nullptr;
    return key;
}

bool rs256_valid(EVP_PKEY* key, std::string_view signed_part, std::string_view signature) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                   EVP_MD_CTX_free);
    if (!context ||
        EVP_DigestVerifyInit(context.get(), nullptr, EVP_sha256(), nullptr, key) != 1)
        return false;
    return EVP_DigestVerify(context.get(),
                            reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(),
                            reinterpret_cast<const unsigned char*>(signed_part.data()),
                            signed_part.size()) == 1;
}

// A JSON object from one base64url segment, or a discarded value.
json segment_object(std::string_view segment) {
    std::string decoded;
    if (!base64url_decode(segment, decoded)) return json(json::value_t::discarded);
    json value = json::parse(decoded, nullptr, false);
    return value.is_object() ? value : json(json::value_t::discarded);
}

// An integral NumericDate claim, or nullopt.
std::optional<std::int64_t> seconds_claim(const json& payload, const char* name) {
    auto it = payload.find(name);
    if (it == payload.end() || !it->is_number()) return std::nullopt;
    if (it->is_number_float()) return static_cast<std::int64_t>(it->get<double>());
    return it->get<std::int64_t>();
}

const std::string* string_claim(const json& object, const char* name) {
    auto it = object.find(name);
    return it != object.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

TokenVerdict refuse(std::string& reason, std::string why) {
    reason = std::move(why);
    return TokenVerdict::refused;
}

} // namespace

std::optional<CertificateSet> CertificateSet::parse(std::string_view json_text,
                                                    std::string& error) {
    const json document = json::parse(json_text, nullptr, false);
    if (document.is_discarded() || !document.is_object() || document.empty()) {
        error = "certificate document is not a non-empty JSON object";
        return std::nullopt;
    }
    CertificateSet set;
    for (const auto& [kid, pem] : document.items()) {
        if (!pem.is_string() || kid.empty()) {
            error = "certificate document: a value is not a PEM string";
            return std::nullopt;
        }
        auto key = rsa_key_of(pem.get_ref<const std::string&>());
        if (!key) {
            error = "certificate '" + kid + "' is not a PEM X.509 certificate with an RSA key";
            return std::nullopt;
        }
        set.keys_.emplace(kid, std::move(key));
    }
    return set;
}

EVP_PKEY* CertificateSet::key(std::string_view kid) const {
    auto it = keys_.find(kid);
    return it == keys_.end() ? nullptr : it->second.get();
}

void CertificateStore::replace(std::shared_ptr<const CertificateSet> set,
                               std::uint64_t expires_at_ms) {
    std::lock_guard lock(mutex_);
    current_ = {std::move(set), expires_at_ms};
}

std::shared_ptr<const CertificateSet> CertificateStore::usable(std::uint64_t now_ms) const {
    std::lock_guard lock(mutex_);
    if (current_.expires_at_ms != 0 && current_.expires_at_ms <= now_ms) return nullptr;
    return current_.set;
}

CertificateStore::Current CertificateStore::current() const {
    std::lock_guard lock(mutex_);
    return current_;
}

TokenVerdict verify_firebase_token(std::string_view token, const CertificateSet& certs,
                                   const TokenRules& rules, std::int64_t now,
                                   Identity& identity, std::string& reason) {
    const auto first = token.find('.');
    const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
        return refuse(reason, "not a JWT (three segments)");
    const json header = segment_object(token.substr(0, first));
    if (header.is_discarded()) return refuse(reason, "JWT header is not a JSON object");
    // The algorithm is pinned before any key is looked at: none, HS256 (an HMAC keyed with
    // the public key) and every other alg are refused here.
    const std::string* alg = string_claim(header, "alg");
    if (!alg || *alg != "RS256") return refuse(reason, "alg is not RS256");
    const std::string* kid = string_claim(header, "kid");
    if (!kid || kid->empty()) return refuse(reason, "no kid");
    EVP_PKEY* key = certs.key(*kid);
    if (!key) {
        reason = "unknown kid " + kid->substr(0, 64);
        return TokenVerdict::unknown_kid;
    }
    std::string signature;
    if (!base64url_decode(token.substr(second + 1), signature) || signature.empty() ||
        !rs256_valid(key, token.substr(0, second), signature))
        return refuse(reason, "bad signature");
    const json payload = segment_object(token.substr(first + 1, second - first - 1));
    if (payload.is_discarded()) return refuse(reason, "JWT payload is not a JSON object");
    const std::string* iss = string_claim(payload, "iss");
    if (!iss || *iss != "https://securetoken.google.com/" + rules.project_id)
        return refuse(reason, "wrong issuer");
    const std::string* aud = string_claim(payload, "aud");
    if (!aud || *aud != rules.project_id) return refuse(reason, "wrong audience");
    const auto exp = seconds_claim(payload, "exp");
    if (!exp || *exp + rules.leeway_seconds <= now) return refuse(reason, "expired");
    const auto iat = seconds_claim(payload, "iat");
    if (!iat || *iat > now + rules.leeway_seconds) return refuse(reason, "iat in the future");
    const auto auth_time = seconds_claim(payload, "auth_time");
    if (!auth_time || *auth_time > now + rules.leeway_seconds)
        return refuse(reason, "auth_time missing or in the future");
    const std::string* sub = string_claim(payload, "sub");
    if (!sub || sub->empty() || sub->size() > kMaxSubBytes)
        return refuse(reason, "sub missing, empty or too long");
    identity.sub = *sub;
    const std::string* phone = string_claim(payload, "phone_number");
    identity.phone_number = phone ? *phone : std::string();
    return TokenVerdict::ok;
}

long long cache_max_age(std::string_view value) {
    // Directives are comma-separated, case-insensitive names: "public, max-age=19302, ...".
    while (!value.empty()) {
        const auto comma = value.find(',');
        std::string_view directive = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        while (!directive.empty() && directive.front() == ' ') directive.remove_prefix(1);
        while (!directive.empty() && directive.back() == ' ') directive.remove_suffix(1);
        constexpr std::string_view kName = "max-age=";
        if (directive.size() <= kName.size()) continue;
        bool match = true;
        for (std::size_t i = 0; i < kName.size(); ++i)
            if (std::tolower(static_cast<unsigned char>(directive[i])) != kName[i]) match = false;
        if (!match) continue;
        const auto digits = directive.substr(kName.size());
        long long seconds = 0;
        const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seconds);
        if (ec != std::errc{} || ptr != digits.data() + digits.size() || seconds < 0) return -1;
        return seconds;
    }
    return -1;
}

FirebaseIdentityProvider::FirebaseIdentityProvider(TokenRules rules, bool require_phone_match,
                                                   const CertificateStore& store,
                                                   const Clock& clock,
                                                   std::function<void()> on_unknown_kid)
    : rules_(std::move(rules)), require_phone_match_(require_phone_match), store_(store),
      clock_(clock), on_unknown_kid_(std::move(on_unknown_kid)) {}

bool FirebaseIdentityProvider::verify(std::string_view username, std::string_view token,
                                      Identity& identity, std::string& reason) const {
    if (token.empty()) {
        reason = "empty identity token";
        return false;
    }
    const auto certs = store_.usable(clock_.wall_ms());
    if (!certs) {
        reason = "no current certificates";
        if (on_unknown_kid_) on_unknown_kid_();
        return false;
    }
    const TokenVerdict verdict = verify_firebase_token(
        token, *certs, rules_, static_cast<std::int64_t>(clock_.wall_ms() / 1000), identity, reason);
    if (verdict == TokenVerdict::unknown_kid && on_unknown_kid_) on_unknown_kid_();
    if (verdict != TokenVerdict::ok) return false;
    if (require_phone_match_ && !identity.phone_number.empty() && identity.phone_number != username) {
        reason = "phone_number does not match the username";
        return false;
    }
    return true;
}

} // namespace vartalap::profile
