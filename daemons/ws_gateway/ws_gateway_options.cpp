// ws-gateway: its [daemon.options] (ws_gateway_options.hpp).
// Thread: the controlling thread (the daemon's constructor, SIGHUP's reload).
#include "daemons/ws_gateway/ws_gateway_options.hpp"

#include "common/http/cross_site.hpp"
#include "daemons/options.hpp"
#include "daemons/ws_gateway/server_state.hpp"

#include <stdexcept>
#include <string>

namespace vartalap::ws_gateway {

WsGatewayOptions read_ws_gateway_options(const topology::DaemonSpec& spec) {
    WsGatewayOptions o;
    // 16 MiB: far above any chat message; the envelope decode limit (4 MiB) bounds what a
    // message can carry downstream anyway.
    o.max_frame_bytes = static_cast<std::size_t>(
        option_in_range(spec, "max_frame_bytes", 65536, 1024, 16 << 20));
    o.write_queue_limit = static_cast<std::size_t>(
        option_in_range(spec, "write_queue_limit", 256, 1, 1 << 20));
    o.overflow_close_after = static_cast<std::size_t>(option_in_range(
        spec, "overflow_close_after", static_cast<std::int64_t>(o.write_queue_limit), 1,
        1 << 30));
    o.idle_ping_seconds =
        static_cast<std::uint32_t>(option_in_range(spec, "idle_ping_seconds", 30, 0, 3600));
    o.max_connections = static_cast<std::size_t>(
        option_in_range(spec, "max_connections", 10000, 1, 10'000'000));
    o.handshake_timeout_seconds = static_cast<std::uint32_t>(
        option_in_range(spec, "handshake_timeout_seconds", 10, 1, 600));
    o.max_handshakes_per_source = static_cast<std::size_t>(option_in_range(
        spec, "max_handshakes_per_source", 32, 1,
        static_cast<std::int64_t>(ws_gateway::kMaxPendingHandshakes)));
    o.allowed_origins = spec.option_strings("allowed_origins");
    for (const std::string& origin : o.allowed_origins)
        if (const std::string error = origin_entry_error(origin); !error.empty())
            throw std::invalid_argument(spec.name + ": option allowed_origins: " + error);
    o.rate_limits = read_user_rate_limits(spec);
    o.resend.resend_after_ms = static_cast<std::uint32_t>(
        option_in_range(spec, "resend_after_ms", 5000, 0, 600'000));
    o.resend.max_resends = static_cast<std::uint32_t>(option_in_range(spec, "max_resends", 3, 0, 1000));
    o.resend.max_entries = static_cast<std::size_t>(
        option_in_range(spec, "max_unconfirmed", 50000, 1, 10'000'000));
    o.resend.max_bytes = static_cast<std::size_t>(
        option_in_range(spec, "max_unconfirmed_bytes", 64 << 20, 1 << 20, std::int64_t{16} << 30));
    return o;
}

} // namespace vartalap::ws_gateway
