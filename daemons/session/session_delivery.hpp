// session: the delivery window and its retries. DeliveryWindow holds the online users (their
// gateway connection, the window of unacked messages, where their read of the store is) and
// every message in flight to a client: one deliver request at a time, its deadline, the
// retries after a send or ack timeout, the pause after an overloaded gateway, and parking at
// the retry limit. It reads a user's stored messages at most a window at a time (pump), and
// bounds the in-flight messages of all users together (a user beyond it waits: starved).
//
// In-flight entries are keyed by the message's seq (local entries: the message is in the
// store and re-read for each retry) or by a key above every seq (remote entries: fetched
// from persistence, or handed off while in flight; the message is kept in memory).
//
// What needs the offline path (fetching from persistence, handing off parked messages) goes
// through OfflineHooks, which session_offline.hpp implements.
//
// Thread-safety: the session daemon's thread only. Errors: none thrown beyond lmdb::Error and
// std::bad_alloc. Ownership: keeps references to the store, outbox, clock, config, counters
// and request ids of its SessionCore, which own them and outlive it.
#pragma once

#include "common/clock.hpp"
#include "common/wire/envelope.hpp"
#include "daemons/session/session_config.hpp"
#include "daemons/session/session_outbox.hpp"
#include "daemons/session/session_store.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace vartalap::session {

enum class Phase : std::uint8_t {
    sending,      // deliver request out, deadline = send timeout
    awaiting_ack, // written to the socket, deadline = ack timeout
    backoff,      // overloaded, deadline = next attempt
};

struct InFlight {
    std::string user;     // recipient
    std::string id;       // message id (to delete the index entry without a read)
    // Remote entries (not in the local store: fetched from persistence, or handed off
    // while in flight) keep their message here for retries; null for local entries.
    std::unique_ptr<Envelope> remote;
    std::uint64_t epoch = 0;       // connection epoch it belongs to
    std::uint64_t request_id = 0;  // outstanding deliver request, 0 if none
    std::uint64_t deadline_ms = 0;
    std::uint32_t retry_count = 0; // timeouts so far (the wire's retry_count)
    std::uint64_t entered_ms = 0;  // first attempt (delivery and ack latency)
    bool entered = false;
    bool written = false;
    Phase phase = Phase::sending;
    bool system = false;           // flag_system: the socket write is the ack
};

struct UserState {
    std::string gateway;
    std::uint64_t connection = 0;
    std::uint64_t epoch = 0;       // unique per connect; results of older epochs are stale
    std::uint64_t opened_at_ms = 0; // the gateway's stamp of when the connection opened
    // Next seq to read from LMDB for this connection: every stored message of the user
    // below it is in flight, parked, or deleted. A connect resets it to 0, which is what
    // redelivers parked messages.
    std::uint64_t scan_seq = 0;
    bool caught_up = false;        // no stored message >= scan_seq is waiting
    bool dirty = false;            // listed in dirty_users_ for a pump
    std::set<std::uint64_t> in_flight; // keys (seqs, remote keys), at most config.window
    // The offline path, per connection: persistence seq of the last message taken from
    // it, whether its queue is exhausted for this connection, the outstanding fetch.
    std::uint64_t remote_cursor = 0;
    bool remote_done = true;
    std::uint64_t fetch_request_id = 0;
    std::unordered_map<std::string, std::uint64_t> remote_ids; // id -> key, remote entries
};

// What the delivery window asks of the offline path (session_offline.hpp).
class OfflineHooks {
public:
    virtual ~OfflineHooks() = default;
    // `user` has no local message waiting and room in its window: its queue in persistence
    // may be fetched.
    virtual void pump_remote(const std::string& user, UserState& state) = 0;
    // Local message `seq` of `user` hit the retry limit and left flight (`read_txn`: a read
    // transaction the hook may open, shared by the round).
    virtual void parked(const std::string& user, std::uint64_t seq,
                        std::optional<lmdb::Txn>& read_txn) = 0;
    // A user went offline with local messages not delivered.
    virtual void offline_with_local_messages() = 0;
    // A remote receipt was written to the client: its write is its ack.
    virtual void remote_receipt_written(const std::string& user, const std::string& id) = 0;
};

class DeliveryWindow {
public:
    DeliveryWindow(SessionStore& store, Outbox& outbox, const Clock& clock,
                   const SessionConfig& config, SessionCounters& counters, RequestIds& request_ids);
    DeliveryWindow(const DeliveryWindow&) = delete;
    DeliveryWindow& operator=(const DeliveryWindow&) = delete;

    void set_hooks(OfflineHooks& hooks) { hooks_ = &hooks; }

