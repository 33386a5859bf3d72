// The acked ids of one shard's store: (recipient, sender, id) of every message acked (or
// counted delivered) within the dedupe window, so that a sender's resend of an id that was
// already delivered and acked (its SERVER_ACK was lost) is acknowledged again and not
// delivered a second time (issue 14, section 3). Used by the session and the persistence
// daemons (docs/INTERNAL_PROTOCOL.md, "Acked ids").
//
// Its own LMDB environment, in the subdirectory `acked-ids` of the owner's store, committed
// without a sync (MDB_NOSYNC) and synced on a thread of its own (lmdb::BackgroundSync,
// `<owner>-acked`) about once a second (on_timer) and when it is destroyed. Why not in the owner's environment: the keys are spread over every
// user, so each ack of a batch dirties a leaf page of its own, and in `fsync` durability every
// one of those pages was written and synced with the batch (measured: 113 page writes per
// fdatasync instead of 30, and the pinned `fsync` rate halved; BENCHMARKS.md). What the
// marks protect against is a duplicate, never a loss: a crash may lose the marks of the last
// second, and a resend of one of those ids is then delivered again (at-least-once allows it).
// A mark is never needed before its message's deletion is durable, so nothing else orders the
// two environments.
//
// How the owner uses it, per batch: record() keeps marks in memory (contains() sees them at
// once); after the owner's own commit, commit_pending() writes them in one transaction, and
// discard_pending() drops them when the owner's transaction did not commit (or is recomputed
// from scratch). commit_pending() also ends the batch's read snapshot.
//
// Layout (two named databases of its environment; on disk):
//   acked_ids:    [u16 len][user][u16 len][id][u64 h(sender)] -> [u64 acked wall ms][sender]
//   acked_expiry: [u64 acked wall ms][the acked_ids key]      -> (empty)
// h is 64-bit FNV-1a of the sender, only to give each sender of one (user, id) its own key:
// a lookup compares the sender stored in the value, so a collision can never make one
// sender's message a duplicate of another's (at worst two colliding senders of the same id
// to the same user share one entry, and the older one's resend is delivered again). The
// expiry index is in time order: pruning reads it from the start, at most a batch per run.
// With users at most 240 bytes and ids 250 (the daemons' limits) the longest key is 510
// bytes, within LMDB's 511; an entry whose key would not fit is not recorded.
// Cost per entry: key 14 + user + id bytes and value 8 + sender bytes in acked_ids, key
// 22 + user + id bytes in acked_expiry, plus LMDB's 8-byte node header in each: for a
// 10-byte user and sender and a 36-byte id, 168 bytes of data, about 250 bytes of pages at
// LMDB's usual fill. A shard recording one million acks a day keeps about 7 million entries
// in the default 7-day window: about 1.7 GiB. The map grows by doubling when full.
// Stores of the earlier layout kept the two databases in the owner's environment: they are
// moved here on open (in bounded transactions; a crash mid-way moves them again).
//
// Thread-safety: one thread (the owning daemon's); env() may be synced from another
// (lmdb::BackgroundSync). Errors: commit_pending() and prune() report out of space and I/O
// errors as codes (the marks are then lost, counted in lost()); opening throws lmdb::Error.
// Ownership: owns its environment.
#pragma once

#include "common/store/background_sync.hpp"
#include "common/store/lmdb.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace vartalap {

class AckedIds {
public:
    // Opens (creating) the environment in `owner`'s directory / "acked-ids" and moves what
    // `owner` holds of the earlier layout into it. The sync thread is named after the
    // owner's directory (the daemon's instance: "session-1-acked"). Throws lmdb::Error.
    explicit AckedIds(lmdb::Env& owner);
    ~AckedIds(); // the last sync, on the caller's thread (a failure is logged)
    AckedIds(const AckedIds&) = delete;
    AckedIds& operator=(const AckedIds&) = delete;

    lmdb::Env& env() { return *env_; }
    const lmdb::BackgroundSync& background() const { return *sync_; }
    // Asks the sync thread for a sync if anything was committed since the last request and
    // kSyncIntervalMs have passed (monotonic ms); never waits for the disk.
    void on_timer(std::uint64_t now_ms);
    static constexpr std::uint64_t kSyncIntervalMs = 1000;

    // Records that `user` acked `sender`'s message `id` at `now_ms` (wall clock), in memory
    // until commit_pending(). An entry recorded at or after `fresh_since_ms` is kept as it is
    // (a second receipt of the same ids costs a lookup, not a write); an older one is renewed.
    void record(std::string_view user, std::string_view sender, std::string_view id,
                std::uint64_t now_ms, std::uint64_t fresh_since_ms);
    // Whether (user, sender, id) was recorded at or after `since_ms` (pending or committed).
    bool contains(std::string_view user, std::string_view sender, std::string_view id,
                  std::uint64_t since_ms);
    std::size_t pending() const { return pending_.size(); }
    // Forgets the marks recorded since the last commit_pending().
    void discard_pending();
    // Writes the pending marks in one transaction (no sync) and ends the read snapshot: 0,
    // or the LMDB / system error code (the marks are then dropped and counted in lost()).
    int commit_pending();
    // Deletes up to `batch` entries recorded before `before_ms`, oldest first, in a
    // transaction of its own: the number deleted in *pruned; 0 or an error code.
    int prune(std::uint64_t before_ms, std::size_t batch, std::size_t& pruned);

    // Entries (for inspection and tests); marks lost to a failed commit; entries moved from
    // the earlier layout by the last open.
    std::size_t size();
    std::uint64_t lost() const { return lost_; }
    std::size_t migrated() const { return migrated_; }

private:
    struct Pending {
        std::uint64_t at = 0;
        std::uint64_t fresh_since = 0;
        std::string sender;
    };

    // The acked_ids key into `out`; false if it would exceed LMDB's key limit.
    static bool make_key(std::string& out, std::string_view user, std::string_view sender,
                         std::string_view id);
    // Writes one mark in `txn`: 0 or an LMDB code.
    int write(lmdb::Txn& txn, const std::string& key, const Pending& mark);
    // One attempt of commit_pending(): 0 or an LMDB code (MDB_MAP_FULL: grow and retry).
    int write_pending();
    bool grow();
    void migrate(lmdb::Env& owner);

    std::unique_ptr<lmdb::Env> env_;
    std::unique_ptr<lmdb::BackgroundSync> sync_; // after env_: stopped before it closes
    bool unsynced_ = false;
    std::uint64_t next_sync_ms_ = 0;
    lmdb::Db acked_;
    lmdb::Db expiry_;
    std::optional<lmdb::Txn> reader_; // the batch's read snapshot, ended by commit_pending()
    std::unordered_map<std::string, Pending> pending_;
    std::uint64_t lost_ = 0;
    std::size_t migrated_ = 0;
    std::string key_;   // scratch
    std::string other_; // scratch
};

} // namespace vartalap
