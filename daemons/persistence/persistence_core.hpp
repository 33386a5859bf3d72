// persistence: the durable per-user offline queue (docs/INTERNAL_PROTOCOL.md, "Persistence";
// ../shared/DESIGN.md, "The delivery contract", point 4).
//
// PersistenceCore is the socket-free logic of one persistence shard. It owns the shard's LMDB
// store (the shared durable per-user queue, plus an expiry index); replies to its ROUTER
// peers (sessions, rest-gateways) and notifications to the push daemons go through an
// injected PersistenceOutbox; time comes from an injected Clock. The daemon
// (persistence_daemon.{hpp,cpp}) owns the sockets and feeds decoded envelopes in batches.
// Batches, expiry and sync are in persistence_core.cpp, the reads (fetch, GET /messages) in
// persistence_pages.cpp.
//
// Thread: everything here runs on the persistence daemon's thread (one thread per shard).
// The class is not thread-safe. Other processes on the same host may open the environment
// read-only (tools); that is why stale reader slots are cleared periodically.
// Errors: nothing on the data path throws for bad input: an invalid request gets a reply with
// status bad_request. A full LMDB map or a full disk is a refusal (reply status refused,
// "offline store full"), never an exception. lmdb::Error (corrupt file, EIO) propagates: the daemon cannot
// continue safely and a restart is cheap.
// Ownership: the core keeps references to the Env, Outbox and Clock; they must outlive it.
//
// Store layout (one LMDB environment per shard, four named databases; messages, ids and
// meta are the shared durable per-user queue, common/store/user_queue.hpp):
//   messages: [u16 len][user][u64 seq]            -> the stored deliver envelope (MessagePack),
//                                                    its `cursor` field already set to seq
//   ids_v2:   [u16 len][user][u16 len][id][u64 seq] -> [u64 seq][u64 time][sender] (dedupe, ack)
//   writes:   [u16 len][user][u64 seq]            -> u32 socket writes without an ack
//   (acked-ids/, an environment of its own: ids acked within the dedupe window,
//   common/store/acked_ids.hpp)
//   expiry:   [u64 time][u16 len][user][u64 seq]  -> id    (TTL index, oldest first)
//   meta:     "next_seq"                          -> u64   (persisted counter)
// All integers big-endian, so byte order equals numeric order: a cursor over one user's prefix
// of `messages` yields their messages oldest first, and one over `expiry` the oldest message
// of the shard first. seq is unique in the shard and never reused (the counter is persisted
// with every batch that stores), which is what makes a fetch cursor stable across restarts,
// deletions and concurrent stores: paging returns every message exactly once.
#pragma once

#include "common/clock.hpp"
#include "common/wire/envelope.hpp"
#include "common/store/acked_ids.hpp"
#include "common/store/background_sync.hpp"
#include "common/store/user_queue.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace vartalap::persistence {

// Where the core's replies and notifications go. The daemon implements it over its ROUTER
// and a PUSH to the push daemons; tests record the calls. Implementations never block.
class PersistenceOutbox {
public:
    virtual ~PersistenceOutbox() = default;
    // Sends `reply` to the ROUTER peer `reply_to`. Best effort: a reply to a peer at its
    // high-water mark, or one that has gone, is dropped (the daemon counts it); the requester
    // times out and asks again (a session re-sends offline_store and fetch, a rest-gateway
    // answers 504), and both requests are idempotent.
    virtual void reply(std::string_view reply_to, const Envelope& reply) = 0;
    // Whether the topology has any push daemon; without one no offline_notify is built.
    virtual bool has_push() const = 0;
    // Pushes an offline_notify to the push daemons. Returns false if it could not be queued
    // (high-water mark): the notification is dropped and counted. Push is best effort; the
    // message itself stays stored and is fetched on connect or by GET /messages.
    virtual bool notify(const Envelope& notification) = 0;
    // Whether the topology has a profile daemon, and a request to one (a DEALER, round
    // robin): the registration checks of the short TTL (persistence_ttl.cpp). False: not
    // queued (the names are asked about again later).
    virtual bool has_profile() const { return false; }
    virtual bool to_profile(const Envelope& request) {
        (void)request;
        return false;
    }
};

using lmdb::Durability;
using lmdb::parse_durability;
using lmdb::to_string;

