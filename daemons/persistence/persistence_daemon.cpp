// persistence daemon: the adapter around PersistenceCore. It owns the sockets (a ROUTER for
// requests from sessions and rest-gateways, a PULL for acks from sessions, one PUSH to the
// push daemons if the topology has any, a DEALER to the profile daemons for the short TTL)
// and the LMDB environment.
//
// Thread: bind() and connect() run on the controlling thread (they create the sockets and
// open the store); from start() on, the loop's hooks (LoopDaemon) and everything they call
// (the core, the outbox, every socket) run on the daemon's loop thread only (its own, or one
// it shares: `[system] threads`); request_stop() may be called from any thread; join() from
// the controlling thread.
//
// Loop (one line per duty): poll both sockets for at most 100 ms → drain each (bounded) into
// one batch → core.handle_batch (one LMDB commit, then replies and notifications) →
// periodic duties. Sends never block: a reply to a peer at its high-water mark is dropped
// (the requester times out and asks again), a notification at the push HWM is dropped.
#include "daemons/persistence/persistence_daemon.hpp"
#include "daemons/transport.hpp"

#include "common/store/lmdb.hpp"
#include "common/log.hpp"
#include "common/thread_name.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/persistence/persistence_core.hpp"
#include "daemons/options.hpp"
#include "daemons/publisher.hpp"
#include "daemons/reload.hpp"
#include "daemons/loop_daemon.hpp"
#include "topology/catalog.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <vector>

namespace vartalap::persistence {

std::unique_ptr<Daemon> make_persistence(const DaemonContext& context);

namespace {

// The loop wakes at least this often: on_timer's period, and the bound on how long a stop
// request waits.
constexpr int kTickMs = 100;
// Counters are logged (at debug level) this often.
constexpr std::uint64_t kCounterLogPeriodMs = 60'000;

// Replies over the ROUTER, notifications over the PUSH. Owned by the daemon thread.
class SocketOutbox final : public PersistenceOutbox {
public:
    zmq::socket_t router;
    zmq::socket_t push; // connected to every push daemon's `pull`; unused if there are none
    bool push_configured = false;

    void reply(std::string_view reply_to, const Envelope& reply) override {
        const SendResult result = send_envelope(router, reply, scratch_, reply_to);
        if (result == SendResult::ok) return;
        // The stated policy: drop, count, log the first and every 1000th. The requester
        // times out and asks again; offline_store and fetch are idempotent.
        if (count_sampled(replies_dropped_))
            spdlog::warn("persistence: {} reply dropped ({}; {} dropped so far)",
                         to_string(reply.kind),
                         result == SendResult::unroutable ? "peer gone" : "peer queue full",
                         replies_dropped_);
    }

    bool has_push() const override { return push_configured; }

    zmq::socket_t profile; // DEALER to every profile daemon's `router` (the short TTL)
    bool profile_configured = false;
    bool has_profile() const override { return profile_configured; }
    bool to_profile(const Envelope& request) override {
        return profile_configured && send_envelope(profile, request, scratch_) == SendResult::ok;
    }

    bool notify(const Envelope& notification) override {
        return push_configured && send_envelope(push, notification, scratch_) == SendResult::ok;
    }

