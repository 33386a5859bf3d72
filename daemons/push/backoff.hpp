// Retry timing for push sends: exponential backoff with full jitter, and the HTTP
// Retry-After header (RFC 9110 §10.2.3) that providers send with 429 and 503.
//
// Thread-safety: pure functions over plain values; the random source is the caller's.
// Errors: parse_retry_after returns std::nullopt for a value it cannot read (the caller then
// falls back to its own backoff); nothing here throws.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace vartalap::push {

struct BackoffPolicy {
    std::uint64_t base_ms = 1000;   // the first retry waits up to 1 s
    std::uint64_t cap_ms = 300000;  // 5 min: a push delayed longer is worth little
    // Attempts in all, the first included: 8 gives up after about two minutes of plain
    // backoff (1+2+4+...+64 s worst case), longer if the provider asks for more.
    std::uint32_t max_attempts = 8;
    // A provider's Retry-After is honoured up to 1 h; beyond that the notification is
    // stale and would only hold a queue slot.
    std::uint64_t max_retry_after_ms = 3600000;
};

// Uniform random integer in [0, bound], bound included. Injected so tests can pin it.
using UniformRandom = std::function<std::uint64_t(std::uint64_t bound)>;

// The wait before the next attempt after `failed_attempts` (>= 1) attempts failed: full
// jitter (AWS architecture blog, "Exponential Backoff And Jitter"), i.e. uniform in
// [0, min(cap, base * 2^(failed_attempts-1))], so that many notifications failing together
// (a provider outage) do not come back together. A Retry-After larger than that wins,
// clamped to max_retry_after_ms.
std::uint64_t backoff_delay_ms(const BackoffPolicy& policy, std::uint32_t failed_attempts,
                               std::optional<std::uint64_t> retry_after_ms,
                               const UniformRandom& random);

// A Retry-After value in milliseconds from now: delta-seconds ("120") or an HTTP-date in
// any of the three forms a recipient must accept (IMF-fixdate "Sun, 06 Nov 1994 08:49:37
// GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994").
// A date in the past gives 0. std::nullopt if the value is malformed.
std::optional<std::uint64_t> parse_retry_after(std::string_view value, std::uint64_t now_wall_ms);

} // namespace vartalap::push
