// The push daemon (topology kind "push", binds "pull"): sends a push notification through
// a provider (FCM HTTP v1 or a webhook) for every offline message persistence announces.
// Its wire, policies and options are docs/INTERNAL_PROTOCOL.md "Push".
#pragma once

#include "daemons/daemon.hpp"

namespace vartalap {

std::unique_ptr<Daemon> make_push(const DaemonContext& context);

} // namespace vartalap
