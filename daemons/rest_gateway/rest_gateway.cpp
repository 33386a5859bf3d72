// Thread: the rest-gateway daemon's own thread runs the io_context: the acceptor, every
// HTTP connection, the DEALER to the profile daemons and the request-timeout sweep.
#include "daemons/rest_gateway/rest_gateway.hpp"

#include "common/http_auth.hpp"
#include "common/log.hpp"
#include "common/zmq_util.hpp"
#include "daemons/factories.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <thread>
#include <unordered_map>

namespace vartalap {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

RestRoute route_request(std::string_view http_method, std::string_view path) {
    if (path.substr(0, 5) == "/v1.0" && (path.size() == 5 || path[5] == '/'))
        path.remove_prefix(5);
    if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    RestRoute route;
    auto expect = [&](std::string_view wanted, RestRoute::Target target, std::string method,
                      bool needs_auth) {
        route.allow = std::string(wanted);
        if (http_method != wanted) {
            route.target = RestRoute::method_not_allowed;
            return;
        }
        route.target = target;
        route.method = std::move(method);
        route.needs_auth = needs_auth;
    };
    if (path == "/alive")
        expect("GET", RestRoute::alive, "", false);
    else if (path == "/login")
        expect("POST", RestRoute::profile_daemon, "login", false);
    else if (path == "/profile")
        expect("GET", RestRoute::profile_daemon, "profile", true);
    else if (path == "/contactbook/sync" || path == "/profile/user/sync")
        expect("POST", RestRoute::profile_daemon, "contactbook_sync", true);
    return route;
}

namespace {

using nlohmann::json;

struct RestLimits {
    std::size_t max_body_bytes = 1 << 20;   // 1 MiB: a batch of messages, never a file
    std::size_t max_header_bytes = 16384;
    std::size_t max_connections = 10000;
    int request_timeout_ms = 5000;          // a daemon that does not answer → 504
    int idle_timeout_s = 60;                // keep-alive connection with no request
};

class RestGateway;

// One HTTP connection: read a request, answer it (maybe after a round trip to a daemon),
// then read the next one. Pipelined requests wait in the read buffer, so responses go out
// in request order and at most one request per connection is outstanding.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
public:
    HttpSession(tcp::socket socket, RestGateway& gateway);
    ~HttpSession();
    void run() { do_read(); }
    // Completes the outstanding request (from the gateway's reply dispatch or timeout).
    void respond(http::status status, std::string body, std::string_view content_type = "application/json");
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

class RestGateway final : public Daemon {
public:
    explicit RestGateway(const DaemonContext& context) : context_(context), acceptor_(io_), sweep_(io_) {
        limits_.max_body_bytes = static_cast<std::size_t>(
            context_.self.option_int("max_body_bytes", static_cast<std::int64_t>(limits_.max_body_bytes)));
        limits_.max_connections = static_cast<std::size_t>(
            context_.self.option_int("max_connections", static_cast<std::int64_t>(limits_.max_connections)));
        limits_.request_timeout_ms =
            static_cast<int>(context_.self.option_int("request_timeout_ms", limits_.request_timeout_ms));
    }
    ~RestGateway() override {
        request_stop();
        join();
    }

    void bind() override {
        const std::string listen = context_.self.endpoint("listen");
        const auto colon = listen.rfind(':');
        if (colon == std::string::npos)
            throw std::invalid_argument(context_.self.name + ": listen must be host:port");
        const tcp::endpoint endpoint(asio::ip::make_address(listen.substr(0, colon)),
                                     static_cast<unsigned short>(std::stoi(listen.substr(colon + 1))));
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen(asio::socket_base::max_listen_connections);
        const auto bound = acceptor_.local_endpoint();
        bound_listen_ = bound.address().to_string() + ":" + std::to_string(bound.port());
    }

    void connect() override {
        dealer_ = make_socket(context_.zmq, zmq::socket_type::dealer);
        for (const auto* profile : context_.topology.of_kind("profile"))
            dealer_.connect(profile->endpoint("router"));
        watcher_ = std::make_unique<ZmqAsioWatcher>(io_, dealer_, [this] { on_replies(); });
    }

