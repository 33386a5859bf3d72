// The persistence daemon (kind "persistence"): the socket adapter around PersistenceCore
// (persistence_daemon.cpp holds the class, its outbox over the sockets and its loop).
// Declared here so that the adapter's file pair has a header beside the core's;
// daemons/factories.hpp lists it beside the other kinds (same declaration).
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_persistence(const DaemonContext& context);

} // namespace vartalap
