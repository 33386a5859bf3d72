// profile daemon: the ROUTER socket rest-gateways (and push) send requests to, and the
// profile LMDB environment, around ProfileCore.
// Thread: the profile daemon's loop (LoopDaemon hooks); ProfileCore runs on it too.
#include "daemons/profile/cert_fetcher.hpp"
#include "daemons/transport.hpp"
#include "daemons/profile/firebase_token.hpp"
#include "daemons/profile/profile_core.hpp"

#include "common/log.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/profile/profile_daemon.hpp"
#include "daemons/publisher.hpp"
#include "daemons/loop_daemon.hpp"

#include <algorithm>

namespace vartalap::profile {

namespace {

constexpr const char* kGoogleCertificates =
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com";

class ProfileDaemon final : public LoopDaemon {
public:
    explicit ProfileDaemon(const DaemonContext& context)
        : LoopDaemon(context.self.name, context.loop), context_(context) {}

    void bind() override {
        make_identity_provider();
        env_ = std::make_unique<lmdb::Env>(context_.data_dir);
        core_ = std::make_unique<ProfileCore>(*env_, *identity_, context_.access_keys, context_.clock);
        router_ = bind_socket(context_, zmq::socket_type::router, "router");
        bound_router_ = last_endpoint(router_);
    }
    void connect() override {}
    std::map<std::string, std::string> bound_endpoints() const override {
        return {{"router", bound_router_}};
    }

protected:
    void on_start() override {
        loop_.add({.socket = router_, .router = true, .accepted = PollLoop::kinds({Kind::request})});
        if (fetcher_) fetcher_->start();
    }
    std::chrono::milliseconds before_turn() override { return std::chrono::milliseconds(100); }
    void on_turn(std::span<Incoming> batch) override {
        serve(batch);
        if (const std::uint64_t now = context_.clock.monotonic_ms(); now >= next_prune_ms_) {
            core_->prune_revocations();
            next_prune_ms_ = now + 60'000;
        }
        publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
    }
    void on_stop() override {
        if (fetcher_) fetcher_->stop();
        router_.close();
    }

private:
    // `identity_provider`: "development" (any non-empty token; says so loudly) or "firebase"
    // (docs/INTERNAL_PROTOCOL.md, "Identity and revocation", lists its options).
    void make_identity_provider() {
        const auto& self = context_.self;
        const std::string provider = self.option_string("identity_provider", "development");
        if (provider == "development") {
            spdlog::warn("{}: identity_provider = \"development\": ANY non-empty identity token "
                         "logs in as ANY username. For local use only; deployments set "
                         "identity_provider = \"firebase\"", self.name);
            identity_ = std::make_unique<DevelopmentIdentityProvider>();
            return;
        }
        if (provider != "firebase")
            throw std::invalid_argument(self.name + ": identity_provider '" + provider +
                                        "' is not one of development, firebase");
        TokenRules rules;
        rules.project_id = self.option_string("firebase_project_id", "");
        if (rules.project_id.empty())
            throw std::invalid_argument(self.name + ": identity_provider \"firebase\" needs "
                                        "firebase_project_id");
        rules.leeway_seconds = std::clamp<std::int64_t>(
            self.option_int("firebase_leeway_seconds", 60), 0, 600);
        CertificateFetcherOptions fetch;
        fetch.url = self.option_string("firebase_certificates_url", kGoogleCertificates);
        fetch.file = self.option_string("firebase_certificates_file", "");
        fetch.ca_file = self.option_string("firebase_ca_file", "");
        fetch.min_interval = std::chrono::seconds(std::clamp<std::int64_t>(
            self.option_int("firebase_refresh_min_interval_seconds", 30), 0, 3600));
        fetcher_ = std::make_unique<CertificateFetcher>(self.name, fetch, certificates_,
                                                        context_.clock);
        identity_ = std::make_unique<FirebaseIdentityProvider>(
            rules, self.option_bool("firebase_require_phone_match", false), certificates_,
            context_.clock, [this] { fetcher_->refresh_soon(); });
        spdlog::info("{}: identity_provider firebase, project {}, certificates from {}",
                     self.name, rules.project_id, fetch.file.empty() ? fetch.url : fetch.file);
    }

    void serve(std::span<Incoming> batch) {
        for (Incoming& incoming : batch) {
            ++requests_;
            const Envelope reply = core_->handle(incoming.envelope);
            if (send_envelope(router_, reply, scratch_, incoming.routing_id) == SendResult::ok)
                ++replies_;
            else
                warn_dropped(replies_dropped_, context_.self.name, "reply",
                             "its gateway is gone or at its high-water mark");
        }
    }

    void publish(metrics::Snapshot& s) const {
        const ProfileCounters& c = core_->counters();
        add_messages_in_out(s, static_cast<double>(requests_), static_cast<double>(replies_));
        add_lmdb_use(s, "profile", *env_);
        s.gauge("vartalap_profile_revocation_version", "the last revocation's sequence number",
                static_cast<double>(core_->revocations().version()));
        if (fetcher_) {
            const auto current = certificates_.current();
            s.gauge("vartalap_profile_certificates_expire_seconds",
                    "unix time the identity certificate set expires (0: none loaded, or no end)",
                    static_cast<double>(current.set ? current.expires_at_ms / 1000 : 0));
        }
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"logins", c.logins}, {"refused_logins", c.refused_logins}, {"new_users", c.new_users},
            {"sub_mismatches", c.sub_mismatches}, {"invalid_usernames", c.invalid_usernames},
            {"invalid_fields", c.invalid_fields},
            {"logouts", c.logouts},
            {"revocations_pruned", c.revocations_pruned},
            {"certificate_refreshes", fetcher_ ? fetcher_->refreshes() : 0},
            {"certificate_refresh_failures", fetcher_ ? fetcher_->failures() : 0},
            {"requests", requests_}, {"replies", replies_}, {"replies_dropped", replies_dropped_},
            {"malformed", loop_.dropped()}};
        add_counters(s, "profile", rows);
    }

    DaemonContext context_;
    CertificateStore certificates_;
    std::unique_ptr<CertificateFetcher> fetcher_;
    std::unique_ptr<IdentityProvider> identity_;
    std::uint64_t next_prune_ms_ = 0;
    std::unique_ptr<lmdb::Env> env_;
    std::unique_ptr<ProfileCore> core_;
    zmq::socket_t router_;
    std::string bound_router_;
    std::uint64_t requests_ = 0;
    std::uint64_t replies_ = 0;
    std::uint64_t replies_dropped_ = 0;
    std::string scratch_;
    Publisher publisher_{context_.board, context_.clock};
};

} // namespace

} // namespace vartalap::profile

namespace vartalap {

std::unique_ptr<Daemon> make_profile(const DaemonContext& context) {
    return std::make_unique<profile::ProfileDaemon>(context);
}

} // namespace vartalap
