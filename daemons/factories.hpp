// One factory per daemon kind; registry.cpp maps the topology's kind names to them.
#pragma once

#include "daemons/daemon.hpp"

namespace vartalap {

std::unique_ptr<Daemon> make_ws_gateway(const DaemonContext& context);
std::unique_ptr<Daemon> make_rest_gateway(const DaemonContext& context);
std::unique_ptr<Daemon> make_message_router(const DaemonContext& context);
std::unique_ptr<Daemon> make_session(const DaemonContext& context);
std::unique_ptr<Daemon> make_profile(const DaemonContext& context);
std::unique_ptr<Daemon> make_persistence(const DaemonContext& context);
std::unique_ptr<Daemon> make_group(const DaemonContext& context);
std::unique_ptr<Daemon> make_group_router(const DaemonContext& context);
std::unique_ptr<Daemon> make_push(const DaemonContext& context);

} // namespace vartalap
