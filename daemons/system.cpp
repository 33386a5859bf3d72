// Thread: the controlling thread (main of `vartalapctl up`, or a test).
#include "daemons/system.hpp"

#include "daemons/event_loop.hpp"
#include "daemons/transport.hpp"

#include "common/log.hpp"
#include "common/thread_name.hpp"
#include "common/zmq/context_threads.hpp"
#include "topology/catalog.hpp"
#include "topology/endpoints.hpp"

#include <spdlog/fmt/ranges.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <sys/stat.h>
#include <thread>

namespace vartalap {

namespace {

// The kinds whose daemon can run on a shared event loop: the LoopDaemons and the ws-gateway.
bool shares_event_loop(std::string_view kind) {
    return kind == "ws-gateway" || kind == "message-router" || kind == "session" ||
           kind == "persistence" || kind == "profile" || kind == "group" || kind == "group-router";
}

// ipc:// endpoints are socket files: their directory must exist before a bind, and only the
// daemons' user should enter it (whoever can connect to the sockets can talk as a daemon).
// A directory made here is 0700; an existing one that others may enter is reported.
void prepare_ipc_directories(const std::vector<const topology::DaemonSpec*>& specs) {
    std::set<std::filesystem::path> seen;
    for (const auto* spec : specs)
        for (const auto& [role, endpoint] : spec->endpoints) {
            if (endpoint.rfind("ipc://", 0) != 0) continue;
            const std::filesystem::path parent = std::filesystem::path(endpoint.substr(6)).parent_path();
            if (parent.empty() || !seen.insert(parent).second) continue;
            if (std::filesystem::create_directories(parent)) {
                std::filesystem::permissions(parent, std::filesystem::perms::owner_all);
                continue;
            }
            struct stat info {};
            if (::stat(parent.c_str(), &info) == 0 && (info.st_mode & 077) != 0)
                spdlog::warn("ipc directory {} has mode {:04o}: other local users may connect to "
                             "the daemons' ipc:// sockets and talk as a daemon; chmod 700 it",
                             parent.string(), info.st_mode & 07777);
        }
}

// Plain tcp:// allowed by `insecure_tcp = true`: said loudly at every start.
void warn_insecure_tcp(const topology::Topology& topology) {
    if (topology.curve() || !topology.insecure_tcp) return;
    for (const auto& spec : topology.daemons)
        for (const auto& [role, endpoint] : spec.endpoints)
            if (topology::is_tcp_endpoint(endpoint)) {
                spdlog::warn("INSECURE: {}: insecure_tcp = true: tcp:// sockets ({} '{}', ...) are "
                             "plain text and accept anyone who reaches the port: they can send "
                             "as any user and read stored messages. Give the hosts CURVE keys "
                             "(`vartalapctl keys`, docs/SECURITY.md)",
                             topology.file, spec.name, endpoint);
                return;
            }
}

} // namespace

System::System(topology::Topology topology, std::string host, std::string instance)
    : topology_(std::move(topology)), host_(std::move(host)), instance_(std::move(instance)) {}

System::~System() { stop(); }

void System::start() {
    if (started_) return;
    const std::filesystem::path data_dir(topology_.data_dir);
    access_keys_ = std::make_unique<AccessKeys>(
        topology_.secret.empty() ? load_or_create_secret(data_dir / "secret.key")
                                 : secret_from_config(topology_.secret),
        static_cast<std::uint64_t>(topology_.access_key_max_age_days) * 86400);
    zmq_ = std::make_unique<zmq::context_t>(1);
    zmq_->set(zmq::ctxopt::blocky, false); // sockets close with their own LINGER, never -1

    for (const auto& spec : topology_.daemons)
        if ((host_.empty() || spec.host == host_) && (instance_.empty() || spec.name == instance_))
            specs_.push_back(&spec);
    if (specs_.empty())
        throw std::runtime_error("no daemon of the topology matches host '" + host_ +
                                 "' and instance '" + instance_ + "'");
    // The threads the process shares (the ZeroMQ context's, the ZAP guard, ops) carry the
    // name of the daemons they serve: "session-1" under vartalapd, "ws-1+8" for nine.
    std::vector<std::string> instances;
    for (const auto* spec : specs_) instances.push_back(spec->name);
    thread_owner_ = shared_thread_owner(instances);
    if (!name_context_threads(*zmq_, thread_owner_))
        spdlog::warn("the ZeroMQ context's threads keep libzmq's names (ZMQbg/...): they did not show in time");
    prepare_ipc_directories(specs_);
    warn_insecure_tcp(topology_);
    std::set<std::string> hosts;
    for (const auto* spec : specs_) hosts.insert(spec->host);
    transport_ = std::make_unique<Transport>(*zmq_, topology_, hosts, thread_owner_);
    // `[system] threads`: the ZeroMQ-loop daemons share that many event loops, round-robin
    // in file order (a loop of one daemon is named after it); 0 leaves each its own thread.
    std::vector<const topology::DaemonSpec*> sharing;
    for (const auto* spec : specs_)
        if (shares_event_loop(spec->kind)) sharing.push_back(spec);
    const std::size_t loop_count =
        std::min<std::size_t>(static_cast<std::size_t>(std::max(topology_.threads, 0)), sharing.size());
    // A loop is named after the daemons it runs (common/thread_name.hpp): "session-1" alone,
    // "ws-1+6" for ws-1 and the six others placed on it.
    for (std::size_t i = 0; i < loop_count; ++i) {
        std::vector<std::string> placed_here;
        for (std::size_t j = i; j < sharing.size(); j += loop_count) placed_here.push_back(sharing[j]->name);
        const std::string name = shared_thread_owner(placed_here);
        if (placed_here.size() > 1)
            spdlog::info("event loop thread '{}' runs {}", thread_name(name), fmt::join(placed_here, ", "));
        loops_.push_back(std::make_unique<EventLoop>(name));
    }
    contexts_.reserve(specs_.size());
    std::vector<OpsEntry> ops_entries;
    std::size_t placed = 0;
    for (const auto* spec : specs_) {
        boards_.push_back(std::make_unique<metrics::Board>());
        EventLoop* loop = nullptr;
        if (loop_count > 0 && shares_event_loop(spec->kind)) loop = loops_[placed++ % loop_count].get();
        contexts_.push_back(std::make_unique<DaemonContext>(DaemonContext{
            *zmq_, topology_, *spec, data_dir / spec->name, *access_keys_, clock_,
            boards_.back().get(), loop, transport_.get()}));
        ops_entries.push_back({spec, boards_.back().get(), transport_->refusals(spec->name)});
    }
    ops_ = std::make_unique<OpsServer>(*zmq_, std::move(ops_entries), clock_, transport_.get());
    started_ms_ = clock_.monotonic_ms();

    started_ = true; // from here on, stop() cleans up whatever exists
    const char* phase = "create";
    const topology::DaemonSpec* current = nullptr;
    try {
        for (auto& context : contexts_) {
            current = &context->self;
            daemons_.push_back(make_daemon(*context));
        }
        phase = "bind";
        for (std::size_t i = 0; i < daemons_.size(); ++i) {
            current = specs_[i];
            daemons_[i]->bind();
        }
        phase = "bind control or metrics of";
        current = nullptr;
        ops_->bind();
        phase = "connect";
        for (std::size_t i = 0; i < daemons_.size(); ++i) {
            current = specs_[i];
            daemons_[i]->connect();
        }
        phase = "start";
        for (auto& loop : loops_) loop->start();
        for (std::size_t i = 0; i < daemons_.size(); ++i) {
            current = specs_[i];
            daemons_[i]->start();
            ++running_;
        }
        ops_->start();
    } catch (const std::exception& e) {
        const std::string message = std::string(phase) + " " +
                                    (current ? current->kind + " '" + current->name + "'" : "") +
                                    ": " + e.what();
        stop();
        throw std::runtime_error(message);
    }
    spdlog::info("system '{}': {} daemons running ({})", topology_.name, daemons_.size(),
                 loops_.empty() ? std::string("a thread each")
                                : std::to_string(loops_.size()) + " shared event loop(s)");
}

void System::stop() {
    if (!started_) return;
    started_ = false;
    if (ops_) ops_->set_draining();
    for (int rank = 0; rank <= topology::kLastStopRank; ++rank) {
        for (std::size_t i = 0; i < running_; ++i)
            if (topology::stop_rank(specs_[i]->kind) == rank) daemons_[i]->request_stop();
        for (std::size_t i = 0; i < running_; ++i)
            if (topology::stop_rank(specs_[i]->kind) == rank) daemons_[i]->join();
    }
    if (ops_) ops_->stop();
    ops_.reset();
    for (auto& loop : loops_) loop->stop(); // every daemon on them has finished
    daemons_.clear(); // closes any socket a daemon that never started still holds
    loops_.clear();
    boards_.clear();
    running_ = 0;
    contexts_.clear();
    specs_.clear();
    // Only now: until every CURVE server socket is closed, its ZAP handler must answer.
    if (transport_) transport_->stop();
    transport_.reset();
    if (zmq_) zmq_->close();
    zmq_.reset();
}

std::map<std::string, std::map<std::string, std::string>> System::bound_endpoints() const {
    std::map<std::string, std::map<std::string, std::string>> out;
    for (std::size_t i = 0; i < daemons_.size(); ++i) out[specs_[i]->name] = daemons_[i]->bound_endpoints();
    if (ops_)
        for (const auto& [instance, roles] : ops_->bound_endpoints())
            for (const auto& [role, address] : roles) out[instance][role] = address;
    return out;
}

std::vector<std::string> System::reload(const topology::Topology& fresh) {
    std::vector<std::string> restart;
    for (std::size_t i = 0; i < running_; ++i) {
        const topology::DaemonSpec& now = *specs_[i];
        const topology::DaemonSpec* next = fresh.find(now.name);
        if (next == nullptr) {
            restart.push_back(now.name + " is no longer in the file");
            continue;
        }
        if (next->kind != now.kind || next->host != now.host)
            restart.push_back(now.name + ": kind or host changed");
        if (next->endpoints != now.endpoints) restart.push_back(now.name + ": endpoints changed");
        const auto same_slots = [](const auto& a, const auto& b) {
            return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
                return x.first == y.first && x.last == y.last;
            });
        };
        if (!same_slots(next->slots, now.slots)) restart.push_back(now.name + ": slots changed");
        const auto* keys = topology_.keys_of(now.host);
        const auto* next_keys = fresh.keys_of(now.host);
        if ((keys == nullptr) != (next_keys == nullptr) ||
            (keys && (keys->public_key != next_keys->public_key ||
                      keys->secret_key_file != next_keys->secret_key_file)))
            restart.push_back(now.name + ": its host's CURVE keys changed");
        if (next->kind == now.kind) daemons_[i]->reload(*next);
    }
    for (const auto& spec : fresh.daemons)
        if ((host_.empty() || spec.host == host_) && (instance_.empty() || spec.name == instance_) &&
            topology_.find(spec.name) == nullptr)
            restart.push_back(spec.name + " is new in the file");
    return restart;
}

std::vector<std::string> System::silent_daemons(std::uint64_t max_age_ms) const {
    std::vector<std::string> silent;
    const std::uint64_t now = clock_.monotonic_ms();
    for (std::size_t i = 0; i < running_; ++i) {
        const std::uint64_t last = boards_[i]->last_publish_ms().value_or(started_ms_);
        if (now - std::min(now, last) > max_age_ms) silent.push_back(specs_[i]->name);
    }
    return silent;
}

std::vector<std::string> System::wait_serving(std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> waiting;
    while (true) {
        waiting.clear();
        for (std::size_t i = 0; i < running_; ++i)
            if (!daemons_[i]->serving()) waiting.push_back(specs_[i]->name);
        if (waiting.empty() || std::chrono::steady_clock::now() >= deadline) return waiting;
        // Start-up only, and typically a millisecond or two (one round trip to profile).
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

} // namespace vartalap