    std::uint64_t replies_dropped() const { return replies_dropped_; }

private:
    std::string scratch_; // reused encode buffer
    std::uint64_t replies_dropped_ = 0;
};

class PersistenceDaemon final : public LoopDaemon {
public:
    explicit PersistenceDaemon(const DaemonContext& context)
        : LoopDaemon(context.self.name, context.loop), context_(context) {
        const topology::DaemonSpec& self = context_.self;
        const std::string durability = self.option_string("durability", "fsync");
        const auto parsed = parse_durability(durability);
        if (!parsed)
            throw std::invalid_argument(self.name + ": option durability must be \"fsync\" or "
                                        "\"process\", not \"" + durability + "\"");
        config_.durability = *parsed;
        config_.sync_interval_ms = uint_option(self, "sync_interval_ms", config_.sync_interval_ms);
        config_.ttl_seconds = uint_option(self, "ttl_seconds", config_.ttl_seconds);
        config_.map_size_mb = uint_option(self, "map_size_mb", config_.map_size_mb);
        config_.grow_by_mb =
            uint_option(self, "grow_by_mb", config_.grow_by_mb, /*allow_zero=*/true);
        config_.max_map_size_mb = uint_option(self, "max_map_size_mb", config_.map_size_mb);
        config_.fetch_limit_max = fetch_limit_option(self, "fetch_limit_max", config_.fetch_limit_max);
        config_.rest_default_limit =
            fetch_limit_option(self, "rest_default_limit", config_.rest_default_limit);
        config_.expiry_batch = uint_option(self, "expiry_batch", config_.expiry_batch);
        config_.dedupe_window_ms =
            uint_option(self, "dedupe_window_seconds", config_.dedupe_window_ms / 1000) * 1000;
        config_.max_payload_bytes =
            uint_option(self, "max_payload_bytes", config_.max_payload_bytes);
        config_.short_ttl_seconds =
            uint_option(self, "short_ttl_seconds", config_.short_ttl_seconds, true);
        config_.max_messages_per_recipient = uint_option(
            self, "max_messages_per_recipient", config_.max_messages_per_recipient, true);
        config_.max_bytes_per_recipient = uint_option(
            self, "max_bytes_per_recipient", config_.max_bytes_per_recipient, true);
        max_batch_ = uint_option(self, "max_batch", max_batch_);
        max_batch_bytes_ = uint_option(self, "max_batch_bytes", max_batch_bytes_);
    }

    ~PersistenceDaemon() override {
        request_stop();
        join();
    }

    void bind() override {
        pull_ = bind_socket(zmq::socket_type::pull, "pull");
        outbox_.router = bind_socket(zmq::socket_type::router, "router");
    }

    void connect() override {
        const auto push_daemons = topology::peers(context_.topology, context_.self, "push", "pull");
        if (!push_daemons.empty()) {
            // One PUSH to all of them: ZeroMQ spreads notifications round-robin, and any
            // push daemon can send any user's notification.
            outbox_.push = make_socket(context_.zmq, zmq::socket_type::push);
            for (const topology::Peer& push : push_daemons) {
                connect_socket(context_, outbox_.push, push);
            }
            outbox_.push_configured = true;
        }
        const auto profiles = topology::peers(context_.topology, context_.self, "profile", "router");
        if (!profiles.empty()) {
            outbox_.profile = make_socket(context_.zmq, zmq::socket_type::dealer);
            for (const topology::Peer& profile : profiles) connect_socket(context_, outbox_.profile, profile);
            outbox_.profile_configured = true;
        }
        env_ = std::make_unique<lmdb::Env>(context_.data_dir, persistence_env_options(config_));
        if (config_.durability == lmdb::Durability::process)
            background_sync_ = std::make_unique<lmdb::BackgroundSync>(*env_, thread_name(context_.self.name, "-sync"));
        core_ = std::make_unique<PersistenceCore>(*env_, outbox_, context_.clock, config_);
        core_->set_background_sync(background_sync_.get());
        spdlog::info("{}: store {} opened ({} durability, map {} MiB, grow by {} MiB up to {} "
                     "MiB, TTL {} s), {} push daemon(s)",
                     context_.self.name, context_.data_dir.string(), to_string(config_.durability),
                     config_.map_size_mb, config_.grow_by_mb, core_->config().max_map_size_mb,
                     config_.ttl_seconds, push_daemons.size());
    }

    std::map<std::string, std::string> bound_endpoints() const override { return bound_; }

    void reload(const topology::DaemonSpec& fresh) override { pending_reload_.post(fresh); }

protected:
private:
    zmq::socket_t bind_socket(zmq::socket_type type, const std::string& role) {
        zmq::socket_t socket = vartalap::bind_socket(context_, type, role);
        bound_[role] = last_endpoint(socket);
        return socket;
    }

