// session daemon: the adapter around SessionCore. It owns the sockets (a PULL fed by the
// message-routers and gateways; one DEALER per gateway with a `router` endpoint, ws-gateways
// and rest-gateways; per persistence shard, if any, a DEALER to its `router` and a PUSH to its
// `pull`; one DEALER per group-router and group daemon `router`, for the confirmations of the
// copies their outboxes sent) and the LMDB environment.
//
// Thread: bind() and connect() run on the controlling thread (they create the sockets and
// open the store); from start() on, the loop's hooks (LoopDaemon) and everything they call
// (the core, the outbox, every socket) run on the daemon's loop thread only (its own, or one
// it shares: `[system] threads`); request_stop() may be called from any thread; join() from
// the controlling thread.
//
// Loop (one line per duty): poll all sockets for at most min(next deadline, 100 ms) → drain
// each socket (bounded) into one batch → core.handle_batch (one LMDB commit, then sends) →
// periodic duties. Sends never block: a full DEALER is reported to the core, which keeps the
// message stored and retries later; a full PUSH drops the forwarded ack (counted by the core).
#include "common/store/background_sync.hpp"
#include "common/log.hpp"
#include "common/thread_name.hpp"
#include "common/wire/builders.hpp"
#include "common/zmq/socket.hpp"
#include "topology/catalog.hpp"
#include "topology/shard_map.hpp"
#include "daemons/session/session_daemon.hpp"
#include "daemons/transport.hpp"

#include "topology/topology.hpp"
#include "daemons/session/session_core.hpp"
#include "daemons/options.hpp"
#include "daemons/publisher.hpp"
#include "daemons/reload.hpp"
#include "daemons/loop_daemon.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vartalap::session {
namespace {

// The loop wakes at least this often: on_timer's period, and the bound on how long a stop
// request waits.
constexpr std::uint64_t kTickMs = 100;
// Counters are logged (at debug level) this often.
constexpr std::uint64_t kCounterLogPeriodMs = 60'000;

// One DEALER per gateway, found by gateway instance name; per persistence shard a DEALER
// (requests, replies) and a PUSH (acks). Owned by the daemon thread.
class DealerOutbox final : public Outbox {
public:
    struct PersistenceShard {
        std::string name;
        zmq::socket_t dealer;
        zmq::socket_t push;
    };

    void add(std::string gateway, zmq::socket_t socket) {
        index_.emplace(gateway, dealers_.size());
        names_.push_back(std::move(gateway));
        dealers_.push_back(std::move(socket));
    }
    std::vector<zmq::socket_t>& sockets() { return dealers_; }

    // Asks every gateway to announce its connections again (a `resync`): this shard starts
    // knowing nobody, e.g. after a crash and restart. Queued until connected.
    void request_resync(std::string_view self) {
        Envelope request;
        request.kind = Kind::resync;
        request.origin_gateway = std::string(self);
        for (zmq::socket_t& socket : dealers_) send_envelope(socket, request, scratch_);
    }
    std::vector<PersistenceShard>& persistence_shards() { return shards_; }
    void set_persistence(std::unique_ptr<topology::ShardMap> map, std::vector<PersistenceShard> shards) {
        shard_map_ = std::move(map);
        shards_ = std::move(shards);
    }

    bool deliver(std::string_view gateway, const Envelope& request) override {
        zmq::socket_t* socket = find(gateway);
        if (socket == nullptr) return false;
        return send_envelope(*socket, request, scratch_) == SendResult::ok;
    }

    void server_ack(std::string_view gateway, std::uint64_t connection, std::string_view id,
                    std::string_view sender) override {
        send_server_ack(gateway, connection, id, sender, Status::ok, {});
    }

    // A server_ack with a non-ok status: the message was not accepted, and why.
    void refuse(std::string_view gateway, std::uint64_t connection, std::string_view id,
                std::string_view sender, Status status, std::string_view reason) override {
        send_server_ack(gateway, connection, id, sender, status, reason);
    }

    void close_connection(std::string_view gateway, std::uint64_t connection,
                          std::string_view user) override {
        control_.kind = Kind::close_connection;
        control_.id.clear();
        control_.from.assign(user);
        control_.to.clear();
        control_.origin_gateway.assign(gateway);
        control_.connection = connection;
        control_.status = Status::ok;
        control_.error.clear();
        send_control(gateway);
    }

