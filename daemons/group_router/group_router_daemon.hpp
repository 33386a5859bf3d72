// The group-router daemon (kind "group-router", binds "pull" and "router"): the socket adapter around
// GroupRouterCore (group_router_daemon.cpp holds the class and its loop).
// daemons/factories.hpp includes it beside the other kinds.
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_group_router(const DaemonContext& context);

} // namespace vartalap
