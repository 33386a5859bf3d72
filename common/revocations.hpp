// A gateway's copy of the revoked access keys, kept current by polling the profile daemon's
// versioned list (`revocations` request; docs/INTERNAL_PROTOCOL.md, "Identity and
// revocation"). Both gateways own one: the rest-gateway checks it on every authenticated
// path, the ws-gateway on every upgrade and closes open sockets of a newly revoked key.
//
// Thread-safety: none; the owning gateway's thread. Errors: a malformed reply is ignored
// (counted by the caller) and the list stays as it was.
#pragma once

#include "common/wire/envelope.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vartalap {

class RevocationList {
public:
    // The request to send now, if a poll is due at `now_ms` (every `interval_ms`, or at once
    // when the previous reply said more follow): none while one is in flight, unless it is
    // older than `timeout_ms` (0: twice the interval, at least 500 ms), when it counts as lost
    // (the profile daemon restarted, or the request sat in a pipe to a peer that went away)
    // and is asked again. A late answer to a poll asked again still counts (is_reply), so a
    // slow profile daemon is not starved by the re-asks.
    std::optional<Envelope> poll(std::uint64_t now_ms, std::uint64_t request_id,
                                 std::uint64_t interval_ms, std::uint64_t timeout_ms = 0);
    // The request poll() gave could not be sent (no peer, pipe full): the next tick may ask
    // again, without waiting for the lost-poll timeout.
    void send_failed();
    // Whether `reply` answers a poll in flight (the latest or one of the few before it).
    bool is_reply(const Envelope& reply) const;
    // Applies the answer to the poll in flight. `added` gets the (user, key) pairs newly
    // revoked. False for a malformed reply (the list is unchanged).
    bool apply(const Envelope& reply, std::uint64_t now_seconds,
               std::vector<std::pair<std::string, std::string>>& added);

    // A revocation this gateway saw confirmed itself (a logout it forwarded): refused at
    // once, before the next poll brings it. `expires`: as in the list (0: never).
    void revoke_here(std::string_view user, std::string_view key, std::uint64_t expires) {
        entries_.emplace(id(user, key), expires);
    }
    bool revoked(std::string_view user, std::string_view key) const;
    // Whether a complete list has arrived since start.
    bool synced() const { return synced_; }
    // Whether the last answer said more follow (the next poll is due at once).
    bool more() const { return more_; }
    std::size_t size() const { return entries_.size(); }
    std::uint64_t version() const { return since_; }
    std::uint64_t polls_failed() const { return polls_failed_; }

private:
    static std::string id(std::string_view user, std::string_view key);

    std::unordered_map<std::string, std::uint64_t> entries_; // user NUL key -> expires (0: never)
    std::string epoch_;
    std::uint64_t since_ = 0;
    bool synced_ = false;
    bool more_ = false;
    bool in_flight_ = false;
    // The ids of the unanswered polls, newest last (at most kRemembered: older answers are
    // dropped, as from a peer long gone).
    static constexpr std::size_t kRemembered = 4;
    std::vector<std::uint64_t> in_flight_ids_;
    std::uint64_t sent_at_ms_ = 0;
    std::uint64_t last_prune_s_ = 0;
    std::uint64_t polls_failed_ = 0;
};

} // namespace vartalap
