// Thread: see transport.hpp.
#include "daemons/transport.hpp"

#include "topology/endpoints.hpp"

#include <spdlog/spdlog.h>
#include <stdexcept>

namespace vartalap {

Transport::Transport(zmq::context_t& context, const topology::Topology& topology,
                     const std::set<std::string>& hosts, const std::string& thread_owner)
    : topology_(topology) {
    if (!topology.curve()) return;
    if (!curve_available())
        throw std::runtime_error("the topology has CURVE keys but this libzmq has no CURVE");
    for (const std::string& host : hosts) {
        const topology::HostKeys* keys = topology.keys_of(host);
        if (!keys) throw std::runtime_error("host '" + host + "' has no [host." + host + "] keys");
        CurveKeyPair pair = read_curve_secret_file(keys->secret_key_file);
        if (pair.public_key != keys->public_key)
            throw std::runtime_error("CURVE secret key file " + keys->secret_key_file +
                                     " does not belong to host '" + host + "': its public key is " +
                                     pair.public_key + ", the topology says " + keys->public_key);
        own_.emplace(host, std::move(pair));
    }
    std::set<std::string> allowed;
    for (const auto& [host, keys] : topology.host_keys) allowed.insert(keys.public_key);
    guard_ = std::make_unique<ZapGuard>(context, allowed, thread_owner);
    spdlog::info("internal transport: tcp:// is CURVE; {} host key(s) accepted", allowed.size());
}

Transport::~Transport() { stop(); }

void Transport::stop() {
    if (guard_) guard_->stop();
}

void Transport::prepare_bind(zmq::socket_ref socket, const topology::DaemonSpec& self,
                             const std::string& endpoint) {
    if (!guard_ || !topology::is_tcp_endpoint(endpoint)) return;
    const auto own = own_.find(self.host);
    if (own == own_.end())
        throw std::logic_error(self.name + ": no CURVE key pair loaded for host " + self.host);
    guard_->watch(socket, self.name);
    make_curve_server(socket, own->second, self.name);
}

void Transport::prepare_connect(zmq::socket_ref socket, const topology::DaemonSpec& self,
                                const topology::DaemonSpec& peer, const std::string& endpoint) const {
    if (!guard_) return;
    if (!topology::is_tcp_endpoint(endpoint)) {
        // Options apply to the endpoints connected after them: a socket that reached a
        // tcp:// peer before reaches this inproc/ipc one in plain text (the NULL mechanism).
        socket.set(zmq::sockopt::curve_server, false);
        return;
    }
    const auto own = own_.find(self.host);
    const topology::HostKeys* server = topology_.keys_of(peer.host);
    if (own == own_.end() || !server)
        throw std::logic_error(self.name + ": no CURVE keys for host " +
                               (own == own_.end() ? self.host : peer.host));
    make_curve_client(socket, own->second, server->public_key);
}

const ZapGuard::Refusals* Transport::refusals(const std::string& instance) {
    return guard_ ? &guard_->refusals(instance) : nullptr;
}

namespace {

// Without a Transport (a daemon run alone by a test) sockets are plain; that must not
// silently happen to a tcp:// endpoint of a topology with keys.
void require_transport(const DaemonContext& context, const std::string& endpoint) {
    if (!context.transport && context.topology.curve() && topology::is_tcp_endpoint(endpoint))
        throw std::logic_error(context.self.name + ": tcp:// endpoint '" + endpoint +
                               "' in a topology with CURVE keys, but no Transport");
}

} // namespace

zmq::socket_t bind_socket(const DaemonContext& context, zmq::socket_type type,
                          const std::string& role, const std::string& why,
                          const SocketOptions& options) {
    const std::string endpoint = context.self.endpoint(role);
    const std::string& daemon = context.self.name;
    if (endpoint.empty())
        throw std::runtime_error(daemon + ": no `" + role + "` endpoint configured" +
                                 (why.empty() ? "" : " (" + why + ")"));
    require_transport(context, endpoint);
    zmq::socket_t socket = make_socket(context.zmq, type, options);
    if (context.transport) context.transport->prepare_bind(socket, context.self, endpoint);
    try {
        socket.bind(endpoint);
    } catch (const zmq::error_t& e) {
        throw std::runtime_error(daemon + ": cannot bind " + role + " '" + endpoint + "': " + e.what());
    }
    return socket;
}

void connect_socket(const DaemonContext& context, zmq::socket_ref socket, const topology::Peer& peer) {
    require_transport(context, peer.endpoint);
    if (context.transport)
        context.transport->prepare_connect(socket, context.self, *peer.daemon, peer.endpoint);
    try {
        socket.connect(peer.endpoint);
    } catch (const zmq::error_t& e) {
        throw std::runtime_error(context.self.name + ": cannot connect to " + peer.daemon->name +
                                 " '" + peer.endpoint + "': " + e.what());
    }
}

} // namespace vartalap
