// message-router core: the routing decision (MessageRouterCore, message_router_core.hpp).
// Thread: the message-router daemon's thread.
#include "daemons/message_router/message_router_core.hpp"

#include "common/wire/builders.hpp"
#include "common/wire/client_message.hpp"

#include <spdlog/spdlog.h>

namespace vartalap::message_router {

MessageRouterCore::MessageRouterCore(const topology::ShardMap& shards, MessageRouterOutbox& outbox)
    : shards_(shards), outbox_(outbox) {}

void MessageRouterCore::send_ack(const Envelope& message) {
    // The acking user is the sender of the receipt: its copies live on its own shard.
    scratch_ack_ = Envelope{};
    scratch_ack_.kind = Kind::ack;
    scratch_ack_.id = message.id;
    scratch_ack_.from = message.from;
    scratch_ack_.ids = message.ids;
    // A 1-to-1 receipt names the original sender: only that sender's copies are acked
    // (another sender's message with the same id is not). A group receipt's `to` may be
    // the group id, and a CLIENT_ACK names nobody: `to` stays empty (any sender).
    if (message.route == Route::receipt && !message.has(flag_group)) scratch_ack_.to = message.to;
    scratch_ack_.origin_gateway = message.origin_gateway;
    scratch_ack_.connection = message.connection;
    scratch_ack_.created_at_ms = message.created_at_ms;
    ++counters_.acks;
    outbox_.to_session(shards_.index_for(message.from), scratch_ack_);
}

void MessageRouterCore::route(Envelope& message) {
    if (message.kind != Kind::client_message || message.from.empty() || message.to.empty()) {
        ++counters_.dropped;
        spdlog::warn("message-router: dropped a {} envelope that is not a routable message",
                     to_string(message.kind));
        return;
    }
    if (message.has(flag_group)) {
        // The acker's own copies live on its shard whatever the chat type: acks need no
        // membership, so they are applied here.
        if (message.route == Route::ack) {
            send_ack(message);
            return;
        }
        if (message.route == Route::receipt) send_ack(message);
        if (!outbox_.has_group_router()) {
            ++counters_.dropped;
            spdlog::warn("message-router: group message {} from {} dropped: no group-router",
                         message.id, message.from);
            return;
        }
        // Expansion, membership and group operations belong to the group-router.
        message.kind = Kind::group_message;
        ++counters_.group;
        outbox_.to_group_router(message);
        return;
    }
    if (message.route == Route::ack) {
        send_ack(message);
        return;
    }
    if (message.route == Route::receipt) send_ack(message);
    message.kind = Kind::deliver;
    ++counters_.routed;
    outbox_.to_session(shards_.index_for(message.to), message);
}

void HeldMessages::hold(std::size_t peer, const Envelope& envelope, std::uint64_t now_ms) {
    queues_.at(peer).push_back(Held{envelope, now_ms});
    ++size_;
}

std::size_t HeldMessages::send(const std::function<bool(std::size_t, const Envelope&)>& send) {
    std::size_t sent = 0;
    for (std::size_t peer = 0; peer < queues_.size(); ++peer) {
        auto& queue = queues_[peer];
        while (!queue.empty() && send(peer, queue.front().envelope)) {
            queue.pop_front();
            --size_;
            ++sent;
        }
    }
    return sent;
}

std::size_t HeldMessages::expire(std::uint64_t now_ms, const std::function<void(const Envelope&)>& give_up) {
    std::size_t expired = 0;
    for (auto& queue : queues_) {
        // In arrival order: the first one still young ends the scan of its queue.
        while (!queue.empty() && now_ms - queue.front().since_ms >= hold_timeout_ms_) {
            give_up(queue.front().envelope);
            queue.pop_front();
            --size_;
            ++expired;
        }
    }
    return expired;
}

bool refusal_for(const Envelope& held, Envelope& out) {
    if (held.kind == Kind::ack || held.has(flag_ephemeral) || held.origin_gateway.empty()) return false;
    build_server_ack(out, {.gateway = held.origin_gateway,
                           .connection = held.connection,
                           .request_id = held.request_id,
                           .id = held.id,
                           .sender = held.from,
                           .channel = held.has(flag_group) ? "group" : "",
                           .status = Status::overloaded,
                           .error = kBusyRetry});
    return true;
}

} // namespace vartalap::message_router
