// Test helpers: Firebase-style ID tokens signed at runtime with a test RSA key, and the
// x509 certificate document (kid -> PEM certificate) that verifies them, all made with
// OpenSSL (tests/unit/push/test_crypto.hpp). Used by unit_profile and the identity
// integration test. Thread-safety: values; each test owns its own.
#pragma once

#include "common/access_key.hpp"
#include "tests/unit/push/test_crypto.hpp"

#include <nlohmann/json.hpp>
#include <openssl/pem.h>

#include <cstdint>
#include <memory>
#include <string>

namespace vartalap::testing_tokens {

// A signing key with its certificate (issued by a throwaway CA).
class Signer {
public:
    explicit Signer(const testing_crypto::TestCa& ca) : issued_(ca.issue({"securetoken"})) {
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(
            BIO_new_mem_buf(issued_.private_key_pem.data(),
                            static_cast<int>(issued_.private_key_pem.size())),
            BIO_free);
        key_.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
        testing_crypto::require(key_ != nullptr, "PEM_read_bio_PrivateKey");
    }
    const std::string& certificate_pem() const { return issued_.certificate_pem; }

    std::string rs256(const std::string& data) const {
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                       EVP_MD_CTX_free);
        testing_crypto::require(
            EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1,
            "EVP_DigestSignInit");
        std::size_t length = 0;
        EVP_DigestSign(context.get(), nullptr, &length,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size());
        std::string signature(length, '\0');
        testing_crypto::require(
            EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()),
                           &length, reinterpret_cast<const unsigned char*>(data.data()),
                           data.size()) == 1,
            "EVP_DigestSign");
        signature.resize(length);
        return signature;
    }

    // header.payload.signature, RS256-signed with this key.
    std::string token(const nlohmann::json& header, const nlohmann::json& payload) const {
        const std::string signed_part =
            base64url_encode(header.dump()) + "." + base64url_encode(payload.dump());
        return signed_part + "." + base64url_encode(rs256(signed_part));
    }

private:
    testing_crypto::Issued issued_;
    std::shared_ptr<EVP_PKEY> key_;
};

// The claims of a valid Firebase ID token of `project` for `sub` at `now` (seconds).
inline nlohmann::json claims(const std::string& project, const std::string& sub,
                             std::int64_t now, const std::string& phone = {}) {
    nlohmann::json c = {{"iss", "https://securetoken.google.com/" + project},
                        {"aud", project},
                        {"auth_time", now - 100},
                        {"user_id", sub},
                        {"sub", sub},
                        {"iat", now - 10},
                        {"exp", now + 3600}};
    if (!phone.empty()) c["phone_number"] = phone;
    return c;
}

inline nlohmann::json header(const std::string& kid) {
    return {{"alg", "RS256"}, {"kid", kid}, {"typ", "JWT"}};
}

} // namespace vartalap::testing_tokens
