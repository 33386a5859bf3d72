// session: the durable point of a 1-to-1 message (docs/INTERNAL_PROTOCOL.md, "Session";
// ../shared/DESIGN.md, "The delivery contract").
//
// SessionCore is the socket-free logic of one session shard, and the facade the daemon
// (session_daemon.{hpp,cpp}) and the tests drive. It owns the shard's store and the connection
// state of its users, and talks to gateways and persistence shards only through an injected
// Outbox (session_outbox.hpp); time comes from an injected Clock. The daemon owns the sockets
// and feeds decoded envelopes in batches. The core runs each batch in two passes: pass 1
// writes to LMDB inside one transaction (store-with-dedupe, deletions by ack) and decides each
// envelope's outcome; pass 2, after the commit, applies the outcomes to memory and sends. A
// batch that only deletes (acks, written receipts) is not committed on its own: its
// deletions wait in the store's deferred transaction for the next batch that stores, or for
// flush() (session_store.hpp, "Deferred deletions").
// Its parts, each with its own state (daemons/session/README.md):
//   SessionStore      session_store.hpp      the LMDB store (the shared durable user queue)
//   DeliveryWindow    session_delivery.hpp   online users, the window, retries, parking
//   OfflinePath       session_offline.hpp    handoff to persistence, fetch, the store scan
//   EphemeralTracker  session_ephemeral.hpp  ephemeral messages (never stored)
//   CopyConfirmations session_confirm.hpp    copies_stored for group copies and events
//
// Thread: everything here runs on the session daemon's thread (one thread per shard). The
// class is not thread-safe; the Env may be shared (read transactions use MDB_NOTLS).
// Errors: nothing on the data path throws for bad input: invalid envelopes are counted and
// dropped. A full LMDB map or disk is a refusal (counted, logged at most every 10 s), not an
// exception. lmdb::Error
// (corrupt file, EIO) propagates: the daemon cannot continue safely and a restart is cheap.
// Ownership: the core keeps references to the Env, Outbox and Clock; they must outlive it.
#pragma once

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/wire/envelope.hpp"
#include "common/store/lmdb.hpp"
#include "daemons/session/session_config.hpp"
#include "daemons/session/session_confirm.hpp"
#include "daemons/session/session_delivery.hpp"
#include "daemons/session/session_ephemeral.hpp"
#include "daemons/session/session_offline.hpp"
#include "daemons/session/session_outbox.hpp"
#include "daemons/session/session_store.hpp"
#include "common/metrics.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace vartalap::session {

class SessionCore {
public:
    // Opens (creating) the shard's databases in `env` and reads the persisted seq counter.
    // Throws lmdb::Error if the store cannot be opened.
    SessionCore(lmdb::Env& env, Outbox& outbox, const Clock& clock, SessionConfig config = {});
    SessionCore(const SessionCore&) = delete;
    SessionCore& operator=(const SessionCore&) = delete;

    // Applies a batch of envelopes in order: deliver (store, then deliver), ack, connect,
    // disconnect, deliver_result. One LMDB write transaction for the whole batch; only after
    // it commits are server_acks, confirmations of fan-out copies (copies_stored) and
    // deliver requests emitted (the durable point). The envelopes may be modified (moved
    // from) by the call.
    void handle_batch(std::span<Envelope> batch);

    // Commits the deferred deletions, if any (on_timer does after delete_delay_ms; the
    // daemon at stop). Not needed for correctness: without it a crash only redelivers.
    void flush();

    // Periodic duties; call about every 100 ms (and at next_deadline_ms()):
    //   - deferred deletions waiting delete_delay_ms: committed (flush);
    //   - send timeouts (send_timeout_ms) and ack timeouts (ack_timeout_ms): retry or park;
    //   - overload back-off (overload_retry_ms): re-send;
    //   - expire ephemeral requests whose result never came (send_timeout_ms);
    //   - resume users that waited for a global in-flight slot.
    void on_timer();

    // The earliest monotonic time at which on_timer has work, if any.
    std::optional<std::uint64_t> next_deadline_ms() const;

    const SessionCounters& counters() const { return counters_; }
    const SessionLatency& latency() const { return delivery_.latency(); }
    // New limits: the ack timeout and retry limit apply to attempts from now on, the window
    // at once (a wider one lets waiting messages go out on the next pump).
    void set_limits(const SessionLimits& limits);
    SessionLimits limits() const {
        return {config_.ack_timeout_ms, config_.retry_limit, config_.window};
    }
    std::size_t online_users() const { return delivery_.online_users(); }
    std::size_t in_flight() const { return delivery_.in_flight(); }
    std::size_t in_flight_of(std::string_view user) const { return delivery_.in_flight_of(user); }

