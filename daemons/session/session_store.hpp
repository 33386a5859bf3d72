// session: the shard's LMDB store, on top of the shared durable per-user queue
// (common/store/user_queue.hpp), plus the decoding of its records.
//
// Store layout (one LMDB environment per shard, three named databases):
//   messages:       [u16 len][recipient][u64 seq] -> the deliver envelope (MessagePack)
//   message_ids_v2: [u16 len][recipient][u16 len][id][u64 seq] -> u64 seq + sender
//                   (dedupe by (recipient, sender, id), and ack by id; user_queue.hpp)
//   writes:         [u16 len][recipient][u64 seq] -> u32 socket writes without an ack
//   meta:           "next_seq" -> u64 (persisted counter), "schema" -> u32
//   (acked-ids/, an environment of its own: the ids acked within the dedupe window,
//   acked_ids.hpp)
// Big-endian seq makes byte order equal delivery order, so a cursor over one recipient's
// prefix yields their messages oldest first, across restarts. seq is unique in the shard
// (one counter for all users), so in-memory state keys in-flight messages by seq alone.
// What is stored is the deliver envelope a gateway will be sent, minus the per-attempt fields.
//
// Deferred deletions. A deletion need not be durable (a crash before it is committed only
// makes the message delivered again, which the client drops by id), so a batch that only
// deletes (acks, written receipts) does not commit: its deletions go into a write
// transaction that stays open ("the deferred transaction") and is committed with the next
// batch that stores (its first pass runs in it), or by SessionCore::flush (a timer, a bound
// on the count, the daemon's stop). Every read of the core goes through reader(), which is
// that transaction while it is open, so the core sees its own deletions at once. Each
// deferred deletion is also recorded, so that a fresh transaction can apply them again when
// the deferred one had to be aborted (LMDB full). Cursors and views taken from reader()
// must not outlive the round they were taken in (the transaction may commit after it).
//
// Thread-safety: the session daemon's thread only. Errors: lmdb::Error propagates (see
// UserQueue); a record that does not decode is reported as nullopt. Ownership: the Env must
// outlive the store.
#pragma once

#include "common/wire/envelope.hpp"
#include "common/store/acked_ids.hpp"
#include "common/store/user_queue.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::session {

class SessionStore {
public:
    // Opens (creating) the databases and reads the counter; throws lmdb::Error on failure.
    explicit SessionStore(lmdb::Env& env);

    UserQueue& queue() { return queue_; }
    AckedIds& acked() { return acked_; }
    const UserQueue& queue() const { return queue_; }
    lmdb::Env& env() const { return queue_.env(); }
    // The transaction reads go through: the deferred transaction while it is open, else a
    // read transaction opened in `txn` on first use (one per round of work).
    lmdb::Txn& reader(std::optional<lmdb::Txn>& txn);

    // ---- Deferred deletions (see above).
    // The deferred transaction, begun if none is open.
    lmdb::Txn& deferred_txn();
    bool has_deferred() const { return deferred_txn_.has_value(); }
    std::size_t deferred_count() const { return deferred_.size(); }
    // Records a deletion applied in the deferred transaction (`acked`: the id was recorded
    // as acked from `sender` at `acked_ms` too).
    void defer(std::string_view user, std::string_view id, std::uint64_t seq,
               const std::string* sender = nullptr, std::uint64_t acked_ms = 0);
    // Forgets the deletions recorded after the first `count` (those of a batch that failed).
    void truncate_deferred(std::size_t count) { deferred_.resize(std::min(count, deferred_.size())); }
    // Moves the deferred transaction out (for a commit); nullopt if none is open.
    std::optional<lmdb::Txn> take_deferred_txn();
    // Applies every recorded deletion again in a fresh write transaction: false if LMDB ran
    // out of space (the transaction must then be aborted).
    bool replay_deferred(lmdb::Txn& txn);
    // The deferred deletions were committed (or given up): forgets the records.
    void deferred_done() { deferred_.clear(); }

    // Stores `message` (a deliver) with dedupe on (to, from, id) (see UserQueue::store),
    // clearing its per-attempt fields first; `seq` is set if stored. A message whose id
    // was acked at or after `acked_since_ms` is a duplicate too.
    Stored store(lmdb::Txn& txn, Envelope& message, WriteMode mode, std::uint64_t& seq,
                 std::uint64_t acked_since_ms);
    // A stored record, decoded; nullopt (reason in *error if given) if it does not decode.
    std::optional<Envelope> decode(std::string_view record, std::string* error = nullptr) const;
    // The stored message `seq` of `user`, decoded; nullopt if it is gone (or undecodable).
    std::optional<Envelope> read(lmdb::Txn& txn, std::string_view user, std::uint64_t seq);

private:
    struct Deletion {
        std::string user;
        std::string id;
        std::uint64_t seq = 0;
        bool acked = false;
        std::string sender;
        std::uint64_t acked_ms = 0;
    };

    UserQueue queue_;
    AckedIds acked_;
    std::optional<lmdb::Txn> deferred_txn_;
    std::vector<Deletion> deferred_;
    std::string record_;               // scratch: the encoded record being stored
    const std::string deliver_header_; // frame 0 of a deliver: decodes stored records
};

} // namespace vartalap::session
