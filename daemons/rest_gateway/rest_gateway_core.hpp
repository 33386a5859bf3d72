// rest-gateway: the socket-free logic of the public HTTP API (PROTOCOL.md's REST paths,
// routed by rest_api.hpp): authenticates a request, translates it into an internal
// request (owner daemons: profile, persistence, group) or into client messages (POST /send,
// /messages), correlates the answers that come back (a `reply` by request id, a
// `server_ack` by message token), and answers what did not come back in time.
//
// Thread: the rest-gateway's one thread (the thread that runs its io_context). Not
// thread-safe.
//
// It never touches a socket: it talks to the ZeroMQ side through RestOutbox and to the HTTP
// side through RestExchange, and reads time from the injected Clock, so unit tests drive it
// with fakes (tests/unit/rest_gateway/).
//
// Answers (bodies are JSON unless said otherwise):
//   404 {"error":"not found"}, 405 {"error":"method not allowed"} (+ Allow), 200 "OK"
//   (text/plain) for /alive, the web client's files for GET /, /app/, /app/<file>
//   (serve_web; 404 {"error":...} for a name it does not hold), 403 {"error":"origin not allowed"} for a write (POST, PUT,
//   DELETE) authenticated by cookie whose Origin is neither the server's own nor in
//   allowed_origins, 415 {"error":...} for a write with a body whose Content-Type is not
//   application/json, 401 {} for missing or invalid credentials (401 {"error":
//   "access key revoked"} for a key on the revocation list), 400 for a body
//   that is nested too deeply, not a JSON object, or not a valid send body, 404 when the
//   deployment runs no daemon of the owner kind, 503 "server busy, retry" when the owner's
//   queue is full, the owner's status mapped (http_status) with its payload as the body,
//   504 {"error":"upstream timeout"} after request_timeout_ms, and for sends
//   {"results":[...]} (SendResults) once every message is confirmed, refused, or
//   send_timeout_ms passed ("not confirmed"), with "acks" (each accepted message's
//   SERVER_ACK frame as a string) for POST /messages?ack=true; 503 {"error":"shutting
//   down"} on drain. The app's /group/... paths answer a daemon's reply in the original's
//   shapes (app_group_body in rest_api.hpp): a refused operation is 200 {"status":false,...}.
//
// Ownership: the core keeps references to the outbox, clock and access keys (they outlive
// it) and shared ownership of every exchange it still owes an answer: while a request waits
// for its daemon no I/O operation holds the connection, so the core keeps it alive.
// Errors: nothing here throws for bad client or peer input; it is answered or counted.
#pragma once

#include "common/access_key.hpp"
#include "common/revocations.hpp"
#include "common/wire/client_message.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/rate_limit.hpp"
#include "common/wire/envelope.hpp"
#include "common/wire/send_result.hpp"
#include "daemons/rest_gateway/rest_api.hpp"
#include "daemons/rest_gateway/web_files.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vartalap::rest_gateway {

struct RestLimits {
    std::size_t max_body_bytes = 1 << 20;   // 1 MiB: a batch of messages, never a file
    std::size_t max_header_bytes = 16384;
    std::size_t max_connections = 10000;
    // All request bodies buffered at once, process-wide (body_budget.hpp): 503 beyond it.
    std::size_t max_buffered_body_bytes = 64 << 20;
    std::size_t max_messages_per_request = 1000; // one send body
    int request_timeout_ms = 5000;          // a daemon that does not answer → 504
    int send_timeout_ms = 10000;            // a message not confirmed durable → "not confirmed"
    int idle_timeout_s = 60;                // keep-alive connection with no request
    int revocation_poll_ms = 250;           // how often the revocation list is polled
    // Origins (besides the server's own) whose cookie-authenticated writes are accepted
    // (common/http/cross_site.hpp); header-authenticated requests (the app) are not checked.
    std::vector<std::string> allowed_origins;
    // Per-user token buckets of this gateway instance (common/rate_limit.hpp): chat messages
    // of POST /send and /messages, group create/add/remove, and the names of a contact sync.
    // Past them: 429 {"error":"rate limited, retry"} with Retry-After.
    UserRateLimits rate_limits;
};

// The HTTP status codes the gateway answers with.
enum class HttpStatus : unsigned {
    ok = 200,
    created = 201,
    bad_request = 400,
    unauthorized = 401,
    forbidden = 403,
    too_many_requests = 429,    // a per-user rate limit (rate_limits); with Retry-After
    not_found = 404,
    method_not_allowed = 405,
    payload_too_large = 413,
    unsupported_media_type = 415, // a write with a body that is not application/json
    internal_server_error = 500,
    service_unavailable = 503,
    gateway_timeout = 504,
    insufficient_storage = 507, // a store is full (Status::storage_full)
};

