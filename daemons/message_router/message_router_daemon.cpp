// message-router daemon: the PULL socket gateways push client messages to, one PUSH per
// session shard and one PUSH to every group-router, around MessageRouterCore.
// Thread: the message-router daemon's own thread (run()); the core runs on it too.
#include "daemons/message_router/message_router_core.hpp"

#include "common/log.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/message_router/message_router_daemon.hpp"
#include "daemons/publisher.hpp"
#include "daemons/threaded_daemon.hpp"
#include "topology/catalog.hpp"

#include <vector>

namespace vartalap::message_router {

namespace {

class MessageRouterDaemon final : public ThreadedDaemon, private MessageRouterOutbox {
public:
    explicit MessageRouterDaemon(const DaemonContext& context)
        : context_(context), shards_(context.topology, "session"),
          core_(shards_, *this) {}

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
        loop_.add({.socket = pull_, .max_batch = 1024}); // bounded: the stop flag is read often
        while (!stop_requested()) {
            // Once stop is requested, to_session() stops waiting on a full shard, so the rest
            // of a received batch is still routed (or dropped and counted) without delay.
            for (Incoming& incoming : loop_.turn(std::chrono::milliseconds(100))) {
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
        const MessageRouterCounters& c = core_.counters();
        add_messages_in_out(s, static_cast<double>(received_),
                            static_cast<double>(c.routed + c.acks + c.group));
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"received", received_}, {"routed", c.routed}, {"acks", c.acks}, {"group", c.group},
            {"dropped", c.dropped}, {"malformed", loop_.dropped()}, {"forward_failures", forward_failures_}};
        add_counters(s, "message_router", rows);
    }

    // MessageRouterOutbox
    void to_session(std::size_t shard, Envelope& envelope) override {
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

    // connect() made the PUSH only if the topology has group-routers.
    bool has_group_router() const override { return static_cast<bool>(group_push_); }

    void to_group_router(Envelope& envelope) override {
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
    MessageRouterCore core_;
    zmq::socket_t pull_;
    std::vector<zmq::socket_t> pushes_;
    zmq::socket_t group_push_; // connected to every group-router; empty if there is none
    std::string scratch_;
    std::string bound_pull_;
    std::uint64_t received_ = 0;
    std::uint64_t forward_failures_ = 0;
    Publisher publisher_{context_.board, context_.clock};
    PollLoop loop_{context_.self.name};
};

} // namespace

} // namespace vartalap::message_router

namespace vartalap {

std::unique_ptr<Daemon> make_message_router(const DaemonContext& context) {
    return std::make_unique<message_router::MessageRouterDaemon>(context);
}

} // namespace vartalap