    bool knows_gateway(std::string_view gateway) const override {
        return index_.find(std::string(gateway)) != index_.end();
    }

    bool has_persistence() const override { return !shards_.empty(); }

    bool to_persistence(const Envelope& request) override {
        if (shards_.empty()) return false;
        PersistenceShard& shard = shards_[shard_map_->index_for(request.to)];
        return send_envelope(shard.dealer, request, scratch_) == SendResult::ok;
    }

    bool ack_to_persistence(std::string_view user, std::string_view sender,
                            std::span<const std::string> ids) override {
        if (shards_.empty()) return false;
        ack_.kind = Kind::ack;
        ack_.from.assign(user);
        ack_.to.assign(sender);
        ack_.ids.assign(ids.begin(), ids.end());
        PersistenceShard& shard = shards_[shard_map_->index_for(user)];
        return send_envelope(shard.push, ack_, scratch_) == SendResult::ok;
    }

    bool unacked_write_to_persistence(std::string_view user, std::string_view sender,
                                      std::string_view id,
                                      std::uint32_t max_unacked_writes) override {
        if (shards_.empty()) return false;
        ack_.kind = Kind::ack;
        ack_.from.assign(user);
        ack_.to.assign(sender);
        ack_.ids.assign(1, std::string(id));
        ack_.limit = max_unacked_writes; // counts the write instead of deleting
        PersistenceShard& shard = shards_[shard_map_->index_for(user)];
        const bool sent = send_envelope(shard.push, ack_, scratch_) == SendResult::ok;
        ack_.limit = 0;
        return sent;
    }

    // The owners of fan-out outboxes (group-routers, group daemons), by instance name.
    void add_confirm_target(std::string owner, zmq::socket_t socket) {
        confirm_targets_.emplace_back(std::move(owner), std::move(socket));
    }
    std::size_t confirm_targets() const { return confirm_targets_.size(); }

    bool confirm_copies(std::string_view owner, const Envelope& confirmation) override {
        // A handful of owners per deployment: a linear scan.
        for (auto& [name, socket] : confirm_targets_)
            if (name == owner) return send_envelope(socket, confirmation, scratch_) == SendResult::ok;
        return false;
    }

    std::uint64_t control_dropped() const { return control_dropped_; }

    void close_all() {
        for (zmq::socket_t& socket : dealers_) socket.close();
        for (auto& [name, socket] : confirm_targets_) socket.close();
        for (PersistenceShard& shard : shards_) {
            shard.dealer.close();
            shard.push.close();
        }
    }

private:
    zmq::socket_t* find(std::string_view gateway) {
        // Gateways are few (a handful per deployment): a linear scan beats hashing a copy.
        for (std::size_t i = 0; i < names_.size(); ++i)
            if (names_[i] == gateway) return &dealers_[i];
        return nullptr;
    }

    // server_ack and refuse differ only in status and reason (an ok ack has no reason).
    void send_server_ack(std::string_view gateway, std::uint64_t connection, std::string_view id,
                         std::string_view sender, Status status, std::string_view reason) {
        build_server_ack(control_, {.gateway = gateway,
                                    .connection = connection,
                                    .id = id,
                                    .sender = sender,
                                    .status = status,
                                    .error = reason});
        send_control(gateway);
    }

    void send_control(std::string_view gateway) {
        zmq::socket_t* socket = find(gateway);
        // Dropping is the stated policy for control messages at the HWM: a lost server_ack
        // makes the client resend (deduped, acked again); a lost close_connection leaves an
        // old socket open until the gateway notices it is dead.
        if (socket == nullptr || send_envelope(*socket, control_, scratch_) != SendResult::ok) {
            if (count_sampled(control_dropped_))
                spdlog::warn("session: {} to gateway '{}' dropped (queue full or unknown "
                             "gateway; {} dropped so far)",
                             to_string(control_.kind), gateway, control_dropped_);
        }
    }

