// The persistence daemon (kind "persistence"): the socket adapter around PersistenceCore
// (persistence_daemon.cpp holds the class, its outbox over the sockets and its loop).
// daemons/factories.hpp includes it beside the other kinds.
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_persistence(const DaemonContext& context);

} // namespace vartalap
