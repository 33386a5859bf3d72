// The durable per-user message queue of one shard, shared by the session daemon (its store
// of 1-to-1 messages in flight) and the persistence daemon (the offline queue): the key
// layout, store-with-dedupe, delete by id or by seq, the persisted seq counter, cursor walks
// and the batch write with its map-full fallback live here once.
//
// Layout (three named databases of the caller's LMDB environment, plus the migrated-away
// one; the layout is on disk: changing it needs a store migration):
//   messages:   [u16 len][user][u64 seq]               -> the stored record (the caller's encoding)
//   <ids>_v2:   [u16 len][user][u16 len][id][u64 seq]  -> [u64 seq] (+ [u64 time] if the
//                                                          caller keeps one) + [sender]
//   writes:     [u16 len][user][u64 seq]               -> u32: successful socket writes of
//                                                          the message without an ack, so
//                                                          far (absent: none; issue 14, 3b)
//   meta:       "next_seq" -> u64 (the counter, written with each storing batch)
//               "schema"   -> u32 (kSchemaVersion, written once the store has this layout)
// The ids database is named by the caller ("message_ids" in the session, "ids" in
// persistence; the layout adds "_v2"). A message is known by (user, sender, id): the id
// index holds every copy of one (user, id) under one key prefix, each with its sender, so a
// message of one sender is never taken for another's that reuses its id (issue 14,
// section 2). An ack names (user, id) and, where the client said so, the sender.
// Schema 1 (no "schema" record) keyed the index on (user, id) alone, in "<ids>": on open
// such a store is migrated in bounded transactions (each entry moved with the sender read
// from its message record through the caller's SenderOf), then "<ids>" is dropped and the
// schema record written. A crash mid-way resumes where it stopped.
// Integers are big-endian, so byte order equals numeric order: a cursor over one user's
// prefix yields their messages oldest first, across restarts. The length prefixes keep any
// user's (or id's) keys from being a prefix of another's (users and ids are untrusted
// bytes); users are at most 65535 bytes, and [2][user][2][id][8] must stay within LMDB's
// 511-byte key limit (the daemons cap users at 240 and ids at 250 bytes). seq is unique in
// the shard (one counter for all users) and never reused.
//
// The batch pattern (both daemons): pass 1 runs inside write_batch and decides, per envelope
// of a batch, what happens (an outcome, kept by the caller) while writing to LMDB; pass 2
// runs after the commit and turns the outcomes into memory state and messages. So nothing
// leaves the shard before its write is durable.
//
// Thread-safety: one thread per queue (the owning daemon's); the Env may be shared (read
// transactions use MDB_NOTLS). Errors: results the caller handles are int codes (0,
// MDB_NOTFOUND, MDB_MAP_FULL, MDB_TXN_FULL, lmdb::kDiskFull for a full disk); lmdb::Error (a
// corrupt file, EIO) propagates.
// Ownership: keeps a reference to the Env, which must outlive it; cursors borrow the
// transaction they were opened in.
#pragma once

#include "common/store/lmdb.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace vartalap {

// The `error` of a refused offline_store (persistence) and of the refusal a sender then
// gets (session → gateway): the recipient holds max_messages_per_recipient /
// max_bytes_per_recipient of offline messages already (issue 12).
inline constexpr std::string_view kRecipientQuotaFull = "recipient's offline store is full";


// How much of a batch pass 1 may write (UserQueue::write_batch steps down through them).
enum class WriteMode : std::uint8_t {
    all,            // store new messages, delete acked ones
    deletions_only, // LMDB is full: refuse new messages, still apply deletions (acks)
    none,           // not even deletions fit: outcomes only, in a read transaction
};

// What UserQueue::store did.
enum class Stored : std::uint8_t {
    stored,       // new message written under the returned seq
    duplicate,    // (user, sender, id) is stored already: nothing written
    refused,      // new, but the mode allows no new messages
    out_of_space, // MDB_MAP_FULL / MDB_TXN_FULL / lmdb::kDiskFull (recorded): the transaction
                  // must be aborted
};

// An entry of the id index: the message's seq, where the caller keeps one a time, and the
// message's sender.
struct IdEntry {
    std::uint64_t seq = 0;
    std::uint64_t time = 0; // 0 where the entry holds no time
    std::string sender;
};

