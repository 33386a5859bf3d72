// Thread: the rest-gateway daemon's own thread runs the io_context: the listener, every
// HTTP connection, the PUSH to the message-routers, the ROUTER that receives server_acks,
// the DEALERs to the owner daemons (profile, persistence, group) and the timeout sweep
// (see rest_gateway_daemon.hpp).
#include "daemons/rest_gateway/rest_gateway_daemon.hpp"
#include "daemons/transport.hpp"

#include "common/http/cross_site.hpp"
#include "common/http/listener.hpp"
#include "common/http/net.hpp"
#include "common/http/session.hpp"
#include "common/fd_limit.hpp"
#include "common/log.hpp"
#include "common/thread_name.hpp"
#include "common/zmq/asio_watcher.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/event_loop.hpp"
#include "daemons/options.hpp"
#include "daemons/publisher.hpp"
#include "daemons/reload.hpp"
#include "daemons/rest_gateway/body_budget.hpp"
#include "daemons/rest_gateway/rest_gateway_core.hpp"
#include "daemons/rest_gateway/rest_http.hpp"
#include "topology/catalog.hpp"
#include "topology/shard_map.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/string_body.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>

namespace vartalap::rest_gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

class RestGateway;

// One HTTP connection: read a request, answer it (maybe after a round trip to a daemon),
// then read the next one. Pipelined requests wait in the read buffer, so responses go out
// in request order and at most one request per connection is outstanding.
class HttpSession final : public HttpSessionBase<http::string_body>, public RestExchange {
public:
    HttpSession(tcp::socket&& socket, ConnectionCount::Token token, RestGateway& gateway)
        : HttpSessionBase(std::move(socket), std::move(token)), gateway_(gateway) {}
    void run() { do_read(); }
    // Completes the outstanding request (from the core: at once, or after a reply, a
    // timeout, or the drain).
    void respond(RestResponse response) override;
    // Over max_connections: 503, then close.
    void refuse();
    void close();

private:
    std::shared_ptr<HttpSession> self() {
        return std::static_pointer_cast<HttpSession>(shared_from_this());
    }
    void do_read();
    bool on_header(const http::request_parser<http::string_body>& parser) override;
    void on_request(Request&& request) override;
    void on_read_failed(ReadFailure failure, beast::error_code ec) override;
    void on_written(beast::error_code ec) override;
    void answer_and_close(http::status status, std::string body);

    RestGateway& gateway_;
    Request request_;
    BodyBudget::Token body_; // the request's share of the body budget, until answered
    http::response<http::string_body> response_;
    bool responding_ = false;
    bool keep_alive_ = false; // of the response being written
};

class RestGateway final : public Daemon, private rest_gateway::RestOutbox {
public:
    explicit RestGateway(const DaemonContext& context)
        : context_(context), sweep_(io_), drain_deadline_(io_) {
        RestLimits limits;
        ClientMessageLimits message_limits;
        read_limits(context_.self, limits, message_limits);
        rest_gateway::RestOutbox& outbox = *this;
        core_ = std::make_unique<RestGatewayCore>(context_.self.name, outbox, context_.clock,
                                                  context_.access_keys, limits, message_limits);
        load_web();
    }

    // The web client's files (web_files.hpp; options web_dir, web_websocket_url) and the
    // config.json it reads first: where its WebSocket is, and how users log in (the first
    // profile daemon's identity_provider).
    void load_web() {
        const topology::DaemonSpec& self = context_.self;
        const std::filesystem::path dir = find_web_dir(self.option_string("web_dir", ""));
        std::vector<std::string> skipped;
        auto web = std::make_shared<WebFiles>(dir.empty() ? WebFiles{} : WebFiles::load(dir, skipped));
        for (const std::string& line : skipped) spdlog::warn("{}: web_dir: {}", self.name, line);
        if (!web->has_index()) {
            spdlog::warn("{}: no web client (no index.html in the option web_dir, '{}'): GET / "
                         "answers 404", self.name, dir.string());
        } else {
            const auto profiles = context_.topology.of_kind("profile");
            const std::string identity = profiles.empty() ? "development"
                : profiles.front()->option_string("identity_provider", "development");
            const std::string project = profiles.empty() ? ""
                : profiles.front()->option_string("firebase_project_id", "");
            nlohmann::json config{{"websocket", self.option_string("web_websocket_url", "")},
                                  {"identity", identity}, {"firebaseProjectId", project}};
            web->add("config.json", {config.dump(), "application/json"});
            spdlog::info("{}: web client from {} ({} files) at GET / and /app/", self.name,
                         dir.string(), web->size());
        }
        core_->set_web(std::move(web));
    }

