// Starts topology/local.toml in this process with kernel-chosen ports and a fresh data
// directory, and gives tests real clients for it. Thread: the test's.
#pragma once

#include "daemons/system.hpp"
#include "tests/integration/support/ws_client.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace vartalap::testing {

// A temporary directory removed at destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// local.toml with listen and metrics ports 0, data under `data_dir` and each daemon's
// control socket at ipc://<data_dir>/ctl-<name> (so parallel tests never share one);
// `edit` may change it further.
topology::Topology local_topology(const std::filesystem::path& data_dir,
                                  const std::function<void(topology::Topology&)>& edit = {});

// The text of local.toml with the same changes as local_topology, written to `file`: for
// tests that run `vartalapctl` as a child process on it.
void write_local_topology(const std::filesystem::path& file, const std::filesystem::path& data_dir);

// Topology text with `send_rate_per_minute = 0` in every gateway's [daemon.options]: for
// tests that send hundreds of messages from one user at once (the per-user send limit has
// tests of its own, abuse_limits_test).
std::string without_send_limit(const std::string& toml);

// An edit for local_topology: every session daemon gets these ack timeout and retry limit
// (short values make retry behaviour show within a test's time).
std::function<void(topology::Topology&)> session_retries(int ack_timeout_ms, int retry_limit);

struct LoggedIn {
    std::string user;
    std::string access_key;
};

// The headers that authenticate `who` (a WebSocket upgrade or a REST request).
inline std::map<std::string, std::string> auth(const LoggedIn& who) {
    return {{"user", who.user}, {"accesskey", who.access_key}};
}

class RunningSystem {
public:
    // `host`: run only the daemons placed there (System's filter), so a test can name
    // daemons that are down for the whole test: its peers connect to them in vain.
    // `wait_serving`: as `vartalapctl up` before "ready", wait (at most 10 s, else throw)
    // until the gateways hold the profile daemon's revocation list.
    explicit RunningSystem(topology::Topology topology, std::string host = {},
                           bool wait_serving = true);
    ~RunningSystem();

    void stop();
    int ws_port() const { return ws_port_; }
    int rest_port() const { return rest_port_; }
    const System& system() const { return *system_; }
    // SIGHUP with `fresh` (System::reload): each daemon applies its reloadable options on its
    // own thread, after whatever it was already doing.
    std::vector<std::string> reload(const topology::Topology& fresh) { return system_->reload(fresh); }
    // The address `instance` bound for `role` ("listen", "control", "metrics", ...), as
    // System::bound_endpoints() reports it; throws std::out_of_range if there is none.
    std::string endpoint(const std::string& instance, const std::string& role) const;

    // POST /login through the rest-gateway; fails the test if it does not succeed.
    LoggedIn login(const std::string& user);
    // Logs in (if needed) and opens a WebSocket as `user`; `ack` asks for SERVER_ACKs.
    WsClient connect(const LoggedIn& who, bool ack = true);
    HttpResponse http(const std::string& method, const std::string& target,
                      const std::string& body = {},
                      const std::map<std::string, std::string>& headers = {},
                      std::chrono::milliseconds deadline = std::chrono::seconds(5));

private:
    std::unique_ptr<System> system_;
    int ws_port_ = 0;
    int rest_port_ = 0;
};

// One HTTP request to `host_port` ("127.0.0.1:40123", as bound_endpoints() reports it).
HttpResponse http_at(const std::string& host_port, const std::string& method,
                     const std::string& target,
                     std::chrono::milliseconds deadline = std::chrono::seconds(5));

// A suite of tests sharing one system, local_topology in a fresh directory with `change`
// applied: the suite's SetUpTestSuite calls start_shared(change). `Suite` (the deriving
// class) gives each suite its own system.
template <class Suite>
class SharedSystemTest : public ::testing::Test {
public:
    static void TearDownTestSuite() {
        delete system_;
        delete dir_;
        system_ = nullptr;
        dir_ = nullptr;
    }

protected:
    static void start_shared(const std::function<void(topology::Topology&)>& change) {
        dir_ = new TempDir();
        system_ = new RunningSystem(local_topology(dir_->path(), change));
    }
    RunningSystem& system() { return *system_; }

    static inline TempDir* dir_ = nullptr;
    static inline RunningSystem* system_ = nullptr;
};

// A v2.1 text message from `from` to `to`.
nlohmann::json text_message(const std::string& id, const std::string& to, const std::string& text);
// A receipt acknowledging `ids` of messages that `original_sender` sent.
nlohmann::json receipt(const std::string& id, const std::string& original_sender,
                       const std::vector<std::string>& ids, const std::string& state = "delivered");

// Polls `condition` (every 20 ms: a state to reach, not a time to wait) until it holds or
// the (scaled) deadline passes; whether it held.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds deadline);

// Waits for a frame that is a message object with the given id (frames may hold arrays).
std::optional<nlohmann::json> wait_for_id(WsClient& client, const std::string& id,
                                          std::chrono::milliseconds deadline = std::chrono::seconds(5));
// Waits for the SERVER_ACK of message `id`.
bool wait_for_server_ack(WsClient& client, const std::string& id,
                         std::chrono::milliseconds deadline = std::chrono::seconds(5));
// Sends `text` (a message with `id`) until its SERVER_ACK arrives, again after each "server
// busy, retry" error frame as the app would, within `deadline`. False on any other error frame,
// a closed socket or the deadline.
bool send_until_server_ack(WsClient& client, const std::string& text, const std::string& id,
                           std::chrono::milliseconds deadline = std::chrono::seconds(5));

} // namespace vartalap::testing
