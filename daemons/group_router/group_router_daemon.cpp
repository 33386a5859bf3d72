// group-router daemon: the adapter around GroupRouterCore. It owns the PULL the
// message-routers push group traffic into, the ROUTER the sessions send their
// confirmations (copies_stored) to, one PUSH per session shard (copies), a DEALER to
// the group daemon (operations), one DEALER per gateway `router` (SERVER_ACKs and
// refusals), its outbox (LMDB at its data_dir) and the read-only view of the group store
// (<topology data_dir>/<group instance on this host>).
//
// Thread: bind() and connect() run on the controlling thread; from start() on, the loop's
// hooks and everything they call (the core, every socket, the store) run on the daemon's
// loop only (LoopDaemon); request_stop() from any thread.
//
// Loop (one line per duty): poll the PULL (only while the core accepts and the group store
// is open), the confirmations ROUTER (always: the confirmations are what empties a full
// outbox) and the group DEALER (at most 100 ms, 20 ms while copies wait) → drain the PULL
// into one batch → core.handle_batch (one commit, then acks and sends) → confirmations →
// replies of the group daemon → core.on_timer (resends, deletions, operation expiry).
#include "daemons/group_router/group_router_daemon.hpp"
#include "daemons/transport.hpp"

#include "common/log.hpp"
#include "common/zmq/socket.hpp"
#include "common/store/group_store.hpp"
#include "daemons/group_router/group_router_core.hpp"
#include "daemons/options.hpp"
#include "daemons/publisher.hpp"
#include "daemons/loop_daemon.hpp"
#include "topology/catalog.hpp"
#include "topology/shard_map.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace vartalap::group_router {
namespace {

constexpr std::uint64_t kTickMs = 100;       // loop wake-up, bound on stop latency
constexpr std::uint64_t kBusyTickMs = 20;    // while copies wait for a busy shard
constexpr std::size_t kMaxBatch = 1024;      // messages per turn: one commit amortised over them
constexpr std::size_t kDrainReplies = 256;
constexpr std::size_t kDrainConfirmations = 1024;

class SocketLinks final : public GroupRouterOutbox {
public:
    std::vector<zmq::socket_t> sessions;
    zmq::socket_t group;
    std::vector<std::pair<std::string, zmq::socket_t>> gateways; // by gateway instance name

    bool to_session(std::size_t shard, const Envelope& copy) override {
        return send_envelope(sessions[shard], copy, scratch_) == SendResult::ok;
    }
    bool to_group(const Envelope& operation) override {
        return send_envelope(group, operation, scratch_) == SendResult::ok;
    }
    void to_gateway(std::string_view gateway, const Envelope& ack) override {
        // Gateways are few: a linear scan beats hashing a copy of the name.
        for (auto& [name, socket] : gateways) {
            if (name != gateway) continue;
            if (send_envelope(socket, ack, scratch_) == SendResult::ok) return;
            break;
        }
        // Dropping is the stated policy (as the session's): a lost SERVER_ACK makes the client
        // resend, which is deduped by the sessions; a lost refusal leaves the client waiting
        // for an ack that never comes, and it resends (and is refused again).
        if (count_sampled(dropped_))
            spdlog::warn("group-router: server_ack to gateway '{}' dropped (queue full or unknown "
                         "gateway; {} so far)", gateway, dropped_);
    }
    void close_all() {
        for (auto& socket : sessions) socket.close();
        group.close();
        for (auto& [name, socket] : gateways) socket.close();
    }

private:
    std::string scratch_;
    std::uint64_t dropped_ = 0;
};

class GroupRouterDaemon final : public LoopDaemon {
public:
    explicit GroupRouterDaemon(const DaemonContext& context)
        : LoopDaemon(context.self.name, context.loop), context_(context),
          sessions_(context.topology, "session") {
        const auto& self = context_.self;
        config_.max_pending_copies = static_cast<std::size_t>(
            positive_or(self.option_int("max_pending_copies", static_cast<std::int64_t>(config_.max_pending_copies)),
                     config_.max_pending_copies));
        config_.outbox.confirm_to = self.name; // sessions confirm copies to this instance
        config_.outbox.confirm_timeout_ms =
            uint_option(self, "confirm_timeout_ms", config_.outbox.confirm_timeout_ms);
        config_.outbox.max_unconfirmed_copies =
            uint_option(self, "max_unconfirmed_copies", config_.outbox.max_unconfirmed_copies);
        env_options_.map_size = static_cast<std::size_t>(positive_or(self.option_int("map_size_mb", 1024), 1024)) << 20;
        // The group store of this host: a group-router reads membership straight from it.
        const topology::DaemonSpec* store = nullptr;
        for (const auto* group : context_.topology.of_kind("group"))
            if (group->host == self.host && store == nullptr) store = group;
        if (store == nullptr)
            throw std::invalid_argument(self.name + ": no group daemon on host '" + self.host +
                                        "': a group-router reads the group store of its own host");
        group_name_ = store->name;
        store_directory_ = std::filesystem::path(context_.topology.data_dir) / store->name;
    }

