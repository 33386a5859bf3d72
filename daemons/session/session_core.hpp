// session: the durable point of a 1-to-1 message (docs/INTERNAL_PROTOCOL.md, "Session";
// ../shared/DESIGN.md, "The delivery contract").
//
// SessionCore is the socket-free logic of one session shard. It owns the shard's LMDB store
// and the connection state of its users, and talks to gateways and persistence shards only
// through an injected Outbox; time comes from an injected Clock. The daemon
// (session_daemon.cpp) owns the sockets and feeds decoded envelopes in batches.
//
// The offline path (docs/INTERNAL_PROTOCOL.md, "Persistence"), when the topology has
// persistence shards (Outbox::has_persistence):
//   - handoff: a message whose user is offline when it is stored, or whose retry limit has
//     passed, is sent to the user's persistence shard (offline_store). The local copy is
//     deleted only once persistence confirms (offline_stored ok): at-least-once. No answer
//     within handoff_timeout_ms: sent again. Refused (persistence full): the local copy stays
//     and is offered again after handoff_refused_retry_ms. At most max_handoffs are
//     outstanding; the rest stay stored and a bounded scan of the store (which also finds
//     what a crash left behind) offers them later.
//   - acks for messages this shard no longer holds (or holds while a handoff is outstanding)
//     are forwarded to the user's persistence shard, which deletes its copy.
//   - connect: after the local messages, the user's stored messages are fetched in batches
//     of at most the free window and delivered like local ones ("remote" in-flight entries,
//     kept in memory for retries, never re-stored here). Past the retry limit a remote
//     message is simply not retried: it stays in persistence for the next connection.
// Without persistence shards the local store is the offline queue, as before.
//
// Thread: everything here runs on the session daemon's thread (one thread per shard). The
// class is not thread-safe; the Env may be shared (read transactions use MDB_NOTLS).
// Errors: nothing on the data path throws for bad input: invalid envelopes are counted and
// dropped. A full LMDB map is a refusal (counted, logged), not an exception. lmdb::Error
// (corrupt file, EIO) propagates: the daemon cannot continue safely and a restart is cheap.
// Ownership: the core keeps references to the Env, Outbox and Clock; they must outlive it.
//
// Store layout (one LMDB environment per shard, three named databases):
//   messages:    [u16 len][recipient][u64 seq]  -> the deliver envelope (MessagePack)
//   message_ids: [u16 len][recipient][id]       -> u64 seq          (dedupe, and ack by id)
//   meta:        "next_seq"                     -> u64              (persisted counter)
// Big-endian seq makes byte order equal delivery order, so a cursor over one recipient's
// prefix yields their messages oldest first, across restarts. seq is unique in the shard
// (one counter for all users), so in-memory state keys in-flight messages by seq alone.
#pragma once

#include "common/clock.hpp"
#include "common/wire/envelope.hpp"
#include "common/lmdb.hpp"
#include "common/metrics.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace vartalap {

// Where the core's requests to gateways go. The daemon implements it over one DEALER per
// gateway; tests record the calls. Implementations never block.
class Outbox {
public:
    virtual ~Outbox() = default;
    // Sends a deliver request (kind deliver, request_id set by the core) to `gateway`'s
    // ROUTER. Returns false if it could not be queued (peer at its high-water mark, unknown
    // gateway): the core then treats the attempt as `overloaded` and retries later.
    virtual bool deliver(std::string_view gateway, const Envelope& request) = 0;
    // Asks `gateway` to write SERVER_ACK for message `id` to `sender` on `connection`.
    // Best effort: a lost server_ack makes the client resend, which is deduped and acked.
    virtual void server_ack(std::string_view gateway, std::uint64_t connection,
                            std::string_view id, std::string_view sender) = 0;
    // Tells `gateway` that message `id` of `sender` was NOT accepted: a server_ack envelope
    // with `status` (refused, bad_request) and `reason` in `error`. The ws-gateway turns it
    // into an error frame, a rest-gateway into the send's per-message result. Best effort
    // like server_ack: without it the client sees no SERVER_ACK and resends.
    virtual void refuse(std::string_view gateway, std::uint64_t connection, std::string_view id,
                        std::string_view sender, Status status, std::string_view reason) = 0;
    // Asks `gateway` to close `connection` of `user` (the user connected elsewhere).
    virtual void close_connection(std::string_view gateway, std::uint64_t connection,
                                  std::string_view user) = 0;
    // Whether requests to `gateway` can be sent at all. A connect naming a gateway this
    // shard has no socket to (a topology mismatch) is ignored: the user stays offline and
    // the messages stay stored, instead of being retried forever into nowhere.
    virtual bool knows_gateway(std::string_view /*gateway*/) const { return true; }

