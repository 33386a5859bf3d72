// message-router daemon: the PULL socket gateways push client messages to, one PUSH per
// session shard and one PUSH to every group-router, around MessageRouterCore.
// Thread: the message-router's loop thread (LoopDaemon hooks); the core runs on it too.
#include "daemons/message_router/message_router_core.hpp"
#include "daemons/transport.hpp"

#include "common/log.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/message_router/message_router_daemon.hpp"
#include "daemons/publisher.hpp"
#include "daemons/loop_daemon.hpp"
#include "daemons/options.hpp"
#include "topology/catalog.hpp"

#include <vector>

namespace vartalap::message_router {

namespace {

class MessageRouterDaemon final : public LoopDaemon, private MessageRouterOutbox {
public:
    explicit MessageRouterDaemon(const DaemonContext& context)
        : LoopDaemon(context.self.name, context.loop), context_(context),
          shards_(context.topology, "session"), core_(shards_, *this),
          held_(shards_.instances().size() + 1, // the last one holds for the group-routers
                static_cast<std::uint64_t>(positive_or(context.self.option_int("hold_timeout_ms", kHoldTimeoutMs),
                                                       kHoldTimeoutMs))) {}

    void bind() override {
        pull_ = bind_socket(context_, zmq::socket_type::pull, "pull");
        bound_pull_ = last_endpoint(pull_);
    }

    void connect() override {
        // In ShardMap order: push i reaches shard i. ZMQ_IMMEDIATE: while a shard is down
        // (not connected) a send is refused at once instead of queueing inside ZeroMQ, where
        // a killed router would take it along without a word; HeldMessages holds it for a
        // bounded time instead, then refuses it to its sender.
        for (const auto& session : topology::peers(context_.topology, context_.self, "session", "pull")) {
            auto push = make_socket(context_.zmq, zmq::socket_type::push);
            push.set(zmq::sockopt::immediate, 1);
            connect_socket(context_, push, session);
            pushes_.push_back(std::move(push));
        }
        const auto group_routers = topology::peers(context_.topology, context_.self, "group-router", "pull");
        if (!group_routers.empty()) {
            // One PUSH to all group-routers: ZeroMQ round-robins across the connected ones;
            // ZMQ_IMMEDIATE keeps messages off a group-router that is not connected.
            group_push_ = make_socket(context_.zmq, zmq::socket_type::push);
            group_push_.set(zmq::sockopt::immediate, 1);
            for (const auto& group_router : group_routers)
                connect_socket(context_, group_push_, group_router);
        }
        // Refusals of messages held too long go straight to the sender's gateway.
        SocketOptions options;
        options.routing_id = context_.self.name;
        auto add_gateways = [&](const std::vector<topology::Peer>& gateways) {
            for (const auto& gateway : gateways) {
                auto dealer = make_socket(context_.zmq, zmq::socket_type::dealer, options);
                connect_socket(context_, dealer, gateway);
                gateways_.emplace_back(gateway.daemon->name, std::move(dealer));
            }
        };
        add_gateways(topology::peers(context_.topology, context_.self, "ws-gateway", "router"));
        add_gateways(topology::peers(context_.topology, context_.self, "rest-gateway", "router"));
    }

    std::map<std::string, std::string> bound_endpoints() const override {
        return {{"pull", bound_pull_}};
    }

protected:
    void on_start() override {
        pull_index_ = loop_.add({.socket = pull_, .max_batch = 1024}); // bounded: the stop flag is read often
    }

    std::chrono::milliseconds before_turn() override {
        // Held messages go first, in order per peer; what waited too long is refused. The
        // PULL is read on while the other peers take their messages, up to kMaxHeld held in
        // all: then the gateways feel the backpressure (and answer "server busy, retry").
        held_.send([this](std::size_t peer, const Envelope& envelope) {
            return send_envelope(peer_socket(peer), envelope, scratch_) == SendResult::ok;
        });
        const std::size_t expired = held_.expire(context_.clock.monotonic_ms(), [this](const Envelope& envelope) {
            if (refusal_for(envelope, refusal_)) {
                to_gateway(envelope.origin_gateway, refusal_);
                ++refused_;
            } else {
                ++acks_expired_;
            }
        });
        if (expired > 0 && count_sampled(expiry_logs_))
            spdlog::warn("message-router {}: {} message(s) held over {} ms for a peer that does not take "
                         "them: refused to their senders (\"{}\"; {} refused, {} acks dropped so far)",
                         context_.self.name, expired, held_.hold_timeout_ms(), kBusyRetry, refused_, acks_expired_);
        loop_.enable(pull_index_, held_.size() < kMaxHeld);
        return std::chrono::milliseconds(held_.size() > 0 ? kHeldRetryMs : kTickMs);
    }

