// Thread: the message-router daemon's own thread (run()); RouterCore runs on it too.
#include "daemons/message_router/message_router.hpp"

#include "common/client_message.hpp"
#include "common/log.hpp"
#include "common/zmq_util.hpp"
#include "daemons/factories.hpp"
#include "daemons/publisher.hpp"
#include "daemons/threaded_daemon.hpp"
#include "topology/catalog.hpp"

#include <vector>

namespace vartalap {

RouterCore::RouterCore(const topology::ShardMap& shards, SendToShard send, SendToGroupRouter send_group)
    : shards_(shards), send_(std::move(send)), send_group_(std::move(send_group)) {}

void RouterCore::send_ack(const Envelope& message) {
    // The acking user is the sender of the receipt: its copies live on its own shard.
    scratch_ack_ = Envelope{};
    scratch_ack_.kind = Kind::ack;
    scratch_ack_.id = message.id;
    scratch_ack_.from = message.from;
    scratch_ack_.ids = message.ids;
    scratch_ack_.origin_gateway = message.origin_gateway;
    scratch_ack_.connection = message.connection;
    scratch_ack_.created_at_ms = message.created_at_ms;
    ++counters_.acks;
    send_(shards_.index_for(message.from), scratch_ack_);
}

void RouterCore::route(Envelope& message) {
    if (message.kind != Kind::client_message || message.from.empty() || message.to.empty()) {
        ++counters_.dropped;
        spdlog::warn("message-router: dropped a {} envelope that is not a routable message",
                     to_string(message.kind));
        return;
    }
    if (message.has(flag_group)) {
        // The acker's own copies live on its shard whatever the chat type: acks need no
        // membership, so they are applied here.
        if (message.method == kClassAck) {
            send_ack(message);
            return;
        }
        if (message.method == kClassReceipt) send_ack(message);
        if (!send_group_) {
            ++counters_.dropped;
            spdlog::warn("message-router: group message {} from {} dropped: no group-router",
                         message.id, message.from);
            return;
        }
        // Expansion, membership and group operations belong to the group-router.
        message.kind = Kind::group_message;
        ++counters_.group;
        send_group_(message);
        return;
    }
    if (message.method == kClassAck) {
        send_ack(message);
        return;
    }
    if (message.method == kClassReceipt) send_ack(message);
    message.kind = Kind::deliver;
    ++counters_.routed;
    send_(shards_.index_for(message.to), message);
}

namespace {

class MessageRouterDaemon final : public ThreadedDaemon {
public:
    explicit MessageRouterDaemon(const DaemonContext& context)
        : context_(context), shards_(context.topology, "session"),
          core_(shards_, [this](std::size_t shard, Envelope& e) { forward(shard, e); },
                context.topology.of_kind("group-router").empty()
                    ? RouterCore::SendToGroupRouter{}
                    : RouterCore::SendToGroupRouter([this](Envelope& e) { forward_group(e); })) {}

    void bind() override {
        pull_ = make_socket(context_.zmq, zmq::socket_type::pull);
        pull_.bind(context_.self.endpoint("pull"));
        bound_pull_ = last_endpoint(pull_);
    }

    void connect() override {
        // In ShardMap order: push i reaches shard i.
        for (const auto& session : topology::peers(context_.topology, context_.self, "session", "pull")) {
            auto push = make_socket(context_.zmq, zmq::socket_type::push);
            push.connect(session.endpoint);
            pushes_.push_back(std::move(push));
        }
        const auto group_routers = topology::peers(context_.topology, context_.self, "group-router", "pull");
        if (!group_routers.empty()) {
            // One PUSH to all group-routers: ZeroMQ round-robins across the connected ones;
            // ZMQ_IMMEDIATE keeps messages off a group-router that is not connected.
            group_push_ = make_socket(context_.zmq, zmq::socket_type::push);
            group_push_.set(zmq::sockopt::immediate, 1);
            for (const auto& group_router : group_routers) group_push_.connect(group_router.endpoint);
        }
    }

    std::map<std::string, std::string> bound_endpoints() const override {
        return {{"pull", bound_pull_}};
    }

protected:
    void run() override {
        constexpr int kBatch = 1024; // bounded drain so the stop flag is checked often
        Incoming incoming;
        std::string error;
        while (!stop_requested()) {
            zmq::pollitem_t item{pull_.handle(), 0, ZMQ_POLLIN, 0};
            zmq::poll(&item, 1, std::chrono::milliseconds(100));
            for (int i = 0; i < kBatch && !stop_requested(); ++i) {
                const auto result = receive_envelope(pull_, false, incoming, &error);
                if (result == ReceiveResult::empty) break;
                if (result == ReceiveResult::malformed) {
                    warn_dropped(malformed_, context_.self.name, "malformed envelope", error);
                    continue;
                }
                ++received_;
                core_.route(incoming.envelope);
            }
            publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
        }
        pull_.close();
        for (auto& push : pushes_) push.close();
        if (group_push_) group_push_.close();
    }

private:
    void publish(metrics::Snapshot& s) const {
        const RouterCounters& c = core_.counters();
        add_messages_in_out(s, static_cast<double>(received_),
                            static_cast<double>(c.routed + c.acks + c.group));
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"received", received_}, {"routed", c.routed}, {"acks", c.acks}, {"group", c.group},
            {"dropped", c.dropped}, {"malformed", malformed_}, {"forward_failures", forward_failures_}};
        add_counters(s, "message_router", rows);
    }

    void forward(std::size_t shard, Envelope& envelope) {
        // Before the durable point: if a session shard stays at its high-water mark past
        // the budget, the message is dropped and logged; its sender got no SERVER_ACK and
        // resends. Waiting here (instead of dropping at once) pushes back on the gateways.
        const auto result = send_with_backpressure(pushes_[shard], envelope, scratch_,
                                                   [this] { return stop_requested(); });
        if (result != SendResult::ok && count_sampled(forward_failures_))
            spdlog::error("message-router {}: session shard {} is not accepting; dropped {} {} "
                          "({} dropped so far)",
                          context_.self.name, shards_.instances()[shard]->name,
                          to_string(envelope.kind), envelope.id, forward_failures_);
    }

    void forward_group(Envelope& envelope) {
        // Before the durable point, as for sessions: past the budget the message is dropped
        // and logged, and its sender, who got no SERVER_ACK, resends.
        const auto result = send_with_backpressure(group_push_, envelope, scratch_,
                                                   [this] { return stop_requested(); });
        if (result != SendResult::ok && count_sampled(forward_failures_))
            spdlog::error("message-router {}: no group-router is accepting; dropped group message "
                          "{} ({} dropped so far)",
                          context_.self.name, envelope.id, forward_failures_);
    }

    DaemonContext context_; // a copy: its references outlive the daemon (System owns them)
    topology::ShardMap shards_;
    RouterCore core_;
    zmq::socket_t pull_;
    std::vector<zmq::socket_t> pushes_;
    zmq::socket_t group_push_; // connected to every group-router; empty if there is none
    std::string scratch_;
    std::string bound_pull_;
    std::uint64_t received_ = 0;
    std::uint64_t malformed_ = 0;
    std::uint64_t forward_failures_ = 0;
    Publisher publisher_{context_.board, context_.clock};
};

} // namespace

std::unique_ptr<Daemon> make_message_router(const DaemonContext& context) {
    return std::make_unique<MessageRouterDaemon>(context);
}

} // namespace vartalap
