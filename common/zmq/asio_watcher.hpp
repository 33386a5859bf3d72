// Watching a ZeroMQ socket from an Asio io_context (the daemons whose loop is Asio's:
// ws-gateway, rest-gateway, push, and the ops thread).
// Thread-safety: see the class comment. Errors: Asio and ZeroMQ errors propagate.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <functional>
#include <zmq.hpp>

namespace vartalap {

// Watches a ZeroMQ socket from an Asio io_context. ZMQ_FD is edge-triggered: it signals
// when the socket's state changes, and reading ZMQ_EVENTS (which every send and receive
// does implicitly) can consume the edge. So the watcher re-checks ZMQ_EVENTS after each
// wakeup and whenever the owner calls poke() after a send on the socket.
// `on_readable` must receive a bounded batch (e.g. up to 256 messages) and return; the
// watcher re-posts itself while messages remain, so one busy socket cannot starve others.
// Runs on the io_context's thread only. Pending handlers refer to the watcher: destroy it
// only after stop() and once the io_context no longer runs them (stopped, or destroyed).
// stop() then start() may be repeated.
class ZmqAsioWatcher {
public:
    ZmqAsioWatcher(boost::asio::io_context& io, zmq::socket_ref socket,
                   std::function<void()> on_readable);
    ~ZmqAsioWatcher();
    ZmqAsioWatcher(const ZmqAsioWatcher&) = delete;
    ZmqAsioWatcher& operator=(const ZmqAsioWatcher&) = delete;

    void start();
    void stop();
    // Call after sending on the socket from outside on_readable.
    void poke();

private:
    void check();
    void arm();

    boost::asio::io_context& io_;
    zmq::socket_ref socket_;
    std::function<void()> on_readable_;
    boost::asio::posix::stream_descriptor descriptor_;
    bool armed_ = false;
    bool check_posted_ = false;
    bool stopped_ = true;
    // Bumped by stop(): a cancelled wait's handler, which runs later, must not touch the
    // state of the waits started after a restart.
    std::uint64_t generation_ = 0;
};

} // namespace vartalap