    void on_start() override {
        // Requests (answered) arrive on the ROUTER; acks (never answered) on the PULL. One
        // batch per turn from both.
        loop_.set_max_batch_bytes(max_batch_bytes_);
        loop_.add({.socket = outbox_.router, .router = true, .max_batch = max_batch_,
                   .accepted = PollLoop::kinds({Kind::offline_store, Kind::fetch, Kind::request})});
        loop_.add({.socket = pull_, .max_batch = max_batch_, .accepted = PollLoop::kinds({Kind::ack})});
        if (outbox_.profile_configured)
            loop_.add({.socket = outbox_.profile, .max_batch = 16, .accepted = PollLoop::kinds({Kind::reply})});
        batch_.reserve(max_batch_ * 2);
        counter_log_.start(context_.clock.monotonic_ms());
    }

    std::chrono::milliseconds before_turn() override { return std::chrono::milliseconds(kTickMs); }

    void on_turn(std::span<Incoming> turn) override {
        batch_.clear();
        for (Incoming& incoming : turn)
            if (incoming.envelope.kind == Kind::reply) // a registration check's answer
                core_->on_registration_reply(incoming.envelope);
            else
                batch_.push_back(PersistenceInput{std::move(incoming.routing_id), std::move(incoming.envelope)});
        if (!batch_.empty()) core_->handle_batch(batch_);
        periodic_duties();
    }

    void on_stop() override {
        // Shutdown: every request received has been committed and answered; what is still
        // queued in the sockets was never confirmed to anyone (sessions still hold those
        // messages and re-send them), so dropping it is within the contract. Close with the
        // bounded LINGER set by make_socket, then make process-mode commits durable.
        pull_.close();
        outbox_.router.close();
        if (outbox_.push_configured) outbox_.push.close();
        if (outbox_.profile_configured) outbox_.profile.close();
        core_->flush();
        log_counters("stopped", spdlog::level::info);
    }

    // Every periodic duty of the persistence daemon, with its period:
    //   - core.on_timer() every loop turn (at least every kTickMs, 100 ms), which runs
    //       expiry (every 1 s, bounded batch), sync in process mode (every 1 s, off the loop), and
    //       mdb_reader_check (every 60 s) — see PersistenceCore::on_timer;
    //   - counters to the log — every kCounterLogPeriodMs (60 s), debug level;
    //   - metrics to the ops thread — every metrics::kPublishPeriodMs (1 s);
    //   - a SIGHUP's new limits — when posted.
    void periodic_duties() {
        core_->on_timer();
        if (counter_log_.due(context_.clock.monotonic_ms())) log_counters("counters", spdlog::level::debug);
        publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
        if (auto fresh = pending_reload_.take()) apply_reload(*fresh);
    }

    static std::uint32_t fetch_limit_option(const topology::DaemonSpec& spec, std::string_view key,
                                            std::uint32_t fallback) {
        return static_cast<std::uint32_t>(
            std::min<std::uint64_t>(uint_option(spec, key, fallback), 10000));
    }

    void apply_reload(const topology::DaemonSpec& fresh) {
        const PersistenceConfig defaults;
        const PersistenceConfig& now = core_->config();
        std::uint64_t ttl = now.ttl_seconds;
        std::uint32_t fetch_limit = now.fetch_limit_max;
        std::uint32_t rest_limit = now.rest_default_limit;
        LimitChanges changes;
        changes.apply("ttl_seconds", ttl, uint_option(fresh, "ttl_seconds", defaults.ttl_seconds));
        changes.apply("fetch_limit_max", fetch_limit,
                      fetch_limit_option(fresh, "fetch_limit_max", defaults.fetch_limit_max));
        changes.apply("rest_default_limit", rest_limit,
                      fetch_limit_option(fresh, "rest_default_limit", defaults.rest_default_limit));
        core_->set_limits(ttl, fetch_limit, rest_limit);
        changes.log(context_.self.name);
    }