struct PersistenceConfig {
    Durability durability = Durability::fsync;
    // process mode: the OS has every commit at once (a process crash loses nothing); this
    // bounds what a power loss can lose.
    std::uint64_t sync_interval_ms = 1000;
    // Messages older than this (by created_at_ms) are deleted: 30 days, the app's contract.
    std::uint64_t ttl_seconds = 30ull * 24 * 3600;
    // Expiry runs every expiry_interval_ms and deletes at most expiry_batch messages per run,
    // so a backlog of expired messages never stalls requests (1000 per run is one small
    // transaction, well under a millisecond of work per 100 ms tick); while a run finds a
    // full batch, the next run is at the next tick.
    std::uint64_t expiry_interval_ms = 1000;
    std::size_t expiry_batch = 1000;
    // Clears reader slots of dead processes (read-only tools): at start and this often.
    std::uint64_t reader_check_interval_ms = 60'000;
    // LMDB map: address space reserved up front, disk used only as data grows.
    std::size_t map_size_mb = 1024;
    // Growth: 0 = never grow (MDB_MAP_FULL refuses new messages). Otherwise, when more than
    // 90% of the map is used (checked before each write) or a write hits MDB_MAP_FULL, the
    // map grows by grow_by_mb, up to max_map_size_mb.
    std::size_t grow_by_mb = 0;
    std::size_t max_map_size_mb = 1024;
    // Items per fetch / GET /messages page. The envelope decoder takes at most 10 000 array
    // items, so larger values are clamped to that.
    std::uint32_t fetch_limit_max = 500;
    std::uint32_t rest_default_limit = 50; // GET /messages without `limit`
    // Bytes of stored envelopes per reply: a fetched frame must stay under the decoders'
    // 4 MiB frame limit. A reply always carries at least one item if one is due.
    std::size_t max_reply_bytes = 2u << 20;
    // Largest payload stored (REST bodies are at most 1 MiB, WebSocket frames 64 KiB): keeps
    // every single item far below the 4 MiB frame limit.
    std::size_t max_payload_bytes = 1u << 20;
    // LMDB key limit is 511 bytes: [2][user][id] and [8][2][user][8] must fit.
    std::size_t max_user_bytes = 240;
    std::size_t max_id_bytes = 250;
    // Acked ids are kept this long (AckedIds, pruned with the expiry runs, expiry_batch at
    // a time): an offline_store of one within it is answered ok and not stored. 7 days.
    std::uint64_t dedupe_window_ms = 7ull * 24 * 3600 * 1000;
    // Per-recipient offline quota (issue 12): an offline_store that would give its `to` more
    // than this many messages, or more than this many bytes of stored envelopes, is refused
    // with kRecipientQuotaFull (a duplicate is still ok). 0: no limit.
    std::size_t max_messages_per_recipient = 10000;
    std::size_t max_bytes_per_recipient = 64u << 20;
    // Messages to a name that never registered (the profile daemon does not know it) expire
    // after this instead of ttl_seconds (issue 12): 3 days. 0, or not below ttl_seconds:
    // off. Needs a profile daemon in the topology.
    std::uint64_t short_ttl_seconds = 3ull * 24 * 3600;
    std::uint64_t registration_timeout_ms = 5000; // a check not answered by then: asked again
};

// Environment options implied by the config: map size, and MDB_NOSYNC in process mode.
lmdb::EnvOptions persistence_env_options(const PersistenceConfig& config);

// One decoded envelope and, for ROUTER requests, the routing id to answer.
struct PersistenceInput {
    std::string reply_to; // empty for envelopes from the PULL socket (acks)
    Envelope envelope;
};

struct PersistenceCounters {
    std::uint64_t stored = 0;           // new messages committed
    std::uint64_t duplicates = 0;       // offline_store of an already stored (to, id)
    std::uint64_t map_full_refusals = 0;// offline_store refused: LMDB full
    std::uint64_t disk_full_refusals = 0;// offline_store refused: the disk full
    std::uint64_t bad_requests = 0;     // invalid requests answered bad_request / not_found
    std::uint64_t acked = 0;            // messages deleted by an ack
    std::uint64_t expired = 0;          // messages deleted by the TTL
    std::uint64_t fetches = 0;          // fetch requests served
    std::uint64_t rest_pages = 0;       // GET /messages pages served
    std::uint64_t items_served = 0;     // messages in fetched / pages
    std::uint64_t notified = 0;         // offline_notify queued
    std::uint64_t notify_dropped = 0;   // offline_notify not queued (push HWM)
    std::uint64_t commits = 0;          // write transactions committed (one per batch)
    std::uint64_t syncs = 0;            // explicit env syncs (process mode)
    std::uint64_t map_grows = 0;
    std::uint64_t stale_readers = 0;    // reader slots cleared by mdb_reader_check
    std::uint64_t corrupt = 0;          // stored records that did not decode (skipped)
    std::uint64_t unacked_writes = 0;   // socket writes without an ack counted (ack + limit)
    std::uint64_t unacked_delivered = 0;// deleted as delivered at the session's limit of those
    std::uint64_t acked_ids_pruned = 0; // acked ids older than the dedupe window deleted
    std::uint64_t quota_refusals = 0;   // offline_store refused: the recipient's quota is full
    std::uint64_t registration_checks = 0;   // requests to the profile daemon (names each)
    std::uint64_t unregistered_recipients = 0; // names found never registered
    std::uint64_t short_ttl_messages = 0;    // messages given the short TTL
};

