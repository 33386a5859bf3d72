#include "daemons/factories.hpp"

#include <stdexcept>

namespace vartalap {

std::unique_ptr<Daemon> make_daemon(const DaemonContext& context) {
    const std::string& kind = context.self.kind;
    if (kind == "ws-gateway") return make_ws_gateway(context);
    if (kind == "rest-gateway") return make_rest_gateway(context);
    if (kind == "message-router") return make_message_router(context);
    if (kind == "session") return make_session(context);
    if (kind == "profile") return make_profile(context);
    if (kind == "persistence") return make_persistence(context);
    if (kind == "group") return make_group(context);
    if (kind == "group-router") return make_group_router(context);
    if (kind == "push") return make_push(context);
    throw std::invalid_argument("unknown daemon kind '" + kind + "'");
}

} // namespace vartalap
