// Base of the daemons whose life is one ZeroMQ PollLoop (message-router, session,
// persistence, profile, group, group-router). The subclass supplies the loop's hooks; this
// class runs them on an Asio event loop: the shared one the System placed the daemon on
// (`[system] threads`), or, without one (a daemon run alone, as vartalapd and unit tests
// do), a thread of its own. Either way the hooks run on one thread, one at a time:
//
//   on_start()                               once, first
//   before_turn() -> wait -> on_turn(batch)  per turn: the wait ends when an enabled source is
//                                            readable or before_turn()'s bound has passed
//   on_stop()                                once, after request_stop(), instead of the next turn
//
// The wait is not a blocking poll: each source's ZMQ_FD is watched by the io_context, so many
// daemons share one thread and an inproc hop between them wakes no other thread.
// A hook must never block for long (it would stall every daemon on the thread); an exception
// escaping a hook is fatal (run_or_abort).
//
// Thread-safety: start/request_stop/join from the controlling thread (request_stop from any).
#pragma once

#include "common/zmq/poll_loop.hpp"
#include "daemons/daemon.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace vartalap {

class EventLoop;

class LoopDaemon : public Daemon {
public:
    void start() final;
    void request_stop() final;
    void join() final;
    ~LoopDaemon() override;

protected:
    // `name`: the instance (logs, and the thread's name when it has its own); `shared`: the
    // event loop to run on, or null for a thread of its own.
    LoopDaemon(std::string name, EventLoop* shared);

    // Hooks (see the file comment); all on the loop's thread.
    virtual void on_start() {}
    // Enables or disables sources for this turn; returns the longest wait (0: turn at once).
    virtual std::chrono::milliseconds before_turn() = 0;
    virtual void on_turn(std::span<Incoming> batch) = 0;
    virtual void on_stop() = 0;

    bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }

    PollLoop loop_; // the daemon adds its sources in on_start()

private:
    struct Driver;
    std::string name_;
    EventLoop* shared_;
    std::unique_ptr<EventLoop> own_;
    std::shared_ptr<Driver> driver_;
    std::atomic<bool> stop_{false};
};

// Runs `body` (a daemon's hook) and makes an exception escaping it fatal: logged critical as
// "<daemon>: fatal: <what>", then std::abort(). Why: what escapes a loop (LMDB I/O errors, a
// corrupt store, a ZeroMQ failure) is nothing the thread can repair; a process whose loop
// died would look alive but serve nothing, while restarts are cheap and every store is
// consistent on disk. Thread-safety: call on the daemon's loop thread.
template <class Body>
void run_or_abort(std::string_view daemon, Body&& body) noexcept {
    try {
        body();
    } catch (const std::exception& e) {
        spdlog::critical("{}: fatal: {}", daemon, e.what());
        std::abort();
    }
}

} // namespace vartalap
