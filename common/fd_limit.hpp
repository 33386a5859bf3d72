// The process's descriptor limit (RLIMIT_NOFILE) against the gateways' connection caps
// (issue 12, "Resource exhaustion"): a gateway whose caps do not fit runs out of descriptors
// before it reaches them, and then every accept and every internal socket fails.
//
// At start (bind) each gateway calls fit_connection_cap(): the soft limit is raised to the
// hard one, and a cap that does not fit with the gateway's other descriptors and a reserve
// (kFdReserve: ZeroMQ sockets, LMDB, logs, the ops port) is lowered to what fits, with a
// warning naming the option and the limit. Lowering (rather than refusing to start) keeps a
// default topology running on a host with a small hard limit; the warning says what to raise.
// Several gateways in one process are each checked alone against the whole limit.
//
// Thread-safety: raise_fd_limit() and fit_connection_cap() change process state; call them
// from a daemon's start or its own thread. fit_cap() is pure.
#pragma once

#include <cstdint>
#include <string_view>

namespace vartalap {

// Descriptors kept free beyond the connection caps.
inline constexpr std::uint64_t kFdReserve = 64;

struct FdLimit {
    std::uint64_t soft = 0;
    std::uint64_t hard = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard one (to the kernel's nr_open if the hard one is
// unlimited and cannot be set); returns the limits afterwards. Repeated calls are harmless.
FdLimit raise_fd_limit();

// The largest cap <= `wanted` with cap + `other` + `reserve` <= `limit`, and at least 1.
std::uint64_t fit_cap(std::uint64_t limit, std::uint64_t wanted, std::uint64_t other,
                      std::uint64_t reserve = kFdReserve);

// raise_fd_limit(), then fit_cap() against the soft limit; logs a warning
// "<name>: option <option> = <wanted> does not fit ..." when the cap is lowered.
std::uint64_t fit_connection_cap(std::string_view name, std::string_view option,
                                 std::uint64_t wanted, std::uint64_t other);

} // namespace vartalap
