// rest-gateway: the process-wide budget of buffered request bodies (issue 12, "Resource
// exhaustion"): max_connections × max_body_bytes (10,000 × 1 MiB) would let slow uploads hold
// gigabytes. Each request reserves its body's size (Content-Length; max_body_bytes when
// chunked) once its header is read, before the body is; a reservation that does not fit is
// refused (the session answers 503 "server busy, retry" with Retry-After and closes). The
// reservation is held until the request is answered.
// Fairness: bodies over kSmallBody may fill only 7/8 of the budget, so a few big slow
// uploads cannot lock out ordinary small sends; bodiless requests (GET) reserve nothing.
//
// Thread-safety: none; the rest-gateway's thread owns it (like ConnectionCount).
// Socket-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace vartalap::rest_gateway {

class BodyBudget {
public:
    static constexpr std::size_t kSmallBody = 64 * 1024;

    // Held while a request's body is buffered; gives its bytes back when it goes.
    class Token {
    public:
        Token() = default;
        Token(Token&& other) noexcept
            : budget_(std::exchange(other.budget_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
        Token& operator=(Token&& other) noexcept {
            if (this != &other) {
                release();
                budget_ = std::exchange(other.budget_, nullptr);
                bytes_ = std::exchange(other.bytes_, 0);
            }
            return *this;
        }
        Token(const Token&) = delete;
        Token& operator=(const Token&) = delete;
        ~Token() { release(); }
        void release() {
            if (budget_) budget_->in_use_ -= bytes_;
            budget_ = nullptr;
            bytes_ = 0;
        }

    private:
        friend class BodyBudget;
        Token(BodyBudget* budget, std::size_t bytes) : budget_(budget), bytes_(bytes) {
            budget_->in_use_ += bytes_;
        }
        BodyBudget* budget_ = nullptr;
        std::size_t bytes_ = 0;
    };

    explicit BodyBudget(std::size_t total) : total_(total) {}
    // A lower total applies to the next reservations (those held stay).
    void set_total(std::size_t total) { total_ = total; }

    // Reserves `bytes` into `token` (replacing what it held); false, and `token` empty, when
    // they do not fit.
    bool reserve(std::size_t bytes, Token& token) {
        token.release();
        const std::size_t limit = bytes > kSmallBody ? total_ - total_ / 8 : total_;
        if (bytes > limit || in_use_ > limit - bytes) {
            ++refused_;
            return false;
        }
        token = Token(this, bytes);
        return true;
    }

    std::size_t in_use() const { return in_use_; }
    std::size_t total() const { return total_; }
    std::uint64_t refused() const { return refused_; }

private:
    std::size_t total_;
    std::size_t in_use_ = 0;
    std::uint64_t refused_ = 0;
};

} // namespace vartalap::rest_gateway
