// Thread: bind/connect/start/join on the controlling thread; begin_run() and everything it
// posts on the gateway's loop (its own thread, or a shared EventLoop); request_stop from any
// thread (see ws_gateway_daemon.hpp).
#include "daemons/ws_gateway/ws_gateway_daemon.hpp"
#include "daemons/transport.hpp"

#include "common/fd_limit.hpp"
#include "common/http/cross_site.hpp"
#include "common/http/listener.hpp"
#include "common/http/net.hpp"
#include "common/thread_name.hpp"
#include "common/zmq/socket.hpp"
#include "common/zmq/asio_watcher.hpp"
#include "daemons/options.hpp"
#include "daemons/publisher.hpp"
#include "daemons/event_loop.hpp"
#include "daemons/reload.hpp"
#include "daemons/ws_gateway/ws_gateway_core.hpp"
#include "daemons/ws_gateway/ws_gateway_options.hpp"
#include "daemons/ws_gateway/http_session.hpp"
#include "daemons/ws_gateway/server_state.hpp"
#include "daemons/ws_gateway/zmq_outbox.hpp"
#include "topology/catalog.hpp"
#include "topology/shard_map.hpp"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <thread>

namespace vartalap::ws_gateway {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Requests taken from the ROUTER per wakeup before yielding to WebSocket handlers, so a
// burst of deliveries cannot starve client reads (and vice versa).
constexpr int kRouterBatch = 256;
// Drain: how long closing handshakes may take before the loop stops regardless.
constexpr auto kDrainBudget = std::chrono::seconds(2);
// Drain: how often to check whether every WebSocket has closed.
constexpr auto kDrainPoll = std::chrono::milliseconds(10);

class WsGateway final : public Daemon {
public:
    explicit WsGateway(const DaemonContext& context)
        : context_(context), options_(read_ws_gateway_options(context.self)),
          revocation_poll_ms_(static_cast<std::uint64_t>(
              option_in_range(context.self, "revocation_poll_ms", 250, 50, 1000))) {}

    ~WsGateway() override {
        request_stop();
        join();
    }

    void bind() override {
        const topology::DaemonSpec& self = context_.self;
        // WebSockets plus the pending handshakes must fit the descriptor limit (fd_limit.hpp).
        options_.max_connections = fit_connection_cap(self.name, "max_connections",
                                                      options_.max_connections,
                                                      ws_gateway::kMaxPendingHandshakes);
        if (context_.loop != nullptr) {
            io_ = &context_.loop->io(); // a shared event loop (System, `[system] threads`)
        } else {
            own_io_ = std::make_unique<net::io_context>(1); // one thread: no locking inside Asio
            io_ = own_io_.get();
        }
        drain_timer_ = std::make_unique<net::steady_timer>(*io_);
        publish_timer_ = std::make_unique<net::steady_timer>(*io_);
        keep_alive_timer_ = std::make_unique<net::steady_timer>(*io_);
        revocation_timer_ = std::make_unique<net::steady_timer>(*io_);
        routable_timer_ = std::make_unique<net::steady_timer>(*io_);
        resend_timer_ = std::make_unique<net::steady_timer>(*io_);

        router_ = bind_socket(context_, zmq::socket_type::router, "router");
        bound_router_ = last_endpoint(router_);

        const std::string listen = self.endpoint("listen");
        try {
            // Beyond kMaxPendingHandshakes unauthenticated connections (or
            // max_handshakes_per_source from one address: on_accepted), new ones are closed
            // at once.
            listener_ = std::make_shared<HttpListener>(
                *io_, tcp_endpoint_of(self.name, "listen", listen), self.name,
                state_.handshakes, ws_gateway::kMaxPendingHandshakes,
                [this](tcp::socket&& socket) { on_accepted(std::move(socket)); });
        } catch (const std::exception& e) {
            throw std::runtime_error(self.name + ": cannot listen on '" + listen +
                                     "': " + e.what());
        }
        bound_listen_ = to_host_port(listener_->local_endpoint());
    }

