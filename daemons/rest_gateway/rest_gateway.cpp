// Thread: the rest-gateway daemon's own thread runs the io_context: the acceptor, every
// HTTP connection, the PUSH to the message-routers, the ROUTER that receives server_acks,
// the DEALERs to the owner daemons (profile, persistence, group) and the timeout sweep.
#include "daemons/rest_gateway/rest_gateway.hpp"

#include "common/wire/client_message.hpp"
#include "common/http_auth.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/zmq/asio_watcher.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/factories.hpp"
#include "daemons/options.hpp"
#include "daemons/publisher.hpp"
#include "daemons/reload.hpp"
#include "topology/catalog.hpp"
#include "topology/shard_map.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <memory>
#include <thread>
#include <unordered_map>

namespace vartalap {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

using nlohmann::json;

struct RestLimits {
    std::size_t max_body_bytes = 1 << 20;   // 1 MiB: a batch of messages, never a file
    std::size_t max_header_bytes = 16384;
    std::size_t max_connections = 10000;
    std::size_t max_messages_per_request = 1000; // one send body
    int request_timeout_ms = 5000;          // a daemon that does not answer → 504
    int send_timeout_ms = 10000;            // a message not confirmed durable → "not confirmed"
    int idle_timeout_s = 60;                // keep-alive connection with no request
};

std::string json_error(std::string_view reason) {
    return json{{"error", reason}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Value of `key` in a query string ("a=1&b=2"), undecoded (cursors and numbers only).
std::string query_value(std::string_view query, std::string_view key) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == key)
            return eq == std::string_view::npos ? std::string{} : std::string(pair.substr(eq + 1));
    }
    return {};
}

class RestGateway;

// One HTTP connection: read a request, answer it (maybe after a round trip to a daemon),
// then read the next one. Pipelined requests wait in the read buffer, so responses go out
// in request order and at most one request per connection is outstanding.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
public:
    HttpSession(tcp::socket socket, RestGateway& gateway);
    void run() { do_read(); }
    // Completes the outstanding request (from a reply dispatch, a timeout, or the drain).
    void respond(http::status status, std::string body,
                 std::string_view content_type = "application/json", std::string allow = {});
    void close();

private:
    void do_read();
    void on_read(beast::error_code ec, std::size_t);
    void handle();
    void on_write(bool keep_alive, beast::error_code ec, std::size_t);

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::request<http::string_body> request_;
    std::shared_ptr<http::response<http::string_body>> response_;
    RestGateway& gateway_;
    bool responding_ = false;
};

// One POST /send or /messages waiting for its messages' server_acks.
struct PendingSend {
    std::shared_ptr<HttpSession> session;
    SendResults results;
    std::chrono::steady_clock::time_point deadline;
    http::status status;
    std::vector<std::uint64_t> tokens; // server_ack correlation of the stored messages
};

class RestGateway final : public Daemon {
public:
    explicit RestGateway(const DaemonContext& context)
        : context_(context), acceptor_(io_), sweep_(io_), drain_deadline_(io_) {
        read_limits(context_.self, limits_, message_limits_);
    }

    // The options of `self` (bad values fall back to the defaults with a warning).
    static void read_limits(const topology::DaemonSpec& self, RestLimits& limits,
                            ClientMessageLimits& message_limits) {
        const RestLimits d;
        limits.max_body_bytes = uint_option(self, "max_body_bytes", d.max_body_bytes);
        limits.max_connections = uint_option(self, "max_connections", d.max_connections);
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
    }

    void reload(const topology::DaemonSpec& fresh) override {
        asio::post(io_, [this, fresh] {
            RestLimits next;
            ClientMessageLimits next_messages = message_limits_;
            read_limits(fresh, next, next_messages);
            LimitChanges changes;
            changes.apply("max_body_bytes", limits_.max_body_bytes, next.max_body_bytes);
            changes.apply("max_connections", limits_.max_connections, next.max_connections);
            changes.apply("max_messages_per_request", limits_.max_messages_per_request,
                          next.max_messages_per_request);
            changes.apply("request_timeout_ms", limits_.request_timeout_ms, next.request_timeout_ms);
            changes.apply("send_timeout_ms", limits_.send_timeout_ms, next.send_timeout_ms);
            changes.apply("idle_timeout_seconds", limits_.idle_timeout_s, next.idle_timeout_s);
            changes.apply("max_message_bytes", message_limits_.max_bytes, next_messages.max_bytes);
            changes.log(context_.self.name);
        });
    }
    ~RestGateway() override {
        request_stop();
        join();
    }

