// An event-loop thread of the one-process topology (`[system] threads`): one Asio
// io_context run by one thread, shared by the ZeroMQ-loop daemons placed on it, so that an
// inproc hop between two of them costs no context switch. A daemon started without a shared
// loop gets an EventLoop of its own (one thread per daemon, as in the multi-process
// topology). See docs/INTERNAL_PROTOCOL.md, "Daemon loops".
//
// Thread-safety: start/stop from the controlling thread; io() may be posted to from any
// thread. Lifetime: stop() only after every daemon on the loop has been joined.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace vartalap {

class EventLoop {
public:
    // `name` becomes the thread's name (fitted into 15 bytes, common/thread_name.hpp): the
    // instance name of a loop of one daemon, "<first>+<more>" of a shared one.
    explicit EventLoop(std::string name) : name_(std::move(name)) {}
    ~EventLoop() { stop(); }
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    boost::asio::io_context& io() { return io_; }
    const std::string& name() const { return name_; }

    // Starts the thread; it runs the io_context until stop().
    void start();
    // Ends the thread once the handlers still queued have run (every daemon on the loop has
    // finished by then, so only cancelled waits remain). Idempotent.
    void stop();

private:
    std::string name_;
    // One thread runs it: a post from a handler goes to the thread's private queue (no
    // wake-up system call); posts from other threads (stop, reload) still lock.
    boost::asio::io_context io_{1};
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    std::thread thread_;
};

// A one-shot "this daemon has finished on its loop" signal: set() on the loop's thread,
// wait() from the controlling thread (join). Thread-safety: any thread.
class FinishedSignal {
public:
    void set() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        changed_.notify_all();
    }
    void wait() {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return done_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool done_ = false;
};

} // namespace vartalap
