// Thread: see zap_guard.hpp. The thread owns zap_, wake_receiver_ and monitors_; the
// controlling thread hands it new monitors through pending_ (under mutex_) and a wake.
#include "common/zmq/zap_guard.hpp"

#include "common/thread_name.hpp"
#include "common/zmq/curve.hpp"

#include <chrono>
#include <cstring>
#include <spdlog/spdlog.h>
#include <stdexcept>

namespace vartalap {

namespace {

constexpr int kFailedHandshakes = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                  ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                  ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

std::uint64_t now_ms() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

std::string z85_of(std::string_view raw) {
    if (raw.size() != 32) return "(" + std::to_string(raw.size()) + " bytes)";
    char text[41] = {};
    zmq_z85_encode(text, reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size());
    return text;
}

// Reads one whole multipart message without blocking; empty if none.
std::vector<zmq::message_t> receive_all(zmq::socket_t& socket) {
    std::vector<zmq::message_t> frames;
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) return frames;
    bool more = frame.more();
    frames.push_back(std::move(frame));
    while (more) {
        zmq::message_t next;
        if (!socket.recv(next, zmq::recv_flags::none)) break;
        more = next.more();
        frames.push_back(std::move(next));
    }
    return frames;
}

} // namespace

ZapGuard::ZapGuard(zmq::context_t& context, const std::set<std::string>& allowed,
                   const std::string& thread_owner)
    : context_(context),
      wake_endpoint_("inproc://vartalap-zap-wake-" +
                     std::to_string(reinterpret_cast<std::uintptr_t>(this))) {
    for (const std::string& key : allowed) {
        std::string raw = curve_key_bytes(key);
        if (raw.empty()) throw std::runtime_error("not a CURVE public key: '" + key + "'");
        allowed_.insert(std::move(raw));
    }
    zap_ = zmq::socket_t(context_, zmq::socket_type::rep);
    zap_.set(zmq::sockopt::linger, 0);
    try {
        zap_.bind("inproc://zeromq.zap.01");
    } catch (const zmq::error_t& e) {
        throw std::runtime_error(std::string("cannot bind the ZAP handler: ") + e.what());
    }
    wake_receiver_ = zmq::socket_t(context_, zmq::socket_type::pair);
    wake_receiver_.bind(wake_endpoint_);
    wake_sender_ = zmq::socket_t(context_, zmq::socket_type::pair);
    wake_sender_.set(zmq::sockopt::linger, 0);
    wake_sender_.connect(wake_endpoint_);
    thread_ = std::thread([this, name = thread_name(thread_owner, "-zap")] {
        name_this_thread(name);
        run();
    });
}

ZapGuard::~ZapGuard() { stop(); }

ZapGuard::Refusals& ZapGuard::counters(const std::string& domain) {
    auto& slot = refusals_[domain];
    if (!slot) slot = std::make_unique<Refusals>();
    return *slot;
}

const ZapGuard::Refusals& ZapGuard::refusals(const std::string& domain) {
    std::lock_guard lock(mutex_);
    return counters(domain);
}

void ZapGuard::watch(zmq::socket_ref socket, const std::string& domain) {
    std::lock_guard lock(mutex_);
    counters(domain);
    const std::string endpoint = "inproc://vartalap-zap-monitor-" +
                                 std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "-" +
                                 std::to_string(next_monitor_++);
    if (zmq_socket_monitor(socket.handle(), endpoint.c_str(), kFailedHandshakes) != 0)
        throw std::runtime_error("cannot monitor the " + domain + " socket: " +
                                 zmq_strerror(zmq_errno()));
    auto monitor = std::make_unique<Monitor>();
    monitor->domain = domain;
    monitor->pair = zmq::socket_t(context_, zmq::socket_type::pair);
    monitor->pair.set(zmq::sockopt::linger, 0);
    monitor->pair.connect(endpoint); // inproc: connected at once, events queue from now on
    pending_.push_back(std::move(monitor));
    wake_sender_.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
}

