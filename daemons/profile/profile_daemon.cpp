// profile daemon: the ROUTER socket rest-gateways (and push) send requests to, and the
// profile LMDB environment, around ProfileCore.
// Thread: the profile daemon's loop (LoopDaemon hooks); ProfileCore runs on it too.
#include "daemons/profile/profile_core.hpp"

#include "common/log.hpp"
#include "common/zmq/socket.hpp"
#include "daemons/profile/profile_daemon.hpp"
#include "daemons/publisher.hpp"
#include "daemons/loop_daemon.hpp"

namespace vartalap::profile {

namespace {

class ProfileDaemon final : public LoopDaemon {
public:
    explicit ProfileDaemon(const DaemonContext& context)
        : LoopDaemon(context.self.name, context.loop), context_(context) {}

    void bind() override {
        const std::string provider = context_.self.option_string("identity_provider", "development");
        if (provider != "development")
            throw std::invalid_argument(context_.self.name + ": identity_provider '" + provider +
                                        "' is not available (only 'development')");
        env_ = std::make_unique<lmdb::Env>(context_.data_dir);
        core_ = std::make_unique<ProfileCore>(*env_, identity_, context_.access_keys, context_.clock);
        router_ = make_socket(context_.zmq, zmq::socket_type::router);
        router_.bind(context_.self.endpoint("router"));
        bound_router_ = last_endpoint(router_);
    }
    void connect() override {}
    std::map<std::string, std::string> bound_endpoints() const override {
        return {{"router", bound_router_}};
    }

protected:
    void on_start() override {
        loop_.add({.socket = router_, .router = true, .accepted = PollLoop::kinds({Kind::request})});
    }
    std::chrono::milliseconds before_turn() override { return std::chrono::milliseconds(100); }
    void on_turn(std::span<Incoming> batch) override {
        serve(batch);
        publisher_.tick([this](metrics::Snapshot& s) { publish(s); });
    }
    void on_stop() override { router_.close(); }

private:
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
        const std::pair<const char*, std::uint64_t> rows[] = {
            {"logins", c.logins}, {"refused_logins", c.refused_logins}, {"new_users", c.new_users},
            {"requests", requests_}, {"replies", replies_}, {"replies_dropped", replies_dropped_},
            {"malformed", loop_.dropped()}};
        add_counters(s, "profile", rows);
    }

    DaemonContext context_;
    DevelopmentIdentityProvider identity_;
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