    ~GroupRouterDaemon() override {
        request_stop();
        join();
    }

    void bind() override {
        env_ = group_store::shared_env(context_.data_dir, env_options_);
        membership_ = std::make_unique<group_store::Reader>(store_directory_, context_.clock);
        core_ = std::make_unique<GroupRouterCore>(
            *env_, *membership_, links_, sessions_.instances().size(),
            [this](std::string_view user) { return sessions_.index_for(user); }, context_.clock, config_);
        pull_ = bind_socket(context_, zmq::socket_type::pull, "pull");
        bound_["pull"] = last_endpoint(pull_);
        router_ = bind_socket(context_, zmq::socket_type::router, "router",
                              "sessions confirm the copies they stored there");
        bound_["router"] = last_endpoint(router_);
    }

    void connect() override {
        // In ShardMap order (sessions_): push i reaches shard i.
        for (const auto& session : topology::peers(context_.topology, context_.self, "session", "pull")) {
            auto push = make_socket(context_.zmq, zmq::socket_type::push);
            // A shard that is not connected refuses instead of queueing in memory: the copy
            // stays in the outbox and is retried (see fanout_outbox.hpp).
            push.set(zmq::sockopt::immediate, 1);
            connect_socket(context_, push, session);
            links_.sessions.push_back(std::move(push));
        }
        SocketOptions options;
        options.routing_id = context_.self.name; // ROUTERs answer and address us by name
        links_.group = make_socket(context_.zmq, zmq::socket_type::dealer, options);
        for (const auto& group : topology::peers(context_.topology, context_.self, "group", "router"))
            if (group.daemon->name == group_name_) connect_socket(context_, links_.group, group);
        auto add_gateways = [&](const std::vector<topology::Peer>& gateways) {
            for (const auto& gateway : gateways) {
                if (gateway.endpoint.empty()) continue;
                auto dealer = make_socket(context_.zmq, zmq::socket_type::dealer, options);
                connect_socket(context_, dealer, gateway);
                links_.gateways.emplace_back(gateway.daemon->name, std::move(dealer));
            }
        };
        add_gateways(topology::peers(context_.topology, context_.self, "ws-gateway", "router"));
        add_gateways(topology::peers(context_.topology, context_.self, "rest-gateway", "router"));
        spdlog::info("{}: outbox {} ({} copies to resend), group store {}, {} session shard(s), {} gateway(s)",
                     context_.self.name, context_.data_dir.string(), core_->outbox().pending_copies(),
                     store_directory_.string(), links_.sessions.size(), links_.gateways.size());
    }

    std::map<std::string, std::string> bound_endpoints() const override { return bound_; }

protected:
    void on_start() override {
        batch_.reserve(kMaxBatch);
        messages_ =
            loop_.add({.socket = pull_, .max_batch = kMaxBatch, .accepted = PollLoop::kinds({Kind::group_message})});
        loop_.add({.socket = router_, .router = true, .max_batch = kDrainConfirmations,
                   .accepted = PollLoop::kinds({Kind::copies_stored})});
        loop_.add({.socket = links_.group, .max_batch = kDrainReplies, .accepted = PollLoop::kinds({Kind::reply})});
    }

    std::chrono::milliseconds before_turn() override {
        // Read new messages only while they can be handled: the store is open and the
        // outbox has room. Otherwise they wait in ZeroMQ (before the durable point) and
        // the message-routers feel the backpressure.
        loop_.enable(messages_, core_->accepting() && membership_->ready());
        const auto timeout = core_->outbox().has_pending() ? kBusyTickMs : kTickMs;
        return std::chrono::milliseconds(static_cast<long>(timeout));
    }

    void on_turn(std::span<Incoming> turn) override {
        // Group messages first (one commit for the batch), then the sessions' confirmations
        // and the group daemon's replies.
        batch_.clear();
        for (Incoming& incoming : turn)
            if (incoming.envelope.kind == Kind::group_message) batch_.push_back(std::move(incoming.envelope));
        if (!batch_.empty()) core_->handle_batch(batch_);
        for (Incoming& incoming : turn) {
            if (incoming.envelope.kind == Kind::copies_stored) core_->on_copies_stored(incoming.envelope);
            if (incoming.envelope.kind == Kind::reply) core_->on_reply(incoming.envelope);
        }
        periodic_duties();
    }