void ZapGuard::stop() {
    if (!thread_.joinable()) return;
    stopping_.store(true);
    {
        std::lock_guard lock(mutex_);
        wake_sender_.send(zmq::str_buffer("s"), zmq::send_flags::dontwait);
    }
    thread_.join();
    zap_.close();
    wake_receiver_.close();
    wake_sender_.close();
    monitors_.clear();
    pending_.clear();
}

void ZapGuard::run() {
    while (!stopping_.load()) {
        std::vector<zmq::pollitem_t> items;
        items.push_back({zap_.handle(), 0, ZMQ_POLLIN, 0});
        items.push_back({wake_receiver_.handle(), 0, ZMQ_POLLIN, 0});
        for (const auto& monitor : monitors_) items.push_back({monitor->pair.handle(), 0, ZMQ_POLLIN, 0});
        zmq::poll(items, std::chrono::milliseconds(-1));
        if (items[0].revents & ZMQ_POLLIN) answer_zap();
        if (items[1].revents & ZMQ_POLLIN) {
            while (!receive_all(wake_receiver_).empty()) {
            }
            std::lock_guard lock(mutex_);
            for (auto& monitor : pending_) monitors_.push_back(std::move(monitor));
            pending_.clear();
        }
        for (std::size_t i = 2; i < items.size(); ++i)
            if (items[i].revents & ZMQ_POLLIN) read_monitor(*monitors_[i - 2]);
    }
}

// RFC 27: [version "1.0", request id, domain, address, identity, mechanism, credentials...]
// answered by [version, request id, status code, status text, user id, metadata].
void ZapGuard::answer_zap() {
    for (int turn = 0; turn < 64; ++turn) {
        std::vector<zmq::message_t> request = receive_all(zap_);
        if (request.empty()) return;
        const auto frame = [&](std::size_t i) {
            return i < request.size() ? request[i].to_string_view() : std::string_view();
        };
        const bool curve = request.size() >= 7 && frame(0) == "1.0" && frame(5) == "CURVE";
        const bool allowed = curve && allowed_.count(std::string(frame(6))) > 0;
        if (!allowed && key_log_.allow(now_ms()))
            spdlog::warn("{}: refused a CURVE client from {} with key {}: not a host of the "
                         "topology ({} more refusals not logged)",
                         frame(2), frame(3), curve ? z85_of(frame(6)) : "(none)",
                         key_log_.take_suppressed());
        const char* code = allowed ? "200" : "400";
        const char* text = allowed ? "OK" : "key not in the topology";
        zap_.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
        zap_.send(zmq::buffer(frame(1)), zmq::send_flags::sndmore);
        zap_.send(zmq::buffer(std::string_view(code)), zmq::send_flags::sndmore);
        zap_.send(zmq::buffer(std::string_view(text)), zmq::send_flags::sndmore);
        zap_.send(zmq::str_buffer(""), zmq::send_flags::sndmore);
        zap_.send(zmq::str_buffer(""), zmq::send_flags::none);
    }
}

// A monitor event: [6 bytes: u16 event, u32 value] [the socket's endpoint].
void ZapGuard::read_monitor(Monitor& monitor) {
    for (int turn = 0; turn < 64; ++turn) {
        std::vector<zmq::message_t> event = receive_all(monitor.pair);
        if (event.empty()) return;
        if (event[0].size() < 6) continue;
        std::uint16_t id = 0;
        std::uint32_t value = 0;
        std::memcpy(&id, event[0].data(), sizeof id);
        std::memcpy(&value, static_cast<const char*>(event[0].data()) + 2, sizeof value);
        const std::string endpoint = event.size() > 1 ? event[1].to_string() : std::string();
        Refusals* counters = nullptr;
        {
            std::lock_guard lock(mutex_);
            counters = refusals_[monitor.domain].get();
        }
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            counters->key.fetch_add(1, std::memory_order_relaxed);
        } else {
            counters->handshake.fetch_add(1, std::memory_order_relaxed);
            if (handshake_log_.allow(now_ms()))
                spdlog::warn("{}: refused a connection to {} that failed the CURVE handshake "
                             "(event {:#x}, error {:#x}: a peer without the keys, or with "
                             "another server key; {} more not logged)",
                             monitor.domain, endpoint, id, value,
                             handshake_log_.take_suppressed());
        }
    }
}

} // namespace vartalap
