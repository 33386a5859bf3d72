// message-router daemon: the PULL socket gateways push client messages to, one PUSH per
// session shard and one PUSH to every group-router, around MessageRouterCore.
// Thread: the message-router's loop thread (LoopDaemon hooks); the core runs on it too.
#include "daemons/message_router/message_router_core.hpp"

#include "common/log.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/message_router/message_router_daemon.hpp"
#include "daemons/publisher.hpp"
#include "daemons/loop_daemon.hpp"
#include "topology/catalog.hpp"

#include <deque>
#include <vector>

namespace vartalap::message_router {

namespace {

class MessageRouterDaemon final : public LoopDaemon, private MessageRouterOutbox {
public:
    explicit MessageRouterDaemon(const DaemonContext& context)
        : LoopDaemon(context.self.name, context.loop), context_(context),
          shards_(context.topology, "session"), core_(shards_, *this) {}

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
        held_.resize(pushes_.size() + 1); // the last one holds for the group-routers
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
    void on_start() override {
        pull_index_ = loop_.add({.socket = pull_, .max_batch = 1024}); // bounded: the stop flag is read often
    }

    std::chrono::milliseconds before_turn() override {
        // Messages held for a full peer go first; until they are gone the PULL is not read,
        // so the gateways feel the backpressure and nothing more is held.
        const bool holding = send_held();
        loop_.enable(pull_index_, !holding);
        return std::chrono::milliseconds(holding ? kHeldRetryMs : kTickMs);
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
        std::size_t dropped = 0;
        for (auto& queue : held_) dropped += queue.size();
        if (dropped > 0)
            spdlog::warn("message-router {}: stopped with {} messages held for a full peer; "
                         "their senders resend them", context_.self.name, dropped);
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
            {"dropped", c.dropped}, {"malformed", loop_.dropped()}, {"peer_full", peer_full_}};
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
        std::deque<Envelope>& held = held_[peer];
        if (held.empty() && send_envelope(peer_socket(peer), envelope, scratch_) == SendResult::ok) return;
        held.push_back(envelope);
        if (held.size() == 1 && count_sampled(peer_full_))
            spdlog::warn("message-router {}: {} is not accepting; holding its messages and not "
                         "reading new ones ({} times so far)",
                         context_.self.name, peer_name(peer), peer_full_);
    }

    // Sends what is held, in order, until a peer is full again; true if anything is still held.
    bool send_held() {
        bool holding = false;
        for (std::size_t peer = 0; peer < held_.size(); ++peer) {
            std::deque<Envelope>& held = held_[peer];
            while (!held.empty() && send_envelope(peer_socket(peer), held.front(), scratch_) == SendResult::ok)
                held.pop_front();
            holding = holding || !held.empty();
        }
        return holding;
    }

    std::string peer_name(std::size_t peer) const {
        return peer < pushes_.size() ? "session shard " + shards_.instances()[peer]->name
                                     : std::string("the group-routers");
    }

    static constexpr long kTickMs = 100;
    static constexpr long kHeldRetryMs = 5;

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
    // for room, at most one turn's batch in all.
    std::vector<std::deque<Envelope>> held_;
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
