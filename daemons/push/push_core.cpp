// Thread: the push daemon's io thread.
#include "daemons/push/push_core.hpp"

#include "common/wire/envelope.hpp"
#include "common/log.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace vartalap::push {

PayloadClass classify_payload(std::string_view message_json) {
    const auto message = nlohmann::json::parse(message_json, nullptr, false);
    if (message.is_discarded() || !message.is_object()) return PayloadClass::malformed;
    auto head = message.find("head");
    if (head != message.end() && head->is_object()) {
        auto content_type = head->find("contentType");
        if (content_type != head->end() && content_type->is_string() && *content_type == "notification")
            return PayloadClass::notification;
    }
    return PayloadClass::pushable;
}

PushCore::PushCore(const PushConfig& config, TokenDirectory& tokens, PushProvider& provider,
                   const Clock& clock, UniformRandom random)
    : config_(config), tokens_(tokens), provider_(provider), clock_(clock), random_(std::move(random)) {}

Offer PushCore::offer(Notification notification) {
    ++counters_.received;
    if (notification.flags & (flag_system | flag_ephemeral)) {
        ++counters_.skipped_system;
        return Offer::skipped_system;
    }
    switch (classify_payload(notification.payload)) {
    case PayloadClass::notification:
        ++counters_.skipped_notification;
        return Offer::skipped_notification;
    case PayloadClass::malformed:
        ++counters_.malformed;
        return Offer::malformed;
    case PayloadClass::pushable:
        break;
    }
    std::string key;
    if (!notification.id.empty()) {
        key = notification.to;
        key += '\n'; // not allowed in user names, so (to, id) pairs cannot collide
        key += notification.id;
        if (keys_.contains(key)) {
            ++counters_.duplicates;
            return Offer::duplicate;
        }
    }
    if (items_.size() >= config_.queue_limit) {
        if (count_sampled(counters_.dropped_queue_full))
            spdlog::warn("push: queue full ({} notifications): dropped the newest; {} dropped so far "
                         "(the messages stay stored in persistence)",
                         items_.size(), counters_.dropped_queue_full);
        return Offer::dropped_queue_full;
    }
    const std::uint64_t seq = next_seq_++;
    if (!key.empty()) keys_.insert(key);
    items_.emplace(seq, Item{std::move(notification), std::move(key), {}, 0});
    ready_.push_back(seq);
    pump();
    return Offer::queued;
}

void PushCore::on_timer() {
    const std::uint64_t now = clock_.monotonic_ms();
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
        ready_.push_back(waiting_.begin()->second);
        waiting_.erase(waiting_.begin());
    }
    pump();
}

std::optional<std::uint64_t> PushCore::next_retry_at_ms() const {
    if (waiting_.empty()) return std::nullopt;
    return waiting_.begin()->first;
}

void PushCore::pump() {
    // An adapter may answer synchronously, which finishes an item and calls pump() again
    // from inside start(): the outer loop picks up the freed slot instead of recursing.
    if (pumping_) return;
    pumping_ = true;
    while (!stopping_ && active_ < config_.max_in_flight && !ready_.empty()) {
        const std::uint64_t seq = ready_.front();
        ready_.pop_front();
        start(seq);
    }
    pumping_ = false;
}

void PushCore::start(std::uint64_t seq) {
    Item& item = items_.at(seq);
    ++item.attempts;
    ++active_;
    const std::string user = item.notification.to; // `item` may be gone when lookup returns
    tokens_.lookup(user, [this, seq](TokenLookup lookup) { on_token(seq, std::move(lookup)); });
}

void PushCore::on_token(std::uint64_t seq, TokenLookup lookup) {
    auto it = items_.find(seq);
    if (it == items_.end()) return;
    switch (lookup.status) {
    case TokenLookup::Status::none:
        ++counters_.no_token;
        return finish(seq);
    case TokenLookup::Status::unavailable:
        ++counters_.lookup_failures;
        return retry_later(seq, std::nullopt, "profile did not answer the token lookup");
    case TokenLookup::Status::found:
        break;
    }
    Item& item = it->second;
    item.token = std::move(lookup.token);
    provider_.send(PushMessage{item.token, item.notification.to, item.notification.payload},
                   [this, seq](PushResult result) { on_sent(seq, std::move(result)); });
}

void PushCore::on_sent(std::uint64_t seq, PushResult result) {
    auto it = items_.find(seq);
    if (it == items_.end()) return;
    switch (result.outcome) {
    case PushResult::Outcome::ok:
        ++counters_.delivered;
        return finish(seq);
    case PushResult::Outcome::unregistered:
        ++counters_.unregistered;
        spdlog::info("push: {} reports the device token of {} unregistered ({}); removing it",
                     provider_.name(), it->second.notification.to, result.reason);
        tokens_.remove(it->second.notification.to, it->second.token);
        return finish(seq);
    case PushResult::Outcome::failed:
        // A permanent error repeats for every push (bad credentials, payload too big):
        // log the first and then every 100th, with the count.
        if (count_sampled(counters_.failed, 100))
            spdlog::warn("push: {} refused a push for {}: {} ({} refused so far)", provider_.name(),
                         it->second.notification.to, result.reason, counters_.failed);
        return finish(seq);
    case PushResult::Outcome::retry:
        return retry_later(seq, result.retry_after_ms, result.reason);
    }
}

void PushCore::retry_later(std::uint64_t seq, std::optional<std::uint64_t> retry_after_ms,
                           const std::string& reason) {
    Item& item = items_.at(seq);
    if (item.attempts >= config_.backoff.max_attempts) {
        if (count_sampled(counters_.gave_up, 100))
            spdlog::warn("push: gave up on a push for {} after {} attempts: {} ({} given up so far)",
                         item.notification.to, item.attempts, reason, counters_.gave_up);
        return finish(seq);
    }
    ++counters_.retries;
    --active_;
    const std::uint64_t delay = backoff_delay_ms(config_.backoff, item.attempts, retry_after_ms, random_);
    spdlog::debug("push: retrying a push for {} in {} ms: {}", item.notification.to, delay, reason);
    waiting_.emplace(clock_.monotonic_ms() + delay, seq);
    pump();
}

void PushCore::finish(std::uint64_t seq) {
    auto it = items_.find(seq);
    if (!it->second.key.empty()) keys_.erase(it->second.key);
    items_.erase(it);
    --active_;
    pump();
}

} // namespace vartalap::push
