// The group daemon (kind "group", binds "router"): the socket adapter around GroupCore
// (group_daemon.cpp holds the class and its loop). daemons/factories.hpp includes it beside
// the other kinds.
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_group(const DaemonContext& context);

} // namespace vartalap
