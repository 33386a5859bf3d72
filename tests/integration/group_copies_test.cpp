// Issue 14, section 1: group copies survive crashes. The one-process server (`vartalapctl up`
// on local.toml, as a child process) is killed with SIGKILL 0.3 s after a REST send of 500
// group messages to 100 members was accepted, started again on the same data, and every one
// of the 50,000 copies must then be readable by its recipient (GET /messages): the
// group-router keeps each copy until the session that stores it has confirmed it, and sends
// the unconfirmed ones again after the restart. (The same with one session shard of the
// multi-process topology killed: multiprocess_test.cpp.)
// Thread: the test's; the server is a child process.
#include "tests/integration/support/child_process.hpp"
#include "tests/integration/support/group_load.hpp"
#include "tests/integration/support/system_fixture.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;

// local.toml for `vartalapctl up`, with the suite's durability mode for the stores and no
// per-user send limit (one REST send of 500 messages).
void write_topology(const std::filesystem::path& file, const std::filesystem::path& data_dir) {
    write_local_topology(file, data_dir);
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    in.close();
    std::string toml = without_send_limit(text.str());
    if (const char* durability = std::getenv("VARTALAP_TEST_DURABILITY"))
        toml = std::regex_replace(toml, std::regex(R"(# durability = "fsync")"),
                                  "durability = \"" + std::string(durability) + "\"");
    std::ofstream(file) << toml;
}

struct Server {
    std::unique_ptr<Child> child;
    int rest_port = 0;
};

// `vartalapctl up FILE` until it prints "ready"; its rest-gateway's port.
Server start(const std::filesystem::path& file) {
    Server server;
    server.child = std::make_unique<Child>(std::vector<std::string>{VARTALAPCTL_PATH, "up", file.string()});
    while (auto line = server.child->line(30s)) {
        std::smatch m;
        if (std::regex_match(*line, m, std::regex(R"(listening rest-\S+ listen 127\.0\.0\.1:(\d+))")))
            server.rest_port = std::stoi(m[1]);
        if (*line == "ready") return server;
    }
    ADD_FAILURE() << "vartalapctl up did not print ready within 30 s";
    return server;
}

TEST(GroupCopiesTest, OneProcessServerKilledAfterTheAcceptLosesNoGroupCopy) {
    TempDir dir;
    const auto file = dir.path() / "test.toml";
    write_topology(file, dir.path() / "data");
    Server server = start(file);
    ASSERT_NE(server.rest_port, 0);

    GroupLoad load(server.rest_port, "crash", 100);
    ASSERT_NO_FATAL_FAILURE(load.create_group());
    const auto accepted = load.send_messages(500);
    ASSERT_TRUE(accepted) << "the 500 group messages were not all accepted";
    // Kill -9 the whole server 0.3 s after the accept: most copies are then between the
    // group-router's outbox and the session's commit.
    std::this_thread::sleep_until(*accepted + 300ms); // the scenario's delay, not a wait for a condition
    server.child->signal(SIGKILL);
    ASSERT_TRUE(server.child->wait_exit(10s));

    server = start(file);
    ASSERT_NE(server.rest_port, 0);
    load.set_port(server.rest_port);
    const auto started = std::chrono::steady_clock::now();
    const GroupLoad::Count after = load.wait_for_every_copy(60s);
    std::printf("group copies: %zu of %zu readable %.1f s after the restart (%zu duplicates)\n",
                after.present, load.expected(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                after.duplicates);
    EXPECT_EQ(after.present, load.expected()) << "group copies lost: " << load.expected() - after.present;

    server.child->signal(SIGTERM);
    EXPECT_TRUE(server.child->wait_exit(15s));
}

} // namespace
} // namespace vartalap::testing
