// Keeps the Firebase certificate set current (cert_fetcher.hpp).
// Thread: the fetcher's own io_context thread, except start/stop/refresh_soon.
#include "daemons/profile/cert_fetcher.hpp"

#include "common/http/http_client.hpp"
#include "common/log.hpp"
#include "common/thread_name.hpp"
#include "daemons/event_loop.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <fstream>
#include <sstream>
#include <thread>

namespace vartalap::profile {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class CertificateFetcher::Impl {
public:
    Impl(CertificateFetcher& owner, std::string name, CertificateFetcherOptions options,
         CertificateStore& store, const Clock& clock)
        : owner_(owner), name_(std::move(name)), options_(std::move(options)), store_(store),
          clock_(clock), timer_(io_), work_(io_.get_executor()) {
        if (options_.file.empty()) {
            auto url = parse_url(options_.url);
            if (!url) throw std::invalid_argument(name_ + ": bad firebase_certificates_url");
            url_ = *url;
            HttpClientOptions client;
            client.ca_file = options_.ca_file;
            client.max_response_body = 1 << 20;
            client.max_idle_per_origin = 1;
            client_ = std::make_unique<HttpClient>(io_, client);
        }
    }

    void start() {
        asio::post(io_, [this] { fetch(); });
        thread_ = std::thread([this] {
            name_this_thread(name_, "-certs");
            io_.run();
        });
    }

    void stop() {
        asio::post(io_, [this] {
            stopped_ = true;
            timer_.cancel();
            if (client_) client_->close_all_idle();
            work_.reset();
            io_.stop();
        });
        if (thread_.joinable()) thread_.join();
    }

    void refresh_soon() {
        asio::post(io_, [this] {
            if (stopped_ || fetching_) return;
            if (std::chrono::steady_clock::now() - last_attempt_ < options_.min_interval) return;
            fetch();
        });
    }

private:
    void fetch() {
        fetching_ = true;
        last_attempt_ = std::chrono::steady_clock::now();
        if (!options_.file.empty()) {
            std::ifstream in(options_.file);
            std::stringstream text;
            text << in.rdbuf();
            if (!in) return failed("cannot read " + options_.file);
            return parsed(text.str(), -1);
        }
        HttpRequest request;
        request.method = HttpRequest::Method::get;
        request.url = url_;
        client_->post(std::move(request), [this](HttpResponse response) {
            if (stopped_) return;
            if (response.error) return failed("fetch failed: " + response.error.message());
            if (response.status != 200)
                return failed("fetch answered HTTP " + std::to_string(response.status));
            parsed(response.body, cache_max_age(response.cache_control));
        });
    }

    // A document arrived; max_age < 0: none given.
    void parsed(const std::string& text, long long max_age) {
        std::string error;
        auto set = CertificateSet::parse(text, error);
        if (!set) return failed(error);
        fetching_ = false;
        backoff_ = 5s;
        const auto keep = max_age >= 0 ? std::chrono::seconds(max_age) : options_.default_max_age;
        const std::size_t count = set->size();
        // A file has no end of life: it is what the operator put there.
        const std::uint64_t expires =
            options_.file.empty()
                ? clock_.wall_ms() + static_cast<std::uint64_t>(keep.count()) * 1000 : 0;
        store_.replace(std::make_shared<const CertificateSet>(std::move(*set)), expires);
        ++owner_.refreshes_;
        spdlog::info("{}: {} identity certificates loaded (kept {} s)", name_, count, keep.count());
        // A URL's set is fetched again when 90% of its max-age has passed, a file re-read
        // every default_max_age.
        schedule(options_.file.empty() ? std::max<std::chrono::milliseconds>(keep * 9 / 10, 1s)
                                       : std::chrono::milliseconds(keep));
    }

    void failed(const std::string& why) {
        fetching_ = false;
        ++owner_.failures_;
        const auto current = store_.current();
        if (current.set && (current.expires_at_ms == 0 || current.expires_at_ms > clock_.wall_ms()))
            spdlog::warn("{}: identity certificates: {}; keeping the last good set", name_, why);
        else
            spdlog::error("{}: identity certificates: {}; no current set: firebase logins are "
                          "refused", name_, why);
        schedule(backoff_);
        backoff_ = std::min<std::chrono::seconds>(backoff_ * 2, 300s);
    }

    void schedule(std::chrono::milliseconds after) {
        if (stopped_) return;
        timer_.expires_after(after);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec && !stopped_ && !fetching_) fetch();
        });
    }

    CertificateFetcher& owner_;
    std::string name_;
    CertificateFetcherOptions options_;
    CertificateStore& store_;
    const Clock& clock_;
    asio::io_context io_{1};
    asio::steady_timer timer_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    Url url_;
    std::unique_ptr<HttpClient> client_;
    std::thread thread_;
    bool stopped_ = false;
    bool fetching_ = false;
    std::chrono::steady_clock::time_point last_attempt_{};
    std::chrono::seconds backoff_{5};
};

CertificateFetcher::CertificateFetcher(std::string name, CertificateFetcherOptions options,
                                       CertificateStore& store, const Clock& clock)
    : impl_(std::make_unique<Impl>(*this, std::move(name), std::move(options), store, clock)) {}

CertificateFetcher::~CertificateFetcher() { stop(); }

void CertificateFetcher::start() { impl_->start(); }
void CertificateFetcher::stop() { impl_->stop(); }
void CertificateFetcher::refresh_soon() { impl_->refresh_soon(); }

} // namespace vartalap::profile