    // The offline path. Whether the topology has persistence shards at all; without them
    // the core keeps today's behaviour (the local store is the offline queue) and never
    // calls the two functions below.
    virtual bool has_persistence() const { return false; }
    // Sends `request` (offline_store or fetch) to the persistence shard that owns
    // `request.to`, on the DEALER whose replies come back as offline_stored / fetched.
    // Returns false if it could not be queued (high-water mark): the core tries again later.
    virtual bool to_persistence(const Envelope& /*request*/) { return false; }
    // Pushes an ack of `ids` by `user` to the user's persistence shard. Returns false if it
    // could not be queued: the stated policy is to drop it (counted); the stored copy is then
    // delivered again later and acked again, which at-least-once allows.
    virtual bool ack_to_persistence(std::string_view /*user*/,
                                    std::span<const std::string> /*ids*/) {
        return false;
    }
};

struct SessionConfig {
    std::uint64_t ack_timeout_ms = 10000;   // written to the socket, no client ack: retry
    std::uint64_t send_timeout_ms = 5000;   // no deliver_result from the gateway: not delivered
    std::uint64_t overload_retry_ms = 1000; // gateway (or our own HWM) said overloaded: wait
    std::uint32_t retry_limit = 3;          // timeouts retried; the next one parks the message
                                            // (hands it to persistence, if there is one)
    std::size_t window = 64;                // unacked in-flight messages per online user
    // Bound on in-flight messages of all users together (each holds a timer and maybe an
    // outstanding request, ~200 bytes): 65536 is ~13 MiB, 1024 users' full default windows.
    std::size_t max_in_flight = 65536;
    // Ephemeral deliver requests awaiting their result (only to notice not_connected).
    std::size_t max_ephemeral_pending = 16384;
    // Online users tracked; a connect beyond it is refused (its connection is closed).
    std::size_t max_online_users = 1u << 20;
    // Batch limits, applied by the daemon when it drains its sockets (handle_batch takes
    // any span): messages per socket per turn (amortises one commit's fsync over many
    // messages), and payload bytes per batch (one transaction stays far below LMDB's
    // dirty-page limit, MDB_TXN_FULL at ~512 MiB, which would refuse a batch as if full).
    std::size_t max_batch = 1024;
    std::size_t max_batch_bytes = 64u << 20;
    // LMDB key limit is 511 bytes: [2][user][id] must fit, so user and id are capped.
    std::size_t max_user_bytes = 255;
    std::size_t max_id_bytes = 250;

    // The offline path (used only when the outbox has persistence).
    std::uint64_t handoff_timeout_ms = 5000;        // no offline_stored: send it again
    std::uint64_t handoff_refused_retry_ms = 5000;  // persistence full: offer again after
    // Outstanding offline_store requests (each ~100 bytes of memory; the message itself
    // stays in LMDB): 4096 keeps a persistence shard busy without flooding its queue.
    std::size_t max_handoffs = 4096;
    std::uint64_t fetch_timeout_ms = 5000;          // no fetched: fetch again from the cursor
    // Payload bytes of fetched messages held in memory for retries, all users together:
    // 64 MiB. A user whose fetch would exceed it waits (like the in-flight limit).
    std::size_t max_remote_bytes = 64u << 20;
    // Store records the handoff scan visits per tick: bounds the work one tick can do.
    std::size_t handoff_scan_budget = 1024;
};