    void connect() override {
        // One PUSH per router (ZmqOutbox tries them in round robin), each ZMQ_IMMEDIATE:
        // messages go only to routers that are connected, so a router that is down (several
        // may run) neither takes nor queues any; with none connected a send is refused at
        // once and the client is told "server busy, retry".
        std::vector<zmq::socket_ref> router_pushes;
        for (const auto& router : topology::peers(context_.topology, context_.self, "message-router", "pull")) {
            zmq::socket_t push = make_socket(context_.zmq, zmq::socket_type::push);
            push.set(zmq::sockopt::immediate, 1);
            connect_socket(context_, push, router);
            router_pushes.emplace_back(push);
            router_pushes_.push_back(std::move(push));
        }

        shards_ = std::make_unique<topology::ShardMap>(context_.topology, "session");
        std::vector<zmq::socket_ref> pushes; // in ShardMap order: push i reaches shard i
        for (const auto& session : topology::peers(context_.topology, context_.self, "session", "pull")) {
            zmq::socket_t push = make_socket(context_.zmq, zmq::socket_type::push);
            connect_socket(context_, push, session);
            pushes.emplace_back(push);
            session_pushes_.push_back(std::move(push));
        }

        // The revocation list's poll: one DEALER to the profile daemon(s).
        const auto profiles = topology::peers(context_.topology, context_.self, "profile", "router");
        if (!profiles.empty()) {
            profile_ = make_socket(context_.zmq, zmq::socket_type::dealer);
            for (const auto& profile : profiles) connect_socket(context_, profile_, profile);
            profile_watcher_ =
                std::make_unique<ZmqAsioWatcher>(*io_, profile_, [this] { on_profile(); });
        }

        watcher_ = std::make_unique<ZmqAsioWatcher>(*io_, router_, [this] { on_router(); });
        outbox_ = std::make_unique<ws_gateway::ZmqOutbox>(std::move(router_pushes), std::move(pushes),
                                                          *shards_, router_, *watcher_);
        core_ = std::make_unique<WsGatewayCore>(context_.self.name, *outbox_, context_.clock,
                                              options_);
        state_.core = core_.get();
        state_.access_keys = &context_.access_keys;
        // With no profile daemon in the topology there is no list to wait for (nor any
        // logout to learn of); with one, upgrades wait for its first complete answer.
        state_.revocations = profile_watcher_ ? &revocations_ : nullptr;
    }

    bool serving() const override { return serving_.load(std::memory_order_acquire); }

    void start() override {
        started_ = true;
        if (own_io_) {
            thread_ = std::thread([this] { run(); });
        } else {
            // The post hands the sockets made on this thread over to the loop's thread.
            net::post(*io_, [this] { guarded([this] { begin_run(); }); });
        }
    }

    void request_stop() override {
        if (stop_requested_.exchange(true)) return;
        // Own io_context: posted even before start(), the drain then runs first thing on the
        // thread, and if the thread never starts the handler is destroyed unrun. A shared loop
        // runs already: nothing to drain there before start().
        if (own_io_ || (io_ && started_)) net::post(*io_, [this] { guarded([this] { begin_drain(); }); });
    }

    void join() override {
        if (own_io_) {
            if (thread_.joinable()) thread_.join();
            return;
        }
        if (!started_) return;
        finished_.wait();
    }

    std::map<std::string, std::string> bound_endpoints() const override {
        return {{"listen", bound_listen_}, {"router", bound_router_}};
    }

    void reload(const topology::DaemonSpec& fresh) override {
        if (io_) net::post(*io_, [this, fresh] { apply_reload(fresh); });
    }

private:
    // A new connection: closed at once when its source address already has
    // max_handshakes_per_source pending upgrades (counted, logged at most every 10 s).
    void on_accepted(tcp::socket&& socket) {
        boost::system::error_code ec;
        const tcp::endpoint remote = socket.remote_endpoint(ec);
        if (ec) return; // the peer is gone already; the socket closes here
        SourceCount::Token source;
        const std::size_t cap = core_->options().max_handshakes_per_source;
        if (!state_.handshakes_by_source.enter(source_key(remote.address()), cap, source)) {
            ++state_.source_refused;
            if (state_.source_refused_log.allow(context_.clock.monotonic_ms()))
                spdlog::warn("{}: {} has max_handshakes_per_source ({}) pending upgrades: "
                             "connection closed ({} in all, {} not logged since the last line)",
                             context_.self.name, remote.address().to_string(), cap,
                             state_.source_refused, state_.source_refused_log.take_suppressed());
            return;
        }
        socket.set_option(tcp::no_delay(true), ec); // small frames, latency matters
        std::make_shared<ws_gateway::HttpSession>(std::move(socket), state_, std::move(source))
            ->run();
    }