    void start() override {
        do_accept();
        watcher_->start();
        schedule_sweep();
        thread_ = std::thread([this] {
            io_.run();
            dealer_.close();
        });
    }

    void request_stop() override {
        asio::post(io_, [this] {
            if (stopping_) return;
            stopping_ = true;
            beast::error_code ignored;
            acceptor_.close(ignored);
            sweep_.cancel();
            watcher_->stop();
            // Outstanding requests get 503 (their daemon's answer would arrive too late),
            // then every connection closes; the io_context ends when the last one is gone.
            auto pending = std::move(pending_);
            for (auto& [id, entry] : pending)
                entry.session->respond(http::status::service_unavailable, R"({"error":"shutting down"})");
            for (auto& weak : sessions_)
                if (auto session = weak.lock()) session->close();
            // Bound the drain: a peer that never reads its last response cannot hold us.
            drain_deadline_.expires_after(std::chrono::seconds(2));
            drain_deadline_.async_wait([this](beast::error_code ec) {
                if (!ec) io_.stop();
            });
        });
    }

    void join() override {
        if (thread_.joinable()) thread_.join();
    }

    std::map<std::string, std::string> bound_endpoints() const override {
        return {{"listen", bound_listen_}};
    }

    const AccessKeys& access_keys() const { return context_.access_keys; }
    const RestLimits& limits() const { return limits_; }
    bool stopping() const { return stopping_; }

    void add_session(const std::shared_ptr<HttpSession>& session) { sessions_.push_back(session); }
    void remove_expired_sessions() {
        std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
    }
    std::size_t session_count() const { return sessions_.size(); }

    // Sends a request to a profile daemon; the reply (or a 504 after the timeout) goes to
    // `session`. Returns false (caller answers 503) if the daemon's queue is full.
    bool forward(const std::shared_ptr<HttpSession>& session, std::string method,
                 std::string from, std::string payload) {
        Envelope request;
        request.kind = Kind::request;
        request.request_id = ++next_request_id_;
        request.method = std::move(method);
        request.from = std::move(from);
        request.payload = std::move(payload);
        if (send_envelope(dealer_, request, scratch_) != SendResult::ok) return false;
        watcher_->poke();
        pending_[request.request_id] =
            Pending{session, std::chrono::steady_clock::now() +
                                 std::chrono::milliseconds(limits_.request_timeout_ms)};
        return true;
    }

private:
    struct Pending {
        // Owning: while a request waits for its daemon, no async operation holds the
        // connection, so this reference keeps it alive until the reply or the timeout.
        std::shared_ptr<HttpSession> session;
        std::chrono::steady_clock::time_point deadline;
    };

    void do_accept() {
        acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
            if (ec) {
                if (ec != asio::error::operation_aborted)
                    spdlog::warn("rest-gateway {}: accept: {}", context_.self.name, ec.message());
                if (!stopping_) do_accept();
                return;
            }
            remove_expired_sessions();
            auto session = std::make_shared<HttpSession>(std::move(socket), *this);
            if (session_count() >= limits_.max_connections) {
                session->respond(http::status::service_unavailable, R"({"error":"too many connections"})");
            } else {
                add_session(session);
                session->run();
            }
            do_accept();
        });
    }

    void on_replies() {
        Incoming incoming;
        std::string error;
        for (int i = 0; i < 256; ++i) {
            const auto result = receive_envelope(dealer_, false, incoming, &error);
            if (result == ReceiveResult::empty) return;
            if (result == ReceiveResult::malformed || incoming.envelope.kind != Kind::reply) {
                spdlog::warn("rest-gateway {}: malformed reply: {}", context_.self.name, error);
                continue;
            }
            auto it = pending_.find(incoming.envelope.request_id);
            if (it == pending_.end()) continue; // timed out already
            auto session = std::move(it->second.session);
            pending_.erase(it);
            session->respond(http_status(incoming.envelope.status), std::move(incoming.envelope.payload));
        }
    }

    static http::status http_status(Status status) {
        switch (status) {
        case Status::ok: return http::status::ok;
        case Status::bad_request: return http::status::bad_request;
        case Status::unauthorized: return http::status::unauthorized;
        case Status::not_found: return http::status::not_found;
        case Status::refused:
        case Status::overloaded: return http::status::service_unavailable;
        default: return http::status::internal_server_error;
        }
    }

