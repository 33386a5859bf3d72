// Thread: the controlling thread (main of `vartalapctl up`, or a test).
#include "daemons/system.hpp"

#include "common/log.hpp"

#include <stdexcept>

namespace vartalap {
namespace {

// Drain order: what accepts client traffic stops first, so nothing new enters while the
// inner daemons finish their in-flight work.
int stop_rank(std::string_view kind) {
    if (kind == "ws-gateway" || kind == "rest-gateway") return 0;
    if (kind == "message-router" || kind == "group-router") return 1;
    if (kind == "session") return 2;
    return 3;
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
                                 : secret_from_config(topology_.secret));
    zmq_ = std::make_unique<zmq::context_t>(1);
    zmq_->set(zmq::ctxopt::blocky, false); // sockets close with their own LINGER, never -1

    for (const auto& spec : topology_.daemons)
        if ((host_.empty() || spec.host == host_) && (instance_.empty() || spec.name == instance_))
            specs_.push_back(&spec);
    if (specs_.empty())
        throw std::runtime_error("no daemon of the topology matches host '" + host_ +
                                 "' and instance '" + instance_ + "'");
    // ipc:// endpoints are socket files: their directory must exist before a bind.
    for (const auto* spec : specs_)
        for (const auto& [role, endpoint] : spec->endpoints)
            if (endpoint.rfind("ipc://", 0) == 0) {
                const std::filesystem::path parent = std::filesystem::path(endpoint.substr(6)).parent_path();
                if (!parent.empty()) std::filesystem::create_directories(parent);
            }
    contexts_.reserve(specs_.size());
    for (const auto* spec : specs_)
        contexts_.push_back(std::make_unique<DaemonContext>(DaemonContext{
            *zmq_, topology_, *spec, data_dir / spec->name, *access_keys_, clock_}));

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
        phase = "connect";
        for (std::size_t i = 0; i < daemons_.size(); ++i) {
            current = specs_[i];
            daemons_[i]->connect();
        }
        phase = "start";
        for (std::size_t i = 0; i < daemons_.size(); ++i) {
            current = specs_[i];
            daemons_[i]->start();
            ++running_;
        }
    } catch (const std::exception& e) {
        const std::string message = std::string(phase) + " " +
                                    (current ? current->kind + " '" + current->name + "'" : "") +
                                    ": " + e.what();
        stop();
        throw std::runtime_error(message);
    }
    spdlog::info("system '{}': {} daemons running", topology_.name, daemons_.size());
}

void System::stop() {
    if (!started_) return;
    started_ = false;
    for (int rank = 0; rank <= 3; ++rank) {
        for (std::size_t i = 0; i < running_; ++i)
            if (stop_rank(specs_[i]->kind) == rank) daemons_[i]->request_stop();
        for (std::size_t i = 0; i < running_; ++i)
            if (stop_rank(specs_[i]->kind) == rank) daemons_[i]->join();
    }
    daemons_.clear(); // closes any socket a daemon that never started still holds
    running_ = 0;
    contexts_.clear();
    specs_.clear();
    if (zmq_) zmq_->close();
    zmq_.reset();
}

std::map<std::string, std::map<std::string, std::string>> System::bound_endpoints() const {
    std::map<std::string, std::map<std::string, std::string>> out;
    for (std::size_t i = 0; i < daemons_.size(); ++i) out[specs_[i]->name] = daemons_[i]->bound_endpoints();
    return out;
}

} // namespace vartalap
