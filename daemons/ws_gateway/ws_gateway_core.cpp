// Thread: the ws-gateway's io thread (see gateway_core.hpp).
#include "daemons/ws_gateway/ws_gateway_core.hpp"

#include "common/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace vartalap::ws_gateway {
namespace {

// Resets a reused envelope to defaults: starting from Envelope{} also resets fields that
// later protocol revisions append. The two strings the gateway fills on every event keep
// their buffers.
void reset(Envelope& e, Kind kind) {
    std::string from = std::move(e.from);
    std::string origin_gateway = std::move(e.origin_gateway);
    e = Envelope{};
    from.clear();
    origin_gateway.clear();
    e.from = std::move(from);
    e.origin_gateway = std::move(origin_gateway);
    e.kind = kind;
}

} // namespace

WsGatewayCore::WsGatewayCore(std::string gateway_name, WsGatewayOutbox& outbox, const Clock& clock,
                         WsGatewayOptions options)
    : name_(std::move(gateway_name)),
      outbox_(outbox),
      clock_(clock),
      options_(options),
      next_connection_id_((clock.wall_ms() << 20) | 1),
      send_limiter_(options_.rate_limits.sends, options_.rate_limits.max_users),
      group_limiter_(options_.rate_limits.group_ops, options_.rate_limits.max_users),
      unconfirmed_(options_.resend) {
    message_limits_.max_bytes = options_.max_frame_bytes;
}

void WsGatewayCore::set_options(const WsGatewayOptions& options) {
    options_ = options;
    message_limits_.max_bytes = options_.max_frame_bytes;
    send_limiter_.set_limit(options_.rate_limits.sends, options_.rate_limits.max_users);
    group_limiter_.set_limit(options_.rate_limits.group_ops, options_.rate_limits.max_users);
    unconfirmed_.set_options(options_.resend);
}

bool WsGatewayCore::within_rate_limits(ClientConnection& connection, std::uint64_t now_ms) {
    if (scratch_.route != Route::chat) return true; // receipts and acks free the server
    const bool group_op = scratch_.has(flag_group) && is_group_operation_payload(scratch_.payload);
    RateLimiter& limiter = group_op ? group_limiter_ : send_limiter_;
    std::uint64_t& refused = group_op ? counters_.rate_limited_group_ops
                                      : counters_.rate_limited_sends;
    std::uint64_t wait_ms = 0;
    if (limiter.take(connection.user(), clock_.monotonic_ms(), wait_ms)) return true;
    ++refused;
    if (rate_limit_log_.allow(clock_.monotonic_ms()))
        spdlog::warn("{}: refused a {} of user '{}' (rate limited, {} so far; {} lines not "
                     "logged)", name_, group_op ? "group operation" : "message",
                     connection.user().substr(0, 64), refused, rate_limit_log_.take_suppressed());
    send_own_frame(connection, error_json("rate limited, retry", scratch_.id, connection.user(),
                                          now_ms));
    return false;
}

ClientConnection* WsGatewayCore::find(std::uint64_t id) const {
    const auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
}

void WsGatewayCore::unregister(ClientConnection& connection) {
    by_id_.erase(connection.id());
    const auto it = by_user_.find(connection.user());
    if (it != by_user_.end() && it->second == connection.id()) by_user_.erase(it);
}

