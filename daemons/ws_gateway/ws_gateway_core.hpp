// ws-gateway: the socket-free decisions of the WebSocket gateway.
//
// Thread: everything here runs on the gateway's one thread (the thread that runs its
// io_context). Not thread-safe.
//
// WsGatewayCore owns the registry of open client connections (connection id -> connection,
// user -> connection id: one live socket per user in this gateway) and turns events into
// envelopes and frames:
//   - a connection opened / closed      -> `connect` / `disconnect` to the user's session;
//   - a client text frame               -> `pong`, an error frame, or a `client_message`
//                                          to a message-router;
//   - a request from a session (ROUTER) -> `deliver` (queue the payload on the connection,
//                                          reply `deliver_result` when written), `server_ack`
//                                          (queue a SERVER_ACK frame), `close_connection`.
// It never touches a socket: it talks to the ZeroMQ side through WsGatewayOutbox and to the
// WebSocket side through ClientConnection, so unit tests drive it with fakes
// (tests/unit/ws_gateway/).
//
// Ownership: the core keeps references to the outbox and clock (they outlive it) and raw
// pointers to registered connections; a connection must call closed() (which unregisters it)
// before it is destroyed, or be abandoned together with the core at shutdown.
// Errors: nothing here throws for bad client or peer input; it is answered or counted.
#pragma once

#include "common/wire/client_message.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/rate_limit.hpp"
#include "common/wire/envelope.hpp"
#include "common/wire/send_result.hpp"
#include "daemons/ws_gateway/unconfirmed.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vartalap::ws_gateway {

// Close codes the gateway uses (RFC 6455 section 7.4; 4000-4999 are for applications).
inline constexpr std::uint16_t kCloseGoingAway = 1001;      // the gateway is draining
inline constexpr std::uint16_t kClosePolicy = 1008;         // slow consumer (see enqueue)
inline constexpr std::uint16_t kCloseTooBig = 1009;         // frame > max_frame_bytes (Beast)
inline constexpr std::uint16_t kCloseTryAgainLater = 1013;  // connect event could not be queued
// A newer connection of the same user took over (here or at another gateway). An
// application code, not 1008, so that a client can tell "you were replaced, do not
// reconnect in a loop" from "you broke a rule".
inline constexpr std::uint16_t kCloseReplaced = 4000;
// The access key this connection authenticated with was revoked (a logout): log in again.
inline constexpr std::uint16_t kCloseRevoked = 4001;

struct WsGatewayOptions {
    std::size_t max_frame_bytes = 65536;    // larger client frames close with 1009
    std::size_t write_queue_limit = 256;    // frames queued per connection
    std::uint32_t idle_ping_seconds = 30;   // ping this often; silent for 2x: closed (0: off)
    std::size_t max_connections = 10000;    // WebSockets; upgrades above it get 503
    std::uint32_t handshake_timeout_seconds = 10; // HTTP upgrade and WebSocket close
    std::size_t max_handshakes_per_source = 32;   // pending upgrades per source address
    // Origins (besides the server's own) whose cookie-authenticated upgrades are accepted
    // (common/http/cross_site.hpp); header-authenticated upgrades (the app) are not checked.
    std::vector<std::string> allowed_origins;
    // Per-user token buckets of this gateway instance (common/rate_limit.hpp): chat
    // messages (typing included; receipts and acks never) and group operations (a group
    // message with action create/add/remove). Past them: an error frame
    // "rate limited, retry" naming the message.
    UserRateLimits rate_limits;

    // Queue-full policy: one full queue is not fatal (the deliver is answered `overloaded`
    // and the session retries later), but a client that has not taken a single frame while
    // this many more were refused is not reading at all: it is closed with 1008.
    std::size_t overflow_close_after = 256;

    // Client messages pushed to a router are kept until their server_ack and pushed again
    // when it does not come (unconfirmed.hpp). While on, every such message asks for a
    // server_ack (flag_wants_server_ack); a client without ack=true still gets no SERVER_ACK
    // frame.
    ResendOptions resend;
};

// A reply owed to a session for one queued `deliver` frame. reply_to empty = no reply
// (the gateway's own frames: pong, errors, SERVER_ACK).
struct DeliverTicket {
    std::string reply_to;         // ROUTER routing id of the session that asked
    std::uint64_t request_id = 0;
    bool owed() const { return !reply_to.empty(); }
};

// One text frame waiting for its turn on a connection's socket.
struct OutgoingFrame {
    std::string text;
    DeliverTicket ticket;
};

enum class EnqueueResult : std::uint8_t {
    queued, // the connection will call WsGatewayCore::frame_done(ticket, ...) exactly once
    full,   // the write queue is at its limit; nothing was taken
    closed, // the connection is closing or gone; nothing was taken
};

