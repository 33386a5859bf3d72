// Thread: the io_context thread (see cluster.hpp).
#include "tools/chaos/cluster.hpp"

#include "topology/topology.hpp"

#include <boost/asio/read_until.hpp>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace vartalap::chaos {

namespace asio = boost::asio;

void render_topology(const std::filesystem::path& source, const std::filesystem::path& target,
                     const std::filesystem::path& dir, const std::string& durability) {
    std::ifstream in(source);
    if (!in) throw std::runtime_error("cannot read " + source.string());
    std::stringstream text;
    text << in.rdbuf();
    std::string toml = std::regex_replace(text.str(), std::regex(R"(127\.0\.0\.1:\d+)"), "127.0.0.1:0");
    toml = std::regex_replace(toml, std::regex(R"re("ipc://[^"]*/([^/"]+)")re"),
                              "\"ipc://" + (dir / "ipc").string() + "/$1\"");
    toml = std::regex_replace(toml, std::regex(R"(data_dir\s*=\s*"[^"]*")"),
                              "data_dir = \"" + (dir / "data").string() + "\"");
    // The stores' durability as an inline options table right after the kind (the example
    // file gives sessions and persistence no [daemon.options] table of their own).
    toml = std::regex_replace(toml, std::regex(R"re(kind = "(session|persistence)")re"),
                              "kind = \"$1\"\noptions = { durability = \"" + durability + "\" }");
    std::ofstream(target) << toml;
}

Cluster::Cluster(asio::io_context& io, ClusterOptions options)
    : io_(io), options_(std::move(options)), out_(io) {}

Cluster::~Cluster() {
    if (supervisor_ > 0 && !exit_status_) stop(std::chrono::seconds(15));
    if (!dir_.empty() && !options_.keep_dir) {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
}

void Cluster::start() {
    std::string pattern = (std::filesystem::temp_directory_path() / "vartalap-chaos-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    std::filesystem::create_directories(dir_ / "ipc");
    // Only this user may reach the daemons' ipc:// sockets (they warn otherwise).
    std::filesystem::permissions(dir_ / "ipc", std::filesystem::perms::owner_all);
    const auto file = dir_ / "topology.toml";
    render_topology(options_.topology, file, dir_, options_.durability);
    const auto loaded = topology::load_file(file);
    if (!loaded.topology) {
        for (const auto& error : loaded.errors) std::cerr << error.str() << '\n';
        throw std::runtime_error("the rendered topology does not load");
    }
    for (const auto& daemon : loaded.topology->daemons)
        instances_.push_back(Instance{daemon.name, daemon.kind});
    std::cout << "chaos: " << instances_.size() << " daemons of " << options_.topology.string()
              << " (durability " << options_.durability << ") under " << dir_.string() << std::endl;

    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    supervisor_ = ::fork();
    if (supervisor_ < 0) throw std::runtime_error("fork failed");
    if (supervisor_ == 0) {
        ::dup2(fds[1], STDOUT_FILENO);
        ::close(fds[0]);
        ::close(fds[1]);
        const std::string ctl = options_.vartalapctl.string(), path = file.string();
        ::execl(ctl.c_str(), ctl.c_str(), "up", path.c_str(), "--spawn", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(fds[1]);
    out_.assign(fds[0]);
    read_line();
}

void Cluster::read_line() {
    asio::async_read_until(out_, buffer_, '\n', [this](boost::system::error_code ec, std::size_t n) {
        if (ec) return; // EOF: the supervisor is gone
        std::string line(asio::buffers_begin(buffer_.data()), asio::buffers_begin(buffer_.data()) + n - 1);
        buffer_.consume(n);
        on_line(line);
        read_line();
    });
}

Instance* Cluster::find(const std::string& name) {
    for (auto& instance : instances_)
        if (instance.name == name) return &instance;
    return nullptr;
}

void Cluster::on_line(const std::string& line) {
    static const std::regex spawned(R"(spawned (\S+) pid (\d+))");
    static const std::regex listening(R"(listening (\S+) listen (\S+):(\d+))");
    static const std::regex ready(R"(ready (\S+))");
    static const std::regex exited(R"(exited (\S+) pid (\d+) .*)");
    std::smatch m;
    if (line == "ready") {
        all_ready_ = true;
    } else if (std::regex_match(line, m, spawned)) {
        if (Instance* instance = find(m[1])) {
            instance->pid = static_cast<pid_t>(std::stol(m[2]));
            instance->ready = false;
        }
    } else if (std::regex_match(line, m, listening)) {
        if (Instance* instance = find(m[1]))
            instance->listen = asio::ip::tcp::endpoint(asio::ip::make_address(m[2].str()),
                                                       static_cast<unsigned short>(std::stoi(m[3])));
    } else if (std::regex_match(line, m, ready)) {
        if (Instance* instance = find(m[1])) {
            instance->ready = true;
            if (instance->killed_at) {
                const double down = std::chrono::duration<double>(SteadyClock::now() - *instance->killed_at).count();
                kill_stats_.longest_down_s = std::max(kill_stats_.longest_down_s, down);
                if (down > 2.0) {
                    ++kill_stats_.slower_than_2s;
                    std::cout << "chaos: " << instance->name << " ready again only after " << down << " s" << std::endl;
                }
                instance->killed_at.reset();
            }
        }
    } else if (std::regex_match(line, m, exited)) {
        if (Instance* instance = find(m[1]); instance && instance->pid == std::stol(m[2])) {
            instance->pid = -1;
            instance->ready = false;
            if (instance->kind == "ws-gateway" || instance->kind == "rest-gateway") instance->listen.reset();
        }
    }
}

bool Cluster::running() {
    if (exit_status_) return false;
    int status = 0;
    if (::waitpid(supervisor_, &status, WNOHANG) == supervisor_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }
    return true;
}

std::vector<asio::ip::tcp::endpoint> Cluster::listen_endpoints(const std::string& kind) const {
    std::vector<asio::ip::tcp::endpoint> out;
    for (const auto& instance : instances_)
        if (instance.kind == kind && instance.pid > 0 && instance.listen) out.push_back(*instance.listen);
    return out;
}

std::string Cluster::kill_one(std::mt19937& random) {
    std::set<std::string> unkilled_kinds;
    for (const auto& instance : instances_)
        if (!kill_stats_.by_kind.contains(instance.kind)) unkilled_kinds.insert(instance.kind);
    std::vector<Instance*> candidates;
    for (auto& instance : instances_) {
        // Only a daemon that is up and ready: killing one still starting tests the backoff,
        // not the delivery contract.
        if (instance.pid <= 0 || !instance.ready) continue;
        if (!unkilled_kinds.empty() && !unkilled_kinds.contains(instance.kind)) continue;
        candidates.push_back(&instance);
    }
    if (candidates.empty()) return {};
    Instance& victim = *candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(random)];
    if (::kill(victim.pid, SIGKILL) != 0) return {};
    ++kill_stats_.by_kind[victim.kind];
    ++kill_stats_.total;
    victim.killed_at = SteadyClock::now();
    victim.ready = false;
    kill_log_.emplace_back(victim.name, *victim.killed_at);
    return victim.name;
}

std::vector<std::string> Cluster::down() const {
    std::vector<std::string> out;
    for (const auto& instance : instances_)
        if (instance.killed_at) out.push_back(instance.name);
    return out;
}

int Cluster::stop(std::chrono::milliseconds budget) {
    if (exit_status_) return *exit_status_;
    if (supervisor_ <= 0) return 0;
    ::kill(supervisor_, SIGTERM);
    const auto until = SteadyClock::now() + budget;
    while (running() && SteadyClock::now() < until) {
        // Keeps reading its stdout meanwhile, so it never blocks on a full pipe.
        io_.run_for(std::chrono::milliseconds(50));
        io_.restart();
    }
    if (running()) {
        ::kill(supervisor_, SIGKILL);
        int status = 0;
        ::waitpid(supervisor_, &status, 0);
        exit_status_ = 128 + SIGKILL;
    }
    return *exit_status_;
}

} // namespace vartalap::chaos
