// One factory per daemon kind, each declared (and documented) in its folder's
// <kind>_daemon.hpp; registry.cpp maps the topology's kind names to them.
#pragma once

#include "daemons/group/group_daemon.hpp"
#include "daemons/group_router/group_router_daemon.hpp"
#include "daemons/message_router/message_router_daemon.hpp"
#include "daemons/persistence/persistence_daemon.hpp"
#include "daemons/profile/profile_daemon.hpp"
#include "daemons/push/push_daemon.hpp"
#include "daemons/rest_gateway/rest_gateway_daemon.hpp"
#include "daemons/session/session_daemon.hpp"
#include "daemons/ws_gateway/ws_gateway_daemon.hpp"
