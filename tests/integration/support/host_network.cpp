#include "tests/integration/support/host_network.hpp"
#include "tests/integration/support/child_process.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <regex>
#include <sstream>
#include <sys/file.h>
#include <unistd.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;

std::string find_ip() {
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
        if (::access(path, X_OK) == 0) return path;
    return {};
}

// An exclusive flock on a file shared by every test process, released at destruction.
class FileLock {
public:
    explicit FileLock(const char* path) : fd_(::open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
        if (fd_ >= 0)
            while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
            }
    }
    ~FileLock() {
        if (fd_ >= 0) ::close(fd_); // releases the lock
    }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

private:
    int fd_;
};

bool process_runs(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

} // namespace

CommandResult run_command(std::vector<std::string> args, std::chrono::milliseconds deadline) {
    Child child(std::move(args), /*merge_stderr=*/true);
    CommandResult result;
    result.output = child.output(deadline); // until it closes stdout, i.e. exits
    result.status = child.wait_exit(1s).value_or(-1);
    return result;
}

HostNetwork::HostNetwork(const std::vector<std::string>& hosts) : ip_(find_ip()) {
    if (::geteuid() != 0) {
        error_ = "not root: network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN";
        return;
    }
    if (ip_.empty()) {
        error_ = "no `ip` command (Debian package iproute2)";
        return;
    }
    remove_leftovers(ip_);
    const std::string prefix = kNamespacePrefix + std::to_string(::getpid()) + "-";
    if (!build(hosts, prefix) && error_.empty()) error_ = "could not build the host network";
}

HostNetwork::~HostNetwork() {
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
        // What still runs there is this test's (its supervisors are gone by now): stop it,
        // so the namespace does not outlive its name.
        const auto listed = run_command({ip_, "netns", "pids", *it});
        std::istringstream pids(listed.output);
        for (pid_t pid; pids >> pid;) ::kill(pid, SIGKILL);
        run_command({ip_, "netns", "delete", *it});
    }
}

bool HostNetwork::run(const std::vector<std::string>& args) {
    std::vector<std::string> full{ip_};
    full.insert(full.end(), args.begin(), args.end());
    const CommandResult result = run_command(full);
    if (result.status == 0) return true;
    std::string line = "ip";
    for (const auto& arg : args) line += " " + arg;
    error_ = "`" + line + "` failed (" + std::to_string(result.status) + "): " + result.output;
    return false;
}

bool HostNetwork::build(const std::vector<std::string>& hosts, const std::string& prefix) {
    // The lock makes "a /24 nobody uses" and "now this test uses it" one step across tests.
    FileLock lock("/tmp/vartalap-host-network.lock");
    const std::string in_use = run_command({ip_, "-4", "-o", "address", "show"}).output + "\n" +
                               run_command({ip_, "-4", "route", "show", "table", "all"}).output;
    std::string net;
    for (int k = 0; k < 512 && net.empty(); ++k) {
        const int index = (::getpid() + k) % 512; // 198.18.0.0/24 .. 198.19.255.0/24
        const std::string candidate = "198." + std::to_string(18 + index / 256) + "." +
                                      std::to_string(index % 256);
        const std::regex used("(^|\\s)" + std::regex_replace(candidate, std::regex("\\."), "\\.") + "\\.");
        if (!std::regex_search(in_use, used)) net = candidate;
    }
    if (net.empty()) {
        error_ = "every /24 of 198.18.0.0/15 is in use on this machine";
        return false;
    }
    own_address_ = net + ".1";
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        const std::string ns = prefix + hosts[i];
        const std::string address = net + "." + std::to_string(i + 2);
        if (!run({"netns", "add", ns})) return false;
        created_.push_back(ns);
        namespaces_[hosts[i]] = ns;
        addresses_[hosts[i]] = address;
        if (!run({"-n", ns, "link", "set", "lo", "up"}) ||
            !run({"-n", ns, "address", "add", address + "/32", "dev", "lo"}))
            return false;
        // The test's link to this host.
        const std::string link = "v3h" + std::to_string(::getpid()) + std::to_string(i);
        if (!run({"link", "add", link, "type", "veth", "peer", "name", "to-test", "netns", ns}) ||
            !run({"address", "add", own_address_ + "/32", "dev", link}) ||
            !run({"link", "set", link, "up"}) || !run({"-n", ns, "link", "set", "to-test", "up"}) ||
            !run({"route", "add", address + "/32", "dev", link, "src", own_address_}) ||
            !run({"-n", ns, "route", "add", own_address_ + "/32", "dev", "to-test", "src", address}))
            return false;
    }
    // A link between every two hosts.
    for (std::size_t i = 0; i < hosts.size(); ++i)
        for (std::size_t j = i + 1; j < hosts.size(); ++j) {
            const std::string& a = namespaces_[hosts[i]];
            const std::string& b = namespaces_[hosts[j]];
            const std::string to_a = "to-" + std::to_string(i);
            const std::string to_b = "to-" + std::to_string(j);
            if (!run({"-n", a, "link", "add", to_b, "type", "veth", "peer", "name", to_a, "netns", b}) ||
                !run({"-n", a, "link", "set", to_b, "up"}) || !run({"-n", b, "link", "set", to_a, "up"}) ||
                !run({"-n", a, "route", "add", addresses_[hosts[j]] + "/32", "dev", to_b, "src",
                      addresses_[hosts[i]]}) ||
                !run({"-n", b, "route", "add", addresses_[hosts[i]] + "/32", "dev", to_a, "src",
                      addresses_[hosts[j]]}))
                return false;
        }
    return true;
}

std::vector<pid_t> HostNetwork::pids(const std::string& host) const {
    std::vector<pid_t> result;
    std::istringstream listed(run_command({ip_, "netns", "pids", namespace_of(host)}).output);
    for (pid_t pid; listed >> pid;) result.push_back(pid);
    return result;
}

void HostNetwork::remove_leftovers(const std::string& ip) {
    std::istringstream listed(run_command({ip, "netns", "list"}).output);
    const std::regex ours(std::string("^") + kNamespacePrefix + "(\\d+)-\\S+");
    for (std::string line; std::getline(listed, line);) {
        std::smatch m;
        if (!std::regex_search(line, m, ours)) continue;
        const pid_t owner = static_cast<pid_t>(std::stol(m[1]));
        if (owner != ::getpid() && process_runs(owner)) continue; // a test that still runs
        const std::string ns = m[0];
        std::istringstream pids(run_command({ip, "netns", "pids", ns}).output);
        for (pid_t pid; pids >> pid;) ::kill(pid, SIGKILL);
        run_command({ip, "netns", "delete", ns});
    }
}

} // namespace vartalap::testing