    void bind() override {
        const std::string listen = context_.self.endpoint("listen");
        const tcp::endpoint endpoint = tcp_endpoint_of(context_.self.name, "listen", listen);
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen(asio::socket_base::max_listen_connections);
        const auto bound = acceptor_.local_endpoint();
        bound_listen_ = to_host_port(bound);
        router_ = make_socket(context_.zmq, zmq::socket_type::router);
        router_.bind(context_.self.endpoint("router"));
        bound_router_ = last_endpoint(router_);
    }

    void connect() override {
        push_ = make_socket(context_.zmq, zmq::socket_type::push);
        for (const auto& router : topology::peers(context_.topology, context_.self, "message-router", "pull"))
            push_.connect(router.endpoint);
        // One DEALER per owner kind, connected to every instance (round robin), except for
        // persistence, which is sharded: one DEALER per shard, chosen by the user's slot.
        auto round_robin = [this](const std::vector<topology::Peer>& instances) {
            Owner owner;
            owner.dealers.push_back(make_socket(context_.zmq, zmq::socket_type::dealer));
            for (const auto& instance : instances) owner.dealers.back().connect(instance.endpoint);
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
                persistence.dealers.back().connect(shard.endpoint);
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
        do_accept();
        for (auto& watcher : watchers_) watcher->start();
        router_watcher_->start();
        schedule_sweep();
        thread_ = std::thread([this] {
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
            beast::error_code ignored;
            acceptor_.close(ignored);
            sweep_.cancel();
            for (auto& watcher : watchers_) watcher->stop();
            router_watcher_->stop();
            // Outstanding requests are answered now (their daemons' answers would come too
            // late); sends list what was confirmed so far. Then every connection closes and
            // the io_context ends when the last one is gone.
            auto pending = std::move(pending_);
            for (auto& [id, entry] : pending)
                entry.session->respond(http::status::service_unavailable, json_error("shutting down"));
            auto sends = std::move(sends_);
            for (auto& [id, send] : sends) finish_send(*send);
            for (auto& weak : sessions_)
                if (auto session = weak.lock()) session->close();
            drain_started_ = std::chrono::steady_clock::now();
            check_drained();
        });
    }

    // Ends the io_context once every connection is gone, or after 2 s at most, so a peer
    // that never reads its last response cannot hold the drain.
    void check_drained() {
        if (live_sessions() == 0 ||
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

    const AccessKeys& access_keys() const { return context_.access_keys; }
    const RestLimits& limits() const { return limits_; }
    bool stopping() const { return stopping_; }

    void add_session(const std::shared_ptr<HttpSession>& session) { sessions_.push_back(session); }
    std::size_t live_sessions() {
        std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
        return sessions_.size();
    }

    // Sends a request to the owner daemon of `kind` (sharded by `user` for persistence).
    // The reply, or 504 after the timeout, goes to `session`.
    void forward(const std::shared_ptr<HttpSession>& session, const std::string& kind,
                 std::string method, std::string user, std::string payload) {
        auto it = owners_.find(kind);
        if (it == owners_.end() || !it->second.present)
            return session->respond(http::status::not_found,
                                    json_error("this deployment runs no " + kind + " daemon"));
        Owner& owner = it->second;
        zmq::socket_t& dealer =
            owner.shards ? owner.dealers[owner.shards->index_for(user)] : owner.dealers.front();
        Envelope request;
        request.kind = Kind::request;
        request.request_id = ++next_request_id_;
        request.method = std::move(method);
        request.from = std::move(user);
        request.payload = std::move(payload);
        if (send_envelope(dealer, request, scratch_) != SendResult::ok) {
            ++counters_.busy;
            return session->respond(http::status::service_unavailable, json_error("server busy, retry"));
        }
        ++counters_.forwarded;
        poke_all();
        pending_[request.request_id] =
            Pending{session, std::chrono::steady_clock::now() +
                                 std::chrono::milliseconds(limits_.request_timeout_ms)};
    }

    // POST /send and /messages: parse each message as the ws-gateway does, push it to a
    // router, and answer when every message is durable (its session's server_ack) or
    // refused. Acks and ephemeral messages are never stored, so handing them on is all.
    void send(const std::shared_ptr<HttpSession>& session, const std::string& user,
              const std::vector<std::string>& texts, http::status success) {
        auto pending = std::make_shared<PendingSend>(PendingSend{
            session, SendResults(texts.size()),
            std::chrono::steady_clock::now() + std::chrono::milliseconds(limits_.send_timeout_ms),
            success, {}});
        const std::uint64_t now_ms = context_.clock.wall_ms();
        Envelope envelope;
        std::string error;
        std::vector<std::uint64_t> tokens;
        for (std::size_t i = 0; i < texts.size(); ++i) {
            ClientOrigin origin;
            origin.user = user;
            origin.gateway = context_.self.name;
            origin.connection = ++next_token_;
            origin.wants_server_ack = true;
            origin.now_ms = now_ms;
            if (!parse_client_message(texts[i], origin, envelope, error, message_limits_)) {
                pending->results.resolve(i, false, error);
                continue;
            }
            pending->results.set_id(i, envelope.id);
            const bool stored = envelope.route != Route::ack && !envelope.has(flag_ephemeral);
            if (send_envelope(push_, envelope, scratch_) != SendResult::ok) {
                ++counters_.busy;
                pending->results.resolve(i, false, "server busy, retry");
                continue;
            }
            ++counters_.messages_pushed;
            if (!stored) {
                pending->results.resolve(i, true);
                continue;
            }
            send_tokens_[origin.connection] = {pending, i};
            tokens.push_back(origin.connection);
        }
        poke_all();
        if (pending->results.done()) return finish_send(*pending);
        pending->tokens = std::move(tokens);
        sends_[pending->tokens.front()] = pending;
    }

private:
    struct Pending {
        // Owning: while a request waits for its daemon, no async operation holds the
        // connection, so this reference keeps it alive until the reply or the timeout.
        std::shared_ptr<HttpSession> session;
        std::chrono::steady_clock::time_point deadline;
    };
    struct Owner {
        std::vector<zmq::socket_t> dealers;
        std::unique_ptr<topology::ShardMap> shards; // persistence only
        bool present = false;
    };
    void finish_send(PendingSend& send) {
        for (const auto token : send.tokens) send_tokens_.erase(token);
        send.session->respond(send.status, send.results.to_json());
    }

    void poke_all() {
        for (auto& watcher : watchers_) watcher->poke();
        router_watcher_->poke();
    }

    void do_accept() {
        acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
            if (ec) {
                if (ec != asio::error::operation_aborted)
                    spdlog::warn("rest-gateway {}: accept: {}", context_.self.name, ec.message());
                if (!stopping_) do_accept();
                return;
            }
            auto session = std::make_shared<HttpSession>(std::move(socket), *this);
            if (live_sessions() >= limits_.max_connections) {
                session->respond(http::status::service_unavailable, json_error("too many connections"));
            } else {
                add_session(session);
                session->run();
            }
            do_accept();
        });
    }

    void on_replies(zmq::socket_ref dealer) {
        Incoming incoming;
        std::string error;
        for (int i = 0; i < 256; ++i) {
            const auto result = receive_envelope(dealer, false, incoming, &error);
            if (result == ReceiveResult::empty) return;
            if (result == ReceiveResult::malformed || incoming.envelope.kind != Kind::reply) {
                warn_dropped(counters_.malformed, context_.self.name, "malformed reply", error);
                continue;
            }
            auto it = pending_.find(incoming.envelope.request_id);
            if (it == pending_.end()) continue; // answered 504 already
            ++counters_.replied;
            auto session = std::move(it->second.session);
            pending_.erase(it);
            session->respond(http_status(incoming.envelope.status), std::move(incoming.envelope.payload));
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
                warn_dropped(counters_.malformed, context_.self.name, "malformed envelope", error);
                continue;
            }
            const Envelope& e = incoming.envelope;
            if (e.kind == Kind::deliver) {
                // Nobody is connected to a REST gateway: say so, so the session does not wait.
                Envelope reply;
                reply.kind = Kind::deliver_result;
                reply.request_id = e.request_id;
                reply.status = Status::not_connected;
                send_envelope(router_, reply, scratch_, incoming.routing_id);
                continue;
            }
            if (e.kind != Kind::server_ack) continue;
            auto it = send_tokens_.find(e.connection);
            if (it == send_tokens_.end()) continue; // answered already (timeout), or a resend
            auto [send, index] = it->second;
            send_tokens_.erase(it);
            send->results.resolve(index, e.status == Status::ok,
                                  e.error.empty() ? std::string(to_string(e.status)) : e.error);
            if (send->results.done()) {
                sends_.erase(send->tokens.front());
                finish_send(*send);
            }
        }
    }

