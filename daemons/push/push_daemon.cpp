// push daemon: the adapter around PushCore. It owns the sockets (a PULL fed by persistence
// with offline_notify, a DEALER to the profile daemons), the HTTP client and the provider.
//
// Thread: bind() and connect() run on the controlling thread (they create the sockets, read
// the options and load the service account); from start() on, one thread runs the
// io_context and everything else: the core, the watchers of both sockets, HTTP, timers.
// request_stop() may be called from any thread (it posts to the io_context); join() from
// the controlling thread.
//
// Drain: request_stop → stop reading the PULL socket → start nothing new → wait for the
// sends in flight, at most kDrainBoundMs → close. Notifications still queued are dropped
// (counted in the log): pushes are hints, and the messages stay stored in persistence.
#include "daemons/push/push_daemon.hpp"
#include "daemons/transport.hpp"
#include "daemons/event_loop.hpp"
#include "daemons/publisher.hpp"

#include "common/log.hpp"
#include "common/thread_name.hpp"
#include "common/zmq/asio_watcher.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/push/fcm.hpp"
#include "common/http/http_client.hpp"
#include "daemons/push/profile_client.hpp"
#include "daemons/push/push_core.hpp"
#include "daemons/push/webhook.hpp"
#include "topology/catalog.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <random>
#include <stdexcept>
#include <thread>

namespace vartalap::push {
namespace {

namespace asio = boost::asio;
using namespace vartalap::push;

// Period of the duty timer: the granularity of retries and timeouts (a push that is 100 ms
// late is still on time), and an idle daemon wakes 10 times a second at most.
constexpr std::uint64_t kDutyPeriodMs = 100;
constexpr std::uint64_t kIdleSweepPeriodMs = 1000;
constexpr std::uint64_t kCounterLogPeriodMs = 60000;
// Sends in flight get this long to finish at shutdown; systemd's stop timeout is longer.
constexpr std::uint64_t kDrainBoundMs = 2000;
// Notifications handled per wakeup before yielding to replies and HTTP completions.
constexpr int kNotifyBatch = 256;

std::int64_t positive_option(const topology::DaemonSpec& self, std::string_view key, std::int64_t fallback) {
    const std::int64_t value = self.option_int(key, fallback);
    if (value <= 0)
        throw std::invalid_argument(self.name + ": option " + std::string(key) + " must be positive");
    return value;
}

class PushDaemon final : public Daemon {
public:
    explicit PushDaemon(const DaemonContext& context) : context_(context) {}
    ~PushDaemon() override {
        request_stop();
        join();
    }

    void bind() override {
        configure();
        pull_ = bind_socket(context_, zmq::socket_type::pull, "pull");
        bound_pull_ = last_endpoint(pull_);
    }

    void connect() override {
        dealer_ = make_socket(context_.zmq, zmq::socket_type::dealer);
        for (const auto& profile : topology::peers(context_.topology, context_.self, "profile", "router"))
            connect_socket(context_, dealer_, profile);
        profile_ = std::make_unique<ProfileClient>(io_, dealer_, context_.clock, profile_timeout_ms_);
        core_ = std::make_unique<PushCore>(config_, *profile_, *provider_, context_.clock,
                                           [this](std::uint64_t bound) {
                                               return std::uniform_int_distribution<std::uint64_t>(0, bound)(random_);
                                           });
        pull_watcher_ = std::make_unique<ZmqAsioWatcher>(io_, pull_, [this] { on_notifications(); });
    }

    void start() override {
        pull_watcher_->start();
        profile_->start();
        last_idle_sweep_ms_ = last_counter_log_ms_ = context_.clock.monotonic_ms();
        schedule_duties();
        started_ = true;
        thread_ = std::thread([this] {
            name_this_thread(context_.self.name);
            io_.run();
            // The sockets belong to this thread; close them here (bounded by LINGER).
            pull_.close();
            dealer_.close();
        });
    }

    void request_stop() override {
        if (started_) asio::post(io_, [this] { begin_drain(); });
    }

    void join() override {
        if (thread_.joinable()) thread_.join();
    }

