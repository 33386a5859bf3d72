// Thread: the owner's (see rate_limit.hpp).
#include "common/rate_limit.hpp"

#include <algorithm>
#include <cmath>

namespace vartalap {

TokenBucket::TokenBucket(const RateLimit& limit, std::uint64_t now_ms)
    : tokens_(static_cast<double>(limit.burst)), last_ms_(now_ms) {}

double TokenBucket::level(const RateLimit& limit, std::uint64_t now_ms) const {
    const double burst = static_cast<double>(std::max<std::uint64_t>(limit.burst, 1));
    if (now_ms <= last_ms_) return std::min(tokens_, burst);
    const double gained = static_cast<double>(now_ms - last_ms_) *
                          static_cast<double>(limit.rate_per_minute) / 60000.0;
    return std::min(tokens_ + gained, burst);
}

bool TokenBucket::take(const RateLimit& limit, std::uint64_t cost, std::uint64_t now_ms,
                       std::uint64_t& retry_after_ms) {
    if (!limit.enabled()) return true;
    tokens_ = level(limit, now_ms);
    last_ms_ = std::max(last_ms_, now_ms);
    const double need =
        static_cast<double>(std::min(cost, std::max<std::uint64_t>(limit.burst, 1)));
    if (tokens_ + 1e-9 >= need) {
        tokens_ -= need;
        return true;
    }
    const double per_ms = static_cast<double>(limit.rate_per_minute) / 60000.0;
    retry_after_ms = static_cast<std::uint64_t>(std::ceil((need - tokens_) / per_ms));
    if (retry_after_ms == 0) retry_after_ms = 1;
    return false;
}

bool TokenBucket::full(const RateLimit& limit, std::uint64_t now_ms) const {
    return !limit.enabled() ||
           level(limit, now_ms) + 1e-9 >= static_cast<double>(std::max<std::uint64_t>(limit.burst, 1));
}

RateLimiter::RateLimiter(RateLimit limit, std::size_t max_entries)
    : limit_(limit), max_entries_(std::max<std::size_t>(max_entries, 1)) {}

void RateLimiter::set_limit(RateLimit limit, std::size_t max_entries) {
    limit_ = limit;
    max_entries_ = std::max<std::size_t>(max_entries, 1);
    if (!limit_.enabled()) buckets_.clear();
}

std::uint64_t RateLimiter::refill_ms() const {
    if (!limit_.enabled()) return 0;
    return std::max<std::uint64_t>(1000, limit_.burst * 60000 / limit_.rate_per_minute);
}

void RateLimiter::sweep(std::uint64_t now_ms) {
    last_sweep_ms_ = now_ms;
    std::erase_if(buckets_, [&](const auto& entry) { return entry.second.full(limit_, now_ms); });
}

bool RateLimiter::take(std::string_view key, std::uint64_t cost, std::uint64_t now_ms,
                       std::uint64_t& retry_after_ms) {
    if (!limit_.enabled()) return true;
    if (now_ms - last_sweep_ms_ >= refill_ms()) sweep(now_ms);
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_entries_) {
            sweep(now_ms);
            if (buckets_.size() >= max_entries_) {
                // Every bucket is in use: forget an eighth of them rather than grow.
                std::size_t drop = std::max<std::size_t>(max_entries_ / 8, 1);
                for (auto victim = buckets_.begin(); victim != buckets_.end() && drop > 0; --drop)
                    victim = buckets_.erase(victim);
            }
        }
        it = buckets_.emplace(std::string(key), TokenBucket(limit_, now_ms)).first;
    }
    return it->second.take(limit_, cost, now_ms, retry_after_ms);
}

std::uint64_t retry_after_seconds(std::uint64_t retry_after_ms) {
    return std::max<std::uint64_t>(1, (retry_after_ms + 999) / 1000);
}

} // namespace vartalap
