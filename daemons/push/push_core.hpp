// The push daemon's logic, without sockets: a bounded queue of offline notifications, each
// taken through token lookup (profile daemon) → provider send → outcome, with retries,
// backoff and a cap on concurrent work. The adapters (profile_client.hpp, the providers)
// are injected, and so are time and randomness, so unit tests drive it with fakes.
//
// Policies (docs/INTERNAL_PROTOCOL.md "Push"):
// - Bounded: at most queue_limit notifications are held, counting queued, waiting for a
//   retry and in flight. When full, the NEWEST notification is dropped, counted and logged
//   (first, then every 1000th): a push is only a hint that a message waits; the message
//   itself is safe in persistence and is fetched on the next connection or GET /messages.
//   Dropping the newest keeps the work already invested in older ones and costs no search.
// - Skipped: content type "notification" (PROTOCOL.md "Push"); system (receipts) and
//   ephemeral envelopes, which persistence does not announce either (checked again here:
//   a wasted wake-up of a phone is the cost of trusting it); payloads that are not a JSON
//   object (counted as malformed); a second notification for a (user, message id) already
//   held (persistence re-sends after a restart).
// - Concurrency: at most max_in_flight notifications are between token lookup and send
//   outcome, so at most that many HTTP requests to the provider are in flight.
// - Retries: a retry outcome (or an unanswered token lookup) waits a full-jitter
//   exponential backoff (backoff.hpp), or the provider's Retry-After if longer, then goes
//   back to the end of the queue; after max_attempts attempts the notification is dropped.
//   The token is looked up again on every attempt: the user may have logged in anew.
// - Unregistered: the token is removed from the profile (if it is still the stored one).
//
// Thread: the push daemon's io thread; not thread-safe. Callbacks from the adapters may
// arrive synchronously or later; either is handled.
#pragma once

#include "common/clock.hpp"
#include "daemons/push/backoff.hpp"
#include "daemons/push/provider.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace vartalap::push {

struct Notification {
    std::string to;      // the recipient user
    std::string id;      // the message id
    std::string payload; // the message JSON as the recipient reads it
    std::uint32_t flags = 0; // EnvelopeFlag bits of the offline_notify
};

struct TokenLookup {
    enum class Status {
        found,       // `token` is the user's device token
        none,        // the user has no token (or does not exist): nothing to push to
        unavailable, // the profile daemon did not answer in time, or failed: retry later
    };
    Status status = Status::unavailable;
    std::string token;
};

// The profile daemon as the queue sees it. Thread: the io thread.
class TokenDirectory {
public:
    virtual ~TokenDirectory() = default;
    // `done` is called exactly once (unless the io_context stops first).
    virtual void lookup(const std::string& user, std::function<void(TokenLookup)> done) = 0;
    // Fire and forget: remove `token` from `user` if it is still the stored one.
    virtual void remove(const std::string& user, const std::string& token) = 0;
};

struct PushConfig {
    std::size_t queue_limit = 10000; // notifications held; ~10k × a few KiB of message
    std::size_t max_in_flight = 32;  // concurrent sends; FCM serves far more per connection pool
    BackoffPolicy backoff;
};

struct PushCounters {
    std::uint64_t received = 0;
    std::uint64_t skipped_notification = 0;
    std::uint64_t skipped_system = 0;
    std::uint64_t malformed = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t dropped_queue_full = 0;
    std::uint64_t delivered = 0;
    std::uint64_t retries = 0;
    std::uint64_t gave_up = 0;      // max_attempts reached
    std::uint64_t unregistered = 0; // tokens removed
    std::uint64_t failed = 0;       // permanent provider errors
    std::uint64_t no_token = 0;     // users without a device token
    std::uint64_t lookup_failures = 0;
};

enum class PayloadClass { pushable, notification, malformed };
// Looks at head.contentType of the message JSON.
PayloadClass classify_payload(std::string_view message_json);

enum class Offer { queued, skipped_notification, skipped_system, malformed, duplicate, dropped_queue_full };

class PushCore {
public:
    PushCore(const PushConfig& config, TokenDirectory& tokens, PushProvider& provider,
             const Clock& clock, UniformRandom random);
    PushCore(const PushCore&) = delete;
    PushCore& operator=(const PushCore&) = delete;

    // Takes one offline notification; starts work on it at once if a slot is free.
    Offer offer(Notification notification);
    // Periodic duty: notifications whose retry time has come are queued again and started.
    void on_timer();
    // Drain: start nothing new; what is in flight completes.
    void stop_starting() { stopping_ = true; }

    // When the earliest retry is due (monotonic ms), if any.
    std::optional<std::uint64_t> next_retry_at_ms() const;
    std::size_t held() const { return items_.size(); }
    std::size_t in_flight() const { return active_; }
    const PushCounters& counters() const { return counters_; }

private:
    struct Item {
        Notification notification;
        std::string key;           // (to, id) for duplicate detection; "" when id is empty
        std::string token;         // the device token of the current attempt
        std::uint32_t attempts = 0;
    };

    void pump();
    void start(std::uint64_t seq);
    void on_token(std::uint64_t seq, TokenLookup lookup);
    void on_sent(std::uint64_t seq, PushResult result);
    void retry_later(std::uint64_t seq, std::optional<std::uint64_t> retry_after_ms, const std::string& reason);
    void finish(std::uint64_t seq);

    PushConfig config_;
    TokenDirectory& tokens_;
    PushProvider& provider_;
    const Clock& clock_;
    UniformRandom random_;

    std::unordered_map<std::uint64_t, Item> items_;  // everything held, by sequence number
    std::unordered_set<std::string> keys_;           // (to, id) of the held items
    std::deque<std::uint64_t> ready_;                // waiting for a free slot, oldest first
    std::multimap<std::uint64_t, std::uint64_t> waiting_; // retry due (monotonic ms) → seq
    std::uint64_t next_seq_ = 1;
    std::size_t active_ = 0;
    bool pumping_ = false;
    bool stopping_ = false;
    PushCounters counters_;
};

} // namespace vartalap::push
