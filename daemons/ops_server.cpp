// Thread: see ops_server.hpp. After start() the Impl lives on the ops thread; the only state
// other threads touch is OpsServer::draining_ (atomic) and the Boards (their own locking).
#include "daemons/ops_server.hpp"

#include "daemons/event_loop.hpp"
#include "daemons/transport.hpp"

#include "common/http/listener.hpp"
#include "common/http/net.hpp"
#include "common/http/session.hpp"
#include "common/http/target.hpp"
#include "common/version.hpp"
#include "common/thread_name.hpp"
#include "common/zmq/asio_watcher.hpp"
#include "common/zmq/socket.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <list>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace vartalap {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A scrape is one small request; anything slower or bigger is not Prometheus.
constexpr auto kHttpTimeout = std::chrono::seconds(5);
constexpr std::size_t kMaxRequestBytes = 8192;
// Concurrent metrics connections per process; more are closed at accept.
constexpr std::size_t kMaxHttpConnections = 64;
// Control requests read per wake-up before other work gets a turn.
constexpr int kControlBatch = 64;

metrics::Identity identity_of(const topology::DaemonSpec& spec) {
    return {spec.name, spec.kind, spec.host};
}

// The counters every daemon's metrics carry whatever its kind.
void add_refusals(const OpsEntry& entry, metrics::Snapshot& process) {
    if (!entry.refusals) return;
    const char* help = "connections to the daemon's tcp:// sockets refused by CURVE: key = a "
                       "client key not in the topology, handshake = no or wrong keys";
    process.counter("vartalap_internal_refused_total", help,
                    static_cast<double>(entry.refusals->key.load(std::memory_order_relaxed)),
                    metrics::label("reason", "key"));
    process.counter("vartalap_internal_refused_total", help,
                    static_cast<double>(entry.refusals->handshake.load(std::memory_order_relaxed)),
                    metrics::label("reason", "handshake"));
}

metrics::Health health(const OpsEntry& entry, std::uint64_t started_ms, std::uint64_t now_ms,
                       bool draining) {
    return metrics::health_of(entry.board->last_publish_ms(), started_ms, now_ms, draining);
}

} // namespace

nlohmann::json status_json(const OpsEntry& entry, std::uint64_t started_ms, std::uint64_t now_ms,
                           bool draining) {
    const auto last = entry.board->last_publish_ms();
    nlohmann::json counters = nlohmann::json::object();
    nlohmann::json gauges = nlohmann::json::object();
    metrics::Snapshot process;
    add_refusals(entry, process);
    metrics::add_to_json(process, counters, gauges);
    metrics::add_to_json(entry.board->snapshot(), counters, gauges);
    return {
        {"instance", entry.spec->name},
        {"kind", entry.spec->kind},
        {"host", entry.spec->host},
        {"pid", static_cast<std::int64_t>(::getpid())},
        {"version", std::string(version())},
        {"health", std::string(to_string(health(entry, started_ms, now_ms, draining)))},
        {"uptime_seconds", (now_ms - std::min(now_ms, started_ms)) / 1000},
        {"last_publish_age_ms", last ? nlohmann::json(now_ms - std::min(now_ms, *last))
                                     : nlohmann::json(nullptr)},
        {"counters", std::move(counters)},
        {"gauges", std::move(gauges)},
    };
}

std::string metrics_text(const OpsEntry& entry, std::uint64_t started_ms, std::uint64_t now_ms,
                         bool draining) {
    const auto last = entry.board->last_publish_ms();
    metrics::Snapshot process;
    process.gauge("vartalap_up", "1 while the daemon's loop runs (health ok), else 0",
                  health(entry, started_ms, now_ms, draining) == metrics::Health::ok ? 1 : 0);
    process.gauge("vartalap_build_info", "the build's version", 1,
                  metrics::label("version", version()));
    process.gauge("vartalap_uptime_seconds", "seconds since the daemon started",
                  static_cast<double>(now_ms - std::min(now_ms, started_ms)) / 1000.0);
    if (last)
        process.gauge("vartalap_last_publish_age_seconds",
                      "age of the metrics the daemon's loop last published",
                      static_cast<double>(now_ms - std::min(now_ms, *last)) / 1000.0);
    add_refusals(entry, process);
    const metrics::Identity identity = identity_of(*entry.spec);
    return metrics::render_prometheus(process, identity) +
           metrics::render_prometheus(entry.board->snapshot(), identity);
}