    std::unordered_map<std::string, std::size_t> index_;
    std::vector<std::string> names_;
    std::vector<zmq::socket_t> dealers_;
    std::unique_ptr<topology::ShardMap> shard_map_; // user -> index into shards_
    std::vector<PersistenceShard> shards_;
    std::vector<std::pair<std::string, zmq::socket_t>> confirm_targets_;
    std::string scratch_; // reused encode buffer
    Envelope control_;    // reused server_ack / close_connection envelope
    Envelope ack_;        // reused ack forwarded to persistence
    std::uint64_t control_dropped_ = 0;
};

class SessionDaemon final : public LoopDaemon {
public:
    explicit SessionDaemon(const DaemonContext& context)
        : LoopDaemon(context.self.name, context.loop), context_(context) {
        const topology::DaemonSpec& self = context_.self;
        config_.ack_timeout_ms = uint_option(self, "ack_timeout_ms", config_.ack_timeout_ms);
        config_.send_timeout_ms = uint_option(self, "send_timeout_ms", config_.send_timeout_ms);
        config_.overload_retry_ms =
            uint_option(self, "overload_retry_ms", config_.overload_retry_ms);
        config_.retry_limit = static_cast<std::uint32_t>(
            uint_option(self, "retry_limit", config_.retry_limit, /*allow_zero=*/true));
        config_.window = uint_option(self, "window", config_.window);
        config_.max_in_flight = uint_option(self, "max_in_flight", config_.max_in_flight);
        config_.max_online_users = uint_option(self, "max_online_users", config_.max_online_users);
        config_.max_batch = uint_option(self, "max_batch", config_.max_batch);
        config_.max_batch_bytes = uint_option(self, "max_batch_bytes", config_.max_batch_bytes);
        config_.handoff_timeout_ms =
            uint_option(self, "handoff_timeout_ms", config_.handoff_timeout_ms);
        config_.handoff_refused_retry_ms =
            uint_option(self, "handoff_refused_retry_ms", config_.handoff_refused_retry_ms);
        config_.max_handoffs = uint_option(self, "max_handoffs", config_.max_handoffs);
        config_.fetch_timeout_ms = uint_option(self, "fetch_timeout_ms", config_.fetch_timeout_ms);
        config_.max_remote_bytes = uint_option(self, "max_remote_bytes", config_.max_remote_bytes);
        config_.delete_delay_ms =
            uint_option(self, "delete_delay_ms", config_.delete_delay_ms, /*allow_zero=*/true);
        config_.max_deferred_deletes =
            uint_option(self, "max_deferred_deletes", config_.max_deferred_deletes);
        config_.max_unacked_writes = static_cast<std::uint32_t>(
            uint_option(self, "max_unacked_writes", config_.max_unacked_writes));
        config_.dedupe_window_ms =
            uint_option(self, "dedupe_window_seconds", config_.dedupe_window_ms / 1000) * 1000;
        // LMDB map: address space reserved up front, disk used only as data grows. When it
        // is full, new messages are refused (see SessionCore) until acks free space.
        env_options_.map_size = uint_option(self, "map_size_mb", 1024) << 20;
        // "fsync" (default): the SERVER_ACK follows a synced commit, so an accepted message
        // survives power loss. "process": commits without a sync (MDB_NOSYNC) and a sync
        // every sync_interval_ms: it survives the crash of any process, and a power loss
        // may lose the last interval's messages.
        const std::string durability = self.option_string("durability", "fsync");
        const auto parsed = lmdb::parse_durability(durability);
        if (!parsed)
            throw std::invalid_argument(self.name + ": option durability must be \"fsync\" or "
                                        "\"process\", not \"" + durability + "\"");
        durability_ = *parsed;
        env_options_.no_sync = durability_ == lmdb::Durability::process;
        sync_.emplace(uint_option(self, "sync_interval_ms", 1000));
    }

    ~SessionDaemon() override {
        request_stop();
        join();
    }

    void bind() override {
        pull_ = bind_socket(context_, zmq::socket_type::pull, "pull");
        bound_["pull"] = last_endpoint(pull_);
    }

