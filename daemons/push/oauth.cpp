// Thread: any (pure functions and an immutable key); FcmProvider calls them on the push
// daemon's io thread.
#include "daemons/push/oauth.hpp"

#include "common/access_key.hpp" // base64url_encode (unpadded, as JWS requires)

#include <boost/algorithm/hex.hpp>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sstream>
#include <stdexcept>

namespace vartalap::push {

using nlohmann::json;

namespace {

std::string string_field(const json& document, const char* key) {
    auto it = document.find(key);
    if (it == document.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
        throw std::invalid_argument(std::string("service account: ") + key + " missing or not a string");
    return it->get<std::string>();
}

} // namespace

ServiceAccount parse_service_account(std::string_view json_text) {
    const json document = json::parse(json_text, nullptr, false);
    if (document.is_discarded() || !document.is_object())
        throw std::invalid_argument("service account: not a JSON object");
    ServiceAccount account;
    account.client_email = string_field(document, "client_email");
    account.private_key_pem = string_field(document, "private_key");
    account.token_uri = string_field(document, "token_uri");
    account.project_id = string_field(document, "project_id");
    return account;
}

ServiceAccount load_service_account(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::invalid_argument("service account file " + file.string() + " cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    try {
        return parse_service_account(text.str());
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(file.string() + ": " + e.what());
    }
}

RsaSigner::RsaSigner(EVP_PKEY* key) : key_(key, EVP_PKEY_free) {}

RsaSigner RsaSigner::from_pem(std::string_view pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                  BIO_free);
    EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (key == nullptr || EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        throw std::invalid_argument("private_key is not a PEM RSA private key");
    }
    return RsaSigner(key);
}

std::string RsaSigner::sign(std::string_view data) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    std::size_t length = 0;
    // EVP_DigestSign defaults to PKCS#1 v1.5 padding for RSA keys: exactly RS256.
    if (!context || EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(context.get(), nullptr, &length,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
        throw std::runtime_error("RS256: OpenSSL could not start signing");
    std::string signature(length, '\0');
    if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
        throw std::runtime_error("RS256: OpenSSL could not sign");
    signature.resize(length);
    return signature;
}

std::string build_assertion(const AssertionClaims& claims, const RsaSigner& signer) {
    const json header = {{"alg", "RS256"}, {"typ", "JWT"}};
    const json body = {{"iss", claims.issuer},
                       {"scope", claims.scope},
                       {"aud", claims.audience},
                       {"iat", claims.issued_at_seconds},
                       {"exp", claims.issued_at_seconds + kAssertionLifetimeSeconds}};
    std::string signing_input = base64url_encode(header.dump()) + "." + base64url_encode(body.dump());
    const std::string signature = signer.sign(signing_input);
    signing_input += '.';
    signing_input += base64url_encode(signature);
    return signing_input;
}

std::string form_encode(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (unsigned char c : value) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*' ||
            c == '-' || c == '.' || c == '_') {
            out += static_cast<char>(c);
        } else if (c == ' ') {
            out += '+';
        } else {
            out += '%';
            boost::algorithm::hex(&c, &c + 1, std::back_inserter(out)); // upper case, as RFC 3986 wants
        }
    }
    return out;
}

std::string token_request_body(std::string_view assertion) {
    return "grant_type=" + form_encode(kJwtBearerGrant) + "&assertion=" + form_encode(assertion);
}

std::optional<AccessToken> parse_token_response(std::string_view body) {
    const json document = json::parse(body, nullptr, false);
    if (document.is_discarded() || !document.is_object()) return std::nullopt;
    auto token = document.find("access_token");
    auto expires = document.find("expires_in");
    if (token == document.end() || !token->is_string() || token->get_ref<const std::string&>().empty() ||
        expires == document.end() || !expires->is_number_unsigned())
        return std::nullopt;
    return AccessToken{token->get<std::string>(), expires->get<std::uint64_t>()};
}

const std::string* AccessTokenCache::valid(std::uint64_t now_ms) const {
    return !token_.empty() && now_ms < refresh_at_ms_ ? &token_ : nullptr;
}

void AccessTokenCache::store(std::string token, std::uint64_t expires_in_seconds, std::uint64_t now_ms) {
    const std::uint64_t lifetime_ms = expires_in_seconds * 1000;
    token_ = std::move(token);
    refresh_at_ms_ = now_ms + (lifetime_ms > 2 * kMarginMs ? lifetime_ms - kMarginMs : lifetime_ms / 2);
}

void AccessTokenCache::invalidate(std::string_view token) {
    if (token_ == token) {
        token_.clear();
        refresh_at_ms_ = 0;
    }
}

} // namespace vartalap::push
