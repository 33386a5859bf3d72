// The process's guard of its CURVE server sockets: the ZAP handler (ZeroMQ's authentication
// protocol, RFC 27) that accepts exactly the topology's host public keys, and a monitor of
// every CURVE server socket that counts the handshakes it refused. docs/SECURITY.md,
// "Internal transport".
//
// One ZapGuard per ZeroMQ context (System makes it when the topology has host keys), made
// before the first CURVE socket is bound and stopped after the daemons closed theirs. It
// runs one thread: a REP socket bound at inproc://zeromq.zap.01 (where libzmq asks) and the
// PAIR ends of the socket monitors, polled together.
//
// Refusals, counted per ZAP domain (each daemon's instance name):
//   key        the client's public key is not one of the topology's hosts (ZAP said 400);
//   handshake  the handshake failed before ZAP: a plain (NULL mechanism) client, a client
//              that expects another server key, or garbage.
// Each is logged, at most one line per kLogPeriodMs per kind, with the count of the others.
//
// Thread-safety: the constructor, watch(), refusals() and stop() on the controlling thread
// (or any one thread at a time); the counters are atomics any thread may read.
#pragma once

#include "common/log.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

namespace vartalap {

class ZapGuard {
public:
    struct Refusals {
        std::atomic<std::uint64_t> key{0};
        std::atomic<std::uint64_t> handshake{0};
    };
    static constexpr std::uint64_t kLogPeriodMs = 10'000;

    // `allowed`: the Z85 public keys whose holders may connect. Throws std::runtime_error if
    // a key is not one or the ZAP endpoint is taken (a second guard on one context).
    // `thread_owner`: whose thread it is (its name becomes "<owner>-zap", thread_name.hpp).
    ZapGuard(zmq::context_t& context, const std::set<std::string>& allowed,
             const std::string& thread_owner = "vartalap");
    ~ZapGuard();
    ZapGuard(const ZapGuard&) = delete;
    ZapGuard& operator=(const ZapGuard&) = delete;

    // Monitors `socket` (a CURVE server, before its bind) and counts its refused handshakes
    // under `domain`. Called on the socket's owning thread.
    void watch(zmq::socket_ref socket, const std::string& domain);
    // The counters of `domain`; the reference stays valid until the guard is destroyed.
    const Refusals& refusals(const std::string& domain);
    // Stops the thread and closes its sockets. Idempotent.
    void stop();

private:
    struct Monitor {
        std::string domain;
        zmq::socket_t pair;
    };
    Refusals& counters(const std::string& domain); // under mutex_
    void run();
    void answer_zap();
    void read_monitor(Monitor& monitor);

    zmq::context_t& context_;
    std::set<std::string> allowed_;   // raw 32-byte keys
    std::string wake_endpoint_;
    zmq::socket_t zap_;               // the thread's
    zmq::socket_t wake_receiver_;     // the thread's
    zmq::socket_t wake_sender_;       // the controlling thread's, under mutex_
    std::mutex mutex_;
    std::map<std::string, std::unique_ptr<Refusals>> refusals_; // nodes never move
    std::vector<std::unique_ptr<Monitor>> pending_;             // watched, not yet polled
    std::vector<std::unique_ptr<Monitor>> monitors_;            // the thread's
    std::atomic<bool> stopping_{false};
    std::uint64_t next_monitor_ = 0;
    LogLimiter key_log_{kLogPeriodMs};       // the thread's
    LogLimiter handshake_log_{kLogPeriodMs}; // the thread's
    std::thread thread_;
};

} // namespace vartalap