    // ---- Users.
    void connect(const Envelope& message);
    void disconnect(const Envelope& message);
    // Forgets the user and its in-flight entries (everything stays stored).
    void go_offline(const std::string& user);
    UserState* find(const std::string& user);
    bool online(const std::string& user) const { return users_.contains(user); }
    std::size_t online_users() const { return users_.size(); }
    // A wider window: every online user is pumped at the next pump_dirty_users().
    void mark_all_dirty();

    // ---- Messages.
    // A message just stored for `message.to`: false if the user is offline; otherwise it is
    // sent at once (nothing older waiting, room in the window) or read back in order later.
    bool offer(Envelope& message, std::uint64_t seq);
    // The answer to a deliver request (not an ephemeral one).
    void on_result(const Envelope& result);
    // A client ack of the in-flight entry `key` (a local seq deleted by the ack, or a remote
    // key): latency observed, entry gone, the window pumped. No-op if it is not in flight.
    void acked(std::uint64_t key);
    // Acks of remote entries of `user`, by id (persistence deletes the stored copies).
    void acked_remote(const std::string& user, std::span<const std::string> ids);

    // ---- Lookups for the batch pass.
    // The in-flight entry of an outstanding deliver request, its key in *key; null if none.
    const InFlight* by_request(std::uint64_t request_id, std::uint64_t* key = nullptr) const;
    bool in_flight_contains(std::uint64_t key) const { return in_flight_.contains(key); }

    // ---- Remote entries (the offline path).
    // Whether `state`'s window, the global in-flight bound and the remote bytes allow more.
    bool has_room(const UserState& state) const;
    bool below_global_limits() const;
    // How many more `state` may take now (window and global bound).
    std::size_t room(const UserState& state) const;
    // Takes `message` (fetched from persistence) into flight for `user` and sends it.
    void take_remote(const std::string& user, UserState& state, Envelope&& message);
    // Whether `seq` is a local entry in flight.
    bool local_in_flight(std::uint64_t seq) const;
    // The local copy of in-flight `seq` is gone (handed off): it goes on from `record`, or
    // leaves flight if there is none (or its user is gone).
    void convert_to_remote(std::uint64_t seq, std::optional<Envelope> record);
    void starve(const std::string& user);
    void mark_dirty(const std::string& user);

    // ---- Periodic duties and pumping.
    // Send timeouts and ack timeouts (retry or park), overload back-off (re-send).
    void on_timer(std::uint64_t now, std::optional<lmdb::Txn>& read_txn);
    // Pumps every user marked dirty (starved ones first, once slots are free).
    void pump_dirty_users();
    std::optional<std::uint64_t> next_deadline_ms() const;

    // ---- Inspection.
    std::size_t in_flight() const { return in_flight_.size(); }
    std::size_t in_flight_of(std::string_view user) const;
    std::size_t remote_bytes() const { return remote_bytes_; }
    const SessionLatency& latency() const { return latency_; }

private:
    void start_delivery(const std::string& user, UserState& state, std::uint64_t seq,
                        Envelope& message);
    void send_attempt(std::uint64_t seq, InFlight& entry, const UserState& state,
                      Envelope& message);
    void resend(std::uint64_t seq, InFlight& entry, lmdb::Txn& read_txn);
    void set_deadline(std::uint64_t seq, InFlight& entry, Phase phase, std::uint64_t deadline);
    void erase_in_flight(std::uint64_t seq);
    void observe_ack(const InFlight& entry);
    void pump(const std::string& user, UserState& state, std::optional<lmdb::Txn>& read_txn);
    void pump_local(const std::string& user, UserState& state, std::optional<lmdb::Txn>& read_txn);

    SessionStore& store_;
    Outbox& outbox_;
    const Clock& clock_;
    const SessionConfig& config_;
    SessionCounters& counters_;
    RequestIds& request_ids_;
    OfflineHooks* hooks_ = nullptr;
    const bool persistence_;       // outbox.has_persistence(), read once
    SessionLatency latency_;

    std::uint64_t next_epoch_ = 1;
    std::unordered_map<std::string, UserState> users_;          // online users
    std::unordered_map<std::uint64_t, InFlight> in_flight_;     // by seq or remote key
    std::unordered_map<std::uint64_t, std::uint64_t> requests_; // request_id -> key
    std::set<std::pair<std::uint64_t, std::uint64_t>> timers_;  // (deadline, key)
    // Users with a backlog that wait for a global in-flight slot (at most the online users).
    std::unordered_set<std::string> starved_users_;
    bool in_flight_limit_logged_ = false;
    // Remote in-flight keys live above every local seq (seqs count up from 1 and never get
    // near 2^63), so one key space serves in_flight_, timers_ and requests_.
    std::uint64_t next_remote_key_ = std::uint64_t{1} << 63;
    std::size_t remote_bytes_ = 0;

    std::vector<std::string> dirty_users_; // users to pump at the end of a batch/tick
    std::vector<std::uint64_t> due_;       // on_timer: expired timers
};

} // namespace vartalap::session