    static http::status http_status(Status status) {
        switch (status) {
        case Status::ok: return http::status::ok;
        case Status::bad_request: return http::status::bad_request;
        case Status::unauthorized: return http::status::unauthorized;
        case Status::not_found: return http::status::not_found;
        case Status::refused: return http::status::forbidden;
        case Status::overloaded: return http::status::service_unavailable;
        default: return http::status::internal_server_error;
        }
    }

    // Periodic duty (every 250 ms): answer requests whose daemon did not reply (504) and
    // sends whose messages were not all confirmed in time (listed as "not confirmed").
    void schedule_sweep() {
        sweep_.expires_after(std::chrono::milliseconds(250));
        sweep_.async_wait([this](beast::error_code ec) {
            if (ec) return;
            const auto now = std::chrono::steady_clock::now();
            for (auto it = pending_.begin(); it != pending_.end();) {
                if (it->second.deadline <= now) {
                    ++counters_.upstream_timeouts;
                    it->second.session->respond(http::status::gateway_timeout, json_error("upstream timeout"));
                    it = pending_.erase(it);
                } else {
                    ++it;
                }
            }
            for (auto it = sends_.begin(); it != sends_.end();) {
                if (it->second->deadline <= now) {
                    auto send = std::move(it->second);
                    it = sends_.erase(it);
                    finish_send(*send);
                } else {
                    ++it;
                }
            }
            publisher_.tick([this](metrics::Snapshot& snapshot) { publish(snapshot); });
            schedule_sweep();
        });
    }

