// The 15-byte thread-name rule of common/thread_name.hpp.
#include "common/thread_name.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <pthread.h>
#include <thread>

namespace vartalap {
namespace {

TEST(ThreadName, FitsUnchanged) {
    EXPECT_EQ(thread_name("session-1"), "session-1");
    EXPECT_EQ(thread_name("session-1", "-sync"), "session-1-sync");
    EXPECT_EQ(thread_name("session-1", "-acked"), "session-1-acked"); // exactly 15
}

TEST(ThreadName, CutsTheOwnersMiddleKeepingSuffixAndShardNumber) {
    EXPECT_EQ(thread_name("persistence-1", "-sync"), "persiste~1-sync");
    EXPECT_EQ(thread_name("persistence-12", "-acked"), "persis~12-acked");
    EXPECT_EQ(thread_name("message-router-12"), "message-rout~12");
    EXPECT_EQ(thread_name("group-router-1", "-ops"), "group-rou~1-ops");
    EXPECT_EQ(thread_name("group-router-1+3", "-ops"), "group-r~1+3-ops");
    for (const char* owner : {"persistence-1", "message-router-12", "a-very-long-instance-name-7"})
        for (const char* suffix : {"", "-sync", "-acked", "-reap", "-drain"})
            EXPECT_LE(thread_name(owner, suffix).size(), kThreadNameMax) << owner << suffix;
}

TEST(ThreadName, LongLastPartIsCutToo) {
    EXPECT_EQ(thread_name("edge-gateway", "-ops"), "edge-gatew~-ops");
    EXPECT_EQ(thread_name("gatewayforeveryone", ""), "gatewayforever~");
}

TEST(ThreadName, SuffixThatLeavesNoRoomIsCutPlainly) {
    EXPECT_EQ(thread_name("ws-1", "-a-very-long-role"), "ws-1-a-very-lon");
}

TEST(ThreadName, OtherMaximum) {
    EXPECT_EQ(thread_name("persistence-1", "", 9), "persist~1");
    EXPECT_EQ(thread_name("ws-1", "", 9), "ws-1");
}

TEST(ThreadName, SharedOwner) {
    EXPECT_EQ(shared_thread_owner({"session-1"}), "session-1");
    EXPECT_EQ(shared_thread_owner({"ws-1", "router-1", "session-1"}), "ws-1+2");
}

TEST(ThreadName, NamesTheCallingThread) {
    std::string seen;
    std::thread([&] {
        name_this_thread("persistence-1", "-sync");
        char name[16] = {};
        pthread_getname_np(pthread_self(), name, sizeof name);
        seen = name;
    }).join();
    EXPECT_EQ(seen, "persiste~1-sync");
}

TEST(ThreadName, ThreadsThatInheritedTheNameAreRenamed) {
    // As Asio's resolver thread: started by a named thread, it carries that name until renamed.
    std::string child_name, parent_name;
    int renamed = -1;
    std::thread([&] {
        name_this_thread("push-1");
        std::atomic<bool> release{false}, started{false};
        std::thread child([&] {
            started = true;
            while (!release) std::this_thread::yield();
            char name[16] = {};
            pthread_getname_np(pthread_self(), name, sizeof name);
            child_name = name;
        });
        while (!started) std::this_thread::yield();
        renamed = name_threads_started_here("-dns");
        release = true;
        child.join();
        char name[16] = {};
        pthread_getname_np(pthread_self(), name, sizeof name);
        parent_name = name;
    }).join();
    EXPECT_EQ(renamed, 1);
    EXPECT_EQ(child_name, "push-1-dns");
    EXPECT_EQ(parent_name, "push-1"); // the caller keeps its name
}

} // namespace
} // namespace vartalap
