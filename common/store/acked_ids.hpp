// The acked ids of one shard's store: (recipient, sender, id) of every message acked (or
// counted delivered) within the dedupe window, so that a sender's resend of an id that was
// already delivered and acked (its SERVER_ACK was lost) is acknowledged again and not
// delivered a second time (issue 14, section 3). Used by the session and the persistence
// daemons, each in its own environment (docs/INTERNAL_PROTOCOL.md, "Acked ids").
//
// Layout (two named databases of the caller's environment; on disk):
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
// in the default 7-day window: about 1.7 GiB.
//
// Thread-safety: one thread (the owning daemon's). Errors: int codes (0, MDB_MAP_FULL,
// MDB_TXN_FULL) for writes; lmdb::Error propagates. Ownership: keeps a reference to the Env.
#pragma once

#include "common/store/lmdb.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vartalap {

class AckedIds {
public:
    // Opens (creating) the two databases in `env`; throws lmdb::Error on failure.
    explicit AckedIds(lmdb::Env& env);
    AckedIds(const AckedIds&) = delete;
    AckedIds& operator=(const AckedIds&) = delete;

    // Records that `user` acked `sender`'s message `id` at `now_ms` (wall clock). An entry
    // recorded at or after `fresh_since_ms` is kept as it is (a second receipt of the same
    // ids costs a lookup, not a write); an older one is renewed. 0, or MDB_MAP_FULL /
    // MDB_TXN_FULL (the transaction must then be aborted).
    int record(lmdb::Txn& txn, std::string_view user, std::string_view sender,
               std::string_view id, std::uint64_t now_ms, std::uint64_t fresh_since_ms);
    // Whether (user, sender, id) was recorded at or after `since_ms`.
    bool contains(lmdb::Txn& txn, std::string_view user, std::string_view sender,
                  std::string_view id, std::uint64_t since_ms);
    // Deletes up to `batch` entries recorded before `before_ms`, oldest first: the number
    // deleted in *pruned; 0 or MDB_MAP_FULL / MDB_TXN_FULL (the transaction must then be
    // aborted).
    int prune(lmdb::Txn& txn, std::uint64_t before_ms, std::size_t batch, std::size_t& pruned);
    // Entries (for inspection and tests).
    std::size_t size() const;

private:
    // The acked_ids key into key_; false if it would exceed LMDB's key limit.
    bool make_key(std::string_view user, std::string_view sender, std::string_view id);

    lmdb::Env& env_;
    lmdb::Db acked_;
    lmdb::Db expiry_;
    std::string key_;   // scratch
    std::string other_; // scratch
};

} // namespace vartalap