    void publish(metrics::Snapshot& s) {
        add_messages_in_out(s, static_cast<double>(counters_.replied),
                            static_cast<double>(counters_.messages_pushed));
        s.gauge("vartalap_connections", "open HTTP connections", static_cast<double>(live_sessions()));
        add_queue_depth(s, "pending_requests", static_cast<double>(pending_.size()));
        add_queue_depth(s, "pending_sends", static_cast<double>(sends_.size()));
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"forwarded", counters_.forwarded}, {"replied", counters_.replied},
            {"upstream_timeouts", counters_.upstream_timeouts},
            {"messages_pushed", counters_.messages_pushed}, {"busy", counters_.busy},
            {"malformed", counters_.malformed}};
        add_counters(s, "rest_gateway", rows);
    }

    struct Counters {
        std::uint64_t forwarded = 0;         // requests sent to an owner daemon
        std::uint64_t replied = 0;           // requests answered by their daemon
        std::uint64_t upstream_timeouts = 0; // answered 504
        std::uint64_t messages_pushed = 0;   // /send messages pushed to a router
        std::uint64_t busy = 0;              // "server busy, retry" (a peer at its HWM)
        std::uint64_t malformed = 0;
    };

    DaemonContext context_;
    RestLimits limits_;
    Counters counters_;
    Publisher publisher_{context_.board, context_.clock};
    ClientMessageLimits message_limits_;
    asio::io_context io_{1};
    tcp::acceptor acceptor_;
    asio::steady_timer sweep_;
    asio::steady_timer drain_deadline_;
    std::chrono::steady_clock::time_point drain_started_;
    zmq::socket_t push_;
    zmq::socket_t router_;
    std::map<std::string, Owner> owners_;
    std::vector<std::unique_ptr<ZmqAsioWatcher>> watchers_;
    std::unique_ptr<ZmqAsioWatcher> router_watcher_;
    std::unordered_map<std::uint64_t, Pending> pending_;
    // Sends in flight, keyed by their first message's token; and each message's token.
    std::unordered_map<std::uint64_t, std::shared_ptr<PendingSend>> sends_;
    std::unordered_map<std::uint64_t, std::pair<std::shared_ptr<PendingSend>, std::size_t>> send_tokens_;
    std::vector<std::weak_ptr<HttpSession>> sessions_;
    std::uint64_t next_request_id_ = 0;
    std::uint64_t next_token_ = 0;
    std::string scratch_;
    std::string bound_listen_;
    std::string bound_router_;
    std::thread thread_;
    bool stopping_ = false;
};

HttpSession::HttpSession(tcp::socket socket, RestGateway& gateway)
    : stream_(std::move(socket)), gateway_(gateway) {}

void HttpSession::do_read() {
    if (gateway_.stopping()) return close();
    parser_.emplace();
    parser_->body_limit(gateway_.limits().max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(gateway_.limits().max_header_bytes));
    stream_.expires_after(std::chrono::seconds(gateway_.limits().idle_timeout_s));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
}

void HttpSession::on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return close();
    if (ec == http::error::body_limit) {
        request_ = {};
        request_.keep_alive(false);
        return respond(http::status::payload_too_large, json_error("request body too large"));
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category()) {
        request_ = {};
        request_.keep_alive(false);
        return respond(http::status::bad_request, json_error("malformed HTTP request"));
    }
    if (ec) return close(); // timeout, reset: nothing to answer
    request_ = parser_->release();
    handle();
}

