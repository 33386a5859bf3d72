// The one shape of a ZeroMQ daemon's loop (docs/INTERNAL_PROTOCOL.md, "Daemon loops"):
//   poll the sources (bounded wait) → drain each enabled source in a bounded batch → hand
//   the turn's batch to the core → the caller's periodic duties.
// A daemon's loop is then:
//   while (!stop) { auto batch = loop.turn(timeout); handle(batch); periodic_duties(); }
// Bounded batches keep one busy socket from starving the others, the stop flag read at least
// every tick, and one turn's LMDB transaction small; a disabled source is neither polled nor
// read, so its messages wait in ZeroMQ (backpressure to the senders) while the daemon cannot
// take them.
//
// A message that is not a valid envelope, or whose kind its source does not take, is
// consumed, counted (dropped()) and logged (sampled); it never reaches the batch.
// Thread-safety: a PollLoop and its sockets belong to the daemon's thread.
// Ownership: the loop refers to the sockets; they must outlive its last turn.
#pragma once

#include "common/zmq/socket.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace vartalap {

class PollLoop {
public:
    // Which kinds a source takes, as a Source::accepted mask.
    static std::uint32_t kinds(std::initializer_list<Kind> accepted);

    struct Source {
        zmq::socket_ref socket;
        bool router = false;         // ROUTER: each message starts with the peer's routing id
        std::size_t max_batch = 256; // messages received from this source per turn
        std::uint32_t accepted = 0;  // kinds(...); every kind when 0
    };

    // `max_batch_bytes`: payload bytes (payload and items) of one turn, all sources
    // together; draining stops after the message that reaches it.
    explicit PollLoop(std::string owner,
                      std::size_t max_batch_bytes = std::numeric_limits<std::size_t>::max())
        : owner_(std::move(owner)), max_batch_bytes_(max_batch_bytes) {}
    PollLoop(const PollLoop&) = delete;
    PollLoop& operator=(const PollLoop&) = delete;

    // Adds a source (enabled), drained after those added before it; returns its index.
    std::size_t add(Source source);
    void enable(std::size_t index, bool enabled) { enabled_[index] = enabled; }
    // For daemons that read the byte bound from their options after the loop exists.
    void set_max_batch_bytes(std::size_t max_batch_bytes) { max_batch_bytes_ = max_batch_bytes; }

    // One turn: waits at most `timeout` for an enabled source to be readable, then drain().
    std::span<Incoming> turn(std::chrono::milliseconds timeout);
    // The turn without the wait (for a loop that waits elsewhere, e.g. an Asio event loop
    // watching the sources' ZMQ_FDs): drains each enabled source that may hold messages
    // once, in the order they were added. A source the daemon also sends on (DEALER, ROUTER)
    // may always hold some: its sends can consume the readiness edge, so it is drained every
    // turn. A receive-only one (PULL) is drained only after a sign of messages (mark_ready(),
    // or its last drain stopped at a bound): once drained empty, ZeroMQ signals its ZMQ_FD
    // for the next message, and draining it again would cost two system calls for nothing.
    // The batch, each message with its routing id, stays valid until the next turn; the
    // caller moves out what it keeps.
    std::span<Incoming> drain();

    std::size_t size() const { return sources_.size(); }
    zmq::socket_ref socket(std::size_t index) const { return sources_[index].socket; }
    bool enabled(std::size_t index) const { return enabled_[index]; }
    // Whether the source may hold messages without a new signal on its ZMQ_FD (see drain()).
    bool may_hold(std::size_t index) const { return !receive_only_[index] || ready_[index]; }
    bool receive_only(std::size_t index) const { return receive_only_[index]; }
    // Its ZMQ_FD fired or ZMQ_EVENTS showed POLLIN: drain it next turn.
    void mark_ready(std::size_t index) { ready_[index] = true; }

    // Messages dropped as malformed or of an unexpected kind, all sources together.
    std::uint64_t dropped() const { return dropped_; }

private:
    // Returns true if it stopped because the source was empty.
    bool drain_source(const Source& source);

    std::string owner_;
    std::size_t max_batch_bytes_;
    std::vector<Source> sources_;
    std::vector<bool> enabled_;
    std::vector<bool> receive_only_; // PULL: the loop never sends on it
    std::vector<bool> ready_;        // receive-only sources: may hold messages
    std::vector<zmq::pollitem_t> items_;
    std::vector<zmq::pollitem_t> polled_; // this turn's enabled items (reused)
    std::vector<Incoming> batch_;         // reused across turns: strings keep their capacity
    std::size_t count_ = 0;               // messages of this turn in batch_
    std::size_t bytes_ = 0;               // their payload bytes
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
