// The session daemon (kind "session"): the socket adapter around SessionCore
// (session_daemon.cpp holds the class, its Outbox over the sockets and its loop).
// daemons/factories.hpp includes it beside the other kinds.
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_session(const DaemonContext& context);

} // namespace vartalap
