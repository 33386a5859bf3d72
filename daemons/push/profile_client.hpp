// TokenDirectory over ZeroMQ: a DEALER connected to every profile daemon's ROUTER, speaking
// Kind::request/reply with the methods "notification_token" and "remove_token"
// (docs/INTERNAL_PROTOCOL.md "Push"). Replies are matched by request_id; a request not
// answered within the timeout fails (lookup → unavailable, so the queue retries later).
//
// Thread: the push daemon's io thread; the DEALER socket belongs to it from start() on.
// Bounds: at most one lookup per in-flight notification (PushCore bounds those) plus one
// removal per unregistered token, each forgotten after the timeout; sends never block
// (a DEALER at its high-water mark fails the request at once).
#pragma once

#include "common/clock.hpp"
#include "common/zmq/asio_watcher.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/push/push_core.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <unordered_map>

namespace vartalap::push {

class ProfileClient final : public TokenDirectory {
public:
    ProfileClient(boost::asio::io_context& io, zmq::socket_ref dealer, const Clock& clock,
                  std::uint64_t timeout_ms);

    void start() { watcher_.start(); }
    void stop() { watcher_.stop(); }

    void lookup(const std::string& user, std::function<void(TokenLookup)> done) override;
    void remove(const std::string& user, const std::string& token) override;

    // Periodic duty: fail the requests older than the timeout.
    void expire();
    std::size_t pending() const { return pending_.size(); }

private:
    // Called with the reply, or with nullptr when the request failed or timed out.
    using OnReply = std::function<void(const Envelope* reply)>;
    struct Pending {
        std::uint64_t deadline_ms;
        OnReply on_reply;
    };

    void request(std::string method, std::string payload, OnReply on_reply);
    void on_replies();

    boost::asio::io_context& io_;
    zmq::socket_ref dealer_;
    const Clock& clock_;
    std::uint64_t timeout_ms_;
    ZmqAsioWatcher watcher_;
    std::unordered_map<std::uint64_t, Pending> pending_;
    std::uint64_t next_request_id_ = 0;
    std::string scratch_;  // reused encode buffer
    Incoming incoming_;    // reused receive buffer
    std::uint64_t malformed_replies_ = 0;
};

} // namespace vartalap::push
