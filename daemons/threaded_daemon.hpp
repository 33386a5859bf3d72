// Base for daemons whose whole life is one ZeroMQ poll loop on one thread.
// Subclasses implement run(), which must return within ~100 ms of stop_requested()
// becoming true (poll with a bounded timeout), after finishing or handing off in-flight
// work. Thread-safety: request_stop() from any thread; the rest from the controlling one.
#pragma once

#include "common/zmq/poll_loop.hpp"
#include "daemons/daemon.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <thread>

namespace vartalap {

class ThreadedDaemon : public Daemon {
public:
    void start() override {
        thread_ = std::thread([this] { run(); });
    }
    void request_stop() override { stop_.store(true, std::memory_order_relaxed); }
    void join() override {
        if (thread_.joinable()) thread_.join();
    }
    ~ThreadedDaemon() override {
        request_stop();
        join();
    }

protected:
    virtual void run() = 0;
    bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// Runs `body` (a daemon thread's loop) and makes an exception escaping it fatal: logged
// critical as "<daemon>: fatal: <what>", then std::abort(). Why: what escapes a loop (LMDB I/O
// errors, a corrupt store, a ZeroMQ failure) is nothing the thread can repair; a process
// whose thread died would look alive but serve nothing, while restarts are cheap and every
// store is consistent on disk. Thread-safety: call on the daemon's own thread (from run()).
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