// An owner daemon's reply status as an HTTP status.
HttpStatus http_status(Status status);

// {"error":"<reason>"}
std::string json_error(std::string_view reason);

// One HTTP request, read in full, as the core needs it (the daemon fills it in).
struct RestRequest {
    std::string method; // "GET", "POST", ...
    std::string target; // path and query: "/v1.0/messages?limit=10"
    std::string body;
    std::string user;   // credentials as sent (headers, else cookies); verified here
    std::string access_key;
    std::optional<std::string> token; // the `token` header (an identity token for login)
    bool cookie_auth = false;  // user or access_key came from a cookie (a browser's)
    std::string origin;        // the Origin header ("" when absent)
    std::string host;          // the Host header
    std::string content_type;  // the Content-Type header
};

struct RestResponse {
    RestResponse(HttpStatus status_, std::string body_,
                 std::string content_type_ = "application/json", std::string allow_ = {})
        : status(status_), body(std::move(body_)), content_type(std::move(content_type_)),
          allow(std::move(allow_)) {}

    HttpStatus status = HttpStatus::ok;
    std::string body;
    std::string content_type = "application/json";
    std::string allow; // Allow header for a 405
    std::vector<std::pair<std::string, std::string>> headers; // more headers (the web files')
    std::uint64_t retry_after_s = 0; // Retry-After of a 429 (a 503 always says 1)
};

// The HTTP side of one request, implemented by the daemon's connection.
class RestExchange {
public:
    // Completes the request; called exactly once per handle().
    virtual void respond(RestResponse response) = 0;

protected:
    ~RestExchange() = default;
};

// The ZeroMQ side, implemented over the gateway's sockets. Never blocks.
class RestOutbox {
public:
    virtual ~RestOutbox() = default;
    // Whether this deployment runs a daemon of `kind` ("profile", "persistence", "group").
    virtual bool has_owner(std::string_view kind) const = 0;
    // A request to the owner daemon of `kind` (persistence: the shard of request.from).
    virtual SendResult to_owner(std::string_view kind, const Envelope& request) = 0;
    // A client message to the message-routers (PUSH, round robin).
    virtual SendResult to_router(const Envelope& message) = 0;
    // An answer on the ROUTER to the peer `routing_id`.
    virtual SendResult reply(std::string_view routing_id, const Envelope& reply) = 0;
    // After a batch of sends: the sockets' watchers look again (ZMQ_FD is edge-triggered
    // and a send can consume the edge that announced incoming replies).
    virtual void sent() {}
};

struct RestCounters {
    std::uint64_t forwarded = 0;         // requests sent to an owner daemon
    std::uint64_t replied = 0;           // requests answered by their daemon
    std::uint64_t upstream_timeouts = 0; // answered 504
    std::uint64_t messages_pushed = 0;   // /send messages pushed to a router
    std::uint64_t busy = 0;              // "server busy, retry" (a peer at its HWM)
    std::uint64_t malformed = 0;
    std::uint64_t revoked_refused = 0;   // 401 for a revoked key
    std::uint64_t starting_refused = 0;  // 503: no revocation list from profile yet
    std::uint64_t origin_refused = 0;    // 403: a cookie-authenticated write from a foreign Origin
    std::uint64_t content_type_refused = 0; // 415: a write whose body is not application/json
    std::uint64_t messages_refused = 0;  // send-body messages the codec refused (bad recipient, ...)
    std::uint64_t rate_limited_sends = 0;         // messages refused by the send bucket
    std::uint64_t rate_limited_group_ops = 0;     // 429 for a group create/add/remove
    std::uint64_t rate_limited_contact_syncs = 0; // 429 for a contact sync
};

class RestGatewayCore {
public:
    RestGatewayCore(std::string name, RestOutbox& outbox, const Clock& clock,
                    const AccessKeys& access_keys, const RestLimits& limits,
                    const ClientMessageLimits& message_limits);