// The schema the id index is in (see the layout above).
inline constexpr std::uint32_t kUserQueueSchema = 2;

// The result of UserQueue::write_batch.
struct BatchWrite {
    int first_rc = 0; // 0: committed with WriteMode::all; else why not (MAP_FULL, TXN_FULL,
                      // lmdb::kDiskFull)
    int rc = 0;       // 0: a write pass committed (all, or deletions_only after first_rc)
};

class UserQueue {
public:
    // The sender of a stored record (the caller decodes its own encoding); nullopt if the
    // record does not decode. Used only to migrate a schema-1 store.
    using SenderOf = std::function<std::optional<std::string>(std::string_view record)>;
    // Says which of several copies of one (user, id) an ack without a sender means.
    using Prefer = std::function<bool(std::uint64_t seq)>;

    // Opens (creating) the databases in `env`, migrates a schema-1 store (see the layout;
    // `migrate_batch` entries per transaction) and reads the persisted counter. Throws
    // lmdb::Error if they cannot be opened or migrated. `ids_db` names the id index (see
    // the layout) and `ids_hold_time` says whether its entries carry a time; `what` names
    // the store in errors.
    UserQueue(lmdb::Env& env, const char* ids_db, bool ids_hold_time, const char* what,
              const SenderOf& sender_of, std::size_t migrate_batch = 10000);
    UserQueue(const UserQueue&) = delete;
    UserQueue& operator=(const UserQueue&) = delete;

    lmdb::Env& env() const { return env_; }

    // ---- Keys (pure functions, replacing `out`; append_user_prefix appends).
    static void append_user_prefix(std::string& out, std::string_view user); // [2 len][user]
    static void user_prefix(std::string& out, std::string_view user);
    static void message_key(std::string& out, std::string_view user, std::uint64_t seq);
    // [2][user][2][id]: every copy of (user, id), whoever sent it, is under this prefix.
    static void id_prefix(std::string& out, std::string_view user, std::string_view id);
    static void id_key(std::string& out, std::string_view user, std::string_view id,
                       std::uint64_t seq);
    // The user length a prefix holds at key[at]; 0 when the key is too short to hold one (a
    // key never written by us: callers then check the whole size and skip it).
    static std::size_t user_length_at(std::string_view key, std::size_t at);
    static bool out_of_space(int rc) { return lmdb::out_of_space(rc); }

    // ---- The batch write. Runs `pass(lmdb::Txn*, WriteMode) -> bool` (pass 1; false when
    // LMDB ran out of space, recorded through full()) and commits, stepping down:
    //   1. WriteMode::all in a write transaction (the counter is saved with it if it moved);
    //      while it hits MDB_MAP_FULL and `grow()` (called with no transaction open)
    //      returns true, again;
    //      (a full disk, lmdb::kDiskFull, is never a reason to grow the map);
    //   2. out of space: the counter is rewound, and WriteMode::deletions_only;
    //   3. out of space again: WriteMode::none in a read transaction (nothing is written;
    //      the outcomes are still worked out).
    // Each step recomputes the outcomes of the whole batch, so `pass` must be repeatable.
    // `first`, if given and engaged, is a write transaction already open (with writes of
    // the caller's own): step 1 runs in it instead of a new one, and it is left empty.
    template <class Pass, class Grow>
    BatchWrite write_batch(Pass&& pass, Grow&& grow, std::optional<lmdb::Txn>* first = nullptr);
    template <class Pass>
    BatchWrite write_batch(Pass&& pass) {
        return write_batch(pass, [] { return false; });
    }
    // Records an out-of-space rc (MAP_FULL, TXN_FULL, kDiskFull) for write_batch; true if it
    // was one.
    bool full(int rc);

