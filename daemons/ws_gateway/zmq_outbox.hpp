// ws-gateway: WsGatewayOutbox over the gateway's ZeroMQ sockets.
//
// Thread: the ws-gateway's io thread only (it owns the sockets after start).
//
// Sockets (all made by make_socket: HWM 10 000, LINGER 1 s, ROUTER router_mandatory):
//   router_pushes one PUSH per message-router (ZMQ_IMMEDIATE), tried in round robin: one
//                 socket each, not one connected to all, so that a resend can be sent to
//                 another router than the one that took the message (to_router);
//   session_push  one PUSH per session instance, in ShardMap(topology, "session") order;
//   router        the gateway's bound ROUTER; replies go back to the asking DEALER.
// Every send is non-blocking; results go back to WsGatewayCore, which applies the policy.
// After a send on the ROUTER the watcher is poked: ZMQ_FD is edge-triggered and a send can
// consume the edge that announced incoming requests.
#pragma once

#include "common/zmq/asio_watcher.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/ws_gateway/ws_gateway_core.hpp"
#include "topology/shard_map.hpp"

#include <vector>

namespace vartalap::ws_gateway {

class ZmqOutbox final : public WsGatewayOutbox {
public:
    ZmqOutbox(std::vector<zmq::socket_ref> router_pushes, std::vector<zmq::socket_ref> session_pushes,
              const topology::ShardMap& session_shards, zmq::socket_ref router,
              ZmqAsioWatcher& router_watcher);

    SendResult to_router(const Envelope& envelope, std::size_t& router) override;
    SendResult to_session(const Envelope& envelope) override;
    SendResult reply(std::string_view routing_id, const Envelope& envelope) override;
    bool session_owns(std::string_view session, std::string_view user) const override;

private:
    std::vector<zmq::socket_ref> router_pushes_;
    std::size_t next_router_ = 0; // round-robin position of first pushes
    std::vector<zmq::socket_ref> session_pushes_;
    const topology::ShardMap& session_shards_;
    zmq::socket_ref router_;
    ZmqAsioWatcher& router_watcher_;
    std::string scratch_; // encoding buffer reused by every send
};

} // namespace vartalap::ws_gateway
