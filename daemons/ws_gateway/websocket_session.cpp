// Thread: the ws-gateway's io thread (see websocket_session.hpp).
#include "daemons/ws_gateway/websocket_session.hpp"

#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

namespace vartalap::ws_gateway {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;

namespace {

// A new read buffer's room: most messages fit.
constexpr std::size_t kFirstReadBufferBytes = 1536;
// A drained queue whose vector grew past this many slots (a burst) is freed.
constexpr std::size_t kKeptQueueSlots = 4;
// At most this many frames, and (beyond the first) bytes, in one coalesced frame.
constexpr std::size_t kMaxCoalescedFrames = 64;
constexpr std::size_t kMaxCoalescedBytes = 64 * 1024;

// Whether `text` is a JSON object (what the gateway writes as one: a client message's
// payload, a SERVER_ACK, an error frame), judged by its first and last non-space bytes.
bool is_json_object(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    const auto last = text.find_last_not_of(" \t\r\n");
    return first != std::string_view::npos && text[first] == '{' && text[last] == '}';
}

bool expected_end(const beast::error_code& ec) {
    return ec == websocket::error::closed || ec == net::error::operation_aborted ||
           ec == net::error::eof || ec == net::error::connection_reset ||
           ec == beast::error::timeout;
}

} // namespace

WebsocketSession::WebsocketSession(net::ip::tcp::socket&& socket, ServerState& state,
                                   std::uint64_t id, std::string user, bool wants_server_ack)
    : ClientConnection(id, std::move(user), wants_server_ack),
      ws_(ClientSocket(std::move(socket))),
      state_(state),
      core_(*state.core) {
    ++state_.websockets;
}

WebsocketSession::~WebsocketSession() { --state_.websockets; }

void WebsocketSession::run(beast::http::request<beast::http::string_body> request) {
    configure_client_stream(ws_, core_.options());
    ws_.async_accept(request,
                     beast::bind_front_handler(&WebsocketSession::on_accept, shared_from_this()));
}

void WebsocketSession::on_accept(beast::error_code ec) {
    if (ec) {
        spdlog::debug("{}: upgrade of connection {} failed: {}", core_.name(), id(),
                      ec.message());
        finished_ = true; // never registered: nothing to tell the core
        return;
    }
    do_read();
    if (state_.stopping) {
        close(kCloseGoingAway, "going away");
        return;
    }
    if (!core_.opened(*this)) close(kCloseTryAgainLater, "server busy");
}

void WebsocketSession::do_read() {
    // One byte, not none: Beast 1.74 runs its UTF-8 check over an empty copy and crashes.
    ws_.async_read_some(net::buffer(&first_byte_, 1),
                        beast::bind_front_handler(&WebsocketSession::on_message_start,
                                                  shared_from_this()));
}

void WebsocketSession::on_message_start(beast::error_code ec, std::size_t bytes) {
    if (ec) return on_read(ec, 0);
    if (ws_.is_message_done()) { // a message of 0 or 1 bytes: read already
        handle_message(std::string_view(&first_byte_, bytes));
        do_read();
        return;
    }
    read_buffer_ = state_.read_buffers.take();
    if (read_buffer_.capacity() == 0) read_buffer_.reserve(kFirstReadBufferBytes);
    net::buffer_copy(read_buffer_.prepare(bytes), net::buffer(&first_byte_, bytes));
    read_buffer_.commit(bytes);
    // The rest of the message, appended.
    ws_.async_read(read_buffer_,
                   beast::bind_front_handler(&WebsocketSession::on_read, shared_from_this()));
}

void WebsocketSession::on_read(beast::error_code ec, std::size_t) {
    if (ec) {
        state_.read_buffers.give_back(read_buffer_);
        if (ec == websocket::error::message_too_big)
            spdlog::debug("{}: connection {} sent a frame over {} bytes: closed with 1009",
                          core_.name(), id(), core_.options().max_frame_bytes);
        else if (!expected_end(ec))
            spdlog::debug("{}: connection {} read: {}", core_.name(), id(), ec.message());
        finish();
        return;
    }
    const auto data = read_buffer_.cdata();
    handle_message(std::string_view(static_cast<const char*>(data.data()), data.size()));
    state_.read_buffers.give_back(read_buffer_);
    do_read();
}

void WebsocketSession::handle_message(std::string_view text) {
    // Frames that arrive after our close frame are read (the handshake needs it) and ignored.
    if (closing_) return;
    if (ws_.got_text())
        core_.client_text(*this, text);
    else
        core_.client_binary(*this);
}

EnqueueResult WebsocketSession::enqueue(OutgoingFrame&& frame) {
    if (closing_ || finished_) return EnqueueResult::closed;
    const WsGatewayOptions& options = core_.options();
    if (waiting() + in_flight_.size() >= options.write_queue_limit) {
        if (++overflow_strikes_ >= options.overflow_close_after) {
            spdlog::info("{}: connection {} reads nothing ({} frames refused): closing with 1008",
                         core_.name(), id(), overflow_strikes_);
            close(kClosePolicy, "slow consumer");
        }
        return EnqueueResult::full;
    }
    waiting_.push_back(std::move(frame));
    if (!writing_) do_write();
    return EnqueueResult::queued;
}

void WebsocketSession::do_write() {
    in_flight_.push_back(std::move(waiting_[waiting_head_++]));
    if (is_json_object(in_flight_.front().text)) coalesce_waiting();
    if (waiting_head_ == waiting_.size()) {
        waiting_.clear();
        waiting_head_ = 0;
        if (waiting_.capacity() > kKeptQueueSlots) std::vector<OutgoingFrame>().swap(waiting_);
    } else if (waiting_head_ >= core_.options().write_queue_limit) {
        // Never empty for a long stretch: compact so the vector stays within the limit.
        waiting_.erase(waiting_.begin(),
                       waiting_.begin() + static_cast<std::ptrdiff_t>(waiting_head_));
        waiting_head_ = 0;
    }
    writing_ = true;
    auto done = beast::bind_front_handler(&WebsocketSession::on_write, shared_from_this());
    if (in_flight_.size() == 1) {
        ws_.async_write(net::buffer(in_flight_.front().text), std::move(done));
        return;
    }
    static constexpr char open[] = "[", comma[] = ",", close[] = "]";
    gather_.clear();
    gather_.reserve(2 * in_flight_.size() + 1);
    for (const OutgoingFrame& frame : in_flight_) {
        gather_.emplace_back(gather_.empty() ? open : comma, 1);
        gather_.emplace_back(net::buffer(frame.text));
    }
    gather_.emplace_back(close, 1);
    ws_.async_write(beast::buffers_range_ref(gather_), std::move(done));
}

void WebsocketSession::coalesce_waiting() {
    std::size_t bytes = 0;
    while (waiting_head_ < waiting_.size() && in_flight_.size() < kMaxCoalescedFrames) {
        OutgoingFrame& next = waiting_[waiting_head_];
        if (!is_json_object(next.text) || bytes + next.text.size() > kMaxCoalescedBytes) break;
        bytes += next.text.size();
        in_flight_.push_back(std::move(next));
        ++waiting_head_;
    }
}

void WebsocketSession::on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    // Answered after in_flight_ is emptied, so that the queue limit counts right again.
    std::vector<OutgoingFrame> written;
    written.swap(in_flight_);
    if (gather_.capacity() > 0) std::vector<net::const_buffer>().swap(gather_); // rare: no keep
    if (ec) {
        if (!expected_end(ec))
            spdlog::debug("{}: connection {} write: {}", core_.name(), id(), ec.message());
        for (const OutgoingFrame& frame : written) core_.frame_done(frame.ticket, false);
        // The socket is broken; the read loop ends too and calls finish().
        closing_ = true;
        drop_waiting();
        return;
    }
    overflow_strikes_ = 0;
    for (const OutgoingFrame& frame : written) core_.frame_done(frame.ticket, true);
    // Keep a small vector for the next write (no allocation per frame), free a large one.
    written.clear();
    if (written.capacity() <= kKeptQueueSlots && in_flight_.empty()) in_flight_.swap(written);
    if (!closing_ && waiting() > 0 && !writing_) do_write();
}

