// Thread: the owning daemon's thread (see poll_loop.hpp).
#include "common/zmq/poll_loop.hpp"

#include "common/log.hpp"

#include <fmt/format.h>

namespace vartalap {

std::uint32_t PollLoop::kinds(std::initializer_list<Kind> accepted) {
    std::uint32_t mask = 0;
    for (Kind kind : accepted) mask |= 1u << static_cast<std::uint8_t>(kind);
    return mask;
}

std::size_t PollLoop::add(Source source) {
    sources_.push_back(std::move(source));
    enabled_.push_back(true);
    items_.push_back({sources_.back().socket.handle(), 0, ZMQ_POLLIN, 0});
    return sources_.size() - 1;
}

std::size_t PollLoop::turn(std::chrono::milliseconds timeout) {
    // Only enabled sources are polled: a disabled one that is readable must not cut the wait.
    polled_.clear();
    for (std::size_t i = 0; i < items_.size(); ++i)
        if (enabled_[i]) polled_.push_back(items_[i]);
    if (polled_.empty())
        zmq::poll(static_cast<zmq_pollitem_t*>(nullptr), 0, timeout);
    else
        zmq::poll(polled_.data(), polled_.size(), timeout);
    std::size_t handled = 0;
    for (std::size_t i = 0; i < sources_.size(); ++i)
        if (enabled_[i]) handled += drain(i);
    return handled;
}

std::size_t PollLoop::drain(std::size_t index) {
    Source& source = sources_[index];
    std::size_t count = 0;
    std::size_t bytes = 0;
    while (count < source.max_batch && bytes < source.max_bytes) {
        if (batch_.size() <= count) batch_.resize(count + 1);
        Incoming& incoming = batch_[count];
        const ReceiveResult result = receive_envelope(source.socket, source.router, incoming, &error_);
        if (result == ReceiveResult::empty) break;
        if (result == ReceiveResult::malformed) {
            warn_dropped(dropped_, owner_, "malformed envelope", error_);
            continue;
        }
        const auto kind_bit = 1u << static_cast<std::uint8_t>(incoming.envelope.kind);
        if (source.accepted != 0 && (source.accepted & kind_bit) == 0) {
            warn_dropped(dropped_, owner_, "envelope",
                         fmt::format("unexpected kind {}", to_string(incoming.envelope.kind)));
            continue;
        }
        bytes += incoming.envelope.payload.size();
        ++count;
    }
    if (count > 0) source.handle(std::span<Incoming>(batch_.data(), count));
    return count;
}

} // namespace vartalap
