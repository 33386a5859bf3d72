// Thread: the ws-gateway's io thread (see zmq_outbox.hpp).
#include "daemons/ws_gateway/zmq_outbox.hpp"

namespace vartalap::ws_gateway {

ZmqOutbox::ZmqOutbox(std::vector<zmq::socket_ref> router_pushes, std::vector<zmq::socket_ref> session_pushes,
                     const topology::ShardMap& session_shards, zmq::socket_ref router,
                     ZmqAsioWatcher& router_watcher)
    : router_pushes_(std::move(router_pushes)),
      session_pushes_(std::move(session_pushes)),
      session_shards_(session_shards),
      router_(router),
      router_watcher_(router_watcher) {}

SendResult ZmqOutbox::to_router(const Envelope& envelope, std::size_t& router) {
    const std::size_t count = router_pushes_.size();
    if (count == 0) return SendResult::would_block;
    std::size_t start;
    if (router == kNoRouter) {
        start = next_router_;
        next_router_ = (next_router_ + 1) % count;
    } else {
        start = (router + 1) % count;
    }
    // A router that is not connected (ZMQ_IMMEDIATE) or at its high-water mark refuses at
    // once: the next one is tried. Encoded once for all attempts.
    encode_envelope(envelope, scratch_);
    SendResult result = SendResult::would_block;
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t candidate = (start + i) % count;
        result = send_encoded(router_pushes_[candidate], envelope.kind, scratch_);
        if (result == SendResult::ok) {
            router = candidate;
            return result;
        }
    }
    return result;
}

SendResult ZmqOutbox::to_session(const Envelope& envelope) {
    const std::size_t shard = session_shards_.index_for(envelope.from);
    return send_envelope(session_pushes_.at(shard), envelope, scratch_);
}

SendResult ZmqOutbox::reply(std::string_view routing_id, const Envelope& envelope) {
    if (routing_id.empty()) return SendResult::unroutable; // ROUTER peers always have one
    const SendResult result = send_envelope(router_, envelope, scratch_, routing_id);
    router_watcher_.poke();
    return result;
}

bool ZmqOutbox::session_owns(std::string_view session, std::string_view user) const {
    return session_shards_.instances()[session_shards_.index_for(user)]->name == session;
}

} // namespace vartalap::ws_gateway
