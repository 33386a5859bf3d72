// Connections per source address, for a per-source cap beside a listener's total one
// (issue 12: one peer holding all of the ws-gateway's pending handshakes locks everyone
// else out). A connection counts while its Token lives; the entry of an address goes when
// its count drops to zero, so the map holds only addresses with live connections.
//
// Key: the address's 16 bytes (IPv4 as its IPv4-mapped IPv6 form), so the class needs no
// socket header. Thread-safety: none; one thread owns it (like ConnectionCount).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace vartalap {

class SourceCount {
public:
    using Address = std::array<unsigned char, 16>;

    class Token {
    public:
        Token() = default;
        Token(Token&& other) noexcept
            : count_(std::exchange(other.count_, nullptr)), address_(other.address_) {}
        Token& operator=(Token&& other) noexcept {
            if (this != &other) {
                release();
                count_ = std::exchange(other.count_, nullptr);
                address_ = other.address_;
            }
            return *this;
        }
        Token(const Token&) = delete;
        Token& operator=(const Token&) = delete;
        ~Token() { release(); }

    private:
        friend class SourceCount;
        Token(SourceCount* count, const Address& address) : count_(count), address_(address) {
            ++count_->live_[address_];
        }
        void release() {
            if (!count_) return;
            const auto it = count_->live_.find(address_);
            if (it != count_->live_.end() && --it->second == 0) count_->live_.erase(it);
            count_ = nullptr;
        }
        SourceCount* count_ = nullptr;
        Address address_{};
    };

    // A token for one more connection from `address`, unless it already has `max`: then
    // false and `token` untouched.
    bool enter(const Address& address, std::size_t max, Token& token) {
        if (live(address) >= max) return false;
        token = Token(this, address);
        return true;
    }
    std::size_t live(const Address& address) const {
        const auto it = live_.find(address);
        return it == live_.end() ? 0 : it->second;
    }
    // Addresses with at least one live connection.
    std::size_t sources() const { return live_.size(); }

private:
    struct Hash {
        std::size_t operator()(const Address& a) const {
            return std::hash<std::string_view>{}(
                std::string_view(reinterpret_cast<const char*>(a.data()), a.size()));
        }
    };
    std::unordered_map<Address, std::size_t, Hash> live_;
};

} // namespace vartalap
