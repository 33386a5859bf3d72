// Thread: the session daemon's thread (see session_ephemeral.hpp).
#include "daemons/session/session_ephemeral.hpp"

namespace vartalap::session {

EphemeralTracker::EphemeralTracker(Outbox& outbox, const Clock& clock, const SessionConfig& config,
                                   SessionCounters& counters, RequestIds& request_ids)
    : outbox_(outbox), clock_(clock), config_(config), counters_(counters),
      request_ids_(request_ids) {}

void EphemeralTracker::send(Envelope& message, const std::string& user, const std::string& gateway,
                            std::uint64_t connection, std::uint64_t epoch) {
    const std::uint64_t request_id = request_ids_.next();
    message.request_id = request_id;
    message.connection = connection;
    message.retry_count = 0;
    if (!outbox_.deliver(gateway, message)) {
        ++counters_.ephemeral_dropped;
        return;
    }
    if (expiry_.size() >= config_.max_ephemeral_pending) {
        requests_.erase(expiry_.front().second); // forget the oldest
        expiry_.pop_front();
    }
    requests_.emplace(request_id, EphemeralRequest{user, epoch});
    expiry_.emplace_back(saturating_add(clock_.monotonic_ms(), config_.send_timeout_ms),
                         request_id);
}

std::optional<EphemeralRequest> EphemeralTracker::take(std::uint64_t request_id) {
    auto found = requests_.find(request_id);
    if (found == requests_.end()) return std::nullopt;
    EphemeralRequest request = std::move(found->second);
    requests_.erase(found);
    return request;
}

void EphemeralTracker::expire(std::uint64_t now) {
    while (!expiry_.empty() && expiry_.front().first <= now) {
        requests_.erase(expiry_.front().second);
        expiry_.pop_front();
    }
}

} // namespace vartalap::session
