// Thread: the ws-gateway's io thread (see zmq_outbox.hpp).
#include "daemons/ws_gateway/zmq_outbox.hpp"

namespace vartalap::ws_gateway {

ZmqOutbox::ZmqOutbox(zmq::socket_ref router_push, std::vector<zmq::socket_ref> session_pushes,
                     const topology::ShardMap& session_shards, zmq::socket_ref router,
                     ZmqAsioWatcher& router_watcher)
    : router_push_(router_push),
      session_pushes_(std::move(session_pushes)),
      session_shards_(session_shards),
      router_(router),
      router_watcher_(router_watcher) {}

SendResult ZmqOutbox::to_router(const Envelope& envelope) {
    return send_envelope(router_push_, envelope, scratch_);
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
