// Per-user token buckets (issue 12, "Resource exhaustion"): how many sends, group operations
// or contact-sync names a user may spend, refilled at a steady rate up to a burst.
//
// A bucket starts full (`burst` tokens) and gains `rate_per_minute` / 60 000 tokens per
// millisecond, up to `burst`; take() spends `cost` tokens when there are that many, else
// spends nothing and says how long until there will be (the Retry-After). A rate of 0
// turns the limit off (take() always succeeds).
//
// RateLimiter keeps one bucket per key (a username), bounded: a bucket that has refilled to
// `burst` holds nothing a new one would not, so it is forgotten (a sweep at most once per
// refill time, on a take()); at `max_entries` buckets a sweep runs at once, and if every
// bucket is still in use an eighth of them (the first in hash order) is forgotten, so the
// map never grows past the cap (a forgotten user starts again from a full bucket).
//
// Time is the caller's monotonic milliseconds (tests drive it by hand). Socket-free.
// Thread-safety: none; a limiter belongs to one thread (a gateway's io thread).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace vartalap {

struct RateLimit {
    std::uint64_t rate_per_minute = 0; // tokens added per minute; 0: no limit
    std::uint64_t burst = 0;           // bucket size (at least 1 when the limit is on)
    bool enabled() const { return rate_per_minute > 0; }
};

// The per-user limits a gateway enforces (options of ws-gateway and rest-gateway; a user on
// two gateways has a bucket on each). Defaults the app never reaches in normal use.
struct UserRateLimits {
    RateLimit sends{3000, 200};          // chat messages (not receipts or acks): 50/s, burst 200
    RateLimit group_ops{60, 30};         // group create/add/remove: 1/s, burst 30
    RateLimit contact_sync{120, 20000};  // names looked up by contact sync: 2/s, burst 20000
    std::size_t max_users = 100000;      // buckets kept per limit
};

class TokenBucket {
public:
    TokenBucket() = default;
    TokenBucket(const RateLimit& limit, std::uint64_t now_ms);
    // Spends `cost` tokens if the bucket holds them (refilled to `now_ms` first). Otherwise
    // spends nothing and sets `retry_after_ms` to the wait until it will (a cost above the
    // burst is taken as the burst: it must be able to pass once the bucket is full).
    bool take(const RateLimit& limit, std::uint64_t cost, std::uint64_t now_ms,
              std::uint64_t& retry_after_ms);
    // Whether the bucket is full at `now_ms` (it can be forgotten).
    bool full(const RateLimit& limit, std::uint64_t now_ms) const;

private:
    double level(const RateLimit& limit, std::uint64_t now_ms) const;
    double tokens_ = 0;
    std::uint64_t last_ms_ = 0;
};

class RateLimiter {
public:
    explicit RateLimiter(RateLimit limit, std::size_t max_entries = 100000);
    // Spends `cost` of `key`'s tokens; false (with `retry_after_ms`) when it may not.
    bool take(std::string_view key, std::uint64_t cost, std::uint64_t now_ms,
              std::uint64_t& retry_after_ms);
    bool take(std::string_view key, std::uint64_t now_ms, std::uint64_t& retry_after_ms) {
        return take(key, 1, now_ms, retry_after_ms);
    }
    // SIGHUP: new rate, burst and cap; the buckets keep their tokens (capped at the burst).
    void set_limit(RateLimit limit, std::size_t max_entries);
    const RateLimit& limit() const { return limit_; }
    std::size_t size() const { return buckets_.size(); }
    // Forgets every bucket that is full at `now_ms`.
    void sweep(std::uint64_t now_ms);

private:
    // How long an untouched bucket takes to refill from empty (the sweep period).
    std::uint64_t refill_ms() const;
    RateLimit limit_;
    std::size_t max_entries_;
    std::uint64_t last_sweep_ms_ = 0;
    // Looked up by string_view (no key string built per message).
    struct KeyHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
    };
    std::unordered_map<std::string, TokenBucket, KeyHash, std::equal_to<>> buckets_;
};

// Whole seconds to wait for `retry_after_ms` (at least 1), for a Retry-After header.
std::uint64_t retry_after_seconds(std::uint64_t retry_after_ms);

} // namespace vartalap
