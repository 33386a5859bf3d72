// Hosts for a multi-host test on one machine: one network namespace per host, joined by a
// full mesh of veth pairs, plus one veth pair from the test's own namespace to each, with
// addresses from the benchmarking range 198.18.0.0/15 (RFC 2544). Every host has its
// address on its loopback device and a /32 route over the link to each peer, so no bridge,
// no IP forwarding and no firewall of the machine is involved. Needs root (CAP_NET_ADMIN,
// CAP_SYS_ADMIN) and `ip` (iproute2); a test asks ok() and skips with error() otherwise.
//
// Names carry the test's pid (namespaces `vartalap-3h-<pid>-<host>`, links `v3h<pid><n>`),
// and the /24 is chosen under a lock file among those no link of this machine uses, so
// parallel test processes never collide. The destructor removes the namespaces (and with
// them every link), also when the test failed; the constructor first removes those that
// a test process which no longer runs left behind. Thread: the test's.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace vartalap::testing {

struct CommandResult {
    int status = -1; // exit status, 128 + signal, or -1 when it did not end in time
    std::string output; // stdout and stderr
};

// Runs args[0] (a path) with `args` and waits for it within `deadline`.
CommandResult run_command(std::vector<std::string> args,
                          std::chrono::milliseconds deadline = std::chrono::seconds(10));

class HostNetwork {
public:
    static constexpr const char* kNamespacePrefix = "vartalap-3h-";

    explicit HostNetwork(const std::vector<std::string>& hosts);
    ~HostNetwork();
    HostNetwork(const HostNetwork&) = delete;
    HostNetwork& operator=(const HostNetwork&) = delete;

    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    // The path of `ip`, for `ip netns exec NAMESPACE ...`.
    const std::string& ip() const { return ip_; }
    const std::string& namespace_of(const std::string& host) const { return namespaces_.at(host); }
    const std::string& address_of(const std::string& host) const { return addresses_.at(host); }
    // The test's own address on its links to the hosts.
    const std::string& own_address() const { return own_address_; }
    // Every process in `host`'s namespace (`ip netns pids`).
    std::vector<pid_t> pids(const std::string& host) const;

    // Removes the namespaces of test processes that no longer run, with what runs in them.
    static void remove_leftovers(const std::string& ip);

private:
    bool run(const std::vector<std::string>& args);
    bool build(const std::vector<std::string>& hosts, const std::string& prefix);

    std::string ip_;
    std::string error_;
    std::map<std::string, std::string> namespaces_;
    std::map<std::string, std::string> addresses_;
    std::vector<std::string> created_; // namespaces to delete
    std::string own_address_;
};

} // namespace vartalap::testing
