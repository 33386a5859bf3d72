// The profile daemon (kind "profile", binds "router"): the ROUTER socket rest-gateways,
// group daemons and push daemons send requests to, and the profile LMDB environment, around
// ProfileCore (profile_daemon.cpp holds the class and its loop). The option
// `identity_provider` is "development" (any token; local use) or "firebase" (cert_fetcher.hpp,
// firebase_token.hpp).
// Thread: its loop (LoopDaemon: its own thread, or one shared with other daemons); see
// daemons/daemon.hpp for the start-up phases.
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_profile(const DaemonContext& context);

} // namespace vartalap
