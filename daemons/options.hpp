// Numeric options of a daemon's topology entry ([daemon.options] in the topology file), read
// with a fallback, shared by the daemons whose bad values fall back rather than refuse to
// start, and option_in_range for those that refuse (the ws-gateway; push has its own checks).
// Thread-safety: pure functions; call from the controlling thread (constructors).
// Errors: none thrown beyond what DaemonSpec::option_int throws (a value that is no integer).
#pragma once

#include "common/rate_limit.hpp"
#include "topology/topology.hpp"

#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace vartalap {

// The option `key` as a count or size. A negative value (or zero, unless `allow_zero`) is a
// configuration mistake: it is logged as a warning and `fallback` is used, so that one typo
// does not keep a stateful daemon from starting.
inline std::uint64_t uint_option(const topology::DaemonSpec& self, std::string_view key,
                                 std::uint64_t fallback, bool allow_zero = false) {
    const std::int64_t value = self.option_int(key, static_cast<std::int64_t>(fallback));
    if (value < 0 || (value == 0 && !allow_zero)) {
        spdlog::warn("{}: option {} = {} is out of range; using {}", self.name, key, value,
                     fallback);
        return fallback;
    }
    return static_cast<std::uint64_t>(value);
}

// The option `key` for a daemon that refuses to start on a bad value (the ws-gateway):
// std::invalid_argument naming the option and its range when it is outside [min, max].
inline std::int64_t option_in_range(const topology::DaemonSpec& spec, std::string_view key,
                             std::int64_t fallback, std::int64_t min, std::int64_t max) {
    const std::int64_t value = spec.option_int(key, fallback);
    if (value < min || value > max)
        throw std::invalid_argument(spec.name + ": option " + std::string(key) + " = " +
                                    std::to_string(value) + " is out of range [" +
                                    std::to_string(min) + ", " + std::to_string(max) + "]");
    return value;
}

// `value` if positive, else `fallback` (silently: used where zero means "not set").
inline std::int64_t positive_or(std::int64_t value, std::size_t fallback) {
    return value > 0 ? value : static_cast<std::int64_t>(fallback);
}

// The gateways' per-user rate limits (common/rate_limit.hpp): `send_rate_per_minute`,
// `send_burst`, `group_op_rate_per_minute`, `group_op_burst`,
// `contact_sync_names_per_minute`, `contact_sync_burst`, `rate_limit_max_users`. A rate of
// 0 turns that limit off.
inline UserRateLimits read_user_rate_limits(const topology::DaemonSpec& self) {
    const UserRateLimits d;
    UserRateLimits r;
    const auto read = [&](RateLimit& limit, const RateLimit& fallback, std::string_view rate,
                          std::string_view burst) {
        limit.rate_per_minute = uint_option(self, rate, fallback.rate_per_minute, true);
        limit.burst = uint_option(self, burst, fallback.burst);
    };
    read(r.sends, d.sends, "send_rate_per_minute", "send_burst");
    read(r.group_ops, d.group_ops, "group_op_rate_per_minute", "group_op_burst");
    read(r.contact_sync, d.contact_sync, "contact_sync_names_per_minute", "contact_sync_burst");
    r.max_users = uint_option(self, "rate_limit_max_users", d.max_users);
    return r;
}

} // namespace vartalap