    void apply_reload(const topology::DaemonSpec& fresh) {
        WsGatewayOptions next;
        try {
            next = read_ws_gateway_options(fresh);
        } catch (const std::exception& e) {
            spdlog::error("{}: SIGHUP: {}; limits unchanged", context_.self.name, e.what());
            return;
        }
        next.max_connections = fit_connection_cap(context_.self.name, "max_connections",
                                                  next.max_connections,
                                                  ws_gateway::kMaxPendingHandshakes);
        WsGatewayOptions current = core_->options();
        LimitChanges changes;
        changes.apply("max_frame_bytes", current.max_frame_bytes, next.max_frame_bytes);
        changes.apply("write_queue_limit", current.write_queue_limit, next.write_queue_limit);
        changes.apply("overflow_close_after", current.overflow_close_after, next.overflow_close_after);
        changes.apply("idle_ping_seconds", current.idle_ping_seconds, next.idle_ping_seconds);
        changes.apply("max_connections", current.max_connections, next.max_connections);
        changes.apply("handshake_timeout_seconds", current.handshake_timeout_seconds,
                      next.handshake_timeout_seconds);
        changes.apply("max_handshakes_per_source", current.max_handshakes_per_source,
                      next.max_handshakes_per_source);
        if (current.allowed_origins != next.allowed_origins) {
            spdlog::info("{}: SIGHUP: allowed_origins now [{}]", context_.self.name,
                         fmt::join(next.allowed_origins, ", "));
            current.allowed_origins = std::move(next.allowed_origins);
        }
        changes.apply("send_rate_per_minute", current.rate_limits.sends.rate_per_minute,
                      next.rate_limits.sends.rate_per_minute);
        changes.apply("send_burst", current.rate_limits.sends.burst, next.rate_limits.sends.burst);
        changes.apply("group_op_rate_per_minute", current.rate_limits.group_ops.rate_per_minute,
                      next.rate_limits.group_ops.rate_per_minute);
        changes.apply("group_op_burst", current.rate_limits.group_ops.burst,
                      next.rate_limits.group_ops.burst);
        changes.apply("rate_limit_max_users", current.rate_limits.max_users,
                      next.rate_limits.max_users);
        changes.apply("resend_after_ms", current.resend.resend_after_ms, next.resend.resend_after_ms);
        changes.apply("max_resends", current.resend.max_resends, next.resend.max_resends);
        changes.apply("max_unconfirmed", current.resend.max_entries, next.resend.max_entries);
        changes.apply("max_unconfirmed_bytes", current.resend.max_bytes, next.resend.max_bytes);
        core_->set_options(current);
        changes.log(context_.self.name);
    }

    // Every metrics::kPublishPeriodMs on the io thread, until the drain ends the loop.
    void schedule_publish() {
        publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
        publish_timer_->expires_after(std::chrono::milliseconds(metrics::kPublishPeriodMs));
        publish_timer_->async_wait([this](const boost::system::error_code& ec) {
            if (!ec && !drained_) schedule_publish();
        });
    }