// The WebSocket side of one connection, implemented by WebsocketSession.
class ClientConnection {
public:
    ClientConnection(std::uint64_t id, std::string user, bool wants_server_ack)
        : id_(id), user_(std::move(user)), wants_server_ack_(wants_server_ack) {}

    std::uint64_t id() const { return id_; }
    const std::string& user() const { return user_; }
    bool wants_server_ack() const { return wants_server_ack_; }
    // The access key of the upgrade ("" when not recorded): revoke() compares it.
    const std::string& access_key() const { return access_key_; }
    void set_access_key(std::string key) { access_key_ = std::move(key); }
    // Wall time (epoch ms) the connection was registered (WsGatewayCore::opened): every
    // `connect` for it carries this, resyncs too, so a session orders a user's connections
    // by when they opened, not by when their connects happen to arrive.
    std::uint64_t opened_at_ms() const { return opened_at_ms_; }
    void set_opened_at_ms(std::uint64_t ms) { opened_at_ms_ = ms; }

    // Queues a text frame. When the result is `queued`, the connection later reports the
    // frame's fate (written, or dropped because the connection went away) through
    // WsGatewayCore::frame_done.
    virtual EnqueueResult enqueue(OutgoingFrame&& frame) = 0;
    // Starts the closing handshake with `code`; frames still queued are dropped (reported
    // through frame_done). Idempotent.
    virtual void close(std::uint16_t code, std::string_view reason) = 0;
    // Called every idle_ping_seconds (WsGatewayCore::keep_alive): a connection that received
    // nothing since the previous call pings its client, one still silent at the next call
    // is closed. One timer for the gateway instead of one per connection.
    virtual void keep_alive() = 0;

protected:
    ~ClientConnection() = default;

private:
    std::uint64_t id_;
    std::string user_;
    std::string access_key_;
    std::uint64_t opened_at_ms_ = 0;
    bool wants_server_ack_;
};

// The ZeroMQ side, implemented over the gateway's sockets (ZmqOutbox). Never blocks.
class WsGatewayOutbox {
public:
    virtual ~WsGatewayOutbox() = default;
    // `router` for to_router: no router yet (a message's first push).
    static constexpr std::size_t kNoRouter = static_cast<std::size_t>(-1);
    // A client_message to a message-router: the first one, in order from the one after
    // `router` (kNoRouter: from the outbox's own round-robin position), that takes it now;
    // `router` is set to the one that took it. So a resend goes to another router than the
    // one that took the message last, if another takes it.
    virtual SendResult to_router(const Envelope& envelope, std::size_t& router) = 0;
    // connect/disconnect to the session shard that owns envelope.from.
    virtual SendResult to_session(const Envelope& envelope) = 0;
    // A reply on the ROUTER to the peer `routing_id`.
    virtual SendResult reply(std::string_view routing_id, const Envelope& envelope) = 0;
    // Whether the session instance named `session` owns `user`'s slot (for a resync).
    virtual bool session_owns(std::string_view session, std::string_view user) const {
        (void)session;
        (void)user;
        return true;
    }
};

struct WsGatewayCounters {
    std::uint64_t opened = 0;
    std::uint64_t replaced = 0;          // closed because the same user connected again
    std::uint64_t client_messages = 0;   // pushed to a message-router
    std::uint64_t client_errors = 0;     // error frames for invalid client messages
    std::uint64_t busy = 0;              // message-router at its HWM: "server busy, retry"
    std::uint64_t delivered = 0;         // deliver_result ok
    std::uint64_t not_connected = 0;     // deliver_result not_connected
    std::uint64_t overloaded = 0;        // deliver_result overloaded
    std::uint64_t server_acks = 0;       // SERVER_ACK frames queued
    std::uint64_t own_frames_dropped = 0;// pong/error/SERVER_ACK dropped on a full queue
    std::uint64_t bad_requests = 0;      // ROUTER envelopes of an unexpected kind
    std::uint64_t replies_dropped = 0;   // deliver_result unroutable or at the ROUTER's HWM
    std::uint64_t resyncs = 0;           // sessions that asked to hear every connection again
    std::uint64_t events_dropped = 0;    // connect/disconnect not queued (session at HWM)
    std::uint64_t revoked_closed = 0;    // closed with 4001: their access key was revoked
    std::uint64_t rate_limited_sends = 0;     // chat messages refused by the send bucket
    std::uint64_t rate_limited_group_ops = 0; // group operations refused by their bucket
    std::uint64_t resent = 0;            // messages pushed again: no server_ack in time
    std::uint64_t unconfirmed_given_up = 0; // ... max_resends times: "server busy, retry"
    std::uint64_t unconfirmed_full = 0;  // refused: max_unconfirmed messages already kept
};

class WsGatewayCore {
public:
    WsGatewayCore(std::string gateway_name, WsGatewayOutbox& outbox, const Clock& clock,
                WsGatewayOptions options = {});
    WsGatewayCore(const WsGatewayCore&) = delete;
    WsGatewayCore& operator=(const WsGatewayCore&) = delete;

