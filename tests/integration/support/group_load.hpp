// A group of one sender and N members driven over REST, for the crash tests of group copies
// (group_copies_test.cpp, multiprocess_test.cpp): log everyone in, create the group, send a
// burst of group messages in one POST /send, then count the copies each member can read with
// GET /messages (persistence: where a member who never connects finds them).
// Thread: the test's.
#pragma once

#include "tests/integration/support/system_fixture.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vartalap::testing {

class GroupLoad {
public:
    // Users are "<prefix>-sender" and "<prefix>-<i>"; messages "<prefix>-m<i>".
    GroupLoad(int rest_port, std::string prefix, int members);
    // After a restart the rest-gateway may listen on another port (access keys stay valid).
    void set_port(int rest_port) { port_ = rest_port; }

    // Logs in the sender and the members and creates the group. Fatal test failures on error.
    void create_group();
    // Sends `count` messages to the group in one POST /v1.0/send. When every one was
    // accepted (durable), the time the answer came; nullopt otherwise.
    std::optional<std::chrono::steady_clock::time_point> send_messages(int count);

    struct Count {
        std::size_t present = 0;    // distinct (member, message) copies readable
        std::size_t duplicates = 0; // copies readable more than once
        std::size_t complete = 0;   // members who can read every message
    };
    // Reads every member's pending messages until each has all of them, or the deadline.
    Count wait_for_every_copy(std::chrono::milliseconds deadline);
    std::size_t expected() const { return members_.size() * static_cast<std::size_t>(sent_); }
    const std::vector<std::string>& member_names() const { return names_; }

private:
    std::map<std::string, std::string> auth(const LoggedIn& who) const;
    LoggedIn login(const std::string& user);
    // The member's copies of this load's messages: distinct ids, and the number read.
    bool read_copies(const LoggedIn& member, std::size_t& distinct, std::size_t& total);

    int port_;
    std::string prefix_;
    std::vector<std::string> names_;
    LoggedIn sender_;
    std::vector<LoggedIn> members_;
    std::string group_;
    int sent_ = 0;
};

} // namespace vartalap::testing
