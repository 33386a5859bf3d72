// FanoutOutbox: a durable queue of "one payload, many recipients" sends to session shards.
// The group-router uses it for the copies of a group message (its durable point), the group
// daemon for group events. Both write a template envelope and its recipients, grouped by
// session shard, in the same LMDB transaction as whatever made them necessary; after the
// commit the owner hands copies to the shards (send_pending), the sessions confirm the
// copies they committed (confirm), and fully confirmed entries are deleted
// (write_deletions) in a later transaction.
//
// Delivery guarantee (docs/INTERNAL_PROTOCOL.md, "Confirmed copies"): a copy stays in LMDB
// until the session that owns its recipient confirmed it (a `copies_stored` envelope, sent
// after the session's commit, to the instance named in the copy's `confirm_to`). A copy
// carries `request_id` = its entry's seq and `confirm_to` = Options::confirm_to. A copy not
// confirmed within confirm_timeout_ms of its send is sent again (with the rest of its shard
// batch that is still unconfirmed); after a restart every entry left is sent again.
// Sessions dedupe the resends by (recipient, sender, id) and confirm them again. At most
// max_unconfirmed_copies per shard are sent and unconfirmed at once: a shard at the bound
// gets no more copies until confirmations (or a timeout) free it, as for a full pipe.
// Seqs are never reused (the counter is persisted), so a confirmation from before a restart
// still names the right entry. With an empty confirm_to (an owner whose receivers cannot
// confirm) a copy is done once the shard's socket accepted it.
// The owner's sockets set ZMQ_IMMEDIATE, so a shard that is not connected refuses
// (would_block) instead of queueing in memory, and the copy is retried.
// A partly confirmed shard batch is not rewritten: after a restart its confirmed copies are
// sent again too (sessions dedupe them while they hold them).
//
// Store layout (in the owner's environment, two named databases):
//   outbox_messages: u64 seq               -> the template envelope (kind deliver, MessagePack)
//                    "~next_seq"           -> u64: the next seq (keys of other lengths than 8
//                                             are not templates)
//   outbox_copies:   [u64 seq][u32 shard]  -> recipients: ([u16 len][username])*
// On open, every pending entry is loaded and regrouped with the current shard map (the
// topology may have been resharded across the restart).
//
// Thread-safety: one thread (the owner's). Ownership: keeps references to the Env and Clock.
// Errors: stage/write_deletions return LMDB's MAP_FULL/TXN_FULL as results; other LMDB
// failures throw lmdb::Error.
#pragma once

#include "common/clock.hpp"
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

    struct Options {
        // The instance the sessions confirm to (the copies' `confirm_to`); "" = no
        // confirmations: a copy is done once its shard's socket accepted it.
        std::string confirm_to;
        std::uint64_t confirm_timeout_ms = 10000; // sent, unconfirmed for this long: resent
        std::size_t max_unconfirmed_copies = 8192; // per shard, sent and unconfirmed at once
    };

    // Opens (creating) the databases and loads pending entries. Throws lmdb::Error.
    FanoutOutbox(lmdb::Env& env, std::size_t shard_count, ShardOf shard_of, const Clock& clock,
                 Options options);
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

    // First sends again the shard batches whose confirmations are overdue, then sends
    // pending copies in order per shard until done, a shard refuses, or a shard reaches
    // max_unconfirmed_copies. Returns how many copies were accepted.
    std::size_t send_pending(const SendCopy& send);

    // A session's copies_stored: the copies of entry `seq` to `users` are committed there.
    // Unknown entries and users (confirmed already, or from another run) are ignored.
    // Returns how many copies it confirmed.
    std::size_t confirm(std::uint64_t seq, std::span<const std::string> users);

    // Deletes fully confirmed entries inside the caller's write transaction. Returns 0 or
    // MAP_FULL/TXN_FULL; after the caller's commit call deletions_committed().
    int write_deletions(lmdb::Txn& txn);
    void deletions_committed();
    // Convenience: write_deletions in its own transaction and commit. Returns the LMDB code.
    int flush_deletions();

    // Copies waiting to be sent (not sent in their batch's current pass, not confirmed).
    bool has_pending() const { return pending_copies() > 0; }
    bool has_deletions() const { return !done_keys_.empty() || !done_messages_.empty(); }
    std::size_t pending_copies() const { return open_copies_ - unconfirmed_; }
    // Copies sent and not confirmed yet.
    std::size_t unconfirmed_copies() const { return unconfirmed_; }
    // Copies in the outbox: pending or unconfirmed.
    std::size_t open_copies() const { return open_copies_; }
    std::size_t pending_messages() const { return messages_.size(); }
    std::uint64_t resent_copies() const { return resent_; } // sent again after a timeout
    const Options& options() const { return options_; }

