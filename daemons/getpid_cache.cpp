// getpid() without a system call, for the daemon executables (vartalapctl, vartalapd).
//
// Why: libzmq checks for a fork on every signaler send and wait (`pid != getpid()`), i.e. on
// every wake-up of a socket and every check of an idle one, and glibc (2.25 and later) no
// longer caches the pid: a profile of the one-process system showed about one getpid system
// call in five. This definition, linked into the executable, takes precedence over glibc's
// for the whole process (libzmq's call binds to the first definition in the global lookup
// order, which starts with the executable), and answers from a cache.
//
// Correctness: the cache is filled before main() and refreshed in the child of every fork()
// (pthread_atfork), so libzmq's fork detection sees the child's pid as before. A child
// created without fork handlers (posix_spawn, vfork) runs no code of ours before exec.
// Thread-safety: the cache is an atomic; readers never write it after start-up.
#include <atomic>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace {

std::atomic<pid_t> cached_pid{0};

void refresh_pid() { cached_pid.store(static_cast<pid_t>(::syscall(SYS_getpid)), std::memory_order_relaxed); }

struct Install {
    Install() {
        refresh_pid();
        ::pthread_atfork(nullptr, nullptr, refresh_pid);
    }
} install;

} // namespace

extern "C" pid_t getpid(void) noexcept {
    pid_t pid = cached_pid.load(std::memory_order_relaxed);
    if (pid == 0) { // called before the static initialiser above ran
        refresh_pid();
        pid = cached_pid.load(std::memory_order_relaxed);
    }
    return pid;
}