struct SessionCounters {
    std::uint64_t stored = 0;             // new messages committed
    std::uint64_t delivered = 0;          // deliver_result ok (chat, receipts, ephemeral), or a
                                          // client ack that came before it
    std::uint64_t acked = 0;              // stored copies deleted by a client ack
    std::uint64_t retried = 0;            // re-sends after an ack or send timeout
    std::uint64_t parked = 0;             // messages that hit the retry limit
    std::uint64_t duplicates = 0;         // deliver for an already stored (recipient, id)
    std::uint64_t map_full_refusals = 0;  // new messages refused because LMDB is full
    std::uint64_t ephemeral_dropped = 0;  // ephemeral for an offline user, or no capacity
    std::uint64_t overloaded = 0;         // deliver_result overloaded or outbox would_block
    std::uint64_t send_timeouts = 0;      // no deliver_result within send_timeout_ms
    std::uint64_t invalid = 0;            // envelopes with missing/oversized fields, wrong kind
    std::uint64_t stale_results = 0;      // deliver_result for an unknown or old request
    std::uint64_t in_flight_limit_hits = 0; // a user waited for a global in-flight slot
    std::uint64_t user_limit_refusals = 0;  // connects refused at max_online_users
    std::uint64_t connects = 0;
    std::uint64_t disconnects = 0;
    std::uint64_t refusals_sent = 0;      // refuse() calls (map full, invalid message)
    // The offline path.
    std::uint64_t handoffs_sent = 0;      // offline_store requests (first attempts)
    std::uint64_t handoff_resends = 0;    // re-sent after handoff_timeout_ms
    std::uint64_t handed_off = 0;         // confirmed by persistence: local copy deleted
    std::uint64_t handoff_refusals = 0;   // persistence refused (full) or rejected
    std::uint64_t handoffs_deferred = 0;  // max_handoffs reached: left for the scan
    std::uint64_t acks_forwarded = 0;     // ids forwarded to persistence
    std::uint64_t acks_forward_dropped = 0; // ids whose forward could not be queued
    std::uint64_t fetches = 0;            // fetch requests sent
    std::uint64_t fetched_items = 0;      // remote messages taken into flight
    std::uint64_t remote_parked = 0;      // remote messages past the retry limit
};

// Latencies of chat messages (not ephemeral ones), for the metrics port.
struct SessionLatency {
    // Taken into flight (for a recipient online at the commit: right after it) → first
    // written to the client's socket (deliver_result ok), or acked if the ack came first.
    metrics::Histogram delivery;
    // Taken into flight → acked by the client: what the sender waits for its receipt.
    metrics::Histogram ack;
};

// The limits SIGHUP may change (INTERNAL_PROTOCOL.md, "Reload").
struct SessionLimits {
    std::uint64_t ack_timeout_ms = 0;
    std::uint32_t retry_limit = 0;
    std::size_t window = 0;
};

class SessionCore {
public:
    // Opens (creating) the shard's databases in `env` and reads the persisted seq counter.
    // Throws lmdb::Error if the store cannot be opened.
    SessionCore(lmdb::Env& env, Outbox& outbox, const Clock& clock, SessionConfig config = {});
    SessionCore(const SessionCore&) = delete;
    SessionCore& operator=(const SessionCore&) = delete;

    // Applies a batch of envelopes in order: deliver (store, then deliver), ack, connect,
    // disconnect, deliver_result. One LMDB write transaction for the whole batch; only after
    // it commits are server_acks and deliver requests emitted (the durable point). The
    // envelopes may be modified (moved from) by the call.
    void handle_batch(std::span<Envelope> batch);

    // Periodic duties; call about every 100 ms (and at next_deadline_ms()):
    //   - send timeouts (send_timeout_ms) and ack timeouts (ack_timeout_ms): retry or park;
    //   - overload back-off (overload_retry_ms): re-send;
    //   - expire ephemeral requests whose result never came (send_timeout_ms);
    //   - resume users that waited for a global in-flight slot.
    void on_timer();

    // The earliest monotonic time at which on_timer has work, if any.
    std::optional<std::uint64_t> next_deadline_ms() const;

    const SessionCounters& counters() const { return counters_; }
    const SessionLatency& latency() const { return latency_; }
    // New limits: the ack timeout and retry limit apply to attempts from now on, the window
    // at once (a wider one lets waiting messages go out on the next pump).
    void set_limits(const SessionLimits& limits);
    SessionLimits limits() const {
        return {config_.ack_timeout_ms, config_.retry_limit, config_.window};
    }
    std::size_t online_users() const { return users_.size(); }
    std::size_t in_flight() const { return in_flight_.size(); }
    std::size_t in_flight_of(std::string_view user) const;