    void publish(metrics::Snapshot& s) {
        const WsGatewayCounters& c = core_->counters();
        add_messages_in_out(s, static_cast<double>(c.client_messages),
                            static_cast<double>(c.delivered));
        s.gauge("vartalap_connections", "open WebSocket connections (registered users)",
                static_cast<double>(core_->connection_count()));
        s.gauge("vartalap_ws_gateway_sockets", "WebSocket sessions alive (handshaking, open, closing)",
                static_cast<double>(state_.websockets));
        add_queue_depth(s, "write", static_cast<double>(core_->queued_frames()));
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"opened", c.opened}, {"replaced", c.replaced},
            {"client_messages", c.client_messages}, {"client_errors", c.client_errors},
            {"busy", c.busy}, {"delivered", c.delivered}, {"not_connected", c.not_connected},
            {"overloaded", c.overloaded}, {"server_acks", c.server_acks},
            {"own_frames_dropped", c.own_frames_dropped}, {"bad_requests", c.bad_requests},
            {"replies_dropped", c.replies_dropped}, {"resyncs", c.resyncs},
            {"events_dropped", c.events_dropped}, {"malformed", malformed_},
            {"revoked_closed", c.revoked_closed},
            {"revocation_polls_failed", revocations_.polls_failed()},
            {"origin_refused", state_.origin_refused},
            {"starting_refused", state_.starting_refused},
            {"accept_failures", listener_ ? listener_->accept_failures() : 0},
            {"handshakes_refused_per_source", state_.source_refused},
            {"rate_limited_sends", c.rate_limited_sends},
            {"rate_limited_group_ops", c.rate_limited_group_ops},
            {"resent", c.resent}, {"unconfirmed_given_up", c.unconfirmed_given_up},
            {"unconfirmed_full", c.unconfirmed_full}};
        add_counters(s, "ws_gateway", rows);
        s.gauge("vartalap_ws_gateway_unconfirmed",
                "client messages pushed to a router, waiting for their server_ack",
                static_cast<double>(core_->unconfirmed()));
        s.gauge("vartalap_revoked_keys", "access keys on this gateway's revocation list",
                static_cast<double>(revocations_.size()));
    }

    // Only "impossible" failures escape a handler (a ZeroMQ error other than EAGAIN and
    // EHOSTUNREACH, e.g. the context terminated under us): end the process, a restart is
    // cheap and safe.
    template <class Body>
    void guarded(Body&& body) {
        try {
            body();
        } catch (const std::exception& e) {
            spdlog::critical("{}: {}", context_.self.name, e.what());
            std::terminate();
        }
    }

    void begin_run() {
        spdlog::info("{}: WebSocket on {} (/wss, /wss/, /, also under /v1.0), router {}", context_.self.name,
                     bound_listen_, bound_router_);
        watcher_->start();
        listener_->run();
        schedule_publish();
        schedule_keep_alive();
        schedule_resend();
        if (profile_watcher_) {
            profile_watcher_->start();
            poll_revocations(); // at once: upgrades wait for the first answer
            schedule_revocation_poll();
        }
        check_routable();
    }

    // Until a message-router is connected (ZMQ_IMMEDIATE: the PUSH can take a message only
    // then), upgrades are refused as "server starting": a client let in earlier would have
    // its messages refused at once. Checked every kRoutableCheckMs from start until then;
    // never again after (a later outage is answered per message, "server busy, retry").
    // Over inproc:// the pipe exists from the connect, so this holds at once.
    void check_routable() {
        if (drained_) return;
        for (zmq::socket_t& push : router_pushes_) {
            if (!(push.get(zmq::sockopt::events) & ZMQ_POLLOUT)) continue;
            state_.routable = true;
            update_serving();
            return;
        }
        routable_timer_->expires_after(std::chrono::milliseconds(kRoutableCheckMs));
        routable_timer_->async_wait([this](const boost::system::error_code& ec) {
            if (!ec) check_routable();
        });
    }

    // Serving once a router is connected and the first complete revocation list arrived
    // (or there is no profile daemon to ask).
    void update_serving() {
        if (serving_.load(std::memory_order_relaxed) || !state_.routable) return;
        if (profile_watcher_ && !revocations_.synced()) return;
        serving_.store(true, std::memory_order_release);
        spdlog::info("{}: a message-router connected{}: accepting upgrades", context_.self.name,
                     profile_watcher_ ? fmt::format(", revocation list loaded ({} keys)", revocations_.size())
                                      : std::string());
    }

    // The gateway's own thread (no shared loop).
    void run() {
        name_this_thread(context_.self.name);
        guarded([this] {
            begin_run();
            io_->run();
        });
        watcher_->stop();
        router_.close();
        for (zmq::socket_t& push : router_pushes_) push.close();
        for (zmq::socket_t& push : session_pushes_) push.close();
        if (profile_watcher_) profile_watcher_->stop();
        if (profile_) profile_.close();
        spdlog::info("{}: stopped", context_.self.name);
    }

    // Every revocation_poll_ms: ask the profile daemon for revocations after the last one.
    void schedule_revocation_poll() {
        revocation_timer_->expires_after(std::chrono::milliseconds(revocation_poll_ms_));
        revocation_timer_->async_wait([this](const boost::system::error_code& ec) {
            if (ec || drained_) return;
            poll_revocations();
            schedule_revocation_poll();
        });
    }

    void poll_revocations() {
        auto request = revocations_.poll(context_.clock.monotonic_ms(), ++revocation_request_id_,
                                         revocation_poll_ms_);
        if (!request) return;
        if (send_envelope(profile_, *request, revocation_scratch_) == SendResult::ok)
            profile_watcher_->poke();
        else
            revocations_.send_failed();
    }

    // Replies to the revocation poll; a newly revoked key closes its open socket here.
    void on_profile() {
        for (int i = 0; i < kRouterBatch; ++i) {
            const ReceiveResult result =
                receive_envelope(profile_, /*router=*/false, profile_incoming_, &receive_error_);
            if (result == ReceiveResult::empty) return;
            if (result == ReceiveResult::malformed || !revocations_.is_reply(profile_incoming_.envelope)) {
                ++malformed_;
                continue;
            }
            revoked_.clear();
            if (!revocations_.apply(profile_incoming_.envelope, context_.clock.wall_ms() / 1000,
                                    revoked_))
                continue;
            for (const auto& [user, key] : revoked_) core_->revoke(user, key);
            update_serving();
            if (revocations_.more()) poll_revocations(); // the next page at once
        }
    }

    // Every idle_ping_seconds (read again each time: SIGHUP may change it; 0 is off, checked
    // again after a second): ping the silent clients, close the dead ones.
    void schedule_keep_alive() {
        const std::uint32_t period = core_->options().idle_ping_seconds;
        keep_alive_timer_->expires_after(std::chrono::seconds(period == 0 ? 1 : period));
        keep_alive_timer_->async_wait([this, period](const boost::system::error_code& ec) {
            if (ec || drained_) return;
            if (period != 0 && !state_.stopping) core_->keep_alive();
            schedule_keep_alive();
        });
    }

    // Every resend_period_ms (read again each time: SIGHUP may change resend_after_ms):
    // push again what has no server_ack yet (unconfirmed.hpp).
    void schedule_resend() {
        resend_timer_->expires_after(std::chrono::milliseconds(core_->resend_period_ms()));
        resend_timer_->async_wait([this](const boost::system::error_code& ec) {
            if (ec || drained_) return;
            core_->resend_unconfirmed();
            schedule_resend();
        });
    }

    void on_router() {
        for (int i = 0; i < kRouterBatch; ++i) {
            const ReceiveResult result =
                receive_envelope(router_, /*router=*/true, incoming_, &receive_error_);
            if (result == ReceiveResult::empty) return;
            if (result == ReceiveResult::malformed) {
                ++malformed_;
                spdlog::warn("{}: malformed message on the router dropped: {}",
                             context_.self.name, receive_error_);
                continue;
            }
            core_->session_request(incoming_.routing_id, incoming_.envelope);
        }
    }

    void begin_drain() {
        if (state_.stopping) return;
        spdlog::info("{}: draining {} connections", context_.self.name,
                     core_->connection_count());
        state_.stopping = true;
        listener_->stop();
        core_->close_all();
        drain_deadline_ = std::chrono::steady_clock::now() + kDrainBudget;
        check_drained();
    }

    void check_drained() {
        if (state_.websockets == 0 || std::chrono::steady_clock::now() >= drain_deadline_) {
            finish_drain();
            return;
        }
        drain_timer_->expires_after(kDrainPoll);
        drain_timer_->async_wait([this](const boost::system::error_code& ec) {
            if (!ec && !drained_) check_drained();
        });
    }

    void finish_drain() {
        if (state_.websockets > 0)
            spdlog::warn("{}: {} WebSockets did not close within {} s", context_.self.name,
                         state_.websockets, kDrainBudget.count());
        // A timer whose wait had already ended when cancel() runs below still gets its
        // handler with success (cancel cannot take back a queued completion): on a shared loop
        // a handler that re-armed then kept the loop busy for good, and the process's drain
        // ran into its 5 s limit (seen once in about 70 runs of MultiprocessTest).
        // The handlers check this flag instead of trusting the cancel.
        drained_ = true;
        core_->abandon_all(); // disconnects for whatever is still registered
        const auto& c = core_->counters();
        spdlog::info("{}: opened {}, replaced {}, messages {}, client errors {}, busy {}, "
                     "delivered {}, not_connected {}, overloaded {}, server acks {}, "
                     "own frames dropped {}, replies dropped {}, events dropped {}, "
                     "malformed {}, resent {}, given up {}, unconfirmed at stop {}",
                     context_.self.name, c.opened, c.replaced, c.client_messages,
                     c.client_errors, c.busy, c.delivered, c.not_connected, c.overloaded,
                     c.server_acks, c.own_frames_dropped, c.replies_dropped, c.events_dropped,
                     malformed_, c.resent, c.unconfirmed_given_up, core_->unconfirmed());
        watcher_->stop();
        publish_timer_->cancel();
        keep_alive_timer_->cancel();
        revocation_timer_->cancel();
        routable_timer_->cancel();
        resend_timer_->cancel();
        if (profile_watcher_) profile_watcher_->stop();
        if (own_io_) {
            io_->stop();
            return;
        }
        // On a shared loop the other daemons go on. The sockets stay open until the gateway
        // is destroyed (after the loop's thread has ended): a WebSocket that outlived the
        // drain budget still finishes its close handshake (bounded by its own timeout) and
        // may still send its disconnect.
        drain_timer_->cancel();
        spdlog::info("{}: stopped", context_.self.name);
        finished_.set();
    }

    const DaemonContext& context_;
    WsGatewayOptions options_; // as started, max_connections fitted at bind (SIGHUP: the core)
    // Declared before io_: sessions still pending when the loop stops are destroyed with
    // the io_context, and their destructors update these counters.
    ws_gateway::ServerState state_;
    std::unique_ptr<net::io_context> own_io_; // without a shared loop: the gateway's own
    net::io_context* io_ = nullptr;           // own_io_ or the shared loop's
    std::unique_ptr<net::steady_timer> drain_timer_;
    std::unique_ptr<net::steady_timer> publish_timer_;
    std::unique_ptr<net::steady_timer> keep_alive_timer_;
    std::unique_ptr<net::steady_timer> revocation_timer_;
    std::unique_ptr<net::steady_timer> routable_timer_;
    std::unique_ptr<net::steady_timer> resend_timer_;
    static constexpr int kRoutableCheckMs = 10;
    Publisher publisher_{context_.board, context_.clock};
    std::chrono::steady_clock::time_point drain_deadline_;

    zmq::socket_t router_;
    std::vector<zmq::socket_t> router_pushes_; // one per message-router
    std::vector<zmq::socket_t> session_pushes_;
    std::unique_ptr<topology::ShardMap> shards_;
    std::unique_ptr<ZmqAsioWatcher> watcher_;
    std::unique_ptr<ws_gateway::ZmqOutbox> outbox_;
    std::unique_ptr<WsGatewayCore> core_;
    std::shared_ptr<HttpListener> listener_;

    Incoming incoming_;
    std::string receive_error_;
    zmq::socket_t profile_; // DEALER to the profile daemon(s); empty without one
    std::unique_ptr<ZmqAsioWatcher> profile_watcher_;
    RevocationList revocations_;
    // Whether upgrades are served: a message-router is connected and the first complete
    // revocation list has arrived (or there is no profile daemon). Read by
    // System::wait_serving on another thread.
    std::atomic<bool> serving_{false};
    Incoming profile_incoming_;
    std::vector<std::pair<std::string, std::string>> revoked_;
    std::string revocation_scratch_;
    std::uint64_t revocation_request_id_ = 0;
    const std::uint64_t revocation_poll_ms_;
    std::uint64_t malformed_ = 0;

    std::string bound_listen_;
    std::string bound_router_;
    std::atomic<bool> stop_requested_{false};
    std::thread thread_;
    std::atomic<bool> started_{false};
    FinishedSignal finished_; // shared loop: join() waits for finish_drain()
    bool drained_ = false;    // finish_drain() ran: no timer arms again (the loop's thread)
};

} // namespace

} // namespace vartalap::ws_gateway

namespace vartalap {

std::unique_ptr<Daemon> make_ws_gateway(const DaemonContext& context) {
    return std::make_unique<ws_gateway::WsGateway>(context);
}

} // namespace vartalap