bool WsGatewayCore::opened(ClientConnection& connection) {
    if (const auto it = by_user_.find(connection.user()); it != by_user_.end()) {
        if (ClientConnection* previous = find(it->second)) {
            // The new connection wins. The previous one leaves the registry first, so its
            // dropped frames are answered not_connected and its end sends no disconnect
            // (which the session would have to recognise as stale).
            unregister(*previous);
            ++counters_.replaced;
            spdlog::debug("{}: connection {} of a user replaced by {}", name_, previous->id(),
                          connection.id());
            previous->close(kCloseReplaced, "replaced");
        }
    }
    by_id_.emplace(connection.id(), &connection);
    by_user_[std::string_view(connection.user())] = connection.id();
    ++counters_.opened;
    connection.set_opened_at_ms(clock_.wall_ms());
    reset(scratch_, Kind::connect);
    scratch_.from = connection.user();
    scratch_.origin_gateway = name_;
    scratch_.connection = connection.id();
    scratch_.created_at_ms = connection.opened_at_ms();
    if (connection.wants_server_ack()) scratch_.flags |= flag_wants_server_ack;
    if (outbox_.to_session(scratch_) != SendResult::ok) {
        ++counters_.events_dropped;
        spdlog::warn("{}: session shard busy: connect of connection {} not queued; closing it",
                     name_, connection.id());
        unregister(connection);
        return false;
    }
    return true;
}

void WsGatewayCore::closed(ClientConnection& connection) {
    if (find(connection.id()) != &connection) return; // replaced or closed on request
    unregister(connection);
    send_event(Kind::disconnect, connection);
}

void WsGatewayCore::send_event(Kind kind, const ClientConnection& connection) {
    reset(scratch_, kind);
    scratch_.from = connection.user();
    scratch_.origin_gateway = name_;
    scratch_.connection = connection.id();
    scratch_.created_at_ms = clock_.wall_ms();
    if (outbox_.to_session(scratch_) != SendResult::ok) {
        // A lost disconnect costs little: the session's next deliver to this connection
        // is answered not_connected and marks the user offline.
        ++counters_.events_dropped;
        spdlog::warn("{}: session shard busy: {} of connection {} dropped", name_,
                     to_string(kind), connection.id());
    }
}

void WsGatewayCore::send_own_frame(ClientConnection& connection, std::string text) {
    // Own frames take no reply. On a full queue they are dropped: a lost pong is repeated by
    // the client's next ping, a lost error or SERVER_ACK makes the client resend, which the
    // session dedupes and acks again.
    if (connection.enqueue(OutgoingFrame{std::move(text), {}}) == EnqueueResult::queued)
        ++queued_frames_;
    else
        ++counters_.own_frames_dropped;
}

void WsGatewayCore::client_text(ClientConnection& connection, std::string_view text) {
    if (text == "ping") {
        send_own_frame(connection, "pong");
        return;
    }
    const std::uint64_t now_ms = clock_.wall_ms();
    // While resending is on, every message asks for its server_ack: that is how the gateway
    // learns it is durable (server_ack() sends the frame only to clients that asked).
    const bool resending = unconfirmed_.options().enabled();
    const ClientOrigin origin{connection.user(), name_, connection.id(),
                              connection.wants_server_ack() || resending, now_ms};
    if (!parse_client_message(text, origin, scratch_, parse_error_, message_limits_)) {
        ++counters_.client_errors;
        // A refused message leaves its id in scratch_.id when it could be read.
        send_own_frame(connection, error_json(parse_error_, scratch_.id, connection.user(), now_ms));
        return;
    }
    if (!within_rate_limits(connection, now_ms)) return;
    const bool keep = resending && UnconfirmedMessages::answered(scratch_);
    if (keep && unconfirmed_.full()) {
        // As many messages as max_unconfirmed wait for their server_ack (routers or shards
        // are not answering): take no more until they do.
        ++counters_.busy;
        ++counters_.unconfirmed_full;
        send_own_frame(connection, error_json(kBusyRetry, scratch_.id, connection.user(), now_ms));
        return;
    }
    std::size_t router = WsGatewayOutbox::kNoRouter;
    if (outbox_.to_router(scratch_, router) != SendResult::ok) {
        // Every message-router is at its high-water mark (or none is connected). The message
        // is not taken: no SERVER_ACK will come, and the error tells the client to resend.
        ++counters_.busy;
        send_own_frame(connection, error_json(kBusyRetry, scratch_.id, connection.user(), now_ms));
        return;
    }
    ++counters_.client_messages;
    if (keep) unconfirmed_.add(connection.id(), scratch_, router, clock_.monotonic_ms());
}