    std::map<std::string, std::string> bound_endpoints() const override { return {{"pull", bound_pull_}}; }

private:
    // Reads the options (docs/INTERNAL_PROTOCOL.md "Push"); throws std::invalid_argument naming the
    // daemon for a missing or bad one, so a misconfigured daemon refuses to start.
    void configure() {
        const topology::DaemonSpec& self = context_.self;
        config_.queue_limit = static_cast<std::size_t>(positive_option(self, "queue_limit", 10000));
        config_.max_in_flight = static_cast<std::size_t>(positive_option(self, "max_in_flight", 32));
        config_.backoff.max_attempts = static_cast<std::uint32_t>(positive_option(self, "max_attempts", 8));
        config_.backoff.base_ms = static_cast<std::uint64_t>(positive_option(self, "backoff_base_ms", 1000));
        config_.backoff.cap_ms = static_cast<std::uint64_t>(positive_option(self, "backoff_cap_ms", 300000));
        profile_timeout_ms_ = static_cast<std::uint64_t>(positive_option(self, "profile_timeout_ms", 5000));

        HttpClientOptions http;
        http.ca_file = self.option_string("ca_file", "");
        http.request_timeout = std::chrono::milliseconds(positive_option(self, "request_timeout_ms", 10000));
        http.max_idle_per_origin = config_.max_in_flight;
        try {
            http_ = std::make_unique<HttpClient>(io_, http);
            const std::string provider = self.option_string("provider", "fcm");
            if (provider == "fcm") {
                const std::string file = self.option_string("service_account_file", "");
                if (file.empty()) throw std::invalid_argument("option service_account_file is required for provider fcm");
                FcmOptions fcm;
                fcm.account = load_service_account(file);
                fcm.token_uri = self.option_string("token_uri", "");
                fcm.endpoint = self.option_string("fcm_endpoint", "");
                provider_ = std::make_unique<FcmProvider>(*http_, context_.clock, std::move(fcm));
            } else if (provider == "webhook") {
                auto url = parse_url(self.option_string("webhook_url", ""));
                if (!url) throw std::invalid_argument("option webhook_url must be an http(s) URL for provider webhook");
                provider_ = std::make_unique<WebhookProvider>(*http_, context_.clock, std::move(*url));
            } else {
                throw std::invalid_argument("option provider must be \"fcm\" or \"webhook\", not \"" + provider + "\"");
            }
        } catch (const std::invalid_argument& e) {
            if (std::string_view(e.what()).starts_with(self.name + ":")) throw;
            throw std::invalid_argument(self.name + ": " + e.what());
        }
        spdlog::info("push {}: provider {}, queue_limit {}, max_in_flight {}, max_attempts {}", self.name,
                     provider_->name(), config_.queue_limit, config_.max_in_flight, config_.backoff.max_attempts);
    }

    void on_notifications() {
        std::string error;
        for (int i = 0; i < kNotifyBatch; ++i) {
            const auto result = receive_envelope(pull_, false, incoming_, &error);
            if (result == ReceiveResult::empty) return;
            Envelope& envelope = incoming_.envelope;
            if (result == ReceiveResult::malformed || envelope.kind != Kind::offline_notify) {
                if (count_sampled(ignored_))
                    spdlog::warn("push {}: ignored a message that is not an offline_notify: {} ({} so far)",
                                 context_.self.name,
                                 result == ReceiveResult::malformed ? error : to_string(envelope.kind), ignored_);
                continue;
            }
            core_->offer(Notification{std::move(envelope.to), std::move(envelope.id), std::move(envelope.payload),
                                      envelope.flags});
        }
    }

    // The periodic duties, every kDutyPeriodMs:
    //   retries whose backoff has passed are started            core_->on_timer()
    //   profile requests older than profile_timeout_ms fail       profile_->expire()
    //   idle HTTP connections older than 30 s close (every 1 s)   http_->close_expired_idle()
    //   counters are logged at debug level (every 60 s)
    //   while draining: finish when nothing is in flight or kDrainBoundMs has passed
    void schedule_duties() {
        duty_timer_.expires_after(std::chrono::milliseconds(kDutyPeriodMs));
        duty_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            const std::uint64_t now = context_.clock.monotonic_ms();
            core_->on_timer();
            profile_->expire();
            if (now - last_idle_sweep_ms_ >= kIdleSweepPeriodMs) {
                last_idle_sweep_ms_ = now;
                http_->close_expired_idle();
            }
            if (now - last_counter_log_ms_ >= kCounterLogPeriodMs) {
                last_counter_log_ms_ = now;
                log_counters("");
            }
            publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
            if (stopping_ && (core_->in_flight() == 0 || now >= drain_deadline_ms_)) return finish_drain();
            schedule_duties();
        });
    }