    // Inspection (tests, status): reads committed state in a fresh read transaction.
    bool is_stored(std::string_view recipient, std::string_view id) const;
    std::size_t stored_count(std::string_view recipient) const;
    std::size_t outstanding_handoffs() const { return handoffs_.size(); }
    std::size_t remote_bytes() const { return remote_bytes_; }

private:
    // What happened to one envelope of the batch inside the write transaction; applied to
    // memory and turned into messages after the commit.
    enum class Outcome : std::uint8_t {
        none,       // nothing to do after commit
        stored,     // new message committed under seq
        duplicate,  // already stored: server_ack only
        refused,    // LMDB full: dropped, no server_ack
        invalid,    // missing or oversized fields, or a kind the session does not take
        ephemeral,  // deliver if online, never stored
        acked,      // seqs [acked_begin, acked_end) of deleted_seqs_ were deleted, ids
                    // [forward_begin, forward_end) of forward_ids_ go to persistence
        result,     // deliver_result (system ok: seq deleted)
        connect,
        disconnect,
        handed_off,       // offline_stored ok: seq deleted (record in converted_ if in flight)
        handoff_unapplied,// offline_stored ok, but LMDB was too full even to delete
        handoff_failed,   // offline_stored not ok: the local copy stays
        stale,            // offline_stored / fetched for an unknown request
        fetched,          // a batch of the user's stored messages from persistence
    };
    struct Effect {
        Outcome outcome = Outcome::none;
        std::uint64_t seq = 0;
        std::uint32_t acked_begin = 0;
        std::uint32_t acked_end = 0;
        std::uint32_t forward_begin = 0;
        std::uint32_t forward_end = 0;
    };

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
    struct Handoff {
        std::string user;
        std::string id;
        std::uint64_t seq = 0;
        std::uint64_t deadline_ms = 0;
        // The client acked the message while the handoff was outstanding. The ack went to
        // persistence at once, but on another socket (PUSH, not this DEALER), so it may have
        // arrived before the message: it is sent again once the handoff is confirmed.
        bool acked = false;
    };
    struct FetchRequest {
        std::string user;
        std::uint64_t epoch = 0;
        std::uint64_t deadline_ms = 0;
    };
    struct EphemeralRequest {
        std::string user;
        std::uint64_t epoch = 0;
    };

    enum class WriteMode : std::uint8_t {
        all,            // store new messages, delete acked ones
        deletions_only, // LMDB is full: refuse new messages, still apply acks
        none,           // not even deletions fit: outcomes only, in a read transaction
    };
    // Pass 1, inside the transaction (null when the batch writes nothing): LMDB writes, and
    // what each envelope's outcome will be. Returns false if LMDB ran out of space
    // (MAP_FULL/TXN_FULL); the transaction must then be aborted.
    bool apply_writes(lmdb::Txn* txn, std::span<Envelope> batch, WriteMode mode);
    bool full(int rc); // MAP_FULL / TXN_FULL: records it in full_rc_
    // Finds (user, id); deletes it and its message unless mode is none. 0 or an LMDB code.
    int delete_by_id(lmdb::Txn& txn, std::string_view user, std::string_view id,
                     std::uint64_t& seq, WriteMode mode);
    int delete_by_seq(lmdb::Txn& txn, std::string_view user, std::string_view id,
                      std::uint64_t seq);
    bool valid_deliver(const Envelope& message) const;

    // Pass 2, after the commit: memory state and outgoing messages, in batch order.
    void apply_effects(std::span<Envelope> batch);
    void on_stored(Envelope& message, std::uint64_t seq);
    void on_ephemeral(Envelope& message);
    void on_connect(const Envelope& message);
    void on_disconnect(const Envelope& message);
    void on_result(const Envelope& result, std::uint64_t deleted_seq);
    void on_acked(const Envelope& message, const Effect& effect);
    void refuse(const Envelope& message, Status status, std::string_view reason);
    void go_offline(const std::string& user);

    // The offline path.
    void start_handoff(std::uint64_t seq, Envelope& record); // record: the stored message
    void send_handoff(std::uint64_t request_id, Handoff& handoff, Envelope& record);
    void erase_handoff(std::uint64_t request_id);
    void on_handed_off(const Envelope& reply, const Effect& effect);
    void on_handoff_failed(const Envelope& reply);
    void on_fetched(Envelope& reply);
    void forward_acks(std::string_view user, std::span<const std::string> ids);
    void observe_ack(const InFlight& entry);
    void pump_remote(const std::string& user, UserState& state);
    void handoff_timers(std::uint64_t now, std::optional<lmdb::Txn>& read_txn);
    void fetch_timers(std::uint64_t now);
    void scan_for_handoffs(std::uint64_t now);
    std::optional<Envelope> read_record(lmdb::Txn& txn, std::string_view user,
                                        std::uint64_t seq);