std::string control_reply(std::string_view request, const OpsEntry& entry,
                          std::uint64_t started_ms, std::uint64_t now_ms, bool draining) {
    if (request == "status") return status_json(entry, started_ms, now_ms, draining).dump();
    if (request == "metrics")
        return nlohmann::json{{"text", metrics_text(entry, started_ms, now_ms, draining)}}.dump();
    std::string shown(request.substr(0, 64));
    for (char& c : shown)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    return nlohmann::json{{"error", fmt::format("unknown command \"{}\"; commands: status, metrics",
                                                shown)}}
        .dump();
}

struct OpsServer::Impl {
    struct Control {
        OpsEntry entry;
        zmq::socket_t socket;
        std::string bound;
        std::unique_ptr<ZmqAsioWatcher> watcher;
    };
    struct Metrics {
        OpsEntry entry;
        std::shared_ptr<HttpListener> listener;
        std::string bound;
    };

    // One scrape: read a request, answer it, close.
    class MetricsSession final : public HttpSessionBase<http::empty_body> {
    public:
        MetricsSession(Impl& impl, const Metrics& target, tcp::socket&& socket)
            : HttpSessionBase(std::move(socket), impl.http_connections.enter()), impl_(impl),
              target_(target) {}

        void start() { read_request({kMaxRequestBytes, kMaxRequestBytes, kHttpTimeout}); }

    private:
        // A timeout, reset or a request over the limits: just close.
        void on_read_failed(ReadFailure, beast::error_code) override {}

        void on_request(Request&& request) override {
            response_.version(request.version());
            response_.keep_alive(false);
            response_.set(http::field::server, "vartalap");
            const std::string_view path = split_target(request.target()).path;
            if (request.method() != http::verb::get && request.method() != http::verb::head) {
                response_.result(http::status::method_not_allowed);
                response_.set(http::field::allow, "GET, HEAD");
                response_.body() = "only GET\n";
            } else if (path != "/metrics") {
                response_.result(http::status::not_found);
                response_.body() = "metrics are at /metrics\n";
            } else {
                response_.result(http::status::ok);
                response_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
                if (request.method() == http::verb::get)
                    response_.body() = metrics_text(target_.entry, impl_.started_ms,
                                                    impl_.clock.monotonic_ms(), impl_.draining());
            }
            if (response_.result() != http::status::ok)
                response_.set(http::field::content_type, "text/plain; charset=utf-8");
            response_.prepare_payload();
            write_response(response_, std::nullopt); // within the request's deadline
        }

        void on_written(beast::error_code) override { shutdown(tcp::socket::shutdown_both); }

        Impl& impl_;
        const Metrics& target_;
        http::response<http::string_body> response_;
    };

    Impl(zmq::context_t& zmq_context, std::vector<OpsEntry> all, const Clock& clock_ref,
         const std::atomic<bool>& draining_flag, Transport* transport_ptr)
        : zmq(zmq_context), entries(std::move(all)), clock(clock_ref), draining_ref(draining_flag),
          transport(transport_ptr) {}

    bool draining() const { return draining_ref.load(std::memory_order_relaxed); }

    void bind() {
        for (const OpsEntry& entry : entries) {
            const std::string control = entry.spec->endpoint("control");
            if (!control.empty()) {
                Control& c = controls.emplace_back();
                c.entry = entry;
                c.socket = make_socket(zmq, zmq::socket_type::router);
                if (transport) transport->prepare_bind(c.socket, *entry.spec, control);
                try {
                    c.socket.bind(control);
                } catch (const zmq::error_t& e) {
                    throw std::runtime_error(entry.spec->name + ": cannot bind control '" +
                                             control + "': " + e.what());
                }
                c.bound = last_endpoint(c.socket);
            }
            const std::string address = entry.spec->endpoint("metrics");
            if (!address.empty()) {
                Metrics& m = metrics_ports.emplace_back();
                m.entry = entry;
                try {
                    const tcp::endpoint endpoint = tcp_endpoint_of(entry.spec->name, "metrics", address);
                    // The cap is the process's: every metrics port shares one count.
                    m.listener = std::make_shared<HttpListener>(
                        io, endpoint, entry.spec->name + " metrics", http_connections,
                        kMaxHttpConnections, [this, &m](tcp::socket&& socket) {
                            std::make_shared<MetricsSession>(*this, m, std::move(socket))->start();
                        });
                } catch (const std::exception& e) {
                    throw std::runtime_error(entry.spec->name + ": cannot serve metrics on '" +
                                             address + "': " + e.what());
                }
                m.bound = to_host_port(m.listener->local_endpoint());
            }
        }
    }