    void on_stop() override {
        // What is committed stays in the outbox for the next start; what is still queued in
        // the PULL socket was never acknowledged (before the durable point).
        pull_.close();
        router_.close();
        links_.close_all();
        log_counters("stopped", spdlog::level::info);
    }

    // Every periodic duty of the group-router, with its period (each loop turn: at most
    // kTickMs, kBusyTickMs while copies wait for a busy shard):
    //   - core.on_timer(): send pending copies and those whose confirmation is overdue
    //     (confirm_timeout_ms), delete confirmed ones (deletion_delay_ms after the
    //     confirmation when no batch carried the deletion), expire unanswered operations;
    //   - counters to the log every 60 s (debug level);
    //   - metrics to the ops thread every metrics::kPublishPeriodMs (1 s).
    void periodic_duties() {
        core_->on_timer();
        if (counter_log_.due(context_.clock.monotonic_ms())) log_counters("counters", spdlog::level::debug);
        publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
    }

    void publish(metrics::Snapshot& s) const {
        const auto& c = core_->counters();
        add_messages_in_out(s, static_cast<double>(c.messages), static_cast<double>(c.copies_sent));
        add_queue_depth(s, "pending_copies", static_cast<double>(core_->outbox().pending_copies()));
        add_queue_depth(s, "unconfirmed_copies", static_cast<double>(core_->outbox().unconfirmed_copies()));
        add_queue_depth(s, "pending_operations", static_cast<double>(core_->pending_operations()));
        add_lmdb_use(s, "outbox", *env_);
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"messages", c.messages}, {"copies", c.copies}, {"copies_sent", c.copies_sent},
            {"copies_confirmed", c.copies_confirmed}, {"confirmations", c.confirmations},
            {"copies_resent", core_->outbox().resent_copies()},
            {"ephemeral_copies", c.ephemeral_copies}, {"not_member", c.not_member},
            {"receipts", c.receipts}, {"receipts_to_group", c.receipts_to_group},
            {"operations", c.operations}, {"operations_refused", c.operations_refused},
            {"operations_lost", c.operations_lost}, {"store_unavailable", c.store_unavailable},
            {"store_full", c.store_full}, {"invalid", c.invalid}, {"dropped", loop_.dropped()}};
        add_counters(s, "group_router", rows);
    }

    void log_counters(const char* what, spdlog::level::level_enum level) {
        if (!spdlog::should_log(level)) return;
        const auto& c = core_->counters();
        spdlog::log(level,
                    "{}: {}: messages {} copies {} sent {} confirmed {} resent {} ephemeral {} not_member {} receipts {} "
                    "receipts_to_group {} operations {} refused {} lost {} store_unavailable {} "
                    "store_full {} invalid {} dropped {} pending_copies {} unconfirmed {}",
                    context_.self.name, what, c.messages, c.copies, c.copies_sent, c.copies_confirmed,
                    core_->outbox().resent_copies(), c.ephemeral_copies,
                    c.not_member, c.receipts, c.receipts_to_group, c.operations, c.operations_refused,
                    c.operations_lost, c.store_unavailable, c.store_full, c.invalid, loop_.dropped(),
                    core_->outbox().pending_copies(), core_->outbox().unconfirmed_copies());
    }

    DaemonContext context_; // a copy: its references outlive the daemon (System owns them)
    topology::ShardMap sessions_;
    GroupRouterConfig config_;
    lmdb::EnvOptions env_options_;
    std::string group_name_;
    std::filesystem::path store_directory_;
    std::shared_ptr<lmdb::Env> env_;
    std::unique_ptr<group_store::Reader> membership_;
    SocketLinks links_;
    std::unique_ptr<GroupRouterCore> core_;
    zmq::socket_t pull_;
    zmq::socket_t router_; // copies_stored from the sessions
    std::map<std::string, std::string> bound_;
    Periodic counter_log_{60'000}; // counters to the log, debug level
    Publisher publisher_{context_.board, context_.clock};
    std::vector<Envelope> batch_;
    std::size_t messages_ = 0;
};

} // namespace

} // namespace vartalap::group_router

namespace vartalap {

std::unique_ptr<Daemon> make_group_router(const DaemonContext& context) {
    return std::make_unique<group_router::GroupRouterDaemon>(context);
}

} // namespace vartalap