    // ---- Inside pass 1 (or any transaction).
    // Store-with-dedupe of `user`'s message `id` from `sender`: duplicate if (user, sender,
    // id) is indexed, refused unless mode is all; otherwise takes the next seq (into `seq`),
    // and writes the record `encode(seq)` returns (a string_view valid until store returns)
    // and the id entry (with `time` if the entries hold one).
    template <class Encode>
    Stored store(lmdb::Txn& txn, std::string_view user, std::string_view sender,
                 std::string_view id, WriteMode mode, Encode&& encode, std::uint64_t& seq,
                 std::uint64_t time = 0);
    // Finds (user, sender, id) in the index (any sender if `sender` is nullopt: the copy
    // `prefer` picks, else the oldest): 0 with *entry set, or MDB_NOTFOUND.
    int find(lmdb::Txn& txn, std::string_view user, std::optional<std::string_view> sender,
             std::string_view id, IdEntry& entry, const Prefer& prefer = {});
    bool contains(lmdb::Txn& txn, std::string_view user, std::string_view sender,
                  std::string_view id);
    // Deletes the message find() finds, and its index entry, unless mode is none: 0 (found;
    // `entry` set), MDB_NOTFOUND, or MDB_MAP_FULL / MDB_TXN_FULL (not recorded; see full()).
    int erase_by_id(lmdb::Txn& txn, std::string_view user, std::optional<std::string_view> sender,
                    std::string_view id, WriteMode mode, IdEntry& entry, const Prefer& prefer = {});
    // Deletes the message `seq` of `user` and its index entry (`id`); a missing one is not an
    // error. 0 or MDB_MAP_FULL / MDB_TXN_FULL (not recorded).
    int erase(lmdb::Txn& txn, std::string_view user, std::string_view id, std::uint64_t seq);
    // Successful socket writes of `user`'s message `seq` without an ack (0 if none are
    // recorded), and setting them; erase() deletes them with the message. set_writes: 0 or
    // MDB_MAP_FULL / MDB_TXN_FULL (not recorded).
    std::uint32_t writes(lmdb::Txn& txn, std::string_view user, std::uint64_t seq);
    int set_writes(lmdb::Txn& txn, std::string_view user, std::uint64_t seq, std::uint32_t count);
    // The record of `user`'s message `seq`: 0 (valid until the transaction ends or writes)
    // or MDB_NOTFOUND.
    int get(lmdb::Txn& txn, std::string_view user, std::uint64_t seq, std::string_view& record);
    // How many messages `user` has (walks them all: for inspection and tests).
    std::size_t count(lmdb::Txn& txn, std::string_view user) const;

    // ---- Inspection in a fresh read transaction of committed state.
    // (user, sender, id), or (user, id) from anyone if `sender` is nullopt.
    bool contains(std::string_view user, std::optional<std::string_view> sender,
                  std::string_view id) const;
    std::size_t count(std::string_view user) const;
    // Entries the last open moved from a schema-1 index (0: none, or already migrated).
    std::size_t migrated() const { return migrated_; }

    // ---- The seq counter (one for all users; persisted by write_batch).
    std::uint64_t next_seq() const { return next_seq_; }

    const lmdb::Db& messages() const { return messages_; }
    const lmdb::Db& ids() const { return ids_; }

private:
    template <class Pass>
    int write_pass(Pass& pass, WriteMode mode, std::optional<lmdb::Txn>* first = nullptr);
    bool save_seq(lmdb::Txn& txn, std::uint64_t seq_before);
    void migrate(const char* ids_db, const char* what, const SenderOf& sender_of,
                 std::size_t batch);
    // The entry's fields from an index value.
    void parse_entry(std::string_view value, IdEntry& entry) const;
    std::string_view sender_in(std::string_view value) const {
        return value.substr(std::min<std::size_t>(value.size(), ids_hold_time_ ? 16 : 8));
    }

    lmdb::Env& env_;
    lmdb::Db messages_;
    lmdb::Db ids_;
    lmdb::Db meta_;
    lmdb::Db writes_;
    bool ids_hold_time_ = false;
    std::uint64_t next_seq_ = 1;
    int full_rc_ = MDB_MAP_FULL; // which "out of space" ended the last failed pass
    std::size_t migrated_ = 0;
    // Scratch, reused so that the hot path does not allocate per message.
    std::string id_key_;
    std::string message_key_;
    std::string value_;
};

