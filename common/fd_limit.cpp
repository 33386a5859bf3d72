// Thread: see fd_limit.hpp.
#include "common/fd_limit.hpp"

#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <fstream>

namespace vartalap {

namespace {
// /proc/sys/fs/nr_open: the most a process's RLIMIT_NOFILE may be (0 when unreadable).
std::uint64_t nr_open() {
    std::ifstream in("/proc/sys/fs/nr_open");
    std::uint64_t value = 0;
    in >> value;
    return in ? value : 0;
}
} // namespace

FdLimit raise_fd_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return {};
    if (limit.rlim_cur != limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            limit = raised;
        } else if (const std::uint64_t most = nr_open();
                   most > limit.rlim_cur && limit.rlim_max == RLIM_INFINITY) {
            raised.rlim_cur = static_cast<rlim_t>(most);
            if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
        }
    }
    auto value = [](rlim_t v) {
        return v == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(v);
    };
    return {value(limit.rlim_cur), value(limit.rlim_max)};
}

std::uint64_t fit_cap(std::uint64_t limit, std::uint64_t wanted, std::uint64_t other,
                      std::uint64_t reserve) {
    const std::uint64_t used = other > UINT64_MAX - reserve ? UINT64_MAX : other + reserve;
    const std::uint64_t room = limit > used ? limit - used : 0;
    const std::uint64_t cap = wanted < room ? wanted : room;
    return cap == 0 ? 1 : cap;
}

std::uint64_t fit_connection_cap(std::string_view name, std::string_view option,
                                 std::uint64_t wanted, std::uint64_t other) {
    const FdLimit limit = raise_fd_limit();
    if (limit.soft == 0) return wanted; // getrlimit failed: nothing to check against
    const std::uint64_t cap = fit_cap(limit.soft, wanted, other);
    if (cap < wanted)
        spdlog::warn("{}: option {} = {} does not fit the descriptor limit {} (hard {}) with "
                     "{} other connections and a reserve of {}: using {}; raise the limit "
                     "(LimitNOFILE=, ulimit -n) or lower the option",
                     name, option, wanted, limit.soft, limit.hard, other, kFdReserve, cap);
    return cap;
}

} // namespace vartalap
