// Test helpers: RSA keys, RS256 verification, base64url decoding, and a throwaway CA that
// issues server certificates, all made with OpenSSL's APIs at runtime (no openssl CLI, no
// key material in the repository). Used by unit_push and tests/integration/push_test.cpp.
// Thread-safety: values; each test owns its own.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::testing_crypto {

inline void require(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what);
}

inline std::string bio_string(BIO* bio) {
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(length));
}

class RsaKey {
public:
    static RsaKey generate(unsigned bits) {
        EVP_PKEY* key = EVP_RSA_gen(bits);
        require(key != nullptr, "EVP_RSA_gen");
        return RsaKey(key);
    }
    EVP_PKEY* get() const { return key_.get(); }

    std::string private_pem() const {
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
        require(PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
                "PEM_write_bio_PrivateKey");
        return bio_string(bio.get());
    }

    bool verify_rs256(std::string_view data, std::string_view signature) const {
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
        require(EVP_DigestVerifyInit(context.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1,
                "EVP_DigestVerifyInit");
        return EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                                signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                                data.size()) == 1;
    }

private:
    explicit RsaKey(EVP_PKEY* key) : key_(key, EVP_PKEY_free) {}
    std::shared_ptr<EVP_PKEY> key_;
};

inline std::string base64url_decode(std::string_view text) {
    std::string out;
    unsigned buffer = 0;
    int bits = 0;
    for (char c : text) {
        int value;
        if (c >= 'A' && c <= 'Z') value = c - 'A';
        else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
        else if (c >= '0' && c <= '9') value = c - '0' + 52;
        else if (c == '-') value = 62;
        else if (c == '_') value = 63;
        else throw std::invalid_argument("not base64url");
        buffer = (buffer << 6) | static_cast<unsigned>(value);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buffer >> bits) & 0xff);
        }
    }
    return out;
}

inline std::vector<std::string> split_jwt(std::string_view jwt) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t dot; (dot = jwt.find('.', start)) != std::string_view::npos; start = dot + 1)
        parts.emplace_back(jwt.substr(start, dot - start));
    parts.emplace_back(jwt.substr(start));
    return parts;
}

// A certificate and its key, as PEM.
struct Issued {
    std::string certificate_pem;
    std::string private_key_pem;
};

// A self-signed CA that issues server certificates for `names` (DNS names or IP literals).
class TestCa {
public:
    TestCa() : key_(RsaKey::generate(2048)), certificate_(X509_new(), X509_free) {
        X509* cert = certificate_.get();
        start(cert, 1, "vartalap test CA");
        X509_set_issuer_name(cert, X509_get_subject_name(cert));
        require(X509_set_pubkey(cert, key_.get()) == 1, "X509_set_pubkey");
        add_extension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_extension(cert, cert, NID_subject_key_identifier, "hash");
        require(X509_sign(cert, key_.get(), EVP_sha256()) > 0, "X509_sign (CA)");
    }

    std::string certificate_pem() const { return pem(certificate_.get()); }

    Issued issue(const std::vector<std::string>& names) const {
        RsaKey server_key = RsaKey::generate(2048);
        std::unique_ptr<X509, decltype(&X509_free)> certificate(X509_new(), X509_free);
        X509* cert = certificate.get();
        start(cert, 2, names.empty() ? "server" : names.front());
        X509_set_issuer_name(cert, X509_get_subject_name(certificate_.get()));
        require(X509_set_pubkey(cert, server_key.get()) == 1, "X509_set_pubkey");
        std::string alt_names;
        for (const std::string& name : names) {
            const bool ip = name.find_first_not_of("0123456789.") == std::string::npos;
            alt_names += (alt_names.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + name;
        }
        add_extension(cert, certificate_.get(), NID_subject_alt_name, alt_names.c_str());
        add_extension(cert, certificate_.get(), NID_basic_constraints, "critical,CA:FALSE");
        add_extension(cert, certificate_.get(), NID_ext_key_usage, "serverAuth");
        add_extension(cert, certificate_.get(), NID_authority_key_identifier, "keyid");
        require(X509_sign(cert, key_.get(), EVP_sha256()) > 0, "X509_sign (server)");
        return {pem(cert), server_key.private_pem()};
    }

private:
    static void start(X509* cert, long serial, const std::string& common_name) {
        require(X509_set_version(cert, 2) == 1, "X509_set_version");
        ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
        X509_NAME* name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
    }
    static void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
        X509V3_CTX context;
        X509V3_set_ctx_nodb(&context);
        X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
        X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
        require(extension != nullptr, "X509V3_EXT_conf_nid");
        X509_add_ext(cert, extension, -1);
        X509_EXTENSION_free(extension);
    }
    static std::string pem(X509* cert) {
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
        require(PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
        return bio_string(bio.get());
    }

    RsaKey key_;
    std::unique_ptr<X509, decltype(&X509_free)> certificate_;
};

} // namespace vartalap::testing_crypto
