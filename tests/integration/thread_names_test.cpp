// Thread names (issue 13, "Small things operators notice"): every thread a daemon starts
// `top -H`, perf and a core dump show which daemon is busy. A one-process system of every
// kind (a push daemon added to local.toml) runs in this test's process; the test reads
// /proc/self/task/*/comm, as top does.
#include "common/thread_name.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;

// The names of this process's threads, one per thread.
std::multiset<std::string> thread_names() {
    std::multiset<std::string> names;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream comm(task.path() / "comm");
        std::string name;
        if (std::getline(comm, name)) names.insert(name);
    }
    return names;
}

std::string joined(const std::multiset<std::string>& names) {
    std::string out;
    for (const auto& name : names) out += "'" + name + "' ";
    return out;
}

// Every kind, a thread each (`threads = 0`), stores synced off the loop (`process`
// durability: the -sync threads), and a push daemon (webhook provider: no credentials).
topology::Topology every_kind(const std::filesystem::path& dir, int threads) {
    return local_topology(dir, [threads, dir](topology::Topology& topology) {
        topology.threads = threads;
        for (auto& daemon : topology.daemons)
            if (daemon.kind == "session" || daemon.kind == "persistence")
                daemon.options.insert_or_assign("durability", std::string("process"));
        topology::DaemonSpec push;
        push.kind = "push";
        push.name = "push-1";
        push.endpoints["pull"] = "inproc://push-1";
        push.endpoints["metrics"] = "127.0.0.1:0";
        push.endpoints["control"] = "ipc://" + (dir / "ctl-push-1").string();
        push.options.insert_or_assign("provider", std::string("webhook"));
        push.options.insert_or_assign("webhook_url", std::string("http://127.0.0.1:9/push"));
        topology.daemons.push_back(std::move(push));
    });
}

// Starts the system, makes every lazily started thread exist with a chat turn, and returns
// the names of the threads it added to this process.
std::multiset<std::string> names_of_running_system(const topology::Topology& topology,
                                                   std::string& owner) {
    const auto before = thread_names();
    RunningSystem system(topology);
    owner = system.system().thread_owner();
    const auto alice = system.login("alice");
    const auto bob = system.login("bob");
    auto a = system.connect(alice);
    auto b = system.connect(bob);
    EXPECT_TRUE(send_until_server_ack(a, text_message("m1", "bob", "hi").dump(), "m1", test::scaled(5s)));
    EXPECT_TRUE(wait_for_id(b, "m1", test::scaled(5s)).has_value());
    auto names = thread_names();
    for (const auto& name : before) names.erase(names.find(name));
    return names;
}

// Every name is "<owner><suffix>" fitted (common/thread_name.hpp) for one of `owners` and
// a suffix the daemons use: no thread the system started is anonymous or libzmq's.
void expect_only_daemon_names(const std::multiset<std::string>& names, const std::vector<std::string>& owners) {
    std::set<std::string> allowed;
    for (const auto& owner : owners)
        for (const char* suffix : {"", "-sync", "-acked", "-ops", "-zmq", "-reap", "-zap", "-certs", "-dns"})
            allowed.insert(thread_name(owner, suffix));
    for (const auto& name : names) EXPECT_TRUE(allowed.count(name)) << "thread '" << name << "'";
}

TEST(ThreadNames, EveryDaemonThreadCarriesItsInstanceName) {
    TempDir dir;
    std::string owner;
    const auto topology = every_kind(dir.path(), 0);
    const auto names = names_of_running_system(topology, owner);
    EXPECT_EQ(owner, "ws-1+8");
    // One thread per daemon, named after it: a loop each (`threads = 0`), the rest-gateway's
    // and push's own threads.
    std::vector<std::string> owners{owner};
    for (const auto& daemon : topology.daemons) {
        owners.push_back(daemon.name);
        EXPECT_EQ(names.count(thread_name(daemon.name)), 1u) << daemon.kind << ": " << joined(names);
    }
    for (const char* store : {"session-1", "persistence-1"}) {
        EXPECT_EQ(names.count(thread_name(store, "-sync")), 1u) << joined(names);
        EXPECT_EQ(names.count(thread_name(store, "-acked")), 1u) << joined(names);
    }
    EXPECT_EQ(names.count("persiste~1-sync"), 1u) << joined(names); // the 15-byte rule at work
    // The threads the daemons of the process share.
    EXPECT_EQ(names.count("ws-1+8-ops"), 1u) << joined(names);
    EXPECT_EQ(names.count("ws-1+8-zmq"), 1u) << joined(names);
    EXPECT_EQ(names.count("ws-1+8-reap"), 1u) << joined(names);
    expect_only_daemon_names(names, owners);
}

TEST(ThreadNames, SharedEventLoopIsNamedAfterItsDaemons) {
    TempDir dir;
    std::string owner;
    const auto topology = every_kind(dir.path(), 1);
    const auto names = names_of_running_system(topology, owner);
    // ws-1 and the six ZeroMQ-loop daemons on one loop; rest-1 and push-1 on their own.
    EXPECT_EQ(names.count("ws-1+6"), 1u) << joined(names);
    EXPECT_EQ(names.count("rest-1"), 1u) << joined(names);
    EXPECT_EQ(names.count("push-1"), 1u) << joined(names);
    EXPECT_EQ(names.count("session-1"), 0u) << joined(names);
    std::vector<std::string> owners{owner, "ws-1+6"};
    for (const auto& daemon : topology.daemons) owners.push_back(daemon.name);
    expect_only_daemon_names(names, owners);
}

} // namespace
} // namespace vartalap::testing
