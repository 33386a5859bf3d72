// Thread: any (const, no shared mutable state).
#include "common/access_key.hpp"

#include "common/names.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <boost/algorithm/hex.hpp>

#include <charconv>
#include <climits>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <iterator>
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
    std::string out;
    out.reserve(bytes.size() * 2);
    boost::algorithm::hex_lower(bytes.begin(), bytes.end(), std::back_inserter(out));
    return out;
}

// False for an odd length or a character that is not a hex digit.
bool from_hex(std::string_view hex, std::string& out) {
    out.clear();
    try {
        boost::algorithm::unhex(hex.begin(), hex.end(), std::back_inserter(out));
    } catch (const boost::algorithm::hex_decode_error&) {
        return false;
    }
    return true;
}

} // namespace

std::string base64url_encode(std::string_view bytes) {
    // OpenSSL writes standard base64 with padding (and a NUL); base64url swaps two letters
    // of the alphabet and drops the padding.
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                        reinterpret_cast<const unsigned char*>(bytes.data()),
                                        static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(written));
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) {
        if (c == '+') c = '-';
        else if (c == '/') c = '_';
    }
    return out;
}

bool base64url_decode(std::string_view text, std::string& out) {
    // Back to standard base64 with padding, then OpenSSL's decoder (which keeps the
    // padding's zero bytes: they are cut from the end).
    if (text.size() % 4 == 1) return false;
    std::string standard(text);
    for (char& c : standard) {
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (c == '+' || c == '/' || c == '=') return false;
    }
    const std::size_t padding = (4 - standard.size() % 4) % 4;
    standard.append(padding, '=');
    out.assign(standard.size() / 4 * 3, '\0');
    const int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                        reinterpret_cast<const unsigned char*>(standard.data()),
                                        static_cast<int>(standard.size()));
    if (written < 0) return false;
    out.resize(static_cast<std::size_t>(written) - padding);
    return true;
}

AccessKeys::AccessKeys(std::string secret, std::uint64_t max_age_seconds)
    : secret_(std::move(secret)), max_age_(max_age_seconds) {
    if (secret_.size() < kMinSecretBytes)
        throw std::invalid_argument("access key secret must be at least 32 bytes");
}

std::string AccessKeys::sign(std::string_view message) const {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string AccessKeys::issue(std::string_view user, std::uint64_t now_seconds) const {
    unsigned char nonce_bytes[8];
    if (RAND_bytes(nonce_bytes, sizeof nonce_bytes) != 1) throw std::runtime_error("RAND_bytes failed");
    const std::string nonce =
        base64url_encode(std::string_view(reinterpret_cast<const char*>(nonce_bytes), sizeof nonce_bytes));
    const std::string issued_at = std::to_string(now_seconds);
    std::string message = "v2|";
    message.append(user).append("|").append(issued_at).append("|").append(nonce);
    return "v2." + issued_at + "." + nonce + "." + sign(message);
}

bool AccessKeys::verify(std::string_view user, std::string_view key) const {
    return verify(user, key, static_cast<std::uint64_t>(std::time(nullptr)));
}

namespace {

struct KeyParts {
    std::string_view version;   // "v1" or "v2"
    std::string_view issued_at; // digits
    std::string_view nonce;     // v2 only
    std::string_view signature;
};

bool base64url_chars(std::string_view text) {
    for (char c : text)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    return true;
}

// The parts of a key, or nullopt when it is not one of the two formats.
std::optional<KeyParts> parse_key(std::string_view key) {
    if (key.size() < 3 || key.size() > 128) return std::nullopt;
    KeyParts parts;
    parts.version = key.substr(0, 2);
    if (key.substr(2, 1) != "." || (parts.version != "v1" && parts.version != "v2"))
        return std::nullopt;
    auto rest = key.substr(3);
    const auto dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 20) return std::nullopt;
    parts.issued_at = rest.substr(0, dot);
    for (char c : parts.issued_at)
        if (c < '0' || c > '9') return std::nullopt;
    rest = rest.substr(dot + 1);
    if (parts.version == "v2") {
        const auto nonce_end = rest.find('.');
        if (nonce_end == std::string_view::npos || nonce_end == 0 || nonce_end > 32) return std::nullopt;
        parts.nonce = rest.substr(0, nonce_end);
        if (!base64url_chars(parts.nonce)) return std::nullopt;
        rest = rest.substr(nonce_end + 1);
    }
    parts.signature = rest;
    return parts;
}

std::uint64_t seconds_of(std::string_view digits) {
    std::uint64_t value = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return ec == std::errc{} && ptr == digits.data() + digits.size() ? value : UINT64_MAX;
}

} // namespace

bool AccessKeys::verify(std::string_view user, std::string_view key,
                        std::uint64_t now_seconds) const {
    if (!valid_username(user)) return false;
    const auto parts = parse_key(key);
    if (!parts) return false;
    const std::uint64_t issued = seconds_of(parts->issued_at);
    if (issued == UINT64_MAX ||
        (issued > now_seconds && issued - now_seconds > kAccessKeyMaxFutureSkewSeconds))
        return false;
    if (max_age_ != 0 && (issued > UINT64_MAX - max_age_ || issued + max_age_ <= now_seconds))
        return false;
    std::string message(parts->version);
    message.append("|").append(user).append("|").append(parts->issued_at);
    if (parts->version == "v2") message.append("|").append(parts->nonce);
    const std::string expected = sign(message);
    return parts->signature.size() == expected.size() &&
           CRYPTO_memcmp(parts->signature.data(), expected.data(), expected.size()) == 0;
}

std::uint64_t AccessKeys::expires_at(std::string_view key) const {
    const auto parts = parse_key(key);
    if (max_age_ == 0 || !parts) return 0;
    const std::uint64_t issued = seconds_of(parts->issued_at);
    if (issued == UINT64_MAX || issued > UINT64_MAX - max_age_) return 0;
    return issued + max_age_;
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