class PersistenceCore {
public:
    // Opens (creating) the shard's databases in `env`, reads the persisted seq counter and
    // clears stale reader slots. Throws lmdb::Error if the store cannot be opened.
    PersistenceCore(lmdb::Env& env, PersistenceOutbox& outbox, const Clock& clock,
                    PersistenceConfig config = {});
    PersistenceCore(const PersistenceCore&) = delete;
    PersistenceCore& operator=(const PersistenceCore&) = delete;

    // Applies a batch in order: offline_store (store), ack (delete) in one LMDB write
    // transaction, the group commit; only after it commits are replies sent (in batch order)
    // and offline_notify pushed. fetch and request ("messages") are served after the commit
    // from one read transaction, so they see the batch's writes. The envelopes may be
    // modified (moved from) by the call.
    void handle_batch(std::span<PersistenceInput> batch);

    // Every periodic duty of the shard, with its period; call about every 100 ms:
    //   - expiry: every expiry_interval_ms (1 s), at most expiry_batch (1000) messages per
    //     run; at the next call again while runs find full batches;
    //   - sync (process durability only): every sync_interval_ms (1 s), if anything was
    //     committed since the last sync (requested from the BackgroundSync, if set);
    //   - mdb_reader_check: every reader_check_interval_ms (60 s);
    //   - the short TTL's registration check: sent when none is in flight (each call), asked
    //     again after registration_timeout_ms.
    // (Map growth is not periodic: it is checked before every write.)
    void on_timer();

    // Syncs the environment if anything is unsynced (process mode); for the daemon's drain.
    // With a BackgroundSync, ends its thread first and syncs on the caller's.
    void flush();
    // Process mode: on_timer's periodic sync is requested from `background` (which must
    // outlive this core's use of it) instead of run on the caller's thread.
    void set_background_sync(lmdb::BackgroundSync* background) { background_ = background; }

    const PersistenceCounters& counters() const { return counters_; }
    // The acked-id marks' own store (the daemon reports it).
    AckedIds& acked_ids() { return acked_; }
    const PersistenceConfig& config() const { return config_; }
    // The profile daemon's answer to a registration check (persistence_ttl.cpp): the
    // never-registered names among those asked about get the short TTL, with every message
    // stored for them so far, in one write transaction.
    void on_registration_reply(const Envelope& reply);
    // Names stored to and not yet asked about (inspection, tests).
    std::size_t unchecked_recipients() const { return to_check_.size(); }
    // SIGHUP: new TTL (the next expiry run applies it to every stored message) and page
    // limits (clamped as at construction).
    void set_limits(std::uint64_t ttl_seconds, std::uint32_t fetch_limit_max,
                    std::uint32_t rest_default_limit);

    // Inspection (tests, status): reads committed state in a fresh read transaction.
    // (user, sender, id); from any sender if `sender` is nullopt.
    bool is_stored(std::string_view user, std::string_view id,
                   std::optional<std::string_view> sender = std::nullopt) const;
    std::size_t stored_count(std::string_view user) const;
    std::size_t total_count() const; // entries of the expiry index = messages in the shard

private:
    enum class Outcome : std::uint8_t {
        none,
        stored,    // offline_store committed under seq: reply ok, maybe notify
        duplicate, // already stored: reply ok
        refused,   // LMDB full: reply refused
        over_quota,// the recipient's quota is full: reply refused (kRecipientQuotaFull)
        invalid,   // reply bad_request (reason in Effect::error)
        acked,     // ack applied (nothing to send)
        fetch,     // served after the commit
        request,   // served after the commit
        dropped,   // nothing to answer (e.g. an ack that is invalid): counted
    };
    struct Effect {
        Outcome outcome = Outcome::none;
        std::uint64_t seq = 0;
        std::uint64_t request_id = 0;
        const char* error = nullptr;
    };
    // Clears stale reader slots (counted) before the queue's first write; returns `env`.
    static lmdb::Env& reader_checked(lmdb::Env& env, PersistenceCounters& counters);

    // Pass 1 (run by queue_.write_batch), inside the write transaction: LMDB writes and each
    // envelope's outcome; WriteMode::none (a read transaction) classifies only. Returns
    // false if LMDB ran out of space (MAP_FULL/TXN_FULL); the transaction must be aborted.
    bool apply_writes(lmdb::Txn& txn, std::span<PersistenceInput> batch, WriteMode mode);
    // Outcomes without writing, from committed state (in `txn`, or a read transaction of
    // its own when null).
    void classify_without_writes(std::span<PersistenceInput> batch, lmdb::Txn* txn);
    const char* invalid_store(const Envelope& message) const;
    // Grows the map if growth is configured, allowed and needed (`must`: after MAP_FULL).
    bool maybe_grow(bool must);