    void connect() override {
        // Deliveries go to ws-gateways; server_acks (and refusals) to whichever gateway the
        // sender used, rest-gateways included (a REST send waits for them). A gateway without
        // a `router` endpoint cannot be reached and is skipped.
        auto gateways = topology::peers(context_.topology, context_.self, "ws-gateway", "router");
        const auto rest_gateways = topology::peers(context_.topology, context_.self, "rest-gateway", "router");
        gateways.insert(gateways.end(), rest_gateways.begin(), rest_gateways.end());
        for (const topology::Peer& gateway : gateways) {
            if (gateway.endpoint.empty()) continue;
            outbox_.add(gateway.daemon->name, connected(zmq::socket_type::dealer, gateway));
        }
        // The offline path: per persistence shard, requests (DEALER) and acks (PUSH).
        const auto requests = topology::peers(context_.topology, context_.self, "persistence", "router");
        const auto acks = topology::peers(context_.topology, context_.self, "persistence", "pull");
        if (!requests.empty()) {
            auto map = std::make_unique<topology::ShardMap>(context_.topology, "persistence");
            std::vector<DealerOutbox::PersistenceShard> shards; // in ShardMap order: i is shard i
            for (std::size_t i = 0; i < requests.size(); ++i)
                shards.push_back({requests[i].daemon->name,
                                  connected(zmq::socket_type::dealer, requests[i]),
                                  connected(zmq::socket_type::push, acks[i])});
            outbox_.set_persistence(std::move(map), std::move(shards));
        }
        // Confirmations (copies_stored) of the group copies and group events this shard
        // commits, to the group-router or group daemon whose outbox sent them.
        auto owners = topology::peers(context_.topology, context_.self, "group-router", "router");
        const auto groups = topology::peers(context_.topology, context_.self, "group", "router");
        owners.insert(owners.end(), groups.begin(), groups.end());
        for (const topology::Peer& owner : owners) {
            if (owner.endpoint.empty()) continue;
            outbox_.add_confirm_target(owner.daemon->name, connected(zmq::socket_type::dealer, owner));
        }
        env_ = std::make_unique<lmdb::Env>(context_.data_dir, env_options_);
        if (durability_ == lmdb::Durability::process)
            background_sync_ = std::make_unique<lmdb::BackgroundSync>(*env_, thread_name(context_.self.name, "-sync"));
        core_ = std::make_unique<SessionCore>(*env_, outbox_, context_.clock, config_);
        spdlog::info("{}: store {} opened ({} durability), {} gateway(s), {} persistence "
                     "shard(s), window {}, ack timeout {} ms, retry limit {}",
                     context_.self.name, context_.data_dir.string(), lmdb::to_string(durability_),
                     outbox_.sockets().size(),
                     outbox_.persistence_shards().size(), config_.window, config_.ack_timeout_ms,
                     config_.retry_limit);
    }

    std::map<std::string, std::string> bound_endpoints() const override { return bound_; }

    void reload(const topology::DaemonSpec& fresh) override { pending_reload_.post(fresh); }

protected:
private:
    // A socket connected to `peer` (its endpoint of the link). The routing id is this
    // instance's name: ROUTER peers answer to it, and their logs name us.
    zmq::socket_t connected(zmq::socket_type type, const topology::Peer& peer) {
        SocketOptions options;
        if (type == zmq::socket_type::dealer) options.routing_id = context_.self.name;
        zmq::socket_t socket = make_socket(context_.zmq, type, options);
        connect_socket(context_, socket, peer);
        return socket;
    }

    void on_start() override {
        // Gateways' ROUTERs answer only deliver requests, persistence's only offline_store
        // and fetch; everything else arrives on PULL. One batch per turn from all of them.
        loop_.set_max_batch_bytes(config_.max_batch_bytes);
        loop_.add({.socket = pull_, .max_batch = config_.max_batch,
                   .accepted = PollLoop::kinds({Kind::deliver, Kind::ack, Kind::connect, Kind::disconnect})});
        for (zmq::socket_t& dealer : outbox_.sockets())
            loop_.add({.socket = dealer, .max_batch = config_.max_batch,
                       .accepted = PollLoop::kinds({Kind::deliver_result})});
        for (DealerOutbox::PersistenceShard& shard : outbox_.persistence_shards())
            loop_.add({.socket = shard.dealer, .max_batch = config_.max_batch,
                       .accepted = PollLoop::kinds({Kind::offline_stored, Kind::fetched})});

        batch_.reserve(config_.max_batch);
        counter_log_.start(context_.clock.monotonic_ms());
        sync_->start(context_.clock.monotonic_ms());
        outbox_.request_resync(context_.self.name);
    }

    std::chrono::milliseconds before_turn() override {
        std::uint64_t timeout = kTickMs;
        if (auto deadline = core_->next_deadline_ms()) {
            const std::uint64_t now = context_.clock.monotonic_ms();
            timeout = *deadline <= now ? 0 : std::min(kTickMs, *deadline - now);
        }
        return std::chrono::milliseconds(static_cast<long>(timeout));
    }

