// Fuzz target: the ws-gateway's request handling in memory: the bytes a client sends on a
// new connection (an HTTP upgrade request, then WebSocket frames) through what the gateway
// runs on them, with no network (Beast's in-memory test stream, a fake outbox):
//   the HTTP parser with the upgrade session's limits (http_session.hpp), check_upgrade
//   (path, upgrade headers, credentials, ack=true), the WebSocket accept and frame reader
//   with the client stream's options (configure_client_stream), the read loop of
//   WebsocketSession (a one-byte read, then the rest of the message), and WsGatewayCore:
//   client_text / client_binary, the frames it queues written back on the stream.
// One difference from the daemon: bytes that follow the upgrade request in the same read
// (frames sent before the 101) reach the WebSocket here; the daemon drops them, as the
// client may not send before the handshake completes (RFC 6455 4.1).
//
// Seed inputs carry a valid access key for "alice" (secret: 32 's' bytes, issued at
// 1700000000), so the fuzzer starts past authentication. Besides "no crash, no leak, no UB":
// every client_message sent on is from the authenticated user with a valid JSON payload,
// every frame the gateway queues is JSON or "pong", and every queued frame is reported done.
#include "common/access_key.hpp"
#include "common/http/cross_site.hpp"
#include "common/http/http_auth.hpp"
#include "daemons/ws_gateway/http_session.hpp"
#include "daemons/ws_gateway/websocket_session.hpp"
#include "daemons/ws_gateway/ws_gateway_core.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/support/fixtures.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using namespace vartalap;
using namespace vartalap::ws_gateway;

class CheckingOutbox final : public WsGatewayOutbox {
public:
    std::string user; // the authenticated user of the connection under test
    SendResult to_router(const Envelope& e, std::size_t& router) override {
        router = 0;
        FUZZ_CHECK(e.kind == Kind::client_message);
        FUZZ_CHECK(e.from == user);
        FUZZ_CHECK(nlohmann::json::accept(e.payload));
        ++sent;
        return sent % 5 == 4 ? SendResult::would_block : SendResult::ok; // "server busy" too
    }
    SendResult to_session(const Envelope& e) override {
        FUZZ_CHECK(e.kind == Kind::connect || e.kind == Kind::disconnect);
        FUZZ_CHECK(e.from == user);
        return SendResult::ok;
    }
    SendResult reply(std::string_view, const Envelope&) override { return SendResult::ok; }
    std::size_t sent = 0;
};

// The WebSocket side: frames the core queues wait here until the harness writes them.
class QueueConnection final : public ClientConnection {
public:
    using ClientConnection::ClientConnection;
    EnqueueResult enqueue(OutgoingFrame&& frame) override {
        if (closed_with != 0) return EnqueueResult::closed;
        if (queue.size() >= 8) return EnqueueResult::full;
        FUZZ_CHECK(frame.text == "pong" || nlohmann::json::accept(frame.text));
        queue.push_back(std::move(frame));
        return EnqueueResult::queued;
    }
    void close(std::uint16_t code, std::string_view) override {
        if (closed_with == 0) closed_with = code;
    }
    void keep_alive() override {}
    std::vector<OutgoingFrame> queue;
    std::uint16_t closed_with = 0;
};

const AccessKeys& access_keys() {
    static const AccessKeys keys(std::string(32, 's'));
    return keys;
}

// Writes the queued frames to the stream (and reports them done), as do_write would.
template <class Stream>
void flush(Stream& ws, QueueConnection& connection, WsGatewayCore& core,
           beast::test::stream& client) {
    for (OutgoingFrame& frame : connection.queue) {
        beast::error_code ec;
        ws.write(net::buffer(frame.text), ec);
        core.frame_done(frame.ticket, !ec);
    }
    connection.queue.clear();
    client.clear(); // the client's unread input: nobody reads it
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    net::io_context ioc;
    beast::test::stream server(ioc), client(ioc);
    server.connect(client);
    server.append(std::string_view(reinterpret_cast<const char*>(data), size));
    server.close_remote(); // the client's bytes end here: eof after them

    beast::flat_buffer buffer(kUpgradeMaxBufferBytes);
    http::request_parser<http::string_body> parser;
    parser.header_limit(kUpgradeMaxHeaderBytes);
    parser.body_limit(kUpgradeMaxBodyBytes);
    beast::error_code ec;
    http::read(server, buffer, parser, ec);
    if (ec) return 0; // answered 400 or nothing
    http::request<http::string_body> request = parser.release();
    UpgradeVerdict verdict = check_upgrade(request, access_keys(), false, false);
    if (verdict.status != http::status::switching_protocols) return 0;
    FUZZ_CHECK(access_keys().verify(verdict.user, extract_credentials(request).access_key));
    // Cookie credentials are taken only from the server's own origin (or none: no Origin).
    if (extract_credentials(request).from_cookie)
        FUZZ_CHECK(origin_allowed(header_value(request, http::field::origin),
                                  header_value(request, http::field::host), {}));

    // What the HTTP read took beyond the request goes back in front of the stream's input.
    const auto rest = buffer.cdata();
    std::string pending(static_cast<const char*>(rest.data()), rest.size());
    pending.append(server.str());
    server.clear();
    server.append(pending);

    CheckingOutbox outbox;
    outbox.user = verdict.user;
    test::ManualClock clock;
    WsGatewayOptions options;
    options.max_frame_bytes = 2048; // small, so that inputs of a few KiB reach the limit
    WsGatewayCore core("ws-fuzz", outbox, clock, options);
    websocket::stream<beast::test::stream, false> ws(std::move(server));
    configure_client_stream(ws, core.options());
    ws.accept(request, ec);
    if (ec) return 0;
    QueueConnection connection(core.next_connection_id(), verdict.user, verdict.wants_server_ack);
    FUZZ_CHECK(core.opened(connection));
    client.clear();

    for (;;) { // WebsocketSession's read loop
        char first_byte = 0;
        const std::size_t first = ws.read_some(net::buffer(&first_byte, 1), ec);
        if (ec) break;
        std::string_view text(&first_byte, first);
        beast::flat_buffer message;
        if (!ws.is_message_done()) {
            net::buffer_copy(message.prepare(first), net::buffer(&first_byte, first));
            message.commit(first);
            ws.read(message, ec);
            if (ec) break;
            text = std::string_view(static_cast<const char*>(message.cdata().data()),
                                    message.size());
        }
        FUZZ_CHECK(text.size() <= options.max_frame_bytes);
        if (connection.closed_with != 0) continue; // read for the close handshake only
        if (ws.got_text())
            core.client_text(connection, text);
        else
            core.client_binary(connection);
        flush(ws, connection, core, client);
    }
    core.closed(connection);
    FUZZ_CHECK(core.connection_count() == 0);
    FUZZ_CHECK(core.queued_frames() == 0);
    return 0;
}
