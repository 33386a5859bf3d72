// The message-router daemon (kind "message-router", binds "pull"): the PULL socket gateways
// push client messages to, one PUSH per session shard and one PUSH to every group-router,
// around MessageRouterCore (message_router_daemon.cpp holds the class and its loop).
// Thread: its loop (LoopDaemon: its own thread, or one shared with other daemons); see
// daemons/daemon.hpp for the start-up phases.
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_message_router(const DaemonContext& context);

} // namespace vartalap
