// group daemon: the adapter around GroupCore. It owns the ROUTER that rest-gateways (requests),
// group-routers (group_op) and sessions (copies_stored: event copies they committed) talk
// to, one DEALER to the profile daemons (are the members to add registered?), one PUSH per
// session shard (group events), and the group store.
//
// Thread: bind() and connect() run on the controlling thread; from start() on, the loop's
// hooks (LoopDaemon) and everything they call (the core, every socket) run on the daemon's
// loop thread only; request_stop() from any thread.
//
// Loop (one line per duty): poll the ROUTER and the profile DEALER (at most 100 ms) →
// serve requests (answer, or ask the profile daemon first) → apply what the profile
// answered → periodic duties (send pending events, expire unanswered profile checks).
#include "daemons/group/group_daemon.hpp"
#include "daemons/transport.hpp"

#include "common/log.hpp"
#include "common/wire/builders.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/group/group_core.hpp"
#include "daemons/options.hpp"
#include "daemons/publisher.hpp"
#include "daemons/reload.hpp"
#include "daemons/loop_daemon.hpp"
#include "topology/catalog.hpp"
#include "topology/shard_map.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <unordered_map>
#include <unordered_set>

namespace vartalap::group {
namespace {

using nlohmann::json;

constexpr std::uint64_t kTickMs = 100;            // loop wake-up, bound on stop latency
constexpr std::uint64_t kProfileTimeoutMs = 5000; // a profile check not answered by then fails
constexpr std::size_t kMaxPendingChecks = 10000;  // requests waiting for the profile daemon
constexpr std::size_t kDrainBatch = 256;                  // messages per socket per loop turn

class GroupDaemon final : public LoopDaemon {
public:
    explicit GroupDaemon(const DaemonContext& context)
        : LoopDaemon(context.self.name, context.loop), context_(context), sessions_(context.topology, "session") {
        const auto& self = context_.self;
        config_.max_group_members = max_group_members_option(self);
        config_.events.confirm_to = self.name; // sessions confirm event copies to this instance
        config_.events.confirm_timeout_ms =
            uint_option(self, "confirm_timeout_ms", config_.events.confirm_timeout_ms);
        config_.events.max_unconfirmed_copies =
            uint_option(self, "max_unconfirmed_copies", config_.events.max_unconfirmed_copies);
        env_options_.map_size = static_cast<std::size_t>(positive_or(self.option_int("map_size_mb", 1024), 1024)) << 20;
    }

    ~GroupDaemon() override {
        request_stop();
        join();
    }

    void bind() override {
        router_ = bind_socket(context_, zmq::socket_type::router, "router");
        env_ = group_store::shared_env(context_.data_dir, env_options_);
        core_ = std::make_unique<GroupCore>(
            *env_, sessions_.instances().size(),
            [this](std::string_view user) { return sessions_.index_for(user); }, context_.clock,
            random_group_id, config_);
        bound_router_ = last_endpoint(router_);
    }

    void connect() override {
        SocketOptions options;
        options.routing_id = context_.self.name;
        profile_ = make_socket(context_.zmq, zmq::socket_type::dealer, options);
        const auto profiles = topology::peers(context_.topology, context_.self, "profile", "router");
        for (const auto& profile : profiles) connect_socket(context_, profile_, profile);
        if (profiles.empty())
            spdlog::warn("{}: no profile daemon in the topology: every add of a new member is refused",
                         context_.self.name);
        // In ShardMap order (sessions_): push i reaches shard i.
        for (const auto& session : topology::peers(context_.topology, context_.self, "session", "pull")) {
            auto push = make_socket(context_.zmq, zmq::socket_type::push);
            // A shard that is not connected refuses the send instead of queueing in memory:
            // the event stays in the outbox (LMDB) and is retried.
            push.set(zmq::sockopt::immediate, 1);
            connect_socket(context_, push, session);
            pushes_.push_back(std::move(push));
        }
        spdlog::info("{}: group store {} opened, {} session shard(s), {} pending event copies",
                     context_.self.name, context_.data_dir.string(), pushes_.size(),
                     core_->events().pending_copies());
    }