// One user's messages in seq order, from a seq on. Reads only what it is moved over: a queue
// of any length stays on disk.
class UserCursor {
public:
    UserCursor(lmdb::Txn& txn, const UserQueue& queue, std::string_view user,
               std::uint64_t from_seq);
    bool valid() const { return valid_; }
    std::uint64_t seq() const;           // only while valid()
    std::string_view record() const { return cursor_.value(); }
    void next();

private:
    bool check(bool positioned);
    lmdb::Cursor cursor_;
    std::string prefix_;
    bool valid_ = false;
};

// Every message of the store in key order (by user key, then seq), for walks over all users
// (the session's handoff scan). Keys of another shape (never written by us) are visited too:
// is_message() is false for them.
class StoreScan {
public:
    // From `resume_at` (a key() saved earlier; empty: the start).
    StoreScan(lmdb::Txn& txn, const UserQueue& queue, std::string_view resume_at);
    bool valid() const { return valid_; }
    std::string_view key() const { return cursor_.key(); }
    bool is_message() const;
    std::string_view user() const;       // only if is_message()
    std::uint64_t seq() const;           // only if is_message()
    std::string_view record() const { return cursor_.value(); }
    void next() { valid_ = cursor_.next(); }
    // Moves past every message of user() (only if is_message()).
    void skip_user();

private:
    lmdb::Cursor cursor_;
    std::string scratch_;
    bool valid_ = false;
};

// ---------------------------------------------------------------------------------------
// Templates

template <class Pass, class Grow>
BatchWrite UserQueue::write_batch(Pass&& pass, Grow&& grow, std::optional<lmdb::Txn>* first) {
    BatchWrite result;
    const std::uint64_t seq_before = next_seq_;
    result.rc = write_pass(pass, WriteMode::all, first);
    while (result.rc == MDB_MAP_FULL && grow()) {
        next_seq_ = seq_before;
        result.rc = write_pass(pass, WriteMode::all);
    }
    result.first_rc = result.rc;
    if (result.rc == 0) return result;
    // Out of space: new messages are refused, but deletions must still free space (and stop
    // retries), so the batch is applied again with deletions only.
    next_seq_ = seq_before;
    result.rc = write_pass(pass, WriteMode::deletions_only);
    if (result.rc != 0) {
        // Not even deletions fit: the outcomes without writing.
        lmdb::Txn txn(env_, lmdb::Txn::read_only);
        pass(&txn, WriteMode::none);
    }
    return result;
}

template <class Pass>
int UserQueue::write_pass(Pass& pass, WriteMode mode, std::optional<lmdb::Txn>* first) {
    const std::uint64_t seq_before = next_seq_;
    int rc = 0;
    {
        std::optional<lmdb::Txn> own;
        if (first != nullptr && *first) own.emplace(std::move(**first));
        else own.emplace(env_, lmdb::Txn::read_write);
        if (first != nullptr) first->reset();
        lmdb::Txn& txn = *own;
        rc = pass(&txn, mode) && save_seq(txn, seq_before) ? txn.commit() : full_rc_;
    } // an uncommitted transaction is aborted here
    if (rc != 0) full_rc_ = rc; // commit() reports MDB_MAP_FULL and kDiskFull itself
    return rc;
}

template <class Encode>
Stored UserQueue::store(lmdb::Txn& txn, std::string_view user, std::string_view sender,
                        std::string_view id, WriteMode mode, Encode&& encode,
                        std::uint64_t& seq, std::uint64_t time) {
    {
        // Every copy of (user, id) is under one prefix: almost always none or one.
        id_prefix(id_key_, user, id);
        lmdb::Cursor cursor(txn, ids_);
        for (bool more = cursor.seek(id_key_); more && cursor.key().starts_with(id_key_);
             more = cursor.next())
            if (sender_in(cursor.value()) == sender) return Stored::duplicate;
    }
    if (mode != WriteMode::all) return Stored::refused;
    seq = next_seq_++;
    const std::string_view record = encode(seq);
    message_key(message_key_, user, seq);
    if (full(messages_.put(txn, message_key_, record))) return Stored::out_of_space;
    lmdb::append_u64_be(id_key_, seq);
    value_.clear();
    lmdb::append_u64_be(value_, seq);
    if (ids_hold_time_) lmdb::append_u64_be(value_, time);
    value_.append(sender);
    if (full(ids_.put(txn, id_key_, value_))) return Stored::out_of_space;
    return Stored::stored;
}

} // namespace vartalap