    void start() {
        started_ms = clock.monotonic_ms();
        for (Control& c : controls) {
            c.watcher = std::make_unique<ZmqAsioWatcher>(io, c.socket, [this, &c] { on_control(c); });
            c.watcher->start();
        }
        for (Metrics& m : metrics_ports) m.listener->run();
        // The thread serves every daemon of the process: "<instance>-ops" under vartalapd,
        // "<first>+<more>-ops" in a one-process system.
        std::vector<std::string> served;
        for (const OpsEntry& entry : entries) served.push_back(entry.spec->name);
        thread = std::thread([this, owner = shared_thread_owner(served)] {
            name_this_thread(owner, "-ops");
            try {
                io.run();
            } catch (const std::exception& e) {
                // Observability must not take the daemons down: log and stop serving.
                spdlog::error("ops: control and metrics stopped: {}", e.what());
            }
        });
    }

    void on_control(Control& c) {
        for (int i = 0; i < kControlBatch; ++i) {
            std::vector<zmq::message_t> frames;
            zmq::message_t frame;
            bool more = true;
            while (more) {
                if (!c.socket.recv(frame, zmq::recv_flags::dontwait)) {
                    if (frames.empty()) return; // nothing more to read
                    break;
                }
                more = frame.more();
                frames.push_back(std::move(frame));
            }
            // [routing id, (empty delimiter,) request]: REQ and DEALER clients both work.
            if (frames.size() < 2 || frames.size() > 3) continue;
            const std::string_view request = frames.back().to_string_view();
            const std::string reply = control_reply(request, c.entry, started_ms,
                                                    clock.monotonic_ms(), draining());
            try {
                c.socket.send(frames[0], zmq::send_flags::sndmore | zmq::send_flags::dontwait);
                if (frames.size() == 3)
                    c.socket.send(zmq::message_t(), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
                c.socket.send(zmq::buffer(reply), zmq::send_flags::dontwait);
            } catch (const zmq::error_t& e) {
                // The asker went away (router_mandatory): nothing to answer.
                if (e.num() != EHOSTUNREACH) throw;
            }
        }
        // More may be queued: the watcher looks again after other work (check() pokes).
    }

    void stop() {
        if (thread.joinable()) {
            asio::post(io, [this] {
                for (Control& c : controls)
                    if (c.watcher) c.watcher->stop();
                for (Metrics& m : metrics_ports) m.listener->stop();
                io.stop();
            });
            thread.join();
        }
        controls.clear();
        metrics_ports.clear();
    }

    zmq::context_t& zmq;
    std::vector<OpsEntry> entries;
    const Clock& clock;
    const std::atomic<bool>& draining_ref;
    Transport* transport; // null: plain control sockets
    ConnectionCount http_connections; // before io: sessions still queued in io count down at its end
    asio::io_context io{1};
    std::list<Control> controls;      // stable addresses: the watchers' handlers hold them
    std::list<Metrics> metrics_ports;
    std::uint64_t started_ms = 0;
    std::thread thread;
};

OpsServer::OpsServer(zmq::context_t& zmq, std::vector<OpsEntry> entries, const Clock& clock,
                     Transport* transport)
    : impl_(std::make_unique<Impl>(zmq, std::move(entries), clock, draining_, transport)) {}

OpsServer::~OpsServer() { stop(); }

void OpsServer::bind() { impl_->bind(); }

std::map<std::string, std::map<std::string, std::string>> OpsServer::bound_endpoints() const {
    std::map<std::string, std::map<std::string, std::string>> out;
    for (const auto& c : impl_->controls) out[c.entry.spec->name]["control"] = c.bound;
    for (const auto& m : impl_->metrics_ports) out[m.entry.spec->name]["metrics"] = m.bound;
    return out;
}

void OpsServer::start() { impl_->start(); }

void OpsServer::stop() { impl_->stop(); }

} // namespace vartalap