    std::map<std::string, std::string> bound_endpoints() const override { return {{"router", bound_router_}}; }

    void reload(const topology::DaemonSpec& fresh) override { pending_reload_.post(fresh); }

protected:
private:
    static std::size_t max_group_members_option(const topology::DaemonSpec& spec) {
        return uint_option(spec, "max_group_members", GroupConfig{}.max_group_members);
    }

    void publish(metrics::Snapshot& s) const {
        const GroupCounters& c = core_->counters();
        add_messages_in_out(s, static_cast<double>(requests_), static_cast<double>(replies_));
        add_queue_depth(s, "event_copies", static_cast<double>(core_->events().pending_copies()));
        add_queue_depth(s, "unconfirmed_event_copies", static_cast<double>(core_->events().unconfirmed_copies()));
        add_queue_depth(s, "profile_checks", static_cast<double>(pending_.size()));
        add_lmdb_use(s, "group", *env_);
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"created", c.created}, {"added", c.added}, {"removed", c.removed},
            {"refused", c.refused}, {"replayed", c.replayed}, {"events", c.events},
            {"requests", requests_}, {"replies", replies_}, {"dropped", loop_.dropped()},
            {"replies_dropped", dropped_replies_}};
        add_counters(s, "group", rows);
    }

    struct PendingCheck {
        std::string routing_id;
        Envelope request;
        GroupOp op;
        std::unordered_set<std::string> asked;
        std::uint64_t deadline_ms = 0;
    };

    void on_start() override {
        loop_.add({.socket = router_, .router = true, .max_batch = kDrainBatch,
                   .accepted = PollLoop::kinds({Kind::request, Kind::group_op, Kind::copies_stored})});
        loop_.add({.socket = profile_, .max_batch = kDrainBatch, .accepted = PollLoop::kinds({Kind::reply})});
    }

    std::chrono::milliseconds before_turn() override {
        // Events waiting for a busy shard are retried at a finer period than the tick.
        return std::chrono::milliseconds(core_->events().has_pending() ? 20 : static_cast<long>(kTickMs));
    }

    void on_turn(std::span<Incoming> batch) override {
        for (Incoming& incoming : batch) {
            if (incoming.envelope.kind == Kind::reply) {
                on_profile_reply(incoming.envelope); // from the profile DEALER
            } else if (incoming.envelope.kind == Kind::copies_stored) {
                core_->events().confirm(incoming.envelope.request_id, incoming.envelope.ids);
            } else {
                ++requests_;
                serve(incoming.routing_id, incoming.envelope);
            }
        }
        periodic_duties();
    }

    void on_stop() override {
        // Pending profile checks are dropped: their callers time out (REST 504) or resend
        // (async operations were not acknowledged). Unsent events stay in the outbox.
        router_.close();
        profile_.close();
        for (auto& push : pushes_) push.close();
        const auto& c = core_->counters();
        spdlog::info("{}: stopped: created {} added {} removed {} refused {} replayed {} events {}",
                     context_.self.name, c.created, c.added, c.removed, c.refused, c.replayed, c.events);
    }

    void serve(const std::string& routing_id, Envelope& request) {
        Prepared prepared = core_->prepare(request);
        if (prepared.reply) {
            answer(routing_id, *prepared.reply);
            return;
        }
        if (prepared.to_check.empty()) {
            answer(routing_id, core_->apply(request, prepared.op, [](std::string_view) { return true; }));
            send_events();
            return;
        }
        if (pending_.size() >= kMaxPendingChecks) {
            answer(routing_id, refusal(request, Status::overloaded, "group service busy, retry"));
            return;
        }
        Envelope check;
        check.kind = Kind::request;
        check.method = "contactbook_sync";
        check.from = prepared.op.actor;
        check.request_id = ++next_request_id_;
        check.payload = json{{"users", prepared.to_check}}.dump();
        if (send_envelope(profile_, check, scratch_) != SendResult::ok) {
            answer(routing_id, refusal(request, Status::overloaded, "profile service busy, retry"));
            return;
        }
        PendingCheck pending{routing_id, std::move(request), std::move(prepared.op), {},
                             context_.clock.monotonic_ms() + kProfileTimeoutMs};
        pending.asked.insert(prepared.to_check.begin(), prepared.to_check.end());
        pending_.emplace(check.request_id, std::move(pending));
    }