    // Periodic duty (every 250 ms): answer 504 to requests whose daemon did not reply.
    void schedule_sweep() {
        sweep_.expires_after(std::chrono::milliseconds(250));
        sweep_.async_wait([this](beast::error_code ec) {
            if (ec) return;
            const auto now = std::chrono::steady_clock::now();
            for (auto it = pending_.begin(); it != pending_.end();) {
                if (it->second.deadline <= now) {
                    it->second.session->respond(http::status::gateway_timeout, R"({"error":"upstream timeout"})");
                    it = pending_.erase(it);
                } else {
                    ++it;
                }
            }
            schedule_sweep();
        });
    }

    DaemonContext context_;
    RestLimits limits_;
    asio::io_context io_{1};
    tcp::acceptor acceptor_;
    asio::steady_timer sweep_;
    asio::steady_timer drain_deadline_{io_};
    zmq::socket_t dealer_;
    std::unique_ptr<ZmqAsioWatcher> watcher_;
    std::unordered_map<std::uint64_t, Pending> pending_;
    std::vector<std::weak_ptr<HttpSession>> sessions_;
    std::uint64_t next_request_id_ = 0;
    std::string scratch_;
    std::string bound_listen_;
    std::thread thread_;
    bool stopping_ = false;
};

HttpSession::HttpSession(tcp::socket socket, RestGateway& gateway)
    : stream_(std::move(socket)), gateway_(gateway) {}

HttpSession::~HttpSession() = default;

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
        return respond(http::status::payload_too_large, R"({"error":"request body too large"})");
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category()) {
        request_ = {};
        request_.keep_alive(false);
        return respond(http::status::bad_request, R"({"error":"malformed HTTP request"})");
    }
    if (ec) return close(); // timeout, reset: nothing to answer
    request_ = parser_->release();
    handle();
}

void HttpSession::handle() {
    const std::string_view target = request_.target();
    const std::string_view path = target.substr(0, target.find('?'));
    const RestRoute route = route_request(request_.method_string(), path);
    switch (route.target) {
    case RestRoute::not_found:
        return respond(http::status::not_found, R"({"error":"not found"})");
    case RestRoute::method_not_allowed: {
        respond(http::status::method_not_allowed, R"({"error":"method not allowed"})");
        response_->set(http::field::allow, route.allow);
        return;
    }
    case RestRoute::alive:
        return respond(http::status::ok, "OK", "text/plain");
    case RestRoute::profile_daemon:
        break;
    }
    std::string user;
    if (route.needs_auth) {
        auto authenticated = authenticate(request_, gateway_.access_keys());
        if (!authenticated) return respond(http::status::unauthorized, "{}");
        user = std::move(*authenticated);
    }
    std::string payload = std::move(request_.body());
    if (route.method == "login") {
        // The identity token may come in the `token` header instead of the body.
        json body = json::parse(payload, nullptr, false);
        if (body.is_discarded() || !body.is_object())
            return respond(http::status::bad_request, R"({"error":"body must be a JSON object"})");
        if (auto it = request_.find("token"); it != request_.end() && !body.contains("authToken"))
            body["authToken"] = std::string(it->value());
        payload = body.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    responding_ = true; // a reply or a timeout will call respond()
    if (!gateway_.forward(shared_from_this(), route.method, std::move(user), std::move(payload))) {
        responding_ = false;
        respond(http::status::service_unavailable, R"({"error":"server busy, retry"})");
    }
}

void HttpSession::respond(http::status status, std::string body, std::string_view content_type) {
    responding_ = false;
    response_ = std::make_shared<http::response<http::string_body>>(status, request_.version() ? request_.version() : 11);
    response_->set(http::field::server, "vartalap");
    response_->set(http::field::content_type, content_type);
    response_->keep_alive(request_.keep_alive() && !gateway_.stopping());
    response_->body() = std::move(body);
    response_->prepare_payload();
    // Post the write so that handle() can still add headers (Allow) before it starts.
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
        self->stream_.expires_after(std::chrono::seconds(30));
        http::async_write(self->stream_, *self->response_,
                          beast::bind_front_handler(&HttpSession::on_write, self,
                                                    self->response_->keep_alive()));
    });
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
