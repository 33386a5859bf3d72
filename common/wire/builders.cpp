// Thread: any (pure functions; see builders.hpp).
#include "common/wire/builders.hpp"

#include <nlohmann/json.hpp>

namespace vartalap {

Envelope make_reply(const Envelope& request, Status status, std::string payload, std::string_view error) {
    Envelope out;
    out.kind = Kind::reply;
    out.id = request.id;
    out.from = request.from;
    out.to = request.to;
    out.request_id = request.request_id;
    out.method = request.method;
    out.status = status;
    out.error = std::string(error);
    if (payload.empty() && status != Status::ok)
        out.payload = nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                                             nlohmann::json::error_handler_t::replace);
    else
        out.payload = std::move(payload);
    return out;
}

void build_server_ack(Envelope& out, const ServerAck& ack) {
    // Field by field rather than `out = Envelope{}`: the reused strings keep their capacity,
    // so a server_ack per message allocates nothing.
    out.kind = Kind::server_ack;
    out.id.assign(ack.id);
    out.channel.assign(ack.channel);
    out.from.assign(ack.sender);
    out.to.assign(ack.sender);
    out.ids.clear();
    out.origin_gateway.assign(ack.gateway);
    out.connection = ack.connection;
    out.created_at_ms = 0;
    out.retry_count = 0;
    out.flags = 0;
    out.request_id = ack.request_id;
    out.status = ack.status;
    out.method.clear();
    out.error.assign(ack.error);
    out.payload.clear();
    out.cursor = 0;
    out.limit = 0;
    out.items.clear();
    out.route = Route::none;
}

} // namespace vartalap
