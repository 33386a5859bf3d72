// session: the configuration, counters, latency histograms and reloadable limits of one
// session shard, and two small helpers shared by SessionCore's parts (session::RequestIds,
// session::saturating_add).
// Thread-safety: plain data, owned by the SessionCore of the session daemon's thread.
// Errors: none.
#pragma once

#include "common/metrics.hpp"

#include <cstddef>
#include <cstdint>

namespace vartalap::session {

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
    // LMDB key limit is 511 bytes: [2][user][2][id][8] (the id index) must fit, so user and
    // id are capped (a sender is capped like a user; usernames are at most 64 bytes).
    std::size_t max_user_bytes = 240;
    std::size_t max_id_bytes = 250;
    // 0 (default): every batch that deletes (acks, written receipts) commits, so an ack is
    // durable like a message. Otherwise deletions of batches that store nothing are not
    // committed on their own: they go with the next batch that stores, or at the latest
    // after delete_delay_ms, or once max_deferred_deletes are waiting (session_store.hpp).
    // A crash before then delivers those messages again (the app drops a message whose id
    // it has), which DESIGN.md's "the copy is deleted" then does not hold for.
    std::uint64_t delete_delay_ms = 0;
    std::size_t max_deferred_deletes = 4096;

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

    // Duplicates the app cannot stop (issue 14, section 3).
    // A message written to the client's socket this many times (at most once per
    // connection) without an ack counts as delivered and is deleted (the app never acks a
    // message it already has, so its lost ack would bring it back on every connection).
    std::uint32_t max_unacked_writes = 3;
    // Acked ids are kept this long (AckedIds): a resend of one within it is acknowledged
    // to its sender and not delivered again. 7 days.
    std::uint64_t dedupe_window_ms = 7ull * 24 * 3600 * 1000;
    // Most expired acked ids deleted per run (once a second; again at the next tick while
    // runs are full).
    std::size_t acked_prune_batch = 1000;
};

struct SessionCounters {
    std::uint64_t stored = 0;             // new messages committed
    std::uint64_t delivered = 0;          // deliver_result ok (chat, receipts, ephemeral), or a
                                          // client ack that came before it
    std::uint64_t acked = 0;              // stored copies deleted by a client ack
    std::uint64_t retried = 0;            // re-sends after an ack or send timeout
    std::uint64_t parked = 0;             // messages that hit the retry limit
    std::uint64_t duplicates = 0;         // deliver for an already stored (recipient, sender, id)
    std::uint64_t map_full_refusals = 0;  // new messages refused because LMDB is full
    std::uint64_t disk_full_refusals = 0; // new messages refused because the disk is full
    std::uint64_t ephemeral_dropped = 0;  // ephemeral for an offline user, or no capacity
    std::uint64_t overloaded = 0;         // deliver_result overloaded or outbox would_block
    std::uint64_t send_timeouts = 0;      // no deliver_result within send_timeout_ms
    std::uint64_t invalid = 0;            // envelopes with missing/oversized fields, wrong kind
    std::uint64_t stale_results = 0;      // deliver_result for an unknown or old request
    std::uint64_t in_flight_limit_hits = 0; // a user waited for a global in-flight slot
    std::uint64_t user_limit_refusals = 0;  // connects refused at max_online_users
    std::uint64_t connects = 0;
    std::uint64_t stale_connects = 0;       // connects older than the user's current one: ignored
    std::uint64_t disconnects = 0;
    std::uint64_t refusals_sent = 0;      // refuse() calls (map full, invalid message)
    std::uint64_t quota_refusals = 0;     // messages to a recipient whose offline quota is full
    std::uint64_t commits = 0;            // LMDB write transactions committed
    std::uint64_t deletes_deferred = 0;   // deletions left for a later commit
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
    // Duplicates the app cannot stop.
    std::uint64_t ack_waits = 0;          // written, no ack yet, but the user's acks progress:
                                          // waited one more ack timeout (no resend)
    std::uint64_t unacked_writes = 0;     // written messages that left flight without an ack
    std::uint64_t unacked_delivered = 0;  // counted delivered after max_unacked_writes writes
                                          // without an ack, and deleted (local copies)
    std::uint64_t acked_ids_pruned = 0;   // acked ids older than the dedupe window deleted
    // Confirmed copies (session_confirm.hpp).
    std::uint64_t copies_confirmed = 0;   // group copies/events confirmed to their outbox
    std::uint64_t confirmations_dropped = 0; // copies whose copies_stored could not be queued
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


// Request ids of one shard's deliver, offline_store and fetch requests (one counter, so a
// deliver_result can never match two of them). The start is random: a gateway may answer a
// request sent before this process restarted, and that answer must not match one of this run.
class RequestIds {
public:
    explicit RequestIds(std::uint64_t start) : next_(start) {}
    std::uint64_t next() { return next_++; }

private:
    std::uint64_t next_;
};

inline std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

} // namespace vartalap::session
