// session: ephemeral messages (typing indicators and the like: flag_ephemeral). They are
// never stored and never retried; EphemeralTracker sends one to an online recipient and
// remembers the request only to notice a not_connected answer (the user is gone). Tracking
// is best effort and bounded: the oldest request is forgotten when max_ephemeral_pending are
// outstanding, and one whose answer never comes is forgotten after send_timeout_ms.
//
// Thread-safety: the session daemon's thread only. Errors: none thrown beyond std::bad_alloc.
// Ownership: keeps references to its SessionCore's outbox, clock, config, counters and
// request ids, which outlive it.
#pragma once

#include "common/clock.hpp"
#include "common/wire/envelope.hpp"
#include "daemons/session/session_config.hpp"
#include "daemons/session/session_outbox.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace vartalap::session {

struct EphemeralRequest {
    std::string user;
    std::uint64_t epoch = 0; // the recipient's connection epoch when it was sent
};

class EphemeralTracker {
public:
    EphemeralTracker(Outbox& outbox, const Clock& clock, const SessionConfig& config,
                     SessionCounters& counters, RequestIds& request_ids);

    // Sends `message` to `user`'s connection (`gateway`, `connection`, `epoch`); counted as
    // dropped if it cannot be queued.
    void send(Envelope& message, const std::string& user, const std::string& gateway,
              std::uint64_t connection, std::uint64_t epoch);
    // The request a deliver_result answers, forgotten now; nullopt if it is not one of ours
    // (a chat request, or forgotten).
    std::optional<EphemeralRequest> take(std::uint64_t request_id);
    // Forgets requests whose answer did not come within send_timeout_ms.
    void expire(std::uint64_t now);

private:
    Outbox& outbox_;
    const Clock& clock_;
    const SessionConfig& config_;
    SessionCounters& counters_;
    RequestIds& request_ids_;
    std::unordered_map<std::uint64_t, EphemeralRequest> requests_;   // by request_id
    std::deque<std::pair<std::uint64_t, std::uint64_t>> expiry_;     // (deadline, request_id)
};

} // namespace vartalap::session