void WsGatewayCore::client_binary(ClientConnection& connection) {
    ++counters_.client_errors;
    send_own_frame(connection, error_json("binary frames are not supported: send JSON text",
                                          {}, connection.user(), clock_.wall_ms()));
}

void WsGatewayCore::reply(std::string_view routing_id, std::uint64_t request_id,
                        std::uint64_t connection_id, Status status) {
    switch (status) {
    case Status::ok: ++counters_.delivered; break;
    case Status::not_connected: ++counters_.not_connected; break;
    case Status::overloaded: ++counters_.overloaded; break;
    default: break;
    }
    reset(scratch_, Kind::deliver_result);
    scratch_.origin_gateway = name_;
    scratch_.connection = connection_id;
    scratch_.request_id = request_id;
    scratch_.status = status;
    const SendResult sent = outbox_.reply(routing_id, scratch_);
    if (sent != SendResult::ok) {
        // The session is gone or at its HWM: it times the request out and retries.
        ++counters_.replies_dropped;
        spdlog::warn("{}: deliver_result for request {} dropped ({})", name_, request_id,
                     sent == SendResult::unroutable ? "session unreachable" : "session busy");
    }
}

void WsGatewayCore::frame_done(const DeliverTicket& ticket, bool written) {
    if (queued_frames_ > 0) --queued_frames_;
    if (!ticket.owed()) return;
    reply(ticket.reply_to, ticket.request_id, 0,
          written ? Status::ok : Status::not_connected);
}

void WsGatewayCore::session_request(std::string_view routing_id, Envelope& envelope) {
    switch (envelope.kind) {
    case Kind::deliver: deliver(routing_id, envelope); return;
    case Kind::server_ack: server_ack(envelope); return;
    case Kind::close_connection: close_connection(envelope); return;
    case Kind::resync: resync(routing_id); return;
    default:
        ++counters_.bad_requests;
        spdlog::warn("{}: unexpected {} on the router socket: dropped", name_,
                     to_string(envelope.kind));
        return;
    }
}

// A session shard (re)started and knows nobody: announce again every connection whose user
// it owns, so messages for them are delivered without waiting for the app to reconnect.
void WsGatewayCore::resync(std::string_view session) {
    ++counters_.resyncs;
    std::size_t announced = 0;
    for (const auto& [id, connection] : by_id_) {
        if (!outbox_.session_owns(session, connection->user())) continue;
        reset(scratch_, Kind::connect);
        scratch_.from = connection->user();
        scratch_.origin_gateway = name_;
        scratch_.connection = id;
        // When it opened, not now: a connect of the user's newer connection at another
        // gateway may reach the shard first, and must not lose to this one.
        scratch_.created_at_ms = connection->opened_at_ms();
        if (connection->wants_server_ack()) scratch_.flags |= flag_wants_server_ack;
        if (outbox_.to_session(scratch_) == SendResult::ok)
            ++announced;
        else
            ++counters_.events_dropped;
    }
    spdlog::info("{}: session {} asked for a resync: {} connection(s) announced", name_, session,
                 announced);
}

void WsGatewayCore::deliver(std::string_view routing_id, Envelope& request) {
    ClientConnection* connection = find(request.connection);
    if (connection == nullptr) {
        reply(routing_id, request.request_id, request.connection, Status::not_connected);
        return;
    }
    OutgoingFrame frame{std::move(request.payload),
                        DeliverTicket{std::string(routing_id), request.request_id}};
    switch (connection->enqueue(std::move(frame))) {
    case EnqueueResult::queued: ++queued_frames_; return; // answered by frame_done
    case EnqueueResult::full:
        reply(routing_id, request.request_id, request.connection, Status::overloaded);
        return;
    case EnqueueResult::closed:
        reply(routing_id, request.request_id, request.connection, Status::not_connected);
        return;
    }
}