    void on_turn(std::span<Incoming> turn) override {
        batch_.clear();
        for (Incoming& incoming : turn) batch_.push_back(std::move(incoming.envelope));
        if (!batch_.empty()) core_->handle_batch(batch_);
        periodic_duties();
    }

    void on_stop() override {
        // Shutdown: what was received has been committed (the deferred deletions now; they
        // need not be: a crash before this only redelivers); what is still queued in the PULL
        // socket was never acknowledged to anyone (before the durable point), so dropping it
        // is within the contract. Messages whose handoff is unconfirmed are still stored here
        // (the next run's scan offers them again; persistence dedupes), and fetched ones are
        // still in persistence. Close with the bounded LINGER set by make_socket.
        pull_.close();
        outbox_.close_all();
        core_->flush();
        if (background_sync_) background_sync_->stop_and_sync();
        log_counters("stopped", spdlog::level::info);
    }

    // Every periodic duty of the session, with its period:
    //   - core.on_timer(): ack/send timeouts, retries, parking, back-off, and with
    //     persistence handoff re-sends, fetch timeouts and the bounded handoff scan — every
    //     loop turn, which is at least every kTickMs (100 ms) and at the core's next deadline;
    //   - counters to the log — every kCounterLogPeriodMs (60 s), debug level;
    //   - metrics to the ops thread — every metrics::kPublishPeriodMs (1 s);
    //   - a SIGHUP's new limits — when posted;
    //   - with "process" durability, an LMDB sync — every sync_interval_ms (1 s), off the loop.
    void periodic_duties() {
        core_->on_timer();
        if (counter_log_.due(context_.clock.monotonic_ms())) log_counters("counters", spdlog::level::debug);
        publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
        if (auto fresh = pending_reload_.take()) apply_reload(*fresh);
        // "process" durability: the commits since the last sync reach the disk, synced on
        // the store's own thread (background_sync.hpp): the loop never waits for the disk.
        if (background_sync_ && sync_->due(context_.clock.monotonic_ms())) background_sync_->request();
    }

    void apply_reload(const topology::DaemonSpec& fresh) {
        SessionLimits limits = core_->limits();
        LimitChanges changes;
        changes.apply("ack_timeout_ms", limits.ack_timeout_ms,
                      uint_option(fresh, "ack_timeout_ms", SessionConfig{}.ack_timeout_ms));
        changes.apply("retry_limit", limits.retry_limit,
                      static_cast<std::uint32_t>(uint_option(fresh, "retry_limit",
                                                             SessionConfig{}.retry_limit, true)));
        changes.apply("window", limits.window, uint_option(fresh, "window", SessionConfig{}.window));
        core_->set_limits(limits);
        changes.log(context_.self.name);
    }