private:
    // The recipients of one entry on one shard.
    struct Batch {
        std::uint32_t shard = 0;
        std::vector<std::string> recipients;
        std::vector<char> confirmed; // per recipient
        std::size_t open = 0;        // recipients not confirmed
        std::size_t next = 0;        // the current pass handed recipients before it to the shard
        std::size_t in_flight = 0;   // of those, not confirmed
        std::size_t hint = 0;        // where the search for the next confirmed name starts
        std::uint32_t pass = 0;      // passes begun; a deadline names the pass it is for
        bool started = false;        // the current pass sent a copy (its deadline is set)
        bool queued = false;         // in its shard's send queue
    };
    struct Message {
        Envelope copy;               // the template; `to` is set per copy
        std::vector<Batch> batches;
        std::uint32_t open_batches = 0;
    };
    struct Ref {
        std::uint64_t seq = 0;
        std::uint32_t batch = 0;
    };
    struct Deadline {
        Ref ref;
        std::uint32_t pass = 0;
        std::uint64_t at_ms = 0;
    };
    struct Shard {
        std::deque<Ref> queue;          // batches with copies to send, in order
        std::deque<Deadline> deadlines; // of passes begun, in send order
        std::size_t unconfirmed = 0;
    };
    struct Staged {
        std::uint64_t seq = 0;
        Envelope copy;
        std::vector<Batch> batches;
    };

    void load();
    static void copies_key(std::string& out, std::uint64_t seq, std::uint32_t shard);
    static Batch make_batch(std::uint32_t shard, std::vector<std::string> recipients);
    void add_pending(std::uint64_t seq, Envelope copy, std::vector<Batch> batches);
    bool confirming() const { return !options_.confirm_to.empty(); }
    void resend_expired();
    // Marks recipient `index` of batch `ref` confirmed. True if that finished the entry
    // (then `message` is gone).
    bool confirm_one(Message& message, Ref ref, std::size_t index);

    lmdb::Env& env_;
    std::size_t shard_count_;
    ShardOf shard_of_;
    const Clock& clock_;
    Options options_;
    lmdb::Db messages_db_;
    lmdb::Db copies_db_;
    std::uint64_t next_seq_ = 1;

    std::map<std::uint64_t, Message> messages_;        // pending entries by seq
    std::vector<Shard> shards_;
    std::vector<Staged> staged_;                       // written, not yet committed
    std::vector<std::string> done_keys_;               // copies keys fully confirmed
    std::vector<std::uint64_t> done_messages_;         // templates whose batches are all done
    std::size_t written_keys_ = 0;                     // of done_keys_, in the open transaction
    std::size_t written_messages_ = 0;
    std::size_t open_copies_ = 0;
    std::size_t unconfirmed_ = 0;
    std::uint64_t resent_ = 0;

    // Reused per stage call.
    std::vector<std::vector<std::string>> by_shard_;
    std::vector<Ref> expired_;
    std::string key_;
    std::string value_;
};

} // namespace vartalap
