// The group-router daemon (kind "group-router"): the socket adapter around GroupRouterCore.
// Declared here so that daemons/factories.hpp can list it beside the other kinds (same
// declaration).
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_group_router(const DaemonContext& context);

} // namespace vartalap