    // Delivery.
    void start_delivery(const std::string& user, UserState& state, std::uint64_t seq,
                        Envelope& message);
    void send_attempt(std::uint64_t seq, InFlight& entry, const UserState& state,
                      Envelope& message);
    void resend(std::uint64_t seq, InFlight& entry, lmdb::Txn& read_txn);
    void set_deadline(std::uint64_t seq, InFlight& entry, Phase phase, std::uint64_t deadline);
    void erase_in_flight(std::uint64_t seq);
    void mark_dirty(const std::string& user);
    void pump_dirty_users();
    void pump(const std::string& user, UserState& state, std::optional<lmdb::Txn>& read_txn);
    void pump_local(const std::string& user, UserState& state, std::optional<lmdb::Txn>& read_txn);
    void starve(const std::string& user);
    bool below_global_limits() const;

    // Keys: common/user_keys.hpp (the layout is shared with the persistence daemon).

    lmdb::Env& env_;
    Outbox& outbox_;
    const Clock& clock_;
    SessionConfig config_;
    SessionCounters counters_;
    SessionLatency latency_;

    lmdb::Db messages_;
    lmdb::Db message_ids_;
    lmdb::Db meta_;
    std::uint64_t next_seq_ = 1;      // persisted in meta with each batch that stores
    std::uint64_t next_request_id_;   // random start: a result from before a restart must
                                      // not match a request of this run
    std::uint64_t next_epoch_ = 1;
    int full_rc_ = MDB_MAP_FULL;      // which "out of space" ended the last failed batch

    std::unordered_map<std::string, UserState> users_;          // online users
    std::unordered_map<std::uint64_t, InFlight> in_flight_;     // by seq
    std::unordered_map<std::uint64_t, std::uint64_t> requests_; // request_id -> seq
    std::set<std::pair<std::uint64_t, std::uint64_t>> timers_;  // (deadline, seq)
    // Ephemeral requests are tracked only to notice not_connected; tracking is best effort
    // and bounded (the oldest is forgotten when full), the message itself is never retried.
    std::unordered_map<std::uint64_t, EphemeralRequest> ephemeral_requests_; // by request_id
    std::deque<std::pair<std::uint64_t, std::uint64_t>> ephemeral_expiry_;  // (deadline, id)
    // Users with a backlog that wait for a global in-flight slot (at most the online users).
    std::unordered_set<std::string> starved_users_;
    bool in_flight_limit_logged_ = false;

    // The offline path (empty without persistence).
    bool persistence_ = false;                               // outbox.has_persistence()
    std::unordered_map<std::uint64_t, Handoff> handoffs_;    // by request_id, <= max_handoffs
    std::unordered_map<std::uint64_t, std::uint64_t> handoff_by_seq_; // seq -> request_id
    std::set<std::pair<std::uint64_t, std::uint64_t>> handoff_timers_; // (deadline, request_id)
    // Seqs persistence rejected as invalid (bad_request): the scan does not offer them again
    // (they stay here and are delivered on the user's next connection). Bounded: beyond
    // kMaxRejected they are simply offered again, which costs a request, not correctness.
    std::unordered_set<std::uint64_t> rejected_;
    std::unordered_map<std::uint64_t, FetchRequest> fetches_; // by request_id, <= online users
    std::set<std::pair<std::uint64_t, std::uint64_t>> fetch_timers_;   // (deadline, request_id)
    // Remote in-flight keys live above every local seq (seqs count up from 1 and never get
    // near 2^63), so one key space serves in_flight_, timers_ and requests_.
    std::uint64_t next_remote_key_ = std::uint64_t{1} << 63;
    std::size_t remote_bytes_ = 0;
    // The handoff scan: walks the store for messages of offline users that are not handed
    // off yet (after a restart, after max_handoffs was reached, after a refusal, after a user
    // went offline with local messages). Wanted -> active (from the start) -> done.
    bool scan_wanted_ = false;
    bool scan_active_ = false;
    std::string scan_position_;     // key to resume at (empty: the start)
    std::uint64_t scan_not_before_ = 0;
    std::uint64_t handoff_failure_logs_ = 0;

    // Per-batch scratch, reused so the hot path does not allocate per message.
    std::vector<Effect> effects_;
    std::vector<std::uint64_t> deleted_seqs_;
    std::vector<std::string> forward_ids_;   // ack ids to forward to persistence
    std::vector<std::pair<std::uint64_t, std::string>> converted_; // (seq, record) handed off in flight
    std::unordered_set<std::uint64_t> deleted_in_batch_;
    std::vector<std::string> dirty_users_;   // users to pump at the end of a batch/tick
    std::vector<std::uint64_t> due_;         // on_timer: expired timers
    std::string key_;
    std::string key2_;
    std::string prefix_;
    std::string value_;
    const std::string deliver_header_; // frame 0 of a deliver: decodes stored records
};

} // namespace vartalap
