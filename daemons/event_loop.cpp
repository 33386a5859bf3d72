// Thread: start/stop on the controlling thread; the loop body on the loop's own thread.
#include "daemons/event_loop.hpp"

#include "common/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <exception>

namespace vartalap {

void EventLoop::start() {
    if (thread_.joinable()) return;
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] {
        name_this_thread(name_);
        try {
            io_.run();
        } catch (const std::exception& e) {
            // Handlers of daemons catch their own failures (run_or_abort); anything else is
            // a broken loop that serves nothing: end the process, a restart is safe.
            spdlog::critical("{}: event loop: {}", name_, e.what());
            std::abort();
        }
    });
}

void EventLoop::stop() {
    if (!thread_.joinable()) return;
    // Every daemon on the loop has finished: its waits were cancelled, and their handlers,
    // still queued, run now; then run() has nothing left and returns.
    work_.reset();
    thread_.join();
}

} // namespace vartalap
