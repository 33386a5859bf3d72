// session: the offline path (docs/INTERNAL_PROTOCOL.md, "Persistence"), used when the
// topology has persistence shards (Outbox::has_persistence):
//   - handoff: a message whose user is offline when it is stored, or whose retry limit has
//     passed, is sent to the user's persistence shard (offline_store). The local copy is
//     deleted only once persistence confirms (offline_stored ok): at-least-once. No answer
//     within handoff_timeout_ms: sent again. Refused (persistence full): the local copy stays
//     and is offered again after handoff_refused_retry_ms. At most max_handoffs are
//     outstanding; the rest stay stored and a bounded scan of the store (which also finds
//     what a crash left behind) offers them later.
//   - acks for messages this shard no longer holds (or holds while a handoff is outstanding)
//     are forwarded to the user's persistence shard, which deletes its copy.
//   - connect: after the local messages, the user's stored messages are fetched in batches
//     of at most the free window and delivered like local ones ("remote" in-flight entries
//     of the DeliveryWindow, kept in memory for retries, never re-stored here). Past the
//     retry limit a remote message is simply not retried: it stays in persistence for the
//     next connection.
// Without persistence shards the local store is the offline queue, and OfflinePath does
// nothing (its hooks return at once).
//
// Thread-safety: the session daemon's thread only. Errors: none thrown beyond lmdb::Error and
// std::bad_alloc. Ownership: keeps references to its SessionCore's store, delivery window,
// outbox, clock, config, counters and request ids, which outlive it.
#pragma once