void HttpSession::handle() {
    const std::string_view target = request_.target();
    const auto question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
    const RestRoute route = route_request(request_.method_string(), path);
    switch (route.target) {
    case RestRoute::not_found:
        return respond(http::status::not_found, json_error("not found"));
    case RestRoute::method_not_allowed:
        return respond(http::status::method_not_allowed, json_error("method not allowed"),
                       "application/json", route.allow);
    case RestRoute::alive:
        return respond(http::status::ok, "OK", "text/plain");
    default:
        break;
    }
    std::string user;
    if (route.needs_auth) {
        auto authenticated = authenticate(request_, gateway_.access_keys());
        if (!authenticated) return respond(http::status::unauthorized, "{}");
        user = std::move(*authenticated);
    }
    // Bodies are parsed and written out again, which recurses once per nesting level: a
    // deeply nested body is refused before parsing (send bodies add one level, the array).
    if (const std::size_t max_depth = ClientMessageLimits{}.max_depth + 1;
        nested_deeper_than(request_.body(), max_depth))
        return respond(http::status::bad_request,
                       json_error("body nested too deeply (at most " + std::to_string(max_depth) +
                                  " levels)"));
    responding_ = true; // a reply, a timeout or the drain will call respond()
    if (route.target == RestRoute::send_objects || route.target == RestRoute::send_strings) {
        std::string error;
        auto texts = split_send_body(route.target, request_.body(),
                                     gateway_.limits().max_messages_per_request, error);
        if (!texts) return respond(http::status::bad_request, json_error(error));
        // The app's POST /messages expects 201 Created; /send answers 200.
        return gateway_.send(shared_from_this(), user, *texts,
                             route.target == RestRoute::send_strings ? http::status::created
                                                                     : http::status::ok);
    }
    std::string payload = std::move(request_.body());
    json body;
    if (request_.method() == http::verb::get || request_.method() == http::verb::delete_) {
        body = json::object();
        if (request_.method() == http::verb::delete_ && !payload.empty())
            body = json::parse(payload, nullptr, false);
    } else {
        body = json::parse(payload, nullptr, false);
    }
    if (body.is_discarded() || !body.is_object())
        return respond(http::status::bad_request, json_error("body must be a JSON object"));
    if (route.method == "login") {
        // The identity token may come in the `token` header instead of the body.
        if (auto it = request_.find("token"); it != request_.end() && !body.contains("authToken"))
            body["authToken"] = std::string(it->value());
    } else if (route.method == "messages") {
        const std::string limit = query_value(query, "limit");
        if (!limit.empty()) {
            unsigned value = 0;
            auto [ptr, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), value);
            if (ec != std::errc{} || ptr != limit.data() + limit.size())
                return respond(http::status::bad_request, json_error("limit must be a number"));
            body["limit"] = value;
        }
        if (auto cursor = query_value(query, "cursor"); !cursor.empty()) body["cursor"] = cursor;
    }
    if (!route.group_id.empty()) body["groupId"] = route.group_id;
    gateway_.forward(shared_from_this(), route.daemon_kind, route.method, std::move(user),
                     body.dump(-1, ' ', false, json::error_handler_t::replace));
}

void HttpSession::respond(http::status status, std::string body, std::string_view content_type,
                          std::string allow) {
    responding_ = false;
    response_ = std::make_shared<http::response<http::string_body>>(status, request_.version() ? request_.version() : 11);
    response_->set(http::field::server, "vartalap");
    response_->set(http::field::content_type, content_type);
    if (!allow.empty()) response_->set(http::field::allow, allow);
    response_->keep_alive(request_.keep_alive() && !gateway_.stopping());
    response_->body() = std::move(body);
    response_->prepare_payload();
    stream_.expires_after(std::chrono::seconds(30));
    http::async_write(stream_, *response_,
                      beast::bind_front_handler(&HttpSession::on_write, shared_from_this(),
                                                response_->keep_alive()));
}

void HttpSession::on_write(bool keep_alive, beast::error_code ec, std::size_t) {
    if (ec || !keep_alive) return close();
    response_.reset();
    do_read();
}

void HttpSession::close() {
    if (responding_) return; // the pending reply will close after writing
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
}

} // namespace

std::unique_ptr<Daemon> make_rest_gateway(const DaemonContext& context) {
    return std::make_unique<RestGateway>(context);
}

} // namespace vartalap