    void on_turn(std::span<Incoming> batch) override {
        for (Incoming& incoming : batch) {
            ++received_;
            core_.route(incoming.envelope);
        }
        publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
    }

    void on_stop() override {
        // Held messages are before the durable point: their senders got no SERVER_ACK and
        // resend them.
        if (held_.size() > 0)
            spdlog::warn("message-router {}: stopped with {} messages held for a peer; "
                         "their senders resend them", context_.self.name, held_.size());
        pull_.close();
        for (auto& push : pushes_) push.close();
        if (group_push_) group_push_.close();
        for (auto& [name, dealer] : gateways_) dealer.close();
    }

private:
    void publish(metrics::Snapshot& s) const {
        const MessageRouterCounters& c = core_.counters();
        add_messages_in_out(s, static_cast<double>(received_),
                            static_cast<double>(c.routed + c.acks + c.group));
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"received", received_}, {"routed", c.routed}, {"acks", c.acks}, {"group", c.group},
            {"dropped", c.dropped}, {"malformed", loop_.dropped()}, {"peer_full", peer_full_},
            {"refused_after_hold", refused_}, {"acks_expired", acks_expired_}};
        add_counters(s, "message_router", rows);
    }

    // MessageRouterOutbox. A send never blocks the loop (other daemons may share its
    // thread): a message for a peer at its high-water mark is held, in order, and sent
    // before anything new is read (before_turn).
    void to_session(std::size_t shard, Envelope& envelope) override { forward(shard, envelope); }

    // connect() made the PUSH only if the topology has group-routers.
    bool has_group_router() const override { return static_cast<bool>(group_push_); }

    void to_group_router(Envelope& envelope) override { forward(pushes_.size(), envelope); }

    zmq::socket_ref peer_socket(std::size_t peer) {
        return peer < pushes_.size() ? zmq::socket_ref(pushes_[peer]) : zmq::socket_ref(group_push_);
    }

    void forward(std::size_t peer, const Envelope& envelope) {
        if (!held_.holding(peer) && send_envelope(peer_socket(peer), envelope, scratch_) == SendResult::ok) return;
        held_.hold(peer, envelope, context_.clock.monotonic_ms());
        if (count_sampled(peer_full_))
            spdlog::warn("message-router {}: {} is not accepting (down or full); holding its messages "
                         "for up to {} ms ({} times so far)",
                         context_.self.name, peer_name(peer), held_.hold_timeout_ms(), peer_full_);
    }

    void to_gateway(const std::string& gateway, const Envelope& refusal) {
        for (auto& [name, dealer] : gateways_) {
            if (name != gateway) continue;
            if (send_envelope(dealer, refusal, scratch_) == SendResult::ok) return;
            break;
        }
        // The gateway is down or full: its client's socket is gone or stalled, and the client
        // resends what has no SERVER_ACK when it connects again.
        ++refusals_lost_;
    }

    std::string peer_name(std::size_t peer) const {
        return peer < pushes_.size() ? "session shard " + shards_.instances()[peer]->name
                                     : std::string("the group-routers");
    }

    static constexpr long kTickMs = 100;
    static constexpr long kHeldRetryMs = 5;
    // A session shard restarted by its supervisor serves again within about a second; three
    // cover that with room, and are still short enough for a waiting client.
    static constexpr std::int64_t kHoldTimeoutMs = 3000;
    // One high-water mark's worth: beyond it the router stops reading its PULL.
    static constexpr std::size_t kMaxHeld = 10000;

    DaemonContext context_; // a copy: its references outlive the daemon (System owns them)
    topology::ShardMap shards_;
    MessageRouterCore core_;
    zmq::socket_t pull_;
    std::vector<zmq::socket_t> pushes_;
    zmq::socket_t group_push_; // connected to every group-router; empty if there is none
    std::string scratch_;
    std::string bound_pull_;
    std::uint64_t received_ = 0;
    std::uint64_t peer_full_ = 0;
    // Per peer (session shards in ShardMap order, then the group-routers): messages waiting
    // for room or a connection, at most kMaxHeld in all, each at most the hold timeout.
    HeldMessages held_;
    std::vector<std::pair<std::string, zmq::socket_t>> gateways_; // DEALER by gateway name
    Envelope refusal_;
    std::uint64_t refused_ = 0, acks_expired_ = 0, refusals_lost_ = 0, expiry_logs_ = 0;
    std::size_t pull_index_ = 0;
    Publisher publisher_{context_.board, context_.clock};
};

} // namespace

} // namespace vartalap::message_router

namespace vartalap {

std::unique_ptr<Daemon> make_message_router(const DaemonContext& context) {
    return std::make_unique<message_router::MessageRouterDaemon>(context);
}

} // namespace vartalap