    void publish(metrics::Snapshot& s) {
        const PersistenceCounters& c = core_->counters();
        add_messages_in_out(s, static_cast<double>(c.stored), static_cast<double>(c.items_served));
        s.counter("vartalap_acks_total", "stored messages deleted by a client ack", c.acked);
        add_queue_depth(s, "stored", static_cast<double>(core_->total_count()));
        add_lmdb_use(s, "persistence", *env_, background_sync_.get());
        add_lmdb_use(s, "persistence-acked-ids", core_->acked_ids().env(), &core_->acked_ids().background());
        add_store_full_refusals(s, c.map_full_refusals, c.disk_full_refusals);
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"stored", c.stored}, {"duplicates", c.duplicates},
            {"map_full_refusals", c.map_full_refusals}, {"disk_full_refusals", c.disk_full_refusals},
            {"bad_requests", c.bad_requests},
            {"acked", c.acked}, {"expired", c.expired}, {"fetches", c.fetches},
            {"rest_pages", c.rest_pages}, {"items_served", c.items_served},
            {"notified", c.notified}, {"notify_dropped", c.notify_dropped},
            {"commits", c.commits}, {"syncs", c.syncs}, {"map_grows", c.map_grows},
            {"stale_readers", c.stale_readers}, {"corrupt", c.corrupt},
            {"unacked_writes", c.unacked_writes}, {"unacked_delivered", c.unacked_delivered},
            {"acked_ids_pruned", c.acked_ids_pruned}, {"quota_refusals", c.quota_refusals},
            {"registration_checks", c.registration_checks},
            {"unregistered_recipients", c.unregistered_recipients},
            {"short_ttl_messages", c.short_ttl_messages}, {"acked_ids_lost", core_->acked_ids().lost()},
            {"replies_dropped", outbox_.replies_dropped()}, {"dropped", loop_.dropped()}};
        add_counters(s, "persistence", rows);
    }

    void log_counters(const char* what, spdlog::level::level_enum level) {
        if (!spdlog::should_log(level)) return;
        const PersistenceCounters& c = core_->counters();
        spdlog::log(level,
                    "{}: {}: stored {} duplicates {} map_full_refusals {} disk_full_refusals {} "
                    "bad_requests {} acked {} "
                    "expired {} fetches {} rest_pages {} items_served {} notified {} "
                    "notify_dropped {} commits {} syncs {} map_grows {} stale_readers {} "
                    "replies_dropped {} dropped {}",
                    context_.self.name, what, c.stored, c.duplicates, c.map_full_refusals, c.disk_full_refusals,
                    c.bad_requests, c.acked, c.expired, c.fetches, c.rest_pages, c.items_served,
                    c.notified, c.notify_dropped, c.commits, c.syncs, c.map_grows,
                    c.stale_readers, outbox_.replies_dropped(), loop_.dropped());
    }

    DaemonContext context_; // a copy: the caller's context may be a temporary
    PersistenceConfig config_;
    // Messages per socket per turn (amortises one commit's fsync over many messages) and
    // payload bytes per batch (one transaction stays far below MDB_TXN_FULL, ~512 MiB).
    std::size_t max_batch_ = 1024;
    std::size_t max_batch_bytes_ = 64u << 20;

    zmq::socket_t pull_;
    SocketOutbox outbox_;
    std::unique_ptr<lmdb::Env> env_;
    std::unique_ptr<lmdb::BackgroundSync> background_sync_; // process durability only
    std::unique_ptr<PersistenceCore> core_;
    std::map<std::string, std::string> bound_;

    Periodic counter_log_{kCounterLogPeriodMs};
    Publisher publisher_{context_.board, context_.clock};
    PendingReload pending_reload_;
    std::vector<PersistenceInput> batch_;
};

} // namespace

} // namespace vartalap::persistence

namespace vartalap {

std::unique_ptr<Daemon> make_persistence(const DaemonContext& context) {
    return std::make_unique<persistence::PersistenceDaemon>(context);
}

} // namespace vartalap
