// Thread: the io_context's thread.
#include "common/zmq/asio_watcher.hpp"

#include <boost/asio/post.hpp>

namespace vartalap {

ZmqAsioWatcher::ZmqAsioWatcher(boost::asio::io_context& io, zmq::socket_ref socket,
                               std::function<void()> on_readable)
    : io_(io), socket_(socket), on_readable_(std::move(on_readable)), descriptor_(io) {}

ZmqAsioWatcher::~ZmqAsioWatcher() {
    // The descriptor belongs to libzmq: release it so Asio does not close it.
    if (descriptor_.is_open()) descriptor_.release();
}

void ZmqAsioWatcher::start() {
    stopped_ = false;
    if (!descriptor_.is_open()) descriptor_.assign(socket_.get(zmq::sockopt::fd));
    poke();
}

void ZmqAsioWatcher::stop() {
    stopped_ = true;
    ++generation_;   // the cancelled wait's handler is now stale
    armed_ = false;  // so a start() before that handler runs can arm again
    if (descriptor_.is_open()) {
        boost::system::error_code ignored;
        descriptor_.cancel(ignored);
        descriptor_.release();
    }
}

void ZmqAsioWatcher::poke() {
    if (stopped_ || check_posted_) return;
    check_posted_ = true;
    boost::asio::post(io_, [this] {
        check_posted_ = false;
        check();
    });
}

void ZmqAsioWatcher::check() {
    if (stopped_) return;
    if (socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) {
        on_readable_();
        poke(); // more may remain; yield to other handlers first
    } else {
        arm();
    }
}

void ZmqAsioWatcher::arm() {
    if (armed_ || stopped_) return;
    armed_ = true;
    descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this, generation = generation_](const boost::system::error_code& ec) {
                               if (generation != generation_) return; // from before stop()
                               armed_ = false;
                               if (ec) return; // cancelled at stop
                               check();
                           });
}

} // namespace vartalap