void WebsocketSession::close(std::uint16_t code, std::string_view reason) {
    if (closing_ || finished_) return;
    closing_ = true;
    drop_waiting();
    // Runs beside the pending read (which then ends with `closed`) and after a write in
    // flight (Beast serialises them); bounded by handshake_timeout.
    ws_.async_close(websocket::close_reason(static_cast<websocket::close_code>(code), reason),
                    beast::bind_front_handler(&WebsocketSession::on_close, shared_from_this()));
}

void WebsocketSession::keep_alive() {
    if (closing_ || finished_) return;
    const std::uint32_t reads = ws_.next_layer().reads();
    if (reads != reads_seen_) { // heard from since the last sweep
        reads_seen_ = reads;
        pinged_ = false;
        return;
    }
    if (!pinged_) {
        pinged_ = true;
        if (ping_in_flight_) return;
        ping_in_flight_ = true;
        ws_.async_ping({}, [self = shared_from_this()](beast::error_code) {
            self->ping_in_flight_ = false;
        });
        return;
    }
    // Silent through a whole period and the ping: a dead peer. Closing the socket ends the
    // pending read, which calls finish() (as Beast's own idle timeout did).
    spdlog::debug("{}: connection {} silent for two keep-alive periods: closed", core_.name(), id());
    closing_ = true;
    drop_waiting();
    beast::error_code ec;
    beast::get_lowest_layer(ws_).close(ec);
}

void WebsocketSession::on_close(beast::error_code ec) {
    if (ec && !expected_end(ec))
        spdlog::debug("{}: connection {} close: {}", core_.name(), id(), ec.message());
    // Nothing else: the read loop ends and calls finish().
}

void WebsocketSession::finish() {
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    drop_waiting();
    core_.closed(*this);
}

void WebsocketSession::drop_waiting() {
    // Move the frames out first: frame_done may re-enter (it only sends replies, but the
    // vector must not be walked while anything could touch it).
    std::vector<OutgoingFrame> dropped;
    dropped.swap(waiting_);
    const std::size_t head = waiting_head_;
    waiting_head_ = 0;
    for (std::size_t i = head; i < dropped.size(); ++i) core_.frame_done(dropped[i].ticket, false);
}

} // namespace vartalap::ws_gateway
