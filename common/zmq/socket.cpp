// Thread: whichever thread owns the socket passed in.
#include "common/zmq/socket.hpp"

#include <stdexcept>

namespace vartalap {

zmq::socket_t make_socket(zmq::context_t& context, zmq::socket_type type,
                          const SocketOptions& options) {
    zmq::socket_t socket(context, type);
    socket.set(zmq::sockopt::sndhwm, options.send_hwm);
    socket.set(zmq::sockopt::rcvhwm, options.receive_hwm);
    socket.set(zmq::sockopt::linger, options.linger_ms);
    socket.set(zmq::sockopt::maxmsgsize, kMaxInternalFrameBytes);
    if (options.heartbeat_ivl_ms > 0) {
        socket.set(zmq::sockopt::heartbeat_ivl, options.heartbeat_ivl_ms);
        socket.set(zmq::sockopt::heartbeat_timeout, options.heartbeat_timeout_ms);
    }
    if (type == zmq::socket_type::router) socket.set(zmq::sockopt::router_mandatory, 1);
    if (!options.routing_id.empty()) socket.set(zmq::sockopt::routing_id, options.routing_id);
    return socket;
}

std::string last_endpoint(zmq::socket_ref socket) {
    return socket.get(zmq::sockopt::last_endpoint);
}

SendResult send_envelope(zmq::socket_ref socket, const Envelope& envelope,
                         std::string& scratch, std::string_view routing_id) {
    encode_envelope(envelope, scratch);
    return send_encoded(socket, envelope.kind, scratch, routing_id);
}

SendResult send_encoded(zmq::socket_ref socket, Kind kind, std::string_view encoded,
                        std::string_view routing_id) {
    const std::string header = header_frame(kind);
    try {
        if (!routing_id.empty()) {
            auto sent = socket.send(zmq::buffer(routing_id),
                                    zmq::send_flags::sndmore | zmq::send_flags::dontwait);
            if (!sent) return SendResult::would_block;
        } else {
            auto sent = socket.send(zmq::buffer(header),
                                    zmq::send_flags::sndmore | zmq::send_flags::dontwait);
            if (!sent) return SendResult::would_block;
            socket.send(zmq::buffer(encoded), zmq::send_flags::dontwait);
            return SendResult::ok;
        }
        // After the first frame of a multipart message is accepted, the rest is queued
        // atomically with it; these cannot report EAGAIN.
        socket.send(zmq::buffer(header), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        socket.send(zmq::buffer(encoded), zmq::send_flags::dontwait);
        return SendResult::ok;
    } catch (const zmq::error_t& e) {
        if (e.num() == EHOSTUNREACH) return SendResult::unroutable;
        throw;
    }
}

ReceiveResult receive_envelope(zmq::socket_ref socket, bool router, Incoming& incoming,
                               std::string* error) {
    zmq::message_t frames[4];
    std::size_t count = 0;
    bool more = true;
    bool too_many = false;
    while (more) {
        zmq::message_t part;
        auto got = socket.recv(part, count == 0 ? zmq::recv_flags::dontwait
                                                : zmq::recv_flags::none);
        if (!got) {
            if (count == 0) return ReceiveResult::empty;
            break; // cannot happen: parts of a message arrive together
        }
        more = part.more();
        if (count < 4)
            frames[count] = std::move(part);
        else
            too_many = true;
        ++count;
    }
    const std::size_t expected = router ? 3 : 2;
    if (too_many || count != expected) {
        if (error) *error = "unexpected frame count " + std::to_string(count);
        return ReceiveResult::malformed;
    }
    std::size_t index = 0;
    if (router)
        incoming.routing_id.assign(frames[index++].to_string_view());
    else
        incoming.routing_id.clear(); // a reused Incoming keeps no stale peer
    auto decoded =
        decode_envelope(frames[index].to_string_view(), frames[index + 1].to_string_view(), error);
    if (!decoded) return ReceiveResult::malformed;
    incoming.envelope = std::move(*decoded);
    return ReceiveResult::ok;
}

} // namespace vartalap