    void publish(metrics::Snapshot& s) {
        const SessionCounters& c = core_->counters();
        add_messages_in_out(s, static_cast<double>(c.stored), static_cast<double>(c.delivered));
        s.counter("vartalap_acks_total", "messages acked by their recipient", c.acked);
        s.counter("vartalap_retries_total", "deliveries retried after a timeout", c.retried);
        s.counter("vartalap_offline_handoffs_total", "messages handed to persistence (confirmed)",
                  c.handed_off);
        s.gauge("vartalap_connections", "users online on this shard",
                static_cast<double>(core_->online_users()));
        add_queue_depth(s, "in_flight", static_cast<double>(core_->in_flight()));
        add_queue_depth(s, "outstanding_handoffs", static_cast<double>(core_->outstanding_handoffs()));
        add_lmdb_use(s, "session", *env_, background_sync_.get());
        add_lmdb_use(s, "session-acked-ids", core_->acked_ids().env(), &core_->acked_ids().background());
        add_store_full_refusals(s, c.map_full_refusals, c.disk_full_refusals);
        s.histogram("vartalap_delivery_latency_seconds",
                    "taken into flight (for an online recipient: the commit) -> written to the "
                    "client's socket",
                    core_->latency().delivery);
        s.histogram("vartalap_ack_latency_seconds",
                    "taken into flight (for an online recipient: the commit) -> client ack",
                    core_->latency().ack);
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"stored", c.stored}, {"delivered", c.delivered}, {"acked", c.acked},
            {"retried", c.retried}, {"parked", c.parked}, {"duplicates", c.duplicates},
            {"map_full_refusals", c.map_full_refusals}, {"disk_full_refusals", c.disk_full_refusals},
            {"ephemeral_dropped", c.ephemeral_dropped},
            {"overloaded", c.overloaded}, {"send_timeouts", c.send_timeouts},
            {"invalid", c.invalid}, {"stale_results", c.stale_results},
            {"in_flight_limit_hits", c.in_flight_limit_hits},
            {"user_limit_refusals", c.user_limit_refusals}, {"connects", c.connects}, {"stale_connects", c.stale_connects},
            {"disconnects", c.disconnects}, {"refusals_sent", c.refusals_sent},
            {"quota_refusals", c.quota_refusals},
            {"commits", c.commits}, {"deletes_deferred", c.deletes_deferred},
            {"handoffs_sent", c.handoffs_sent}, {"handoff_resends", c.handoff_resends},
            {"handed_off", c.handed_off}, {"handoff_refusals", c.handoff_refusals},
            {"handoffs_deferred", c.handoffs_deferred}, {"acks_forwarded", c.acks_forwarded},
            {"acks_forward_dropped", c.acks_forward_dropped}, {"fetches", c.fetches},
            {"fetched_items", c.fetched_items}, {"remote_parked", c.remote_parked},
            {"ack_waits", c.ack_waits}, {"unacked_writes", c.unacked_writes},
            {"unacked_delivered", c.unacked_delivered}, {"acked_ids_pruned", c.acked_ids_pruned},
            {"acked_ids_lost", core_->acked_ids().lost()},
            {"copies_confirmed", c.copies_confirmed}, {"confirmations_dropped", c.confirmations_dropped},
            {"dropped", loop_.dropped()}, {"control_dropped", outbox_.control_dropped()}};
        add_counters(s, "session", rows);
    }

    void log_counters(const char* what, spdlog::level::level_enum level) {
        if (!spdlog::should_log(level)) return;
        const SessionCounters& c = core_->counters();
        spdlog::log(level,
                    "{}: {}: stored {} delivered {} acked {} retried {} parked {} duplicates {} "
                    "map_full_refusals {} disk_full_refusals {} refusals_sent {} overloaded {} "
                    "send_timeouts {} "
                    "invalid {} dropped {} control_dropped {} online {} in_flight {} "
                    "handoffs_sent {} handoff_resends {} handed_off {} handoff_refusals {} "
                    "handoffs_deferred {} acks_forwarded {} acks_forward_dropped {} fetches {} "
                    "fetched_items {} remote_parked {} outstanding_handoffs {} remote_bytes {}",
                    context_.self.name, what, c.stored, c.delivered, c.acked, c.retried,
                    c.parked, c.duplicates, c.map_full_refusals, c.disk_full_refusals, c.refusals_sent, c.overloaded,
                    c.send_timeouts, c.invalid, loop_.dropped(), outbox_.control_dropped(),
                    core_->online_users(), core_->in_flight(), c.handoffs_sent,
                    c.handoff_resends, c.handed_off, c.handoff_refusals, c.handoffs_deferred,
                    c.acks_forwarded, c.acks_forward_dropped, c.fetches, c.fetched_items,
                    c.remote_parked, core_->outstanding_handoffs(), core_->remote_bytes());
    }

    DaemonContext context_; // a copy: the caller's context may be a temporary
    SessionConfig config_;
    lmdb::EnvOptions env_options_;
    lmdb::Durability durability_ = lmdb::Durability::fsync;
    std::optional<Periodic> sync_; // set in the constructor (its period is an option)

    zmq::socket_t pull_;
    DealerOutbox outbox_;
    std::unique_ptr<lmdb::Env> env_;
    std::unique_ptr<lmdb::BackgroundSync> background_sync_; // process durability only; before env_ dies
    std::unique_ptr<SessionCore> core_;
    std::map<std::string, std::string> bound_;

    Periodic counter_log_{kCounterLogPeriodMs};
    Publisher publisher_{context_.board, context_.clock};
    PendingReload pending_reload_;
    std::vector<Envelope> batch_;
};

} // namespace

} // namespace vartalap::session

namespace vartalap {

std::unique_ptr<Daemon> make_session(const DaemonContext& context) {
    return std::make_unique<session::SessionDaemon>(context);
}

} // namespace vartalap