#include "common/clock.hpp"
#include "common/wire/envelope.hpp"
#include "daemons/session/session_config.hpp"
#include "daemons/session/session_delivery.hpp"
#include "daemons/session/session_outbox.hpp"
#include "daemons/session/session_store.hpp"

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace vartalap::session {

struct Handoff {
    std::string user;
    std::string id;
    std::uint64_t seq = 0;
    std::uint64_t deadline_ms = 0;
    std::uint32_t writes = 0; // unacked socket writes so far: persistence keeps counting
    // The client acked the message while the handoff was outstanding. The ack went to
    // persistence at once, but on another socket (PUSH, not this DEALER), so it may have
    // arrived before the message: it is sent again once the handoff is confirmed.
    bool acked = false;
};

class OfflinePath final : public OfflineHooks {
public:
    OfflinePath(SessionStore& store, DeliveryWindow& delivery, Outbox& outbox, const Clock& clock,
                const SessionConfig& config, SessionCounters& counters, RequestIds& request_ids);

    bool enabled() const { return persistence_; }

    // ---- Handoffs.
    // Offers stored message `seq` (`record`: its stored envelope, reused for the request).
    void start_handoff(std::uint64_t seq, Envelope& record);
    // The outstanding handoff a reply answers; null if none (a late or repeated answer).
    const Handoff* handoff(std::uint64_t request_id) const;
    // The client acked `seq` while it may be handed off: true if a handoff is outstanding
    // (persistence may hold a copy; the ack is forwarded again once it is confirmed).
    bool acked_during_handoff(std::uint64_t seq);
    // offline_stored ok, local copy deleted in this batch (`converted`: the records of
    // messages that were in flight, read before the delete, by seq).
    void handed_off(const Envelope& reply, std::uint64_t seq,
                    const std::vector<std::pair<std::uint64_t, std::string>>& converted);
    // offline_stored ok, but LMDB was too full even to delete: offered again later.
    void handoff_unapplied(const Envelope& reply);
    // offline_stored not ok: the local copy stays.
    void handoff_failed(const Envelope& reply);

    // ---- Fetches and acks.
    void fetched(Envelope& reply);
    // Pushes acks of `ids` by `user` to persistence (dropped and counted at the HWM).
    // `sender`: the ack's (the original sender a receipt names); empty: any sender.
    void forward_acks(std::string_view user, std::string_view sender,
                      std::span<const std::string> ids);

    // ---- Periodic duties (only with persistence): handoff and fetch timeouts, then the
    // bounded scan of the store (in a read transaction of its own).
    void on_timer(std::uint64_t now, std::optional<lmdb::Txn>& read_txn);
    void scan(std::uint64_t now);
    std::optional<std::uint64_t> next_deadline_ms() const;

    std::size_t outstanding_handoffs() const { return handoffs_.size(); }

    // ---- The recipients' offline quota (issue 12). Persistence refused a handoff to
    // `user` with kRecipientQuotaFull: until a handoff to that user is taken again (or
    // 2 × handoff_refused_retry_ms pass without another such refusal), a new message to
    // that user while offline is refused to its sender before any SERVER_ACK. The refused
    // handoffs themselves stay stored here (they were acked) and are offered again.
    bool recipient_full(const std::string& user, std::uint64_t now_ms) const;
    std::size_t full_recipients() const { return full_recipients_.size(); }

    // ---- OfflineHooks (called by the DeliveryWindow).
    void pump_remote(const std::string& user, UserState& state) override;
    void parked(const std::string& user, std::uint64_t seq,
                std::optional<lmdb::Txn>& read_txn) override;
    void offline_with_local_messages(const std::string& user) override;
    void remote_receipt_written(const std::string& user, const std::string& id) override;
    void remote_written_unacked(const std::string& user, const Envelope& message) override;

private:
    // Leaves `user`'s offline messages to the scan.
    void leave_to_scan(const std::string& user);
    // start_handoff without the wait for the scan (the scan's own offers).
    void offer(std::uint64_t seq, Envelope& record, std::uint32_t writes);
    void send_handoff(std::uint64_t request_id, Handoff& handoff, Envelope& record);
    void erase_handoff(std::uint64_t request_id);
    void handoff_timers(std::uint64_t now, std::optional<lmdb::Txn>& read_txn);
    void fetch_timers(std::uint64_t now);

    struct FetchRequest {
        std::string user;
        std::uint64_t epoch = 0;
        std::uint64_t deadline_ms = 0;
    };

    SessionStore& store_;
    DeliveryWindow& delivery_;
    Outbox& outbox_;
    const Clock& clock_;
    const SessionConfig& config_;
    SessionCounters& counters_;
    RequestIds& request_ids_;
    const bool persistence_;                                 // outbox.has_persistence()

    std::unordered_map<std::uint64_t, Handoff> handoffs_;    // by request_id, <= max_handoffs
    std::unordered_map<std::uint64_t, std::uint64_t> handoff_by_seq_; // seq -> request_id
    std::set<std::pair<std::uint64_t, std::uint64_t>> handoff_timers_; // (deadline, request_id)
    // Seqs persistence rejected as invalid (bad_request): the scan does not offer them again
    // (they stay here and are delivered on the user's next connection). Bounded: beyond
    // kMaxRejected they are simply offered again, which costs a request, not correctness.
    std::unordered_set<std::uint64_t> rejected_;
    std::unordered_map<std::uint64_t, FetchRequest> fetches_; // by request_id, <= online users
    std::set<std::pair<std::uint64_t, std::uint64_t>> fetch_timers_;   // (deadline, request_id)
    // The handoff scan: walks the store for messages of offline users that are not handed
    // off yet (after a restart, after max_handoffs was reached, after a refusal, after a user
    // went offline with local messages). Wanted -> active (from the start) -> done.
    bool scan_wanted_ = false;
    bool scan_active_ = false;
    // Handoffs of a user go in seq order (issue 14, 3b): a new message of a user whose older
    // messages wait for the scan waits for it too. Those users: noted since the current
    // pass began (scan_users_), or when it began (pass_users_); during the first pass after
    // the start, every user (what a crash left behind is not known before).
    std::unordered_set<std::string> scan_users_;
    std::unordered_set<std::string> pass_users_;
    bool first_pass_ = false;
    std::string scan_position_;     // key to resume at (empty: the start)
    std::uint64_t scan_not_before_ = 0;
    std::uint64_t handoff_failure_logs_ = 0;
    std::vector<std::uint64_t> due_; // handoff_timers: expired timers
    // user -> until (monotonic ms); at most kMaxRejected users (then not marked).
    std::unordered_map<std::string, std::uint64_t> full_recipients_;
};

} // namespace vartalap::session
