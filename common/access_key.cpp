// Thread: any (const, no shared mutable state).
#include "common/access_key.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <fstream>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace vartalap {
namespace {

constexpr std::size_t kMinSecretBytes = 32; // HMAC-SHA256 key as long as its output

std::string to_hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

bool from_hex(std::string_view hex, std::string& out) {
    if (hex.size() % 2) return false;
    out.clear();
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        unsigned value = 0;
        auto [ptr, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, value, 16);
        if (ec != std::errc{} || ptr != hex.data() + i + 2) return false;
        out.push_back(static_cast<char>(value));
    }
    return true;
}

} // namespace

std::string base64url_encode(std::string_view bytes) {
    static const char* alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const unsigned n = (static_cast<unsigned char>(bytes[i]) << 16) |
                           (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                           static_cast<unsigned char>(bytes[i + 2]);
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += alphabet[(n >> 6) & 63];
        out += alphabet[n & 63];
    }
    if (i < bytes.size()) {
        unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
        if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        if (i + 1 < bytes.size()) out += alphabet[(n >> 6) & 63];
    }
    return out;
}

AccessKeys::AccessKeys(std::string secret) : secret_(std::move(secret)) {
    if (secret_.size() < kMinSecretBytes)
        throw std::invalid_argument("access key secret must be at least 32 bytes");
}

std::string AccessKeys::sign(std::string_view user, std::string_view issued_at) const {
    std::string message = "v1|";
    message.append(user).append("|").append(issued_at);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string AccessKeys::issue(std::string_view user, std::uint64_t now_seconds) const {
    const std::string issued_at = std::to_string(now_seconds);
    return "v1." + issued_at + "." + sign(user, issued_at);
}

bool AccessKeys::verify(std::string_view user, std::string_view key) const {
    if (user.empty() || user.size() > 256 || key.size() > 128) return false;
    if (key.substr(0, 3) != "v1.") return false;
    const auto rest = key.substr(3);
    const auto dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 20) return false;
    const auto issued_at = rest.substr(0, dot);
    for (char c : issued_at)
        if (c < '0' || c > '9') return false;
    const auto signature = rest.substr(dot + 1);
    const std::string expected = sign(user, issued_at);
    return signature.size() == expected.size() &&
           CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) == 0;
}

std::string secret_from_config(std::string_view configured) {
    std::string raw;
    if (configured.substr(0, 4) == "hex:") {
        if (!from_hex(configured.substr(4), raw))
            throw std::runtime_error("secret: invalid hex after 'hex:'");
        return raw;
    }
    return std::string(configured);
}

namespace {

// The secret in `file`, or nullopt if the file does not exist.
std::optional<std::string> read_secret(const std::filesystem::path& file) {
    std::ifstream in(file);
    if (!in) return std::nullopt;
    std::string hex;
    in >> hex;
    std::string raw;
    if (!from_hex(hex, raw) || raw.size() < kMinSecretBytes)
        throw std::runtime_error(file.string() + ": not a hex secret of >= 32 bytes");
    return raw;
}

} // namespace

std::string load_or_create_secret(const std::filesystem::path& file) {
    if (auto existing = read_secret(file)) return *existing;
    std::filesystem::create_directories(file.parent_path().empty() ? "." : file.parent_path());
    unsigned char bytes[kMinSecretBytes];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
    const std::string raw(reinterpret_cast<const char*>(bytes), sizeof bytes);
    // Write a private temporary file, then link() it into place: a crash never leaves a
    // half-written secret, and when several processes start at once (units on one host)
    // exactly one link wins and the others read the winner's secret.
    unsigned char nonce[8];
    if (RAND_bytes(nonce, sizeof nonce) != 1) throw std::runtime_error("RAND_bytes failed");
    const std::string temp = file.string() + ".tmp." +
                             to_hex(std::string_view(reinterpret_cast<const char*>(nonce), sizeof nonce));
    {
        const mode_t old_mask = ::umask(077);
        std::ofstream out(temp, std::ios::trunc);
        ::umask(old_mask);
        if (!out) throw std::runtime_error(temp + ": cannot write secret");
        out << to_hex(raw) << '\n';
        out.flush();
        if (!out) throw std::runtime_error(temp + ": cannot write secret");
    }
    const int linked = ::link(temp.c_str(), file.c_str());
    const int link_errno = errno;
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    if (linked == 0) return raw;
    if (link_errno == EEXIST)
        if (auto winner = read_secret(file)) return *winner;
    throw std::runtime_error(file.string() + ": cannot create the secret: " + std::strerror(link_errno));
}

} // namespace vartalap