    void on_profile_reply(const Envelope& reply) {
        auto it = pending_.find(reply.request_id);
        if (it == pending_.end()) return; // timed out already
        PendingCheck pending = std::move(it->second);
        pending_.erase(it);
        const json registered = json::parse(reply.payload, nullptr, false);
        if (reply.status != Status::ok || !registered.is_object()) {
            answer(pending.routing_id, refusal(pending.request, Status::internal,
                                               "could not check the members with the profile service"));
            return;
        }
        // Names that were not asked about were members when the request was prepared.
        auto is_registered = [&](std::string_view username) {
            const std::string name(username);
            if (!pending.asked.contains(name)) return true;
            auto found = registered.find(name);
            return found != registered.end() && found->is_boolean() && found->get<bool>();
        };
        answer(pending.routing_id, core_->apply(pending.request, pending.op, is_registered));
        send_events();
    }

    // Every periodic duty of the group daemon, with its period (each loop turn: at most
    // kTickMs, 20 ms while events wait for a shard):
    //   - send pending event copies (and those whose confirmation is overdue), delete the
    //     confirmed ones from the outbox;
    //   - answer profile checks older than kProfileTimeoutMs with an error.
    //   - metrics to the ops thread (every 1 s) and a SIGHUP's new limits (when posted).
    void periodic_duties() {
        publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
        if (auto fresh = pending_reload_.take()) {
            std::size_t max = core_->config().max_group_members;
            LimitChanges changes;
            changes.apply("max_group_members", max, max_group_members_option(*fresh));
            core_->set_max_group_members(max);
            changes.log(context_.self.name);
        }
        send_events();
        const std::uint64_t now = context_.clock.monotonic_ms();
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (it->second.deadline_ms > now) {
                ++it;
                continue;
            }
            answer(it->second.routing_id,
                   refusal(it->second.request, Status::internal, "profile service did not answer"));
            it = pending_.erase(it);
        }
    }

    void send_events() {
        FanoutOutbox& outbox = core_->events();
        if (outbox.has_pending() || outbox.unconfirmed_copies() > 0)
            outbox.send_pending([this](std::size_t shard, const Envelope& copy) {
                return send_envelope(pushes_[shard], copy, scratch_) == SendResult::ok;
            });
        if (outbox.has_deletions() && outbox.flush_deletions() != 0)
            spdlog::error("{}: group store full: confirmed events not deleted yet (retried)", context_.self.name);
    }

    Envelope refusal(const Envelope& request, Status status, std::string_view error) {
        return make_reply(request, status, {}, error);
    }

    void answer(const std::string& routing_id, const Envelope& reply) {
        const SendResult result = send_envelope(router_, reply, scratch_, routing_id);
        if (result == SendResult::ok) ++replies_;
        if (result != SendResult::ok && count_sampled(dropped_replies_))
            spdlog::warn("{}: reply to '{}' dropped (peer gone or busy); {} so far", context_.self.name,
                         routing_id, dropped_replies_);
    }

    DaemonContext context_; // a copy: its references outlive the daemon (System owns them)
    topology::ShardMap sessions_;
    GroupConfig config_;
    lmdb::EnvOptions env_options_;
    std::shared_ptr<lmdb::Env> env_;
    std::unique_ptr<GroupCore> core_;
    zmq::socket_t router_;
    zmq::socket_t profile_;
    std::vector<zmq::socket_t> pushes_;
    std::string bound_router_;
    std::string scratch_;
    std::unordered_map<std::uint64_t, PendingCheck> pending_;
    std::uint64_t next_request_id_ = 0;
    std::uint64_t dropped_replies_ = 0;
    std::uint64_t requests_ = 0;
    std::uint64_t replies_ = 0;
    Publisher publisher_{context_.board, context_.clock};
    PendingReload pending_reload_;
};

} // namespace

} // namespace vartalap::group

namespace vartalap {

std::unique_ptr<Daemon> make_group(const DaemonContext& context) {
    return std::make_unique<group::GroupDaemon>(context);
}

} // namespace vartalap
