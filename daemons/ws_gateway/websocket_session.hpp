// ws-gateway: one client WebSocket (Beast advanced_server's websocket_session, with its
// bounded write queue).
//
// Thread: the ws-gateway's io thread only (the io_context has one thread, so no strand).
//
// Life: created by HttpSession after authentication; run() accepts the upgrade; on success
// the connection registers with WsGatewayCore (which sends `connect`) and reads frames until
// the socket ends; then finish() unregisters it (WsGatewayCore sends `disconnect`) and every
// frame still queued is answered not_connected. The object lives as long as a pending
// handler holds it (shared_from_this).
//
// Write queue: at most WsGatewayOptions::write_queue_limit frames (those being written
// included). Frames that queued while a write was in flight leave together: consecutive
// JSON objects (deliveries, SERVER_ACKs, errors) as one frame holding a JSON array of them
// (PROTOCOL.md: the app accepts an object or an array per frame), so a burst for one
// client costs one socket write; a frame that is not a JSON object ("pong") goes alone. A full queue refuses the frame (`overloaded` for a deliver, dropped for the
// gateway's own frames); after overflow_close_after refusals with no write completing the
// client is closed with 1008 "slow consumer".
// Keep-alive: not Beast's idle timer (one timer wait per connection, re-armed at every read
// and write) but the gateway's sweep (keep_alive): a client silent for a whole
// idle_ping_seconds is pinged, one silent for the next period too is closed.
//
// Memory of an idle connection: the Beast stream (its fixed read buffer of 1536 bytes
// dominates; no permessage-deflate state: the extension is not offered), the socket, one
// pending read that holds no buffer (do_read), no timer wait, an empty queue.
#pragma once

#include "daemons/ws_gateway/client_socket.hpp"
#include "daemons/ws_gateway/ws_gateway_core.hpp"
#include "daemons/ws_gateway/server_state.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <chrono>
#include <memory>
#include <vector>

namespace vartalap::ws_gateway {

// The options of a client's WebSocket stream, set before the accept (WebsocketSession::run;
// the fuzz target tests/fuzz/ws_gateway_http.cpp sets the same on an in-memory stream).
template <class NextLayer>
void configure_client_stream(boost::beast::websocket::stream<NextLayer, false>& ws,
                             const WsGatewayOptions& options) {
    namespace websocket = boost::beast::websocket;
    websocket::stream_base::timeout timeout{};
    timeout.handshake_timeout = std::chrono::seconds(options.handshake_timeout_seconds);
    // No idle timeout of Beast's: the gateway's keep-alive sweep pings (keep_alive).
    timeout.idle_timeout = websocket::stream_base::none();
    timeout.keep_alive_pings = false;
    ws.set_option(timeout);
    ws.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
        response.set(boost::beast::http::field::server, "vartalap-ws-gateway");
    }));
    // Larger frames fail the read and Beast closes with 1009 (message too big).
    ws.read_message_max(options.max_frame_bytes);
    // One WebSocket frame per message, written straight from our buffer (no copy into a
    // fragmentation buffer).
    ws.auto_fragment(false);
    ws.text(true);
}

class WebsocketSession final : public std::enable_shared_from_this<WebsocketSession>,
                               public ClientConnection {
public:
    WebsocketSession(boost::asio::ip::tcp::socket&& socket, ServerState& state,
                     std::uint64_t id, std::string user, bool wants_server_ack);
    ~WebsocketSession();
    WebsocketSession(const WebsocketSession&) = delete;
    WebsocketSession& operator=(const WebsocketSession&) = delete;

    // Completes the upgrade that `request` asked for.
    void run(boost::beast::http::request<boost::beast::http::string_body> request);

    EnqueueResult enqueue(OutgoingFrame&& frame) override;
    void close(std::uint16_t code, std::string_view reason) override;
    void keep_alive() override;

private:
    void on_accept(boost::beast::error_code ec);
    // Waits for the next message with a one-byte read (Beast answers pings and reads control
    // frames meanwhile; the read ends with the first byte of a data message), then reads the
    // rest of that message into a buffer lent by ServerState::read_buffers for this one
    // message: between messages a connection holds no read buffer.
    void do_read();
    void on_message_start(boost::beast::error_code ec, std::size_t bytes);
    void on_read(boost::beast::error_code ec, std::size_t bytes);
    void handle_message(std::string_view text);
    // Starts the write of the oldest waiting frame and, when it is a JSON object, of the JSON
    // objects queued behind it (coalesce_waiting).
    void do_write();
    void coalesce_waiting();
    void on_write(boost::beast::error_code ec, std::size_t bytes);
    void on_close(boost::beast::error_code ec);
    // The socket is finished (the read loop ended): unregister, answer queued frames.
    void finish();
    // Answers every waiting (not in-flight) frame not_connected and frees the queue.
    void drop_waiting();

    std::size_t waiting() const { return waiting_.size() - waiting_head_; }

    // ClientSocket: see client_socket.hpp. `false`: no permessage-deflate code or state.
    boost::beast::websocket::stream<ClientSocket, false> ws_;
    boost::beast::flat_buffer read_buffer_; // empty between messages (lent, see do_read)
    char first_byte_ = 0;                   // a message's first byte (see do_read)
    ServerState& state_;
    WsGatewayCore& core_;
    // Frames waiting for their turn, oldest at waiting_head_ (a vector with a moving head:
    // no allocation while empty, unlike std::deque). The frames being written are moved out
    // to in_flight_ so their bytes stay put while the vector grows.
    std::vector<OutgoingFrame> waiting_;
    std::size_t waiting_head_ = 0;
    // The write in flight: one frame, or (coalesce_waiting) several JSON objects written as
    // one frame holding a JSON array, gathered from their own buffers by `gather_`.
    std::vector<OutgoingFrame> in_flight_;
    std::vector<boost::asio::const_buffer> gather_;
    std::size_t overflow_strikes_ = 0; // refusals since the last completed write
    std::uint32_t reads_seen_ = 0;  // ClientSocket::reads() at the last keep_alive
    bool pinged_ = false;           // silent since a keep_alive that sent a ping
    bool ping_in_flight_ = false;
    bool writing_ = false;
    bool closing_ = false;  // close started (by us or by a failure): take no new frames
    bool finished_ = false;
};

} // namespace vartalap::ws_gateway