    // A gateway-unique connection id. Ids start at (wall ms << 20) so that ids of this run
    // do not repeat those of a previous run of the same gateway that sessions may still
    // hold (a stale deliver must not reach another user's new connection).
    std::uint64_t next_connection_id() { return next_connection_id_++; }

    // The WebSocket handshake of `connection` completed: registers it (closing the user's
    // previous connection with 4000 "replaced") and sends `connect`. Returns false if the
    // connect event could not be queued (the caller closes the socket with 1013: without
    // it the session would never deliver to this connection).
    bool opened(ClientConnection& connection);
    // The connection's socket is finished (its read loop ended). Unregisters it and sends
    // `disconnect`, unless it was already unregistered (replaced, or closed on a session's
    // request: a disconnect then could only be stale).
    void closed(ClientConnection& connection);

    // A text frame from the client.
    void client_text(ClientConnection& connection, std::string_view text);
    // A binary frame: the protocol is text only; answered with an error frame.
    void client_binary(ClientConnection& connection);

    // A queued frame left the queue: written to the socket, or dropped.
    void frame_done(const DeliverTicket& ticket, bool written);

    // One request from a session's DEALER (ROUTER side). `envelope` may be moved from.
    void session_request(std::string_view routing_id, Envelope& envelope);

    // The keep-alive sweep (every idle_ping_seconds): keep_alive() of every registered
    // connection.
    void keep_alive();

    // The resend sweep (every resend_period_ms()): pushes again the messages whose
    // server_ack is late, gives up on those out of resends (unconfirmed.hpp).
    void resend_unconfirmed();
    // How often the daemon calls resend_unconfirmed(): a quarter of resend_after_ms, within
    // [50 ms, 1 s]; 1 s while resending is off (an option change turns it on).
    std::uint64_t resend_period_ms() const;
    // Messages waiting for their server_ack.
    std::size_t unconfirmed() const { return unconfirmed_.size(); }

    // `key` of `user` was revoked: that user's connection here, if it opened with that key,
    // is closed with 4001 "access key revoked" (a connection with another key stays).
    void revoke(std::string_view user, std::string_view key);

    // Drain: closes every connection with 1001; they stay registered until closed() so
    // that each sends its disconnect.
    void close_all();
    // End of drain: sends `disconnect` for connections whose close did not finish in time
    // and forgets them.
    void abandon_all();

    bool at_capacity() const { return by_id_.size() >= options_.max_connections; }
    std::size_t connection_count() const { return by_id_.size(); }
    const WsGatewayOptions& options() const { return options_; }
    // SIGHUP: new options. Connections read them at each use; the frame size limit and the
    // handshake timeout are set when a connection opens, so they apply to new ones; the
    // keep-alive period applies from the next sweep.
    void set_options(const WsGatewayOptions& options);
    const WsGatewayCounters& counters() const { return counters_; }
    // Frames queued on all connections (written or dropped ones leave the count).
    std::size_t queued_frames() const { return queued_frames_; }
    const std::string& name() const { return name_; }
    // Users with a bucket (sends, group operations): bounded by rate_limits.max_users each.
    std::size_t rate_limited_users() const { return send_limiter_.size() + group_limiter_.size(); }

private:
    void send_event(Kind kind, const ClientConnection& connection);
    void send_own_frame(ClientConnection& connection, std::string text);
    // Whether the parsed message in scratch_ is within its sender's rate limits; if not,
    // answers it with an error frame, counts and logs (at most once per 10 s).
    bool within_rate_limits(ClientConnection& connection, std::uint64_t now_ms);
    void reply(std::string_view routing_id, std::uint64_t request_id,
               std::uint64_t connection_id, Status status);
    void deliver(std::string_view routing_id, Envelope& request);
    void server_ack(const Envelope& request);
    void resync(std::string_view session);
    void close_connection(const Envelope& request);
    ClientConnection* find(std::uint64_t id) const;
    void unregister(ClientConnection& connection);

    std::string name_;
    WsGatewayOutbox& outbox_;
    const Clock& clock_;
    WsGatewayOptions options_;
    ClientMessageLimits message_limits_;
    WsGatewayCounters counters_;
    std::size_t queued_frames_ = 0;
    std::uint64_t next_connection_id_;
    RateLimiter send_limiter_;
    RateLimiter group_limiter_;
    LogLimiter rate_limit_log_{10000};
    UnconfirmedMessages unconfirmed_;
    LogLimiter resend_log_{10000};

    std::unordered_map<std::uint64_t, ClientConnection*> by_id_;
    // Keys view the registered connection's own user string (alive while registered).
    std::unordered_map<std::string_view, std::uint64_t> by_user_;

    Envelope scratch_;       // reused for every outgoing envelope (no per-message allocation)
    std::string parse_error_;
};

} // namespace vartalap::ws_gateway
