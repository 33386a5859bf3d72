// Thread: the ws-gateway's io thread (see http_session.hpp).
#include "daemons/ws_gateway/http_session.hpp"

#include "common/http/cross_site.hpp"
#include "common/http/http_auth.hpp"
#include "common/http/target.hpp"
#include "common/log.hpp"
#include "daemons/ws_gateway/ws_gateway_core.hpp"
#include "daemons/ws_gateway/websocket_session.hpp"

#include <boost/beast/websocket/rfc6455.hpp>
#include <spdlog/spdlog.h>

namespace vartalap::ws_gateway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;

bool is_websocket_path(std::string_view path) {
    // The app's ws_url is configured per deployment; the original server's nginx site took
    // the upgrade on /wss/ and /v1.0/wss/ (chat-server v2.8.3,
    // deployment/config/nginx/nginx.docker.conf: `rewrite /v1.0/(.*) /$1`, `location /wss/`),
    // and its gateway on any path.
    if (path.starts_with("/v1.0/")) path.remove_prefix(5);
    return path == "/" || path == "/wss" || path == "/wss/";
}

bool wants_server_ack(std::string_view query) {
    return query_has(query, "ack", "true") || query_has(query, "ack", "1");
}

namespace {
constexpr std::string_view kStartingError = R"({"error":"server starting, retry"})";
constexpr std::string_view kBusyError = R"({"error":"server busy, retry"})";
} // namespace

UpgradeVerdict check_upgrade(const http::request<http::string_body>& request,
                             const AccessKeys& access_keys, bool stopping, bool at_capacity,
                             const RevocationList* revoked,
                             const std::vector<std::string>& allowed_origins, bool routable) {
    UpgradeVerdict verdict;
    const auto refuse = [&verdict](http::status status) {
        verdict.status = status;
        return verdict;
    };
    const auto [path, query] = split_target(request.target());
    if (!is_websocket_path(path)) return refuse(http::status::not_found);
    if (!beast::websocket::is_upgrade(request)) return refuse(http::status::upgrade_required);
    if (stopping) return refuse(http::status::service_unavailable);
    Credentials credentials = extract_credentials(request);
    if (credentials.from_cookie &&
        !origin_allowed(header_value(request, http::field::origin),
                        header_value(request, http::field::host), allowed_origins))
        return refuse(http::status::forbidden);
    if (credentials.user.empty() || !access_keys.verify(credentials.user, credentials.access_key))
        return refuse(http::status::unauthorized);
    if ((revoked && !revoked->synced()) || !routable) {
        verdict.error = kStartingError;
        return refuse(http::status::service_unavailable);
    }
    if (revoked && revoked->revoked(credentials.user, credentials.access_key))
        return refuse(http::status::unauthorized);
    if (at_capacity) {
        verdict.error = kBusyError;
        return refuse(http::status::service_unavailable);
    }
    verdict.user = std::move(credentials.user);
    verdict.access_key = std::move(credentials.access_key);
    verdict.wants_server_ack = wants_server_ack(query);
    return verdict;
}

HttpSession::HttpSession(net::ip::tcp::socket&& socket, ServerState& state,
                         SourceCount::Token source)
    : HttpSessionBase(std::move(socket), state.handshakes.enter(), kUpgradeMaxBufferBytes),
      state_(state), source_(std::move(source)) {}

void HttpSession::run() {
    read_request({kUpgradeMaxHeaderBytes, kUpgradeMaxBodyBytes,
                  std::chrono::seconds(state_.core->options().handshake_timeout_seconds)});
}

void HttpSession::on_read_failed(ReadFailure failure, beast::error_code ec) {
    if (failure == ReadFailure::closed) return; // the socket closes with this object
    // A malformed request (bad syntax, over a limit): say so, then close.
    spdlog::debug("ws-gateway: bad HTTP request: {}", ec.message());
    respond(http::status::bad_request);
}

void HttpSession::on_request(Request&& request) {
    const bool at_capacity = state_.websockets >= state_.core->options().max_connections;
    UpgradeVerdict verdict = check_upgrade(request, *state_.access_keys, state_.stopping, at_capacity,
                                           state_.revocations, state_.core->options().allowed_origins,
                                           state_.routable);
    if (verdict.status == http::status::forbidden) {
        if (count_sampled(state_.origin_refused))
            spdlog::warn("{}: refused a cookie-authenticated upgrade from origin '{}' with 403; "
                         "{} so far", state_.core->name(),
                         header_value(request, http::field::origin).substr(0, 100),
                         state_.origin_refused);
        return respond(verdict.status, R"({"error":"origin not allowed"})");
    }
    if (verdict.status != http::status::switching_protocols) {
        if (verdict.status == http::status::service_unavailable && !state_.stopping) {
            if (verdict.error == kBusyError)
                spdlog::warn("{}: at max_connections ({}): upgrade refused with 503",
                             state_.core->name(), state_.core->options().max_connections);
            else if (count_sampled(state_.starting_refused))
                spdlog::warn("{}: {} yet: upgrade refused with 503; {} so far",
                             state_.core->name(),
                             state_.routable ? "no revocation list from the profile daemon"
                                             : "no message-router connected",
                             state_.starting_refused);
        }
        return respond(verdict.status, std::string(verdict.error));
    }
    upgrade(std::move(request), std::move(verdict));
}

void HttpSession::upgrade(Request&& request, UpgradeVerdict&& verdict) {
    // The WebSocket stream has its own timeouts; the socket leaves the tcp_stream (and its
    // timers) behind.
    stream().expires_never();
    source_ = {}; // no longer a pending handshake of its source
    auto session = std::make_shared<WebsocketSession>(stream().release_socket(), state_,
                                                      state_.core->next_connection_id(),
                                                      std::move(verdict.user),
                                                      verdict.wants_server_ack);
    session->set_access_key(std::move(verdict.access_key));
    session->run(std::move(request));
}

void HttpSession::respond(http::status status, std::string body) {
    response_ = {};
    response_.version(11);
    response_.result(status);
    response_.set(http::field::server, "vartalap-ws-gateway");
    if (status == http::status::upgrade_required) {
        response_.set(http::field::upgrade, "websocket");
        response_.set(http::field::connection, "Upgrade, close");
    } else {
        response_.keep_alive(false);
    }
    if (status == http::status::service_unavailable) response_.set(http::field::retry_after, "1");
    if (!body.empty()) response_.set(http::field::content_type, "application/json");
    response_.body() = std::move(body);
    response_.prepare_payload();
    write_response(response_, std::nullopt); // within the handshake deadline
}

void HttpSession::on_written(beast::error_code ec) {
    if (ec) return;
    // Send our FIN after the response; the socket closes when this object goes away.
    shutdown(net::ip::tcp::socket::shutdown_send);
}

} // namespace vartalap::ws_gateway
