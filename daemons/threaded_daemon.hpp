// Base for daemons whose whole life is one ZeroMQ poll loop on one thread.
// Subclasses implement run(), which must return within ~100 ms of stop_requested()
// becoming true (poll with a bounded timeout), after finishing or handing off in-flight
// work. Thread-safety: request_stop() from any thread; the rest from the controlling one.
#pragma once

#include "common/zmq_util.hpp"
#include "daemons/daemon.hpp"

#include <atomic>
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