    // Inspection (tests, status): the store as the core sees it, deferred deletions applied
    // (committed state plus the deferred transaction).
    // (recipient, sender, id); from any sender if `sender` is nullopt.
    bool is_stored(std::string_view recipient, std::string_view id,
                   std::optional<std::string_view> sender = std::nullopt);
    std::size_t stored_count(std::string_view recipient);
    std::size_t deferred_deletes() const { return store_.deferred_count(); }
    // The acked-id marks' own store (the daemon syncs its environment and reports it).
    AckedIds& acked_ids() { return store_.acked(); }
    std::size_t outstanding_handoffs() const { return offline_.outstanding_handoffs(); }
    std::size_t remote_bytes() const { return delivery_.remote_bytes(); }

private:
    // What happened to one envelope of the batch inside the write transaction; applied to
    // memory and turned into messages after the commit.
    enum class Outcome : std::uint8_t {
        none,       // nothing to do after commit
        stored,     // new message committed under seq
        duplicate,  // already stored: server_ack only
        refused,    // LMDB full: dropped, no server_ack
        quota_full, // the offline recipient's persistence quota is full: refused, not stored
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

    // What the batch writes: nothing (connects, disconnects, chat deliver_results: neither
    // the writer lock nor a commit), only deletions (deferred), or new messages (committed).
    enum class Writes : std::uint8_t { none, deletions, stores };
    Writes writes_of(std::span<const Envelope> batch) const;
    // Pass 1 in the deferred transaction, recording each deletion; false (and nothing
    // recorded) if LMDB ran out of space: the batch must then be committed.
    bool defer_deletions(std::span<Envelope> batch);
    // Pass 1 and the commit (UserQueue::write_batch), the deferred transaction's deletions
    // included; a full map is logged and refuses new messages.
    void commit(std::span<Envelope> batch);
    // Pass 1, inside the transaction (null when the batch writes nothing): LMDB writes, and
    // what each envelope's outcome will be. Returns false if LMDB ran out of space
    // (MAP_FULL/TXN_FULL); the transaction must then be aborted.
    bool apply_writes(lmdb::Txn* txn, std::span<Envelope> batch, WriteMode mode);
    bool valid_deliver(const Envelope& message) const;

    // Pass 2, after the commit: memory state and outgoing messages, in batch order.
    void apply_effects(std::span<Envelope> batch);
    void on_stored(Envelope& message, std::uint64_t seq);
    void on_ephemeral(Envelope& message);
    void on_result(const Envelope& result);
    void on_acked(const Envelope& message, const Effect& effect);
    void refuse(const Envelope& message, Status status, std::string_view reason);

    // After a round: counts the socket writes of local messages that left flight unacked
    // (deleting those at max_unacked_writes), then hands off the parked ones.
    void count_unacked_writes();
    // Deletes acked ids older than the dedupe window, at most a batch; true if the batch
    // was full (more may be due).
    bool prune_acked_ids();

    Outbox& outbox_;
    const Clock& clock_;
    SessionConfig config_;
    SessionCounters counters_;
    session::RequestIds request_ids_;
    session::SessionStore store_;
    session::DeliveryWindow delivery_;
    session::OfflinePath offline_;
    session::EphemeralTracker ephemeral_;
    session::CopyConfirmations confirmations_;
    UserQueue::Prefer prefer_in_flight_;   // an ack without a sender: the copy in flight

    // Per-batch scratch, reused so the hot path does not allocate per message.
    std::vector<Effect> effects_;
    std::vector<std::uint64_t> deleted_seqs_;
    std::vector<std::string> forward_ids_;   // ack ids to forward to persistence
    std::vector<std::pair<std::uint64_t, std::string>> converted_; // (seq, record) handed off in flight
    std::unordered_set<std::uint64_t> deleted_in_batch_;
    bool deferring_ = false;               // apply_writes records deletions (defer_deletions)
    std::uint64_t deferred_since_ms_ = 0;  // when the deferred transaction began
    std::uint64_t next_prune_ms_ = 0;      // monotonic: the next run of prune_acked_ids
    LogLimiter full_log_{10000};           // a full store: one line per 10 s
};

} // namespace vartalap::session