void WsGatewayCore::server_ack(const Envelope& request) {
    unconfirmed_.confirm(request.connection, request.id); // answered, whatever the status
    ClientConnection* connection = find(request.connection);
    if (connection == nullptr) return;
    if (request.status != Status::ok) {
        // The server refused the message (storage full, not a group member, ...): say why,
        // whether or not the client asked for acks, so it does not wait for one.
        ++counters_.client_errors;
        send_own_frame(*connection,
                       error_json(request.error.empty() ? to_string(request.status) : request.error,
                                  request.id, connection->user(), clock_.wall_ms()));
        return;
    }
    if (!connection->wants_server_ack()) return;
    ++counters_.server_acks;
    send_own_frame(*connection,
                   server_ack_json(request.id, connection->user(), clock_.wall_ms()));
}

void WsGatewayCore::close_connection(const Envelope& request) {
    ClientConnection* connection = find(request.connection);
    if (connection == nullptr) return;
    // Unregistered first: the user is current elsewhere, a disconnect could only be stale.
    unregister(*connection);
    ++counters_.replaced;
    connection->close(kCloseReplaced, "replaced");
}

void WsGatewayCore::revoke(std::string_view user, std::string_view key) {
    auto it = by_user_.find(user);
    if (it == by_user_.end()) return;
    ClientConnection* connection = find(it->second);
    if (!connection || connection->access_key() != key) return;
    ++counters_.revoked_closed;
    connection->close(kCloseRevoked, "access key revoked");
}

void WsGatewayCore::keep_alive() {
    // A connection's keep_alive may close its socket; that ends its read later (a handler),
    // never inside this loop, so the registry does not change under it.
    for (const auto& [id, connection] : by_id_) connection->keep_alive();
}

std::uint64_t WsGatewayCore::resend_period_ms() const {
    const ResendOptions& o = unconfirmed_.options();
    if (!o.enabled()) return 1000;
    return std::clamp<std::uint64_t>(o.resend_after_ms / 4, 50, 1000);
}

void WsGatewayCore::resend_unconfirmed() {
    const UnconfirmedMessages::Due due{
        [this](const Envelope& message, std::size_t& router) {
            (void)outbox_.to_router(message, router);
        },
        [this](std::uint64_t connection_id, const Envelope& message) {
            ClientConnection* connection = find(connection_id);
            if (connection == nullptr) return; // gone: nobody to tell
            send_own_frame(*connection, error_json(kBusyRetry, message.id, connection->user(),
                                                   clock_.wall_ms()));
        }};
    const auto result = unconfirmed_.sweep(clock_.monotonic_ms(), due);
    if (result.resent == 0 && result.given_up == 0) return;
    counters_.resent += result.resent;
    counters_.unconfirmed_given_up += result.given_up;
    if (resend_log_.allow(clock_.monotonic_ms()))
        spdlog::warn("{}: no server_ack in {} ms: {} message(s) pushed again, {} given up after {} "
                     "resends ({} and {} so far; {} lines not logged)",
                     name_, unconfirmed_.options().resend_after_ms, result.resent, result.given_up,
                     unconfirmed_.options().max_resends, counters_.resent,
                     counters_.unconfirmed_given_up, resend_log_.take_suppressed());
}

void WsGatewayCore::close_all() {
    std::vector<ClientConnection*> open;
    open.reserve(by_id_.size());
    for (const auto& [id, connection] : by_id_) open.push_back(connection);
    for (ClientConnection* connection : open) connection->close(kCloseGoingAway, "going away");
}

void WsGatewayCore::abandon_all() {
    std::vector<ClientConnection*> open;
    open.reserve(by_id_.size());
    for (const auto& [id, connection] : by_id_) open.push_back(connection);
    for (ClientConnection* connection : open) {
        unregister(*connection);
        send_event(Kind::disconnect, *connection);
    }
}

} // namespace vartalap::ws_gateway
