// vartalap-chaos: the system under test. A copy of a topology file (by default
// topology/local-multiprocess.toml) rendered into a temporary directory, so that it runs
// beside anything else (in ctest too): kernel-chosen listen and metrics ports, ipc:// socket
// files and the data directory under that directory, and every session and persistence in
// the durability mode asked for. `vartalapctl up --spawn` runs it; Cluster reads the
// supervisor's stdout lines (tools/vartalapctl/supervisor.hpp: "spawned", "listening",
// "ready", "exited") to know each instance's pid and public address, and kill -9s them.
//
// Thread: one io_context thread (the supervisor's stdout is read on it).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/streambuf.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <sys/types.h>
#include <vector>

namespace vartalap::chaos {

using SteadyClock = std::chrono::steady_clock;

struct ClusterOptions {
    std::filesystem::path topology;   // the file to copy
    std::filesystem::path vartalapctl;
    std::string durability;           // "fsync" or "process"
    bool keep_dir = false;            // leave the temporary directory (data, ipc) behind
};

// Writes `source` to `target` with listen/metrics ports 0, ipc:// paths under `dir`/ipc,
// data_dir `dir`/data and `durability` as an option of every session and persistence.
void render_topology(const std::filesystem::path& source, const std::filesystem::path& target,
                     const std::filesystem::path& dir, const std::string& durability);

struct Instance {
    std::string name;
    std::string kind;
    pid_t pid = -1;              // the running process, -1 while it is down
    std::optional<boost::asio::ip::tcp::endpoint> listen; // public address (gateways)
    bool ready = false;          // printed "ready" since its last spawn
    std::optional<SteadyClock::time_point> killed_at; // our kill, until it is ready again
};

struct KillStats {
    std::map<std::string, int> by_kind;
    int total = 0;
    double longest_down_s = 0;   // from our kill -9 to the instance's next "ready"
    int slower_than_2s = 0;
};

class Cluster {
public:
    Cluster(boost::asio::io_context& io, ClusterOptions options);
    ~Cluster();
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    // Renders the topology and starts the supervisor; its lines are read from then on.
    void start();
    // Every instance has been ready (the supervisor's lone "ready" line).
    bool all_ready() const { return all_ready_; }
    // Whether the supervisor is still running.
    bool running();

    const std::vector<Instance>& instances() const { return instances_; }
    // Public addresses of the running instances of `kind`, in file order.
    std::vector<boost::asio::ip::tcp::endpoint> listen_endpoints(const std::string& kind) const;

    // kill -9 of one running instance: while some kind has never been killed, an instance
    // of such a kind; then any. Returns its name ("" if none is running).
    std::string kill_one(std::mt19937& random);
    const KillStats& kill_stats() const { return kill_stats_; }
    // Every kill: the instance and when.
    const std::vector<std::pair<std::string, SteadyClock::time_point>>& kill_log() const { return kill_log_; }
    // Instances killed by us that are not ready again yet.
    std::vector<std::string> down() const;

    // SIGTERM to the supervisor (it drains every child), SIGKILL after `budget`; returns
    // its exit status (128 + signal if killed).
    int stop(std::chrono::milliseconds budget);

private:
    void read_line();
    void on_line(const std::string& line);
    Instance* find(const std::string& name);

    boost::asio::io_context& io_;
    ClusterOptions options_;
    std::filesystem::path dir_;
    std::vector<Instance> instances_;
    pid_t supervisor_ = -1;
    std::optional<int> exit_status_;
    boost::asio::posix::stream_descriptor out_;
    boost::asio::streambuf buffer_;
    bool all_ready_ = false;
    KillStats kill_stats_;
    std::vector<std::pair<std::string, SteadyClock::time_point>> kill_log_;
};

} // namespace vartalap::chaos
