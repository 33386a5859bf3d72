// Thread: the rest-gateway's thread (see rest_gateway_core.hpp).
#include "daemons/rest_gateway/rest_gateway_core.hpp"

#include "common/http/cross_site.hpp"
#include "common/http/target.hpp"
#include "common/log.hpp"

#include <nlohmann/json.hpp>

#include <charconv>

namespace vartalap::rest_gateway {

using nlohmann::json;

HttpStatus http_status(Status status) {
    switch (status) {
    case Status::ok: return HttpStatus::ok;
    case Status::bad_request: return HttpStatus::bad_request;
    case Status::unauthorized: return HttpStatus::unauthorized;
    case Status::not_found: return HttpStatus::not_found;
    case Status::refused: return HttpStatus::forbidden;
    case Status::overloaded: return HttpStatus::service_unavailable;
    case Status::storage_full: return HttpStatus::insufficient_storage;
    default: return HttpStatus::internal_server_error;
    }
}

std::string json_error(std::string_view reason) {
    return json{{"error", reason}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

RestResponse RestGatewayCore::serve_web(std::string_view path) const {
    if (!web_ || !web_->has_index())
        return {HttpStatus::not_found,
                json_error("web client not installed (the rest-gateway's option web_dir)")};
    const std::optional<std::string> name = web_file_name(path);
    const WebFile* file = name ? web_->find(*name) : nullptr;
    if (!file) return {HttpStatus::not_found, json_error("not found")};
    RestResponse response{HttpStatus::ok, file->body, file->content_type};
    // The page runs only its own scripts and talks only to its own server and a WebSocket
    // (the ws-gateway may be on another port); it is never framed.
    response.headers = {
        {"Cache-Control", "no-cache"},
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "no-referrer"},
        {"Content-Security-Policy",
         "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
         "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"}};
    return response;
}

RestGatewayCore::RestGatewayCore(std::string name, RestOutbox& outbox, const Clock& clock,
                                 const AccessKeys& access_keys, const RestLimits& limits,
                                 const ClientMessageLimits& message_limits)
    : name_(std::move(name)), outbox_(outbox), clock_(clock), access_keys_(access_keys),
      limits_(limits), message_limits_(message_limits),
      send_limiter_(limits.rate_limits.sends, limits.rate_limits.max_users),
      group_limiter_(limits.rate_limits.group_ops, limits.rate_limits.max_users),
      sync_limiter_(limits.rate_limits.contact_sync, limits.rate_limits.max_users) {}

void RestGatewayCore::set_limits(const RestLimits& limits,
                                 const ClientMessageLimits& message_limits) {
    limits_ = limits;
    message_limits_ = message_limits;
    const UserRateLimits& r = limits_.rate_limits;
    send_limiter_.set_limit(r.sends, r.max_users);
    group_limiter_.set_limit(r.group_ops, r.max_users);
    sync_limiter_.set_limit(r.contact_sync, r.max_users);
}

bool RestGatewayCore::within_limit(RateLimiter& limiter, std::uint64_t& refused,
                                   std::string_view what, const std::string& user,
                                   std::uint64_t cost, std::uint64_t& retry_after_s) {
    std::uint64_t wait_ms = 0;
    const std::uint64_t now = clock_.monotonic_ms();
    if (limiter.take(user, cost, now, wait_ms)) return true;
    ++refused;
    retry_after_s = retry_after_seconds(wait_ms);
    if (rate_limit_log_.allow(now))
        spdlog::warn("{}: refused a {} of user '{}' (rate limited, retry after {} s; {} so far; "
                     "{} lines not logged)", name_, what, user.substr(0, 64), retry_after_s,
                     refused, rate_limit_log_.take_suppressed());
    return false;
}

namespace {

RestResponse rate_limited(std::uint64_t retry_after_s, std::string body = {}) {
    RestResponse response{HttpStatus::too_many_requests,
                          body.empty() ? json_error("rate limited, retry") : std::move(body)};
    response.retry_after_s = retry_after_s;
    return response;
}

bool is_group_operation_method(std::string_view method) {
    return method == "group_create" || method == "group_add" || method == "group_remove";
}

} // namespace

void RestGatewayCore::handle(const std::shared_ptr<RestExchange>& exchange, RestRequest request) {
    const auto [path, query] = split_target(request.target);
    const RestRoute route = route_request(request.method, path);
    switch (route.target) {
    case RestRoute::not_found:
        return exchange->respond({HttpStatus::not_found, json_error("not found")});
    case RestRoute::method_not_allowed:
        return exchange->respond({HttpStatus::method_not_allowed, json_error("method not allowed"),
                                  "application/json", route.allow});
    case RestRoute::alive:
        return exchange->respond({HttpStatus::ok, "OK", "text/plain"});
    case RestRoute::web:
        return exchange->respond(serve_web(path));
    default:
        break;
    }
    // What a browser may do with cookies (common/http/cross_site.hpp): another site's page
    // can make it POST here with the user's cookies, so a cookie-authenticated write must
    // come from an allowed Origin; and a form or a text/plain fetch can carry any body, so a
    // write's body must be declared JSON (the app always sends application/json).
    const bool write = request.method == "POST" || request.method == "PUT" ||
                       request.method == "DELETE" || request.method == "PATCH";
    if (write && request.cookie_auth &&
        !origin_allowed(request.origin, request.host, limits_.allowed_origins)) {
        if (count_sampled(counters_.origin_refused))
            spdlog::warn("{}: refused a cookie-authenticated {} {} from origin '{}' with 403; {} so far",
                         name_, request.method, path, request.origin.substr(0, 100),
                         counters_.origin_refused);
        return exchange->respond({HttpStatus::forbidden, json_error("origin not allowed")});
    }
    if (write && !request.body.empty() && !json_content_type(request.content_type)) {
        if (count_sampled(counters_.content_type_refused))
            spdlog::warn("{}: refused a {} {} with Content-Type '{}' (415); {} so far", name_,
                         request.method, path, request.content_type.substr(0, 100),
                         counters_.content_type_refused);
        return exchange->respond({HttpStatus::unsupported_media_type,
                                  json_error("Content-Type must be application/json")});
    }
    std::string user;
    if (route.needs_auth) {
        if (request.user.empty() ||
            !access_keys_.verify(request.user, request.access_key, clock_.wall_ms() / 1000))
            return exchange->respond({HttpStatus::unauthorized, "{}"});
        if (!serving()) {
            if (count_sampled(counters_.starting_refused))
                spdlog::warn("{}: no revocation list from the profile daemon yet: {} {} refused "
                             "with 503; {} so far", name_, request.method, path,
                             counters_.starting_refused);
            return exchange->respond({HttpStatus::service_unavailable,
                                      json_error("server starting, retry")});
        }
        if (revocations_.revoked(request.user, request.access_key)) {
            ++counters_.revoked_refused;
            return exchange->respond({HttpStatus::unauthorized, json_error("access key revoked")});
        }
        user = std::move(request.user);
    }
    // Bodies are parsed and written out again, which recurses once per nesting level: a
    // deeply nested body is refused before parsing (send bodies add one level, the array).
    if (const std::size_t max_depth = ClientMessageLimits{}.max_depth + 1;
        nested_deeper_than(request.body, max_depth))
        return exchange->respond({HttpStatus::bad_request,
                                  json_error("body nested too deeply (at most " +
                                             std::to_string(max_depth) + " levels)")});
    if (route.target == RestRoute::send_objects || route.target == RestRoute::send_strings) {
        std::string error;
        auto texts = split_send_body(route.target, request.body,
                                     limits_.max_messages_per_request, error);
        if (!texts) return exchange->respond({HttpStatus::bad_request, json_error(error)});
        // The app's POST /messages expects 201 Created; /send answers 200. The original's
        // POST /messages?ack=true also answered {"acks":[<SERVER_ACK frame>...]} (chat-server
        // v2.8.3, services/connection-gateway/gateway.js, newMessage).
        const bool strings = route.target == RestRoute::send_strings;
        return send(exchange, user, *texts, strings ? HttpStatus::created : HttpStatus::ok,
                    strings && (query_has(query, "ack", "true") || query_has(query, "ack", "1")));
    }
    if (route.method == "logout")
        // The key to revoke is the one this request was authenticated with; a body, if
        // any, is ignored. This gateway refuses the key as soon as profile confirms; the
        // others (and this one, after a restart) learn it from their poll.
        return forward(exchange, route, std::move(user),
                       json{{"accesskey", request.access_key}}.dump(), request.access_key);
    // The REST → internal translation: a JSON object for the owner daemon's method.
    std::string payload = std::move(request.body);
    json body;
    if (request.method == "GET" || request.method == "DELETE") {
        body = json::object();
        if (request.method == "DELETE" && !payload.empty())
            body = json::parse(payload, nullptr, false);
    } else {
        body = json::parse(payload, nullptr, false);
    }
    if (body.is_discarded() || !body.is_object())
        return exchange->respond({HttpStatus::bad_request, json_error("body must be a JSON object")});
    if (route.method == "login") {
        // The identity token may come in the `token` header instead of the body.
        if (request.token && !body.contains("authToken")) body["authToken"] = *request.token;
    } else if (route.method == "messages") {
        const std::string_view limit = query_param(query, "limit").value_or("");
        if (!limit.empty()) {
            unsigned value = 0;
            auto [ptr, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), value);
            if (ec != std::errc{} || ptr != limit.data() + limit.size())
                return exchange->respond({HttpStatus::bad_request,
                                          json_error("limit must be a number")});
            body["limit"] = value;
        }
        if (const auto cursor = query_param(query, "cursor"); cursor && !cursor->empty())
            body["cursor"] = std::string(*cursor);
    }
    if (!route.group_id.empty()) body["groupId"] = route.group_id;
    std::uint64_t retry_after_s = 0;
    if (is_group_operation_method(route.method) &&
        !within_limit(group_limiter_, counters_.rate_limited_group_ops, "group operation", user,
                      1, retry_after_s))
        return exchange->respond(rate_limited(retry_after_s));
    if (route.method == "contactbook_sync") {
        // The cost is the names asked about (phone-number enumeration), at least 1.
        std::uint64_t names = 1;
        if (auto it = body.find("users"); it != body.end() && it->is_array())
            names = std::max<std::uint64_t>(it->size(), 1);
        if (!within_limit(sync_limiter_, counters_.rate_limited_contact_syncs, "contact sync",
                          user, names, retry_after_s))
            return exchange->respond(rate_limited(retry_after_s));
    }
    forward(exchange, route, std::move(user),
            body.dump(-1, ' ', false, json::error_handler_t::replace));
}

// Sends a request to the owner daemon of `kind` (sharded by `user` for persistence). The
// reply, or 504 after the timeout, goes to `exchange`.
void RestGatewayCore::forward(const std::shared_ptr<RestExchange>& exchange,
                              const RestRoute& route, std::string user, std::string payload,
                              std::string logout_key) {
    const std::string& kind = route.daemon_kind;
    if (!outbox_.has_owner(kind))
        return exchange->respond({HttpStatus::not_found,
                                  json_error("this deployment runs no " + kind + " daemon")});
    Envelope request;
    request.kind = Kind::request;
    request.request_id = ++next_request_id_;
    request.method = route.method;
    request.from = user;
    request.payload = std::move(payload);
    if (outbox_.to_owner(kind, request) != SendResult::ok) {
        ++counters_.busy;
        return exchange->respond({HttpStatus::service_unavailable, json_error("server busy, retry")});
    }
    ++counters_.forwarded;
    outbox_.sent();
    pending_[request.request_id] =
        Pending{exchange, clock_.monotonic_ms() + static_cast<std::uint64_t>(limits_.request_timeout_ms),
                route.app_group, route.group_change, std::move(logout_key),
                std::move(user)};
}

// POST /send and /messages: parse each message as the ws-gateway does, push it to a
// router, and answer when every message is durable (its session's server_ack) or refused.
// Acks and ephemeral messages are never stored, so handing them on is all.
void RestGatewayCore::send(const std::shared_ptr<RestExchange>& exchange, const std::string& user,
                           const std::vector<std::string>& texts, HttpStatus success,
                           bool with_acks) {
    auto pending = std::make_shared<PendingSend>(PendingSend{
        exchange, SendResults(texts.size()),
        clock_.monotonic_ms() + static_cast<std::uint64_t>(limits_.send_timeout_ms), success, {},
        {}, with_acks ? user : std::string()});
    const std::uint64_t now_ms = clock_.wall_ms();
    Envelope envelope;
    std::string error;
    std::vector<std::uint64_t> tokens;
    std::size_t limited = 0;        // messages refused by the send bucket
    std::uint64_t retry_after_s = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        ClientOrigin origin;
        origin.user = user;
        origin.gateway = name_;
        origin.connection = ++next_token_;
        origin.wants_server_ack = true;
        origin.now_ms = now_ms;
        if (!parse_client_message(texts[i], origin, envelope, error, message_limits_)) {
            ++counters_.messages_refused;
            pending->results.resolve(i, false, error);
            continue;
        }
        pending->results.set_id(i, envelope.id);
        // Chat messages spend the sender's send tokens; receipts and acks never do (they
        // free the server). Past the bucket: this message is refused "rate limited, retry".
        if (envelope.route == Route::chat &&
            !within_limit(send_limiter_, counters_.rate_limited_sends, "message", user, 1,
                          retry_after_s)) {
            ++limited;
            pending->results.resolve(i, false, "rate limited, retry");
            continue;
        }
        const bool stored = envelope.route != Route::ack && !envelope.has(flag_ephemeral);
        if (outbox_.to_router(envelope) != SendResult::ok) {
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
    outbox_.sent();
    // Nothing was taken and the bucket refused: 429 with Retry-After and the results.
    if (limited > 0 && tokens.empty() && pending->results.accepted_ids().empty()) {
        const std::vector<std::string> no_acks;
        return exchange->respond(rate_limited(
            retry_after_s, pending->results.to_json("rate limited, retry",
                                                   with_acks ? &no_acks : nullptr)));
    }
    if (pending->results.done()) return finish_send(*pending);
    pending->tokens = std::move(tokens);
    sends_[pending->tokens.front()] = pending;
}

void RestGatewayCore::finish_send(PendingSend& send) {
    for (const auto token : send.tokens) send_tokens_.erase(token);
    // ?ack=true: each accepted message's SERVER_ACK, the frame a WebSocket client gets.
    std::vector<std::string> acks;
    if (!send.acks_to.empty()) {
        const std::uint64_t now_ms = clock_.wall_ms();
        for (const std::string_view id : send.results.accepted_ids())
            acks.push_back(server_ack_json(id, send.acks_to, now_ms));
    }
    const std::vector<std::string>* with_acks = send.acks_to.empty() ? nullptr : &acks;
    // A full store refused a message: 507 Insufficient Storage with the error, and still the
    // per-message results (others may have been accepted).
    if (!send.storage_full.empty())
        return send.exchange->respond({HttpStatus::insufficient_storage,
                                       send.results.to_json(send.storage_full, with_acks)});
    send.exchange->respond({send.status, send.results.to_json({}, with_acks)});
}

void RestGatewayCore::on_reply(Envelope&& reply) {
    if (reply.kind != Kind::reply) return dropped("malformed reply", "not a reply");
    if (revocations_.is_reply(reply)) {
        std::vector<std::pair<std::string, std::string>> added;
        if (!revocations_.apply(reply, clock_.wall_ms() / 1000, added))
            dropped("malformed revocation list", reply.error);
        if (revocations_.more()) poll_revocations();
        return;
    }
    auto it = pending_.find(reply.request_id);
    if (it == pending_.end()) return; // answered 504 already
    ++counters_.replied;
    const Pending pending = std::move(it->second);
    pending_.erase(it);
    if (!pending.logout_key.empty() && reply.status == Status::ok)
        revocations_.revoke_here(pending.logout_user, pending.logout_key,
                                 access_keys_.expires_at(pending.logout_key));
    if (!pending.app_group)
        return pending.exchange->respond({http_status(reply.status), std::move(reply.payload)});
    // The app's /group/... paths: a refused operation is 200 {"status":false,...}, as the
    // original answered a non-admin removing someone else (rest_api.hpp, app_group_body).
    const bool ok = reply.status == Status::ok;
    std::string error = reply.error.empty() ? std::string(to_string(reply.status)) : reply.error;
    pending.exchange->respond(
        {ok || reply.status == Status::refused ? HttpStatus::ok : http_status(reply.status),
         app_group_body(ok, pending.group_change, reply.payload, error)});
}

void RestGatewayCore::on_router(std::string_view routing_id, const Envelope& e) {
    if (e.kind == Kind::deliver) {
        // Nobody is connected to a REST gateway: say so, so the session does not wait.
        Envelope answer;
        answer.kind = Kind::deliver_result;
        answer.request_id = e.request_id;
        answer.status = Status::not_connected;
        outbox_.reply(routing_id, answer);
        return;
    }
    if (e.kind != Kind::server_ack) return;
    auto it = send_tokens_.find(e.connection);
    if (it == send_tokens_.end()) return; // answered already (timeout), or a resend
    auto [send, index] = it->second;
    send_tokens_.erase(it);
    std::string reason = e.error.empty() ? std::string(to_string(e.status)) : e.error;
    if (e.status == Status::storage_full && send->storage_full.empty()) send->storage_full = reason;
    send->results.resolve(index, e.status == Status::ok, std::move(reason));
    if (send->results.done()) {
        sends_.erase(send->tokens.front());
        finish_send(*send);
    }
}

void RestGatewayCore::dropped(std::string_view what, std::string_view detail) {
    warn_dropped(counters_.malformed, name_, what, detail);
}

void RestGatewayCore::poll_revocations() {
    if (!outbox_.has_owner("profile")) return;
    auto poll = revocations_.poll(clock_.monotonic_ms(), ++next_request_id_,
                                  static_cast<std::uint64_t>(limits_.revocation_poll_ms));
    if (!poll) return;
    if (outbox_.to_owner("profile", *poll) == SendResult::ok)
        outbox_.sent();
    else
        revocations_.send_failed();
}

void RestGatewayCore::expire() {
    const std::uint64_t now = clock_.monotonic_ms();
    poll_revocations();
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline_ms <= now) {
            ++counters_.upstream_timeouts;
            auto exchange = std::move(it->second.exchange);
            it = pending_.erase(it);
            exchange->respond({HttpStatus::gateway_timeout, json_error("upstream timeout")});
        } else {
            ++it;
        }
    }
    for (auto it = sends_.begin(); it != sends_.end();) {
        if (it->second->deadline_ms <= now) {
            auto send = std::move(it->second);
            it = sends_.erase(it);
            finish_send(*send);
        } else {
            ++it;
        }
    }
}

void RestGatewayCore::drain() {
    // Outstanding requests are answered now (their daemons' answers would come too late);
    // sends list what was confirmed so far.
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, entry] : pending)
        entry.exchange->respond({HttpStatus::service_unavailable, json_error("shutting down")});
    auto sends = std::move(sends_);
    sends_.clear();
    for (auto& [id, send] : sends) finish_send(*send);
}

} // namespace vartalap::rest_gateway