    // One request read in full: answered through `exchange` now, or later (a reply, a
    // timeout in expire(), or drain()).
    void handle(const std::shared_ptr<RestExchange>& exchange, RestRequest request);
    // A reply from an owner daemon (any DEALER).
    void on_reply(Envelope&& reply);
    // An envelope on the gateway's ROUTER from `routing_id`: a session's (or
    // group-router's) server_ack, or a `deliver` (answered not_connected).
    void on_router(std::string_view routing_id, const Envelope& envelope);
    // Counts (and logs, sampled) a dropped peer message.
    void dropped(std::string_view what, std::string_view detail);
    // Periodic duty: answers requests whose daemon did not reply (504) and sends whose
    // messages were not all confirmed in time; polls the profile daemon's revocation list
    // when due (every revocation_poll_ms).
    void expire();
    const RevocationList& revocations() const { return revocations_; }
    // Whether authenticated requests are served: the profile daemon's revocation list has
    // arrived complete once (or there is no profile daemon). Until then they get 503
    // "server starting, retry": a revoked key could not be told from a good one.
    bool serving() const { return !outbox_.has_owner("profile") || revocations_.synced(); }
    // The web client's files served at GET /, /app/ and /app/<file> (null or without an
    // index.html: those paths answer 404 {"error":"web client not installed ..."}).
    void set_web(std::shared_ptr<const WebFiles> web) { web_ = std::move(web); }
    // Shutdown: answers every request still waiting (503) and every send (what was
    // confirmed so far).
    void drain();

    const RestLimits& limits() const { return limits_; }
    void set_limits(const RestLimits& limits, const ClientMessageLimits& message_limits);
    const ClientMessageLimits& message_limits() const { return message_limits_; }
    const RestCounters& counters() const { return counters_; }
    std::size_t pending_requests() const { return pending_.size(); }
    std::size_t pending_sends() const { return sends_.size(); }
    // Users with a bucket, all limits together (each bounded by rate_limits.max_users).
    std::size_t rate_limited_users() const {
        return send_limiter_.size() + group_limiter_.size() + sync_limiter_.size();
    }

private:
    // One request waiting for its owner daemon's reply.
    struct Pending {
        std::shared_ptr<RestExchange> exchange;
        std::uint64_t deadline_ms = 0;
        bool app_group = false;    // RestRoute::app_group: the answer in the app's shapes
        bool group_change = false; // RestRoute::group_change
        std::string logout_key;    // a logout: the key revoked here too once profile says ok
        std::string logout_user;
    };
    // One POST /send or /messages waiting for its messages' server_acks.
    struct PendingSend {
        std::shared_ptr<RestExchange> exchange;
        SendResults results;
        std::uint64_t deadline_ms = 0;
        HttpStatus status = HttpStatus::ok;
        std::vector<std::uint64_t> tokens; // server_ack correlation of the stored messages
        std::string storage_full;          // set: a message was refused for a full store (507)
        std::string acks_to;               // set (the sender): answer with "acks" as well
    };

    void forward(const std::shared_ptr<RestExchange>& exchange, const RestRoute& route,
                 std::string user, std::string payload, std::string logout_key = {});
    void send(const std::shared_ptr<RestExchange>& exchange, const std::string& user,
              const std::vector<std::string>& texts, HttpStatus success, bool with_acks);
    void finish_send(PendingSend& send);
    // Asks the profile daemon for the revocations after the last one, when due.
    void poll_revocations();
    RestResponse serve_web(std::string_view path) const;
    // Spends `cost` of `user`'s tokens in `limiter`; when it may not, counts in `refused`,
    // logs (at most once per 10 s) and sets `retry_after_s`.
    bool within_limit(RateLimiter& limiter, std::uint64_t& refused, std::string_view what,
                      const std::string& user, std::uint64_t cost, std::uint64_t& retry_after_s);

    std::string name_;
    RestOutbox& outbox_;
    const Clock& clock_;
    const AccessKeys& access_keys_;
    RestLimits limits_;
    ClientMessageLimits message_limits_;
    RestCounters counters_;
    std::unordered_map<std::uint64_t, Pending> pending_; // by request id
    // Sends in flight, keyed by their first message's token; and each message's token.
    std::unordered_map<std::uint64_t, std::shared_ptr<PendingSend>> sends_;
    std::unordered_map<std::uint64_t, std::pair<std::shared_ptr<PendingSend>, std::size_t>>
        send_tokens_;
    std::uint64_t next_request_id_ = 0;
    std::uint64_t next_token_ = 0;
    RevocationList revocations_;
    std::shared_ptr<const WebFiles> web_;
    RateLimiter send_limiter_;
    RateLimiter group_limiter_;
    RateLimiter sync_limiter_;
    LogLimiter rate_limit_log_{10000};
};

} // namespace vartalap::rest_gateway
