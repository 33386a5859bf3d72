// Thread: the owning daemon's thread (see poll_loop.hpp).
#include "common/zmq/poll_loop.hpp"

#include "common/log.hpp"

namespace vartalap {

std::uint32_t PollLoop::kinds(std::initializer_list<Kind> accepted) {
    std::uint32_t mask = 0;
    for (Kind kind : accepted) mask |= 1u << static_cast<std::uint8_t>(kind);
    return mask;
}

std::size_t PollLoop::add(Source source) {
    sources_.push_back(source);
    enabled_.push_back(true);
    receive_only_.push_back(source.socket.get(zmq::sockopt::type) == ZMQ_PULL);
    ready_.push_back(true); // messages may have arrived before the loop existed
    items_.push_back({source.socket.handle(), 0, ZMQ_POLLIN, 0});
    return sources_.size() - 1;
}

std::span<Incoming> PollLoop::turn(std::chrono::milliseconds timeout) {
    // Only enabled sources are polled: a disabled one that is readable must not cut the wait.
    polled_.clear();
    for (std::size_t i = 0; i < items_.size(); ++i)
        if (enabled_[i]) polled_.push_back(items_[i]);
    if (polled_.empty())
        zmq::poll(static_cast<zmq_pollitem_t*>(nullptr), 0, timeout);
    else
        zmq::poll(polled_.data(), polled_.size(), timeout);
    for (std::size_t i = 0, polled = 0; i < items_.size(); ++i)
        if (enabled_[i] && (polled_[polled++].revents & ZMQ_POLLIN)) ready_[i] = true;
    return drain();
}

std::span<Incoming> PollLoop::drain() {
    count_ = 0;
    bytes_ = 0;
    for (std::size_t i = 0; i < sources_.size(); ++i)
        if (enabled_[i] && may_hold(i)) ready_[i] = !drain_source(sources_[i]);
    return std::span<Incoming>(batch_.data(), count_);
}

bool PollLoop::drain_source(const Source& source) {
    // Every message received counts toward max_batch, dropped ones too: a flood of garbage
    // cannot hold the loop in one source.
    for (std::size_t received = 0; received < source.max_batch && bytes_ < max_batch_bytes_; ++received) {
        if (batch_.size() <= count_) batch_.resize(count_ + 1);
        Incoming& incoming = batch_[count_];
        const ReceiveResult result = receive_envelope(source.socket, source.router, incoming, &error_);
        if (result == ReceiveResult::empty) return true;
        if (result == ReceiveResult::malformed) {
            warn_dropped(dropped_, owner_, "malformed envelope", error_);
            continue;
        }
        const std::uint32_t kind_bit = 1u << static_cast<std::uint8_t>(incoming.envelope.kind);
        if (source.accepted != 0 && (source.accepted & kind_bit) == 0) {
            warn_dropped(dropped_, owner_, "envelope of unexpected kind", to_string(incoming.envelope.kind));
            continue;
        }
        bytes_ += incoming.envelope.payload.size();
        for (const std::string& item : incoming.envelope.items) bytes_ += item.size();
        ++count_;
    }
    return false;
}

} // namespace vartalap
