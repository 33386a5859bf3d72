// ws-gateway: reading its options from the topology ([daemon.options]; the list, with
// defaults and ranges, is in ws_gateway_daemon.hpp).
// Errors: a value out of range throws std::invalid_argument naming the option and its range
// (the daemon refuses to start; a SIGHUP keeps the limits it has).
#pragma once

#include "daemons/ws_gateway/ws_gateway_core.hpp"
#include "topology/topology.hpp"

namespace vartalap::ws_gateway {

WsGatewayOptions read_ws_gateway_options(const topology::DaemonSpec& spec);

} // namespace vartalap::ws_gateway
