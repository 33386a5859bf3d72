// session: the shard's LMDB store, on top of the shared durable per-user queue
// (common/store/user_queue.hpp), plus the decoding of its records.
//
// Store layout (one LMDB environment per shard, three named databases):
//   messages:    [u16 len][recipient][u64 seq]  -> the deliver envelope (MessagePack)
//   message_ids: [u16 len][recipient][id]       -> u64 seq          (dedupe, and ack by id)
//   meta:        "next_seq"                     -> u64              (persisted counter)
// Big-endian seq makes byte order equal delivery order, so a cursor over one recipient's
// prefix yields their messages oldest first, across restarts. seq is unique in the shard
// (one counter for all users), so in-memory state keys in-flight messages by seq alone.
// What is stored is the deliver envelope a gateway will be sent, minus the per-attempt fields.
//
// Thread-safety: the session daemon's thread only. Errors: lmdb::Error propagates (see
// UserQueue); a record that does not decode is reported as nullopt. Ownership: the Env must
// outlive the store.
#pragma once

#include "common/wire/envelope.hpp"
#include "common/store/user_queue.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vartalap::session {

class SessionStore {
public:
    // Opens (creating) the databases and reads the counter; throws lmdb::Error on failure.
    explicit SessionStore(lmdb::Env& env);

    UserQueue& queue() { return queue_; }
    const UserQueue& queue() const { return queue_; }
    lmdb::Env& env() const { return queue_.env(); }
    // A read transaction opened on first use: one per round of work.
    lmdb::Txn& reader(std::optional<lmdb::Txn>& txn) const;

    // Stores `message` (a deliver) with dedupe (see UserQueue::store), clearing its
    // per-attempt fields first; `seq` is set if stored.
    Stored store(lmdb::Txn& txn, Envelope& message, WriteMode mode, std::uint64_t& seq);
    // A stored record, decoded; nullopt (reason in *error if given) if it does not decode.
    std::optional<Envelope> decode(std::string_view record, std::string* error = nullptr) const;
    // The stored message `seq` of `user`, decoded; nullopt if it is gone (or undecodable).
    std::optional<Envelope> read(lmdb::Txn& txn, std::string_view user, std::uint64_t seq);

private:
    UserQueue queue_;
    std::string record_;               // scratch: the encoded record being stored
    const std::string deliver_header_; // frame 0 of a deliver: decodes stored records
};

} // namespace vartalap::session