    // The options of `self` (bad values fall back to the defaults with a warning).
    static void read_limits(const topology::DaemonSpec& self, RestLimits& limits,
                            ClientMessageLimits& message_limits) {
        const RestLimits d;
        limits.max_body_bytes = uint_option(self, "max_body_bytes", d.max_body_bytes);
        limits.max_connections = uint_option(self, "max_connections", d.max_connections);
        limits.max_buffered_body_bytes =
            uint_option(self, "max_buffered_body_bytes", d.max_buffered_body_bytes);
        limits.max_messages_per_request =
            uint_option(self, "max_messages_per_request", d.max_messages_per_request);
        limits.request_timeout_ms =
            static_cast<int>(std::min<std::uint64_t>(uint_option(self, "request_timeout_ms",
                                                                 d.request_timeout_ms), 600'000));
        limits.send_timeout_ms =
            static_cast<int>(std::min<std::uint64_t>(uint_option(self, "send_timeout_ms",
                                                                 d.send_timeout_ms), 600'000));
        limits.idle_timeout_s =
            static_cast<int>(std::min<std::uint64_t>(uint_option(self, "idle_timeout_seconds",
                                                                 d.idle_timeout_s), 86'400));
        message_limits.max_bytes = uint_option(self, "max_message_bytes", 64 * 1024);
        limits.revocation_poll_ms = static_cast<int>(std::clamp<std::uint64_t>(
            uint_option(self, "revocation_poll_ms", d.revocation_poll_ms), 50, 1000));
        limits.rate_limits = read_user_rate_limits(self);
        limits.allowed_origins = self.option_strings("allowed_origins");
        for (const std::string& origin : limits.allowed_origins)
            if (const std::string error = origin_entry_error(origin); !error.empty())
                throw std::invalid_argument(self.name + ": option allowed_origins: " + error);
    }

    void reload(const topology::DaemonSpec& fresh) override {
        asio::post(io_, [this, fresh] {
            RestLimits limits = core_->limits();
            ClientMessageLimits message_limits = core_->message_limits();
            RestLimits next;
            ClientMessageLimits next_messages = message_limits;
            try {
                read_limits(fresh, next, next_messages);
            } catch (const std::exception& e) {
                spdlog::error("{}: SIGHUP: {}; limits unchanged", context_.self.name, e.what());
                return;
            }
            next.max_connections = fit_connection_cap(context_.self.name, "max_connections",
                                                      next.max_connections, 0);
            LimitChanges changes;
            changes.apply("max_body_bytes", limits.max_body_bytes, next.max_body_bytes);
            changes.apply("max_connections", limits.max_connections, next.max_connections);
            changes.apply("max_buffered_body_bytes", limits.max_buffered_body_bytes,
                          next.max_buffered_body_bytes);
            changes.apply("max_messages_per_request", limits.max_messages_per_request,
                          next.max_messages_per_request);
            changes.apply("request_timeout_ms", limits.request_timeout_ms, next.request_timeout_ms);
            changes.apply("send_timeout_ms", limits.send_timeout_ms, next.send_timeout_ms);
            changes.apply("idle_timeout_seconds", limits.idle_timeout_s, next.idle_timeout_s);
            changes.apply("max_message_bytes", message_limits.max_bytes, next_messages.max_bytes);
            UserRateLimits& rates = limits.rate_limits;
            const UserRateLimits& fresh_rates = next.rate_limits;
            changes.apply("send_rate_per_minute", rates.sends.rate_per_minute,
                          fresh_rates.sends.rate_per_minute);
            changes.apply("send_burst", rates.sends.burst, fresh_rates.sends.burst);
            changes.apply("group_op_rate_per_minute", rates.group_ops.rate_per_minute,
                          fresh_rates.group_ops.rate_per_minute);
            changes.apply("group_op_burst", rates.group_ops.burst, fresh_rates.group_ops.burst);
            changes.apply("contact_sync_names_per_minute", rates.contact_sync.rate_per_minute,
                          fresh_rates.contact_sync.rate_per_minute);
            changes.apply("contact_sync_burst", rates.contact_sync.burst,
                          fresh_rates.contact_sync.burst);
            changes.apply("rate_limit_max_users", rates.max_users, fresh_rates.max_users);
            changes.log(context_.self.name);
            if (limits.allowed_origins != next.allowed_origins) {
                spdlog::info("{}: SIGHUP: allowed_origins now [{}]", context_.self.name,
                             fmt::join(next.allowed_origins, ", "));
                limits.allowed_origins = std::move(next.allowed_origins);
            }
            core_->set_limits(limits, message_limits);
            if (listener_) listener_->set_max_connections(limits.max_connections);
            body_budget_.set_total(limits.max_buffered_body_bytes);
        });
    }
    ~RestGateway() override {
        request_stop();
        join();
    }

    void bind() override {
        // The connection cap must fit the descriptor limit (common/fd_limit.hpp).
        RestLimits fitted = core_->limits();
        fitted.max_connections = fit_connection_cap(context_.self.name, "max_connections",
                                                    fitted.max_connections, 0);
        core_->set_limits(fitted, core_->message_limits());
        body_budget_.set_total(fitted.max_buffered_body_bytes);
        const std::string listen = context_.self.endpoint("listen");
        const tcp::endpoint endpoint = tcp_endpoint_of(context_.self.name, "listen", listen);
        listener_ = std::make_shared<HttpListener>(
            io_, endpoint, context_.self.name, connections_, core_->limits().max_connections,
            [this](tcp::socket&& socket) {
                auto session = std::make_shared<HttpSession>(std::move(socket),
                                                             connections_.enter(), *this);
                sessions_.push_back(session);
                session->run();
            },
            [this](tcp::socket&& socket) {
                std::make_shared<HttpSession>(std::move(socket), ConnectionCount::Token{}, *this)
                    ->refuse();
            });
        const auto bound = listener_->local_endpoint();
        bound_listen_ = to_host_port(bound);
        router_ = bind_socket(context_, zmq::socket_type::router, "router");
        bound_router_ = last_endpoint(router_);
    }

    void connect() override {
        push_ = make_socket(context_.zmq, zmq::socket_type::push);
        // ZMQ_IMMEDIATE: messages go only to routers that are connected, so a router that is
        // down (several may run) neither takes nor queues any; with none connected a send is
        // refused at once and the client is told "server busy, retry".
        push_.set(zmq::sockopt::immediate, 1);
        for (const auto& router : topology::peers(context_.topology, context_.self, "message-router", "pull"))
            connect_socket(context_, push_, router);
        // One DEALER per owner kind, connected to every instance (round robin), except for
        // persistence, which is sharded: one DEALER per shard, chosen by the user's slot.
        auto round_robin = [this](const std::vector<topology::Peer>& instances) {
            Owner owner;
            owner.dealers.push_back(make_socket(context_.zmq, zmq::socket_type::dealer));
            for (const auto& instance : instances) connect_socket(context_, owner.dealers.back(), instance);
            owner.present = !instances.empty();
            return owner;
        };
        owners_.emplace("profile",
                        round_robin(topology::peers(context_.topology, context_.self, "profile", "router")));
        owners_.emplace("group",
                        round_robin(topology::peers(context_.topology, context_.self, "group", "router")));
        Owner persistence;
        const auto shards = topology::peers(context_.topology, context_.self, "persistence", "router");
        if (!shards.empty()) {
            persistence.shards = std::make_unique<topology::ShardMap>(context_.topology, "persistence");
            for (const auto& shard : shards) { // in ShardMap order: dealer i reaches shard i
                persistence.dealers.push_back(make_socket(context_.zmq, zmq::socket_type::dealer));
                connect_socket(context_, persistence.dealers.back(), shard);
            }
            persistence.present = true;
        }
        owners_.emplace("persistence", std::move(persistence));
        for (auto& [kind, owner] : owners_)
            for (auto& dealer : owner.dealers)
                watchers_.push_back(std::make_unique<ZmqAsioWatcher>(
                    io_, dealer, [this, socket = zmq::socket_ref(dealer)] { on_replies(socket); }));
        router_watcher_ = std::make_unique<ZmqAsioWatcher>(io_, router_, [this] { on_server_acks(); });
    }

    void start() override {
        if (core_->serving()) serving_.store(true, std::memory_order_release); // no profile daemon
        listener_->run();
        for (auto& watcher : watchers_) watcher->start();
        router_watcher_->start();
        core_->expire(); // the first revocation poll at once: authenticated paths wait for it
        schedule_sweep();
        thread_ = std::thread([this] {
            name_this_thread(context_.self.name);
            io_.run();
            push_.close();
            router_.close();
            for (auto& [kind, owner] : owners_)
                for (auto& dealer : owner.dealers) dealer.close();
        });
    }

    void request_stop() override {
        asio::post(io_, [this] {
            if (stopping_) return;
            stopping_ = true;
            if (listener_) listener_->stop();
            sweep_.cancel();
            for (auto& watcher : watchers_) watcher->stop();
            if (router_watcher_) router_watcher_->stop();
            // Waiting requests and sends are answered now; then every connection closes
            // and the io_context ends when the last one is gone.
            core_->drain();
            for (auto& weak : sessions_)
                if (auto session = weak.lock()) session->close();
            drain_started_ = std::chrono::steady_clock::now();
            check_drained();
        });
    }

    // Ends the io_context once every connection is gone, or after 2 s at most, so a peer
    // that never reads its last response cannot hold the drain.
    void check_drained() {
        if (connections_.live() == 0 ||
            std::chrono::steady_clock::now() - drain_started_ > std::chrono::seconds(2)) {
            io_.stop();
            return;
        }
        drain_deadline_.expires_after(std::chrono::milliseconds(10));
        drain_deadline_.async_wait([this](beast::error_code ec) {
            if (!ec) check_drained();
        });
    }

    void join() override {
        if (thread_.joinable()) thread_.join();
    }

    std::map<std::string, std::string> bound_endpoints() const override {
        return {{"listen", bound_listen_}, {"router", bound_router_}};
    }
    bool serving() const override { return serving_.load(std::memory_order_acquire); }

    RestGatewayCore& core() { return *core_; }
    bool stopping() const { return stopping_; }
    // Reserves a request body's bytes (body_budget.hpp); false (logged at most every 10 s,
    // counted) when they do not fit.
    bool reserve_body(std::size_t bytes, BodyBudget::Token& token) {
        if (body_budget_.reserve(bytes, token)) return true;
        if (budget_log_.allow(context_.clock.monotonic_ms()))
            spdlog::warn("{}: buffered request bodies at max_buffered_body_bytes ({} of {} "
                         "bytes in use): a {}-byte body refused with 503 ({} refused in all, "
                         "{} not logged since the last line)",
                         context_.self.name, body_budget_.in_use(), body_budget_.total(), bytes,
                         body_budget_.refused(), budget_log_.take_suppressed());
        return false;
    }

private:
    struct Owner {
        std::vector<zmq::socket_t> dealers;
        std::unique_ptr<topology::ShardMap> shards; // persistence only
        bool present = false;
    };

    // RestOutbox
    bool has_owner(std::string_view kind) const override {
        auto it = owners_.find(std::string(kind));
        return it != owners_.end() && it->second.present;
    }
    SendResult to_owner(std::string_view kind, const Envelope& request) override {
        Owner& owner = owners_.at(std::string(kind));
        zmq::socket_t& dealer =
            owner.shards ? owner.dealers[owner.shards->index_for(request.from)] : owner.dealers.front();
        return send_envelope(dealer, request, scratch_);
    }
    SendResult to_router(const Envelope& message) override {
        return send_envelope(push_, message, scratch_);
    }
    SendResult reply(std::string_view routing_id, const Envelope& reply) override {
        return send_envelope(router_, reply, scratch_, routing_id);
    }
    void sent() override { poke_all(); }

    void poke_all() {
        for (auto& watcher : watchers_) watcher->poke();
        router_watcher_->poke();
    }

    void on_replies(zmq::socket_ref dealer) {
        Incoming incoming;
        std::string error;
        for (int i = 0; i < 256; ++i) {
            const auto result = receive_envelope(dealer, false, incoming, &error);
            if (result == ReceiveResult::empty) return;
            if (result == ReceiveResult::malformed) {
                core_->dropped("malformed reply", error);
                continue;
            }
            core_->on_reply(std::move(incoming.envelope));
            if (!serving_.load(std::memory_order_relaxed) && core_->serving()) {
                serving_.store(true, std::memory_order_release);
                spdlog::info("{}: revocation list loaded ({} keys): serving authenticated "
                             "requests", context_.self.name, core_->revocations().size());
            }
        }
    }

    // server_acks from sessions (and group-routers) for messages sent over REST.
    void on_server_acks() {
        Incoming incoming;
        std::string error;
        for (int i = 0; i < 256; ++i) {
            const auto result = receive_envelope(router_, true, incoming, &error);
            if (result == ReceiveResult::empty) return;
            if (result == ReceiveResult::malformed) {
                core_->dropped("malformed envelope", error);
                continue;
            }
            core_->on_router(incoming.routing_id, incoming.envelope);
        }
    }

    // Periodic duty (every 250 ms, or revocation_poll_ms if shorter): the core's timeouts
    // and revocation poll, then the metrics.
    void schedule_sweep() {
        sweep_.expires_after(std::chrono::milliseconds(
            std::min(250, core_->limits().revocation_poll_ms)));
        sweep_.async_wait([this](beast::error_code ec) {
            if (ec) return;
            std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
            core_->expire();
            publisher_.tick([this](metrics::Snapshot& snapshot) { publish(snapshot); });
            schedule_sweep();
        });
    }

    void publish(metrics::Snapshot& s) {
        const rest_gateway::RestCounters& c = core_->counters();
        add_messages_in_out(s, static_cast<double>(c.replied),
                            static_cast<double>(c.messages_pushed));
        s.gauge("vartalap_connections", "open HTTP connections",
                static_cast<double>(connections_.live()));
        add_queue_depth(s, "pending_requests", static_cast<double>(core_->pending_requests()));
        add_queue_depth(s, "pending_sends", static_cast<double>(core_->pending_sends()));
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"forwarded", c.forwarded}, {"replied", c.replied},
            {"upstream_timeouts", c.upstream_timeouts},
            {"messages_pushed", c.messages_pushed}, {"busy", c.busy},
            {"malformed", c.malformed}, {"revoked_refused", c.revoked_refused},
            {"starting_refused", c.starting_refused},
            {"origin_refused", c.origin_refused}, {"content_type_refused", c.content_type_refused},
            {"messages_refused", c.messages_refused},
            {"revocation_polls_failed", core_->revocations().polls_failed()},
            {"accept_failures", listener_ ? listener_->accept_failures() : 0},
            {"body_budget_refused", body_budget_.refused()},
            {"rate_limited_sends", c.rate_limited_sends},
            {"rate_limited_group_ops", c.rate_limited_group_ops},
            {"rate_limited_contact_syncs", c.rate_limited_contact_syncs}};
        add_counters(s, "rest_gateway", rows);
        s.gauge("vartalap_rest_gateway_buffered_body_bytes",
                "request body bytes reserved by requests not yet answered",
                static_cast<double>(body_budget_.in_use()));
        s.gauge("vartalap_revoked_keys", "access keys on this gateway's revocation list",
                static_cast<double>(core_->revocations().size()));
    }

    DaemonContext context_;
    Publisher publisher_{context_.board, context_.clock};
    // Declared before io_: sessions still pending when the loop stops are destroyed with
    // the io_context, and their tokens count down here.
    ConnectionCount connections_;
    BodyBudget body_budget_{RestLimits{}.max_buffered_body_bytes};
    LogLimiter budget_log_{10'000};
    asio::io_context io_{1};
    asio::steady_timer sweep_;
    asio::steady_timer drain_deadline_;
    std::chrono::steady_clock::time_point drain_started_;
    std::unique_ptr<RestGatewayCore> core_;
    std::shared_ptr<HttpListener> listener_;
    zmq::socket_t push_;
    zmq::socket_t router_;
    std::map<std::string, Owner> owners_;
    std::vector<std::unique_ptr<ZmqAsioWatcher>> watchers_;
    std::unique_ptr<ZmqAsioWatcher> router_watcher_;
    std::vector<std::weak_ptr<HttpSession>> sessions_; // for the drain's close
    std::string scratch_;
    std::string bound_listen_;
    std::string bound_router_;
    std::thread thread_;
    bool stopping_ = false;
    // Whether authenticated requests are served (RestGatewayCore::serving), for
    // System::wait_serving on another thread.
    std::atomic<bool> serving_{false};
};

void HttpSession::do_read() {
    if (gateway_.stopping()) return close();
    const RestLimits& limits = gateway_.core().limits();
    read_request({limits.max_header_bytes, limits.max_body_bytes,
                  std::chrono::seconds(limits.idle_timeout_s)},
                 true);
}

bool HttpSession::on_header(const http::request_parser<http::string_body>& parser) {
    // Content-Length (at most max_body_bytes: the parser refused a larger one), else
    // max_body_bytes for a chunked body, else nothing.
    std::size_t bytes = 0;
    if (const auto length = parser.content_length())
        bytes = static_cast<std::size_t>(*length);
    else if (parser.chunked())
        bytes = gateway_.core().limits().max_body_bytes;
    if (gateway_.reserve_body(bytes, body_)) return true;
    answer_and_close(http::status::service_unavailable,
                     rest_gateway::json_error("server busy, retry"));
    return false;
}

void HttpSession::on_read_failed(ReadFailure failure, beast::error_code) {
    switch (failure) {
    case ReadFailure::too_large:
        return answer_and_close(http::status::payload_too_large,
                                rest_gateway::json_error("request body too large"));
    case ReadFailure::malformed:
        return answer_and_close(http::status::bad_request,
                                rest_gateway::json_error("malformed HTTP request"));
    case ReadFailure::closed:
        return close(); // end of stream, timeout, reset: nothing to answer
    }
}

void HttpSession::refuse() {
    answer_and_close(http::status::service_unavailable,
                     rest_gateway::json_error("too many connections"));
}

void HttpSession::answer_and_close(http::status status, std::string body) {
    request_ = {};
    request_.keep_alive(false);
    respond({static_cast<rest_gateway::HttpStatus>(status), std::move(body)});
}

void HttpSession::on_request(Request&& request) {
    request_ = std::move(request);
    rest_gateway::RestRequest r = to_rest_request(request_);
    responding_ = true; // the core answers now, or a reply, a timeout or the drain will
    gateway_.core().handle(self(), std::move(r));
}

void HttpSession::respond(RestResponse response) {
    responding_ = false;
    body_.release();
    keep_alive_ = request_.keep_alive() && !gateway_.stopping();
    to_http_response(std::move(response), request_.version(), keep_alive_, response_);
    write_response(response_, std::chrono::seconds(30));
}

void HttpSession::on_written(beast::error_code ec) {
    if (ec || !keep_alive_) return close();
    do_read();
}

void HttpSession::close() {
    if (responding_) return; // the pending reply will close after writing
    HttpSessionBase::close();
}

} // namespace

} // namespace vartalap::rest_gateway

namespace vartalap {

std::unique_ptr<Daemon> make_rest_gateway(const DaemonContext& context) {
    return std::make_unique<rest_gateway::RestGateway>(context);
}

} // namespace vartalap
