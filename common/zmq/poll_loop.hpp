// The one shape of a ZeroMQ daemon's loop (docs/INTERNAL_PROTOCOL.md, "Daemon loops"):
//   poll the sources (bounded wait) → drain each readable source in a bounded batch → hand
//   the batch to its handler → the caller's periodic duties.
// A daemon's run() is then: while (!stop) { loop.turn(timeout); periodic_duties(); }.
// Bounded batches keep one busy socket from starving the others and the stop flag from
// going unread; a disabled source is neither polled nor read, so its messages wait in
// ZeroMQ (backpressure to the senders) while the daemon cannot take them.
//
// A message that is not a valid envelope, or whose kind the source does not expect, is
// consumed, counted (dropped()) and logged (sampled); it never reaches a handler.
// Thread-safety: a PollLoop and its sockets belong to the daemon's thread.
// Ownership: the loop refers to the sockets; they must outlive it (or the loop's last turn).
#pragma once

#include "common/zmq/socket.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace vartalap {

class PollLoop {
public:
    // Receives one drained batch (at least one message). The Incoming values are reused by
    // the next turn: a handler moves out what it keeps.
    using BatchHandler = std::function<void(std::span<Incoming> batch)>;

    // Which kinds a source accepts (all when empty).
    static std::uint32_t kinds(std::initializer_list<Kind> accepted);

    struct Source {
        zmq::socket_ref socket;
        bool router = false;          // ROUTER: each message starts with the peer's routing id
        std::size_t max_batch = 256;  // messages per turn
        // Payload bytes per turn: the batch ends after the message that reaches it.
        std::size_t max_bytes = std::numeric_limits<std::size_t>::max();
        std::uint32_t accepted = 0;   // kinds(...) bitmask; 0 = every kind
        BatchHandler handle;
    };

    explicit PollLoop(std::string owner) : owner_(std::move(owner)) {}
    PollLoop(const PollLoop&) = delete;
    PollLoop& operator=(const PollLoop&) = delete;

    // Adds a source (enabled); returns its index for enable().
    std::size_t add(Source source);
    void enable(std::size_t index, bool enabled) { enabled_[index] = enabled; }

    // One turn: waits at most `timeout` for an enabled source to be readable, then drains
    // every enabled source once (whether or not poll saw it: ZeroMQ's readiness is
    // edge-triggered and a handler's sends can consume an edge). Returns messages handled.
    std::size_t turn(std::chrono::milliseconds timeout);

    // Messages dropped as malformed or of an unexpected kind, all sources together.
    std::uint64_t dropped() const { return dropped_; }

private:
    std::size_t drain(std::size_t index);

    std::string owner_;
    std::vector<Source> sources_;
    std::vector<bool> enabled_;
    std::vector<zmq::pollitem_t> items_;
    std::vector<zmq::pollitem_t> polled_; // this turn's enabled items (reused)
    std::vector<Incoming> batch_; // reused across turns: strings keep their capacity
    std::string error_;
    std::uint64_t dropped_ = 0;
};

// Sends without blocking forever: on would_block waits for POLLOUT in slices of
// `slice_ms` until `budget_ms` is spent or `stop` says to give up. Returns the final result.
template <class StopFn>
SendResult send_with_backpressure(zmq::socket_ref socket, const Envelope& envelope,
                                  std::string& scratch, StopFn stop, int budget_ms = 1000,
                                  std::string_view routing_id = {}) {
    constexpr int slice_ms = 50;
    SendResult result = send_envelope(socket, envelope, scratch, routing_id);
    for (int waited = 0; result == SendResult::would_block && waited < budget_ms && !stop();
         waited += slice_ms) {
        zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLOUT, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds(slice_ms));
        result = send_envelope(socket, envelope, scratch, routing_id);
    }
    return result;
}

} // namespace vartalap
