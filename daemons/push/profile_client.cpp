// Thread: the push daemon's io thread.
#include "daemons/push/profile_client.hpp"

#include "common/log.hpp"

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <vector>

namespace vartalap::push {

using nlohmann::json;

namespace {
constexpr int kReplyBatch = 256; // replies handled per wakeup before yielding to other work
} // namespace

ProfileClient::ProfileClient(boost::asio::io_context& io, zmq::socket_ref dealer, const Clock& clock,
                             std::uint64_t timeout_ms)
    : io_(io), dealer_(dealer), clock_(clock), timeout_ms_(timeout_ms),
      watcher_(io, dealer, [this] { on_replies(); }) {}

void ProfileClient::lookup(const std::string& user, std::function<void(TokenLookup)> done) {
    request("notification_token", json{{"username", user}}.dump(-1, ' ', false, json::error_handler_t::replace),
            [done = std::move(done)](const Envelope* reply) {
                TokenLookup lookup;
                if (reply && reply->status == Status::ok) {
                    const json body = json::parse(reply->payload, nullptr, false);
                    if (body.is_object())
                        if (auto it = body.find("token"); it != body.end() && it->is_string() &&
                                                          !it->get_ref<const std::string&>().empty()) {
                            lookup.status = TokenLookup::Status::found;
                            lookup.token = it->get<std::string>();
                        }
                } else if (reply && (reply->status == Status::not_found || reply->status == Status::bad_request)) {
                    // No token, no such user, or a user name the profile refuses: asking
                    // again would get the same answer.
                    lookup.status = TokenLookup::Status::none;
                }
                done(std::move(lookup));
            });
}

void ProfileClient::remove(const std::string& user, const std::string& token) {
    request("remove_token",
            json{{"username", user}, {"token", token}}.dump(-1, ' ', false, json::error_handler_t::replace),
            [user](const Envelope* reply) {
                if (!reply || reply->status != Status::ok)
                    spdlog::warn("push: the profile daemon did not remove the dead device token of {}: {}", user,
                                 reply ? reply->error : std::string("no answer"));
            });
}

void ProfileClient::request(std::string method, std::string payload, OnReply on_reply) {
    Envelope envelope;
    envelope.kind = Kind::request;
    envelope.request_id = ++next_request_id_;
    envelope.method = std::move(method);
    envelope.payload = std::move(payload);
    if (send_envelope(dealer_, envelope, scratch_) != SendResult::ok) {
        // No profile daemon connected, or it is far behind: fail now, the queue retries.
        boost::asio::post(io_, [on_reply = std::move(on_reply)] { on_reply(nullptr); });
        return;
    }
    watcher_.poke(); // a send may consume the ZMQ_FD edge that announces a reply
    pending_.emplace(envelope.request_id, Pending{clock_.monotonic_ms() + timeout_ms_, std::move(on_reply)});
}

void ProfileClient::on_replies() {
    std::string error;
    for (int i = 0; i < kReplyBatch; ++i) {
        const auto result = receive_envelope(dealer_, false, incoming_, &error);
        if (result == ReceiveResult::empty) return;
        if (result == ReceiveResult::malformed || incoming_.envelope.kind != Kind::reply) {
            if (count_sampled(malformed_replies_))
                spdlog::warn("push: ignored a malformed reply from a profile daemon: {} ({} so far)", error,
                             malformed_replies_);
            continue;
        }
        auto it = pending_.find(incoming_.envelope.request_id);
        if (it == pending_.end()) continue; // timed out already
        OnReply on_reply = std::move(it->second.on_reply);
        pending_.erase(it);
        on_reply(&incoming_.envelope);
    }
}

void ProfileClient::expire() {
    const std::uint64_t now = clock_.monotonic_ms();
    std::vector<OnReply> expired;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline_ms <= now) {
            expired.push_back(std::move(it->second.on_reply));
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    // Called after the sweep: a callback may issue new requests into pending_.
    for (auto& on_reply : expired) on_reply(nullptr);
}

} // namespace vartalap::push
