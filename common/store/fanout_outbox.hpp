// FanoutOutbox: a durable queue of "one payload, many recipients" sends to session shards.
// The group-router uses it for the copies of a group message (its durable point), the group
// daemon for group events. Both write a template envelope and its recipients, grouped by
// session shard, in the same LMDB transaction as whatever made them necessary; after the
// commit the owner hands copies to the shards (send_pending) and fully sent batches are
// deleted (write_deletions) in a later transaction.
//
// Delivery guarantee: a copy stays in LMDB until the shard's PUSH socket accepted it. The
// owner's sockets set ZMQ_IMMEDIATE, so a shard that is not connected refuses (would_block)
// instead of queueing in memory, and the copy is retried. Residual risk (documented in
// docs/INTERNAL_PROTOCOL.md, "Groups"): copies accepted by ZeroMQ but not yet committed by
// the session (in socket buffers on either side) are lost if a process dies at that
// instant; sessions do not confirm PUSHed envelopes today.
// A batch interrupted by a crash is sent again from its start: sessions dedupe by
// (recipient, id), so copies still stored there are not duplicated.
//
// Store layout (in the owner's environment, two named databases):
//   outbox_messages: u64 seq               -> the template envelope (kind deliver, MessagePack)
//   outbox_copies:   [u64 seq][u32 shard]  -> recipients: ([u16 len][username])*
// On open, every pending entry is loaded and regrouped with the current shard map (the
// topology may have been resharded across the restart).
//
// Thread-safety: one thread (the owner's). Ownership: keeps references to the Env.
// Errors: stage/write_deletions return LMDB's MAP_FULL/TXN_FULL as results; other LMDB
// failures throw lmdb::Error.
#pragma once

#include "common/wire/envelope.hpp"
#include "common/store/lmdb.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap {

class FanoutOutbox {
public:
    using ShardOf = std::function<std::size_t(std::string_view user)>;
    // Hands one copy to a shard; false = not accepted now (high-water mark, not connected):
    // the copy and everything after it for that shard wait for the next send_pending.
    using SendCopy = std::function<bool(std::size_t shard, const Envelope& copy)>;

    // Opens (creating) the databases and loads pending entries. Throws lmdb::Error.
    FanoutOutbox(lmdb::Env& env, std::size_t shard_count, ShardOf shard_of);
    FanoutOutbox(const FanoutOutbox&) = delete;
    FanoutOutbox& operator=(const FanoutOutbox&) = delete;

    // Inside the caller's write transaction: stores `copy_template` (its `to` is replaced
    // per recipient) and the recipients grouped by shard. Nothing is staged for an empty
    // list. Returns 0, or MAP_FULL/TXN_FULL (the caller aborts, then calls aborted()).
    int stage(lmdb::Txn& txn, const Envelope& copy_template,
              std::span<const std::string_view> recipients);
    // After the caller's commit: staged entries become pending. After an abort: forgotten.
    void committed();
    void aborted();

    // Sends pending copies in order per shard until done or a shard refuses. Returns how
    // many copies were accepted.
    std::size_t send_pending(const SendCopy& send);

    // Deletes fully sent entries inside the caller's write transaction. Returns 0 or
    // MAP_FULL/TXN_FULL; after the caller's commit call deletions_committed().
    int write_deletions(lmdb::Txn& txn);
    void deletions_committed();
    // Convenience: write_deletions in its own transaction and commit. Returns the LMDB code.
    int flush_deletions();

    bool has_pending() const { return pending_copies_ > 0; }
    bool has_deletions() const { return !done_keys_.empty() || !done_messages_.empty(); }
    std::size_t pending_copies() const { return pending_copies_; }
    std::size_t pending_messages() const { return messages_.size(); }

private:
    struct Message {
        Envelope copy;           // the template; `to` is set per copy
        std::uint32_t batches = 0; // shard batches not yet fully sent
    };
    struct Batch {
        std::uint64_t seq = 0;
        std::uint32_t shard = 0;
        std::vector<std::string> recipients;
        std::size_t next = 0;    // recipients before it were accepted
    };
    struct Staged {
        std::uint64_t seq = 0;
        Envelope copy;
        std::vector<Batch> batches;
    };

    void load();
    static void copies_key(std::string& out, std::uint64_t seq, std::uint32_t shard);
    void add_pending(std::uint64_t seq, Envelope copy, std::vector<Batch> batches);

    lmdb::Env& env_;
    std::size_t shard_count_;
    ShardOf shard_of_;
    lmdb::Db messages_db_;
    lmdb::Db copies_db_;
    std::uint64_t next_seq_ = 1;

    std::map<std::uint64_t, Message> messages_;        // pending templates by seq
    std::vector<std::deque<Batch>> per_shard_;         // FIFO of pending batches per shard
    std::vector<Staged> staged_;                       // written, not yet committed
    std::vector<std::string> done_keys_;               // copies keys fully sent
    std::vector<std::uint64_t> done_messages_;         // templates whose batches are all sent
    std::size_t written_keys_ = 0;                     // of done_keys_, in the open transaction
    std::size_t written_messages_ = 0;
    std::size_t pending_copies_ = 0;

    // Reused per stage call.
    std::vector<std::vector<std::string>> by_shard_;
    std::string key_;
    std::string value_;
};

} // namespace vartalap
