// The getpid() cache linked into the daemon executables (daemons/getpid_cache.cpp): it
// answers the kernel's pid, and a forked child sees its own (libzmq's fork check relies on it).
// Thread: the test's (and a forked child).
#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vartalap {
namespace {

TEST(GetpidCacheTest, AnswersTheKernelsPid) {
    EXPECT_EQ(getpid(), static_cast<pid_t>(::syscall(SYS_getpid)));
}

TEST(GetpidCacheTest, AForkedChildSeesItsOwnPid) {
    const pid_t parent = getpid();
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        const bool ok = getpid() == static_cast<pid_t>(::syscall(SYS_getpid)) && getpid() != parent;
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(getpid(), parent);
}

} // namespace
} // namespace vartalap
