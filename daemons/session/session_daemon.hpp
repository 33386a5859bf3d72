// The session daemon (kind "session"): the socket adapter around SessionCore
// (session_daemon.cpp holds the class, its Outbox over the sockets and its loop). Declared
// here so that the adapter's file pair has a header beside the core's; daemons/factories.hpp
// lists it beside the other kinds (same declaration).
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_session(const DaemonContext& context);

} // namespace vartalap
