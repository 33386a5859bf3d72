// The group daemon (kind "group"): the socket adapter around GroupCore. Declared here so
// that daemons/factories.hpp can list it beside the other kinds (same declaration).
#pragma once

#include "daemons/daemon.hpp"

#include <memory>

namespace vartalap {

std::unique_ptr<Daemon> make_group(const DaemonContext& context);

} // namespace vartalap
