// Thread: start/join on the controlling thread, request_stop on any; the Driver and every
// hook on the event loop's thread.
#include "daemons/loop_daemon.hpp"

#include "daemons/event_loop.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <vector>

namespace vartalap {

namespace asio = boost::asio;

// The daemon's side of the event loop. Handlers hold it by shared_ptr, so a cancelled wait
// that runs after the daemon is gone touches only the Driver (and sees `finished`).
struct LoopDaemon::Driver : std::enable_shared_from_this<Driver> {
    Driver(LoopDaemon& owner, asio::io_context& io) : owner(&owner), io(io), timer(io) {}

    LoopDaemon* owner; // valid until finished
    asio::io_context& io;
    asio::steady_timer timer;
    std::vector<std::unique_ptr<asio::posix::stream_descriptor>> descriptors; // one per source
    std::vector<bool> armed;
    bool timer_pending = false;
    asio::steady_timer::time_point timer_deadline{};
    bool turn_posted = false;
    bool started = false;
    bool finished = false;

    FinishedSignal done; // for join()

    void begin() {
        run_or_abort(owner->name_, [this] { owner->on_start(); });
        started = true;
        PollLoop& loop = owner->loop_;
        for (std::size_t i = 0; i < loop.size(); ++i) {
            auto descriptor = std::make_unique<asio::posix::stream_descriptor>(io);
            descriptor->assign(loop.socket(i).get(zmq::sockopt::fd));
            descriptors.push_back(std::move(descriptor));
            armed.push_back(false);
            if (loop.receive_only(i)) arm(i);
        }
        schedule();
    }

    // After a turn (or at start): stop, turn again at once, or wait for a source or the bound.
    void schedule() {
        if (finished) return;
        if (owner->stop_requested()) {
            finish();
            return;
        }
        std::chrono::milliseconds wait{};
        run_or_abort(owner->name_, [&] { wait = owner->before_turn(); });
        PollLoop& loop = owner->loop_;
        // ZMQ_FD only signals changes, and a send or a ZMQ_EVENTS read can consume the signal.
        // A receive-only source (PULL) is always watched and nothing but its drain reads it,
        // so its signals are never lost: PollLoop knows whether it may hold messages. A source
        // the daemon also sends on is asked (ZMQ_EVENTS, which also processes its pending
        // commands) before the wait.
        bool ready = wait.count() <= 0;
        for (std::size_t i = 0; i < loop.size() && !ready; ++i) {
            if (!loop.enabled(i)) continue;
            if (loop.receive_only(i))
                ready = loop.may_hold(i);
            else
                ready = (loop.socket(i).get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
        }
        if (ready) {
            post_turn();
            return;
        }
        for (std::size_t i = 0; i < loop.size(); ++i)
            if (loop.enabled(i) && !loop.receive_only(i)) arm(i);
        arm_timer(asio::steady_timer::clock_type::now() + wait);
    }

    // One wait on source i's ZMQ_FD. A receive-only source's wait is renewed in its own
    // handler, before the reactor can look at the descriptor again, so no signal goes unseen.
    void arm(std::size_t i) {
        if (armed[i]) return;
        armed[i] = true;
        descriptors[i]->async_wait(asio::posix::stream_descriptor::wait_read,
                                   [self = shared_from_this(), i](const boost::system::error_code& ec) {
                                       self->armed[i] = false;
                                       if (ec || self->finished) return;
                                       PollLoop& loop = self->owner->loop_;
                                       if (loop.receive_only(i)) {
                                           loop.mark_ready(i);
                                           self->arm(i);
                                       }
                                       self->post_turn();
                                   });
    }

    // Re-arming the timer costs a system call (timerfd_settime), so a pending deadline that
    // is earlier than the new one is kept: it ends the wait early, and the turn finds nothing.
    void arm_timer(asio::steady_timer::time_point deadline) {
        if (timer_pending && timer_deadline <= deadline) return;
        timer_pending = true;
        timer_deadline = deadline;
        timer.expires_at(deadline); // cancels a later pending wait (its handler sees aborted)
        timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (ec == asio::error::operation_aborted) return;
            self->timer_pending = false;
            if (!self->finished) self->post_turn();
        });
    }

    void post_turn() {
        if (turn_posted) return;
        turn_posted = true;
        asio::post(io, [self = shared_from_this()] {
            self->turn_posted = false;
            if (!self->finished) self->turn();
        });
    }

    void turn() {
        if (owner->stop_requested()) {
            finish();
            return;
        }
        const std::span<Incoming> batch = owner->loop_.drain();
        run_or_abort(owner->name_, [&] { owner->on_turn(batch); });
        schedule();
    }

    void finish() {
        if (finished) return;
        finished = true;
        if (started) run_or_abort(owner->name_, [this] { owner->on_stop(); });
        timer.cancel();
        // The descriptors belong to libzmq (closed with the sockets): release, never close.
        for (auto& descriptor : descriptors)
            if (descriptor->is_open()) descriptor->release();
        owner = nullptr;
        done.set();
    }
};

LoopDaemon::LoopDaemon(std::string name, EventLoop* shared)
    : loop_(name), name_(std::move(name)), shared_(shared) {}

LoopDaemon::~LoopDaemon() {
    request_stop();
    join();
}

void LoopDaemon::start() {
    if (driver_) return;
    EventLoop* loop = shared_;
    if (loop == nullptr) {
        own_ = std::make_unique<EventLoop>(name_);
        loop = own_.get();
    }
    driver_ = std::make_shared<Driver>(*this, loop->io());
    // The post is the hand-over of the sockets made on this thread (it synchronises).
    asio::post(loop->io(), [driver = driver_] {
        if (driver->owner->stop_requested()) driver->finish(); // stopped before it ran
        else driver->begin();
    });
    if (own_) own_->start();
}

void LoopDaemon::request_stop() {
    if (stop_.exchange(true)) return;
    if (!driver_) return;
    asio::post(driver_->io, [driver = driver_] {
        // A turn already posted ends it; otherwise end the wait now.
        if (driver->started && !driver->finished && !driver->turn_posted) driver->finish();
    });
}

void LoopDaemon::join() {
    if (!driver_) return;
    driver_->done.wait();
    if (own_) own_->stop();
}

} // namespace vartalap