    // Pass 2, after the commit.
    void send_results(std::span<PersistenceInput> batch);
    // Reads up to `limit` records of `user` after seq `after` (and at most max_reply_bytes,
    // but always one) into page_*; page_more_ says whether more follow.
    void collect_page(lmdb::Txn& txn, std::string_view user, std::uint64_t after,
                      std::uint32_t limit);
    Envelope serve_fetch(const Envelope& request, lmdb::Txn& txn);
    Envelope serve_request(const Envelope& request, lmdb::Txn& txn);
    void maybe_notify(const Envelope& message);

    // Whether storing `message` (not a duplicate) would take its recipient past the quota
    // (persistence_quota.cpp). Counts the recipient's stored messages in `txn` once per
    // batch (a walk of at most max_messages_per_recipient records), then adds what the
    // batch stores.
    bool over_quota(lmdb::Txn& txn, const Envelope& message);
    void count_stored_for_quota(const Envelope& message);
    // The short TTL (persistence_ttl.cpp). After storing `message` under `seq` in `txn`:
    // a second expiry entry, dated earlier by ttl − short_ttl, when its recipient is known
    // never registered; else the recipient is noted to be asked about. An LMDB code.
    int note_recipient(lmdb::Txn& txn, const Envelope& message, std::uint64_t seq);
    // The expiry entry's time that makes a message stored at `created_ms` expire after the
    // short TTL; nullopt when the short TTL is off.
    std::optional<std::uint64_t> short_expiry_time(std::uint64_t created_ms) const;
    // Sends the next registration check when none is in flight; re-asks a timed-out one.
    void check_registrations();

    // Periodic duties. expire() returns true if it deleted a full batch (more may be due).
    bool expire();
    bool prune_acked_ids(); // the same for acked ids older than the dedupe window
    std::uint64_t acked_since(std::uint64_t now) const {
        return now - std::min(now, config_.dedupe_window_ms);
    }
    // An ack with `limit` (a session's max_unacked_writes): one more socket write of each
    // id without an ack; at `limit` writes the message is deleted as delivered.
    bool count_unacked_writes(lmdb::Txn& txn, const Envelope& message, WriteMode mode,
                              std::uint64_t now);

    // Keys (see the store layout at the top): user, message and id keys are the queue's
    // (common/store/user_queue.hpp, shared with the session daemon); the expiry index is ours.
    static void expiry_key(std::string& out, std::uint64_t time_ms, std::string_view user,
                           std::uint64_t seq);

    lmdb::Env& env_;
    PersistenceOutbox& outbox_;
    const Clock& clock_;
    PersistenceConfig config_;
    PersistenceCounters counters_;

    UserQueue queue_;                  // messages, ids, writes, meta and the seq counter
    AckedIds acked_;                   // ids acked within the dedupe window
    lmdb::Db expiry_;
    bool unsynced_ = false;            // process mode: committed since the last sync
    lmdb::BackgroundSync* background_ = nullptr; // process mode: syncs off the caller's thread

    std::uint64_t next_expiry_ms_ = 0; // monotonic
    std::uint64_t next_sync_ms_ = 0;
    std::uint64_t next_reader_check_ms_ = 0;
    std::uint64_t full_log_count_ = 0; // rate-limits the "map full" log lines

    // Per-batch scratch, reused so the hot path does not allocate per message.
    std::vector<Effect> effects_;
    struct Usage {
        std::size_t messages = 0;
        std::size_t bytes = 0;
    };
    std::unordered_map<std::string, Usage> quota_usage_; // this batch's recipients
    // The short TTL's knowledge of names (each bounded: forgotten all at once when full).
    std::unordered_set<std::string> registered_;
    std::unordered_set<std::string> unregistered_;
    std::unordered_set<std::string> to_check_;   // stored to, not asked about yet
    std::vector<std::string> checking_;          // asked about, answer pending
    std::uint64_t check_request_id_ = 0;
    std::uint64_t check_deadline_ms_ = 0;        // monotonic; 0: none in flight
    std::string key_;
    std::string record_;
    struct ExpiredEntry {
        std::string expiry_key;
        std::string user;
        std::string id;
        std::uint64_t seq = 0;
    };
    std::vector<ExpiredEntry> expired_;
    std::vector<std::string_view> page_values_; // views into the read transaction
    std::vector<std::uint64_t> page_seqs_;
    bool page_more_ = false;
    const std::string deliver_header_; // frame 0 of a deliver: decodes stored records
};

} // namespace vartalap::persistence