    void begin_drain() {
        if (stopping_) return;
        stopping_ = true;
        pull_watcher_->stop();
        core_->stop_starting();
        drain_deadline_ms_ = context_.clock.monotonic_ms() + kDrainBoundMs;
    }

    void finish_drain() {
        if (core_->held() > 0)
            spdlog::info("push {}: stopping with {} notifications not pushed ({} in flight); their messages "
                         "stay stored in persistence",
                         context_.self.name, core_->held(), core_->in_flight());
        log_counters("at stop: ");
        profile_->stop();
        http_->close_all_idle();
        io_.stop();
    }

    void publish(metrics::Snapshot& s) const {
        const PushCounters& c = core_->counters();
        add_messages_in_out(s, static_cast<double>(c.received), static_cast<double>(c.delivered));
        s.counter("vartalap_retries_total", "notifications retried after a failure", c.retries);
        add_queue_depth(s, "push", static_cast<double>(core_->held()));
        add_queue_depth(s, "push_in_flight", static_cast<double>(core_->in_flight()));
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"received", c.received}, {"skipped_notification", c.skipped_notification},
            {"skipped_system", c.skipped_system}, {"malformed", c.malformed},
            {"duplicates", c.duplicates}, {"dropped_queue_full", c.dropped_queue_full},
            {"delivered", c.delivered}, {"retries", c.retries}, {"gave_up", c.gave_up},
            {"unregistered", c.unregistered}, {"failed", c.failed}, {"no_token", c.no_token},
            {"lookup_failures", c.lookup_failures}, {"ignored", ignored_}};
        add_counters(s, "push", rows);
    }

    void log_counters(const char* prefix) {
        const PushCounters& c = core_->counters();
        spdlog::debug("push {}: {}received {} delivered {} retries {} gave_up {} unregistered {} failed {} "
                      "no_token {} skipped_notification {} skipped_system {} duplicates {} dropped_queue_full {} malformed {} held {}",
                      context_.self.name, prefix, c.received, c.delivered, c.retries, c.gave_up, c.unregistered,
                      c.failed, c.no_token, c.skipped_notification, c.skipped_system, c.duplicates, c.dropped_queue_full,
                      c.malformed, core_->held());
    }

    DaemonContext context_;
    // Declared first, destroyed last: everything below that holds I/O objects or pending
    // handlers is destroyed while the io_context still exists (it has stopped by then).
    asio::io_context io_{1};
    asio::steady_timer duty_timer_{io_};
    PushConfig config_;
    std::uint64_t profile_timeout_ms_ = 5000;
    std::mt19937_64 random_{std::random_device{}()};
    zmq::socket_t pull_;
    zmq::socket_t dealer_;
    std::string bound_pull_;
    std::unique_ptr<HttpClient> http_;
    std::unique_ptr<PushProvider> provider_;
    std::unique_ptr<ProfileClient> profile_;
    std::unique_ptr<PushCore> core_;
    std::unique_ptr<ZmqAsioWatcher> pull_watcher_;
    Incoming incoming_;
    std::uint64_t ignored_ = 0;
    std::uint64_t last_idle_sweep_ms_ = 0;
    std::uint64_t last_counter_log_ms_ = 0;
    Publisher publisher_{context_.board, context_.clock};
    std::uint64_t drain_deadline_ms_ = 0;
    bool stopping_ = false;
    std::atomic<bool> started_{false};
    std::thread thread_;
};

} // namespace

} // namespace vartalap::push

namespace vartalap {

std::unique_ptr<Daemon> make_push(const DaemonContext& context) {
    return std::make_unique<push::PushDaemon>(context);
}

} // namespace vartalap
