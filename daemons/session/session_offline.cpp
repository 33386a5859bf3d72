// Thread: the session daemon's thread (see session_offline.hpp).
#include "daemons/session/session_offline.hpp"

#include "common/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace vartalap::session {
namespace {

// Bound on rejected_ (seqs persistence answered bad_request): 8 bytes each.
constexpr std::size_t kMaxRejected = 4096;
// Bound on the users noted for the scan (a name and a hash node each, ~100 bytes).
constexpr std::size_t kMaxScanUsers = 65536;

} // namespace

OfflinePath::OfflinePath(SessionStore& store, DeliveryWindow& delivery, Outbox& outbox,
                         const Clock& clock, const SessionConfig& config,
                         SessionCounters& counters, RequestIds& request_ids)
    : store_(store), delivery_(delivery), outbox_(outbox), clock_(clock), config_(config),
      counters_(counters), request_ids_(request_ids), persistence_(outbox.has_persistence()) {
    // A previous run may have left messages of offline users that were never handed off
    // (it crashed between the commit and the confirmation): the first scan finds them. Its
    // first budget runs now (a small store is done before any new message comes).
    scan_wanted_ = persistence_;
    first_pass_ = persistence_;
    scan(clock_.monotonic_ms());
}

void OfflinePath::leave_to_scan(const std::string& user) {
    scan_wanted_ = true;
    if (scan_users_.size() < kMaxScanUsers) scan_users_.insert(user);
    else first_pass_ = true; // too many to note: the next pass holds back every user
}

// ---------------------------------------------------------------------------------------
// Handoffs

void OfflinePath::start_handoff(std::uint64_t seq, Envelope& record) {
    // While the scan has messages to offer, a new one waits for it too: the scan walks each
    // user's messages in seq order, so persistence receives them in that order and the
    // user's fetch returns them as they were accepted (issue 14, 3b).
    if (first_pass_ || scan_users_.contains(record.to) || pass_users_.contains(record.to)) {
        ++counters_.handoffs_deferred;
        leave_to_scan(record.to);
        return;
    }
    offer(seq, record, 0); // new: never written
}

void OfflinePath::offer(std::uint64_t seq, Envelope& record, std::uint32_t writes) {
    if (handoff_by_seq_.contains(seq)) return; // one request per message at a time
    if (handoffs_.size() >= config_.max_handoffs) {
        // The bound's policy: the message stays stored here; the scan offers it once
        // confirmations free a slot.
        ++counters_.handoffs_deferred;
        leave_to_scan(record.to);
        return;
    }
    const std::uint64_t request_id = request_ids_.next();
    Handoff& handoff = handoffs_[request_id];
    handoff.user = record.to;
    handoff.id = record.id;
    handoff.seq = seq;
    handoff.writes = writes;
    handoff_by_seq_.emplace(seq, request_id);
    rejected_.erase(seq);
    ++counters_.handoffs_sent;
    send_handoff(request_id, handoff, record);
}

void OfflinePath::send_handoff(std::uint64_t request_id, Handoff& handoff, Envelope& record) {
    // The stored deliver envelope, as an offline_store request. The same request_id on every
    // attempt: a late answer to an earlier attempt is as good a confirmation as any.
    record.kind = Kind::offline_store;
    record.request_id = request_id;
    // retry_count of an offline_store: the message's socket writes without an ack so far.
    record.retry_count = handoff.writes;
    record.status = Status::ok;
    const bool queued = outbox_.to_persistence(record);
    const std::uint64_t deadline = saturating_add(
        clock_.monotonic_ms(), queued ? config_.handoff_timeout_ms : config_.overload_retry_ms);
    handoff_timers_.erase({handoff.deadline_ms, request_id}); // no-op for a new one
    handoff.deadline_ms = deadline;
    handoff_timers_.emplace(deadline, request_id);
}

void OfflinePath::erase_handoff(std::uint64_t request_id) {
    auto found = handoffs_.find(request_id);
    if (found == handoffs_.end()) return; // a second answer in the same batch
    handoff_timers_.erase({found->second.deadline_ms, request_id});
    handoff_by_seq_.erase(found->second.seq);
    handoffs_.erase(found);
}

const Handoff* OfflinePath::handoff(std::uint64_t request_id) const {
    auto found = handoffs_.find(request_id);
    return found == handoffs_.end() ? nullptr : &found->second;
}

bool OfflinePath::acked_during_handoff(std::uint64_t seq) {
    auto handoff = handoff_by_seq_.find(seq);
    if (handoff == handoff_by_seq_.end()) return false;
    handoffs_.at(handoff->second).acked = true; // idempotent on a retry
    return true;
}

void OfflinePath::handed_off(const Envelope& reply, std::uint64_t seq,
                             const std::vector<std::pair<std::uint64_t, std::string>>& converted) {
    auto handoff = handoffs_.find(reply.request_id);
    if (handoff == handoffs_.end()) return; // answered twice in one batch
    ++counters_.handed_off;
    if (!full_recipients_.empty()) full_recipients_.erase(handoff->second.user);
    if (handoff->second.acked) {
        // Acked meanwhile: the first forward may have overtaken the message; this one
        // cannot (persistence has committed it).
        const std::string user = handoff->second.user;
        const std::string ids[1] = {handoff->second.id};
        erase_handoff(reply.request_id);
        forward_acks(user, {}, ids);
        return;
    }
    erase_handoff(reply.request_id);
    if (!delivery_.local_in_flight(seq)) return;
    // It is being delivered from the local copy, which is gone now: it goes on from memory,
    // as a remote entry (a fetch of the same id is then recognised and skipped).
    std::optional<Envelope> decoded;
    for (const auto& [converted_seq, record] : converted)
        if (converted_seq == seq) decoded = store_.decode(record);
    delivery_.convert_to_remote(seq, std::move(decoded));
}

void OfflinePath::handoff_unapplied(const Envelope& reply) {
    // Confirmed, but even the deletion did not fit in the map: forget the request; the copy
    // stays and is offered again later (persistence dedupes it).
    auto found = handoffs_.find(reply.request_id);
    if (found != handoffs_.end()) leave_to_scan(found->second.user);
    erase_handoff(reply.request_id);
    scan_not_before_ = saturating_add(clock_.monotonic_ms(), config_.handoff_refused_retry_ms);
}

bool OfflinePath::recipient_full(const std::string& user, std::uint64_t now_ms) const {
    if (full_recipients_.empty()) return false;
    const auto it = full_recipients_.find(user);
    return it != full_recipients_.end() && it->second > now_ms;
}

void OfflinePath::handoff_failed(const Envelope& reply) {
    auto found = handoffs_.find(reply.request_id);
    if (found == handoffs_.end()) return;
    ++counters_.handoff_refusals;
    const std::uint64_t seq = found->second.seq;
    const std::string user = found->second.user;
    erase_handoff(reply.request_id);
    // Either way the local copy stays (the message is still durable here).
    if (reply.status == Status::refused && reply.error == kRecipientQuotaFull) {
        const std::uint64_t now = clock_.monotonic_ms();
        if (full_recipients_.size() >= kMaxRejected)
            std::erase_if(full_recipients_, [&](const auto& e) { return e.second <= now; });
        if (full_recipients_.size() < kMaxRejected)
            full_recipients_[user] = saturating_add(now, 2 * config_.handoff_refused_retry_ms);
    }
    if (reply.status == Status::refused) {
        // Persistence is full: offer it (and the rest) again after a pause.
        scan_not_before_ = saturating_add(clock_.monotonic_ms(), config_.handoff_refused_retry_ms);
        leave_to_scan(user);
    } else if (rejected_.size() < kMaxRejected) {
        // Rejected as invalid (limits differ between the daemons' configs): offering it again
        // would be rejected again. It is delivered from here on the user's next connection.
        rejected_.insert(seq);
    }
    // Logged for the first and then every 1000th: a full persistence shard must not flood.
    if (count_sampled(handoff_failure_logs_))
        spdlog::warn("session: persistence did not take a message ({}: {}); it stays stored "
                     "here ({} such answers so far)",
                     to_string(reply.status), reply.error, handoff_failure_logs_);
}

// ---------------------------------------------------------------------------------------
// Fetches and acks

void OfflinePath::fetched(Envelope& reply) {
    auto request = fetches_.find(reply.request_id);
    if (request == fetches_.end()) {
        ++counters_.stale_results; // timed out and fetched again
        return;
    }
    const FetchRequest fetch = std::move(request->second);
    fetches_.erase(request);
    fetch_timers_.erase({fetch.deadline_ms, reply.request_id});
    UserState* found = delivery_.find(fetch.user);
    if (found == nullptr || found->epoch != fetch.epoch ||
        found->fetch_request_id != reply.request_id) {
        ++counters_.stale_results; // the user went offline or reconnected meanwhile
        return;
    }
    const std::string& user = fetch.user;
    UserState& state = *found;
    state.fetch_request_id = 0;
    if (reply.status != Status::ok) {
        spdlog::warn("session: persistence refused a fetch ({}: {}); the user's stored "
                     "messages wait for the next connection",
                     to_string(reply.status), reply.error);
        state.remote_done = true;
        return;
    }

    bool all_taken = true;
    for (const std::string& item : reply.items) {
        if (!delivery_.has_room(state)) {
            // The window filled meanwhile (new messages went straight out): the rest is
            // fetched again from the cursor when it frees.
            all_taken = false;
            break;
        }
        auto decoded = store_.decode(item);
        if (!decoded || decoded->to != user || decoded->id.empty() ||
            decoded->id.size() > config_.max_id_bytes) {
            ++counters_.invalid;
            if (decoded) state.remote_cursor = std::max(state.remote_cursor, decoded->cursor);
            continue;
        }
        state.remote_cursor = std::max(state.remote_cursor, decoded->cursor);
        // Already in flight (handed off while being delivered): never twice at once. A
        // message still stored here too (its handoff is being confirmed) is taken from
        // here, in persistence's order; the local pump skips it while it is in flight.
        if (delivery_.remote_in_flight(state, *decoded)) continue;
        ++counters_.fetched_items;
        delivery_.take_remote(user, state, std::move(*decoded));
    }
    if (all_taken) {
        state.remote_cursor = std::max(state.remote_cursor, reply.cursor);
        // `limit` of a fetched reply: non-zero while more messages follow the cursor.
        if (reply.limit == 0) state.remote_done = true;
    }
    delivery_.mark_dirty(user); // more fits in the window: fetch the next batch
}

void OfflinePath::forward_acks(std::string_view user, std::string_view sender,
                               std::span<const std::string> ids) {
    if (outbox_.ack_to_persistence(user, sender, ids)) {
        counters_.acks_forwarded += ids.size();
        return;
    }
    // The stated policy at the high-water mark: drop (the copy is delivered again later and
    // acked again). Logged for the first and then every 1000th.
    if (count_sampled(counters_.acks_forward_dropped))
        spdlog::warn("session: ack forward to persistence dropped (queue full; {} dropped so far)",
                     counters_.acks_forward_dropped);
    counters_.acks_forward_dropped += ids.size() - 1;
}

// ---------------------------------------------------------------------------------------
// OfflineHooks

void OfflinePath::pump_remote(const std::string& user, UserState& state) {
    if (state.remote_done || state.fetch_request_id != 0) return; // one fetch at a time
    if (state.in_flight.size() >= config_.window) return; // the next ack frees the window
    if (!delivery_.below_global_limits()) {
        delivery_.starve(user);
        return;
    }
    // At most the free window (and the global room): the user's queue stays in persistence
    // and arrives batch by batch as acks come, so a backlog of any size costs bounded memory
    // and bounded work per turn.
    const std::size_t room = delivery_.room(state);
    Envelope fetch;
    fetch.kind = Kind::fetch;
    fetch.to = user;
    fetch.cursor = state.remote_cursor;
    fetch.limit = static_cast<std::uint32_t>(std::min<std::size_t>(room, UINT32_MAX));
    fetch.request_id = request_ids_.next();
    const bool queued = outbox_.to_persistence(fetch);
    // Not queued (our queue to that shard is full): the "timeout" comes soon and retries.
    const std::uint64_t deadline = saturating_add(
        clock_.monotonic_ms(), queued ? config_.fetch_timeout_ms : config_.overload_retry_ms);
    fetches_.emplace(fetch.request_id, FetchRequest{user, state.epoch, deadline});
    fetch_timers_.emplace(deadline, fetch.request_id);
    state.fetch_request_id = fetch.request_id;
    if (queued) ++counters_.fetches;
}

void OfflinePath::parked(const std::string& user, std::uint64_t seq,
                         std::optional<lmdb::Txn>& read_txn) {
    if (!persistence_) return; // the local store is the offline queue
    // Not through the scan, which skips online users.
    lmdb::Txn& txn = store_.reader(read_txn);
    if (auto record = store_.read(txn, user, seq))
        offer(seq, *record, store_.queue().writes(txn, user, seq));
}

void OfflinePath::offline_with_local_messages(const std::string& user) {
    if (persistence_) leave_to_scan(user); // the scan takes them to persistence
}

void OfflinePath::remote_receipt_written(const std::string& user, const std::string& id) {
    const std::string ids[1] = {id};
    forward_acks(user, {}, ids);
}

void OfflinePath::remote_written_unacked(const std::string& user, const Envelope& message) {
    if (outbox_.unacked_write_to_persistence(user, message.from, message.id,
                                             config_.max_unacked_writes))
        return;
    if (count_sampled(counters_.acks_forward_dropped))
        spdlog::warn("session: unacked write forward to persistence dropped (queue full; {} "
                     "dropped so far)",
                     counters_.acks_forward_dropped);
}

// ---------------------------------------------------------------------------------------
// Periodic duties

void OfflinePath::on_timer(std::uint64_t now, std::optional<lmdb::Txn>& read_txn) {
    if (!persistence_) return;
    handoff_timers(now, read_txn);
    fetch_timers(now);
}

void OfflinePath::handoff_timers(std::uint64_t now, std::optional<lmdb::Txn>& read_txn) {
    due_.clear();
    for (auto timer = handoff_timers_.begin();
         timer != handoff_timers_.end() && timer->first <= now; ++timer)
        due_.push_back(timer->second);
    for (const std::uint64_t request_id : due_) {
        auto found = handoffs_.find(request_id);
        if (found == handoffs_.end()) continue;
        Handoff& handoff = found->second;
        lmdb::Txn& txn = store_.reader(read_txn);
        auto record = store_.read(txn, handoff.user, handoff.seq);
        if (!record) {
            erase_handoff(request_id); // acked (deleted) meanwhile: nothing to hand off
            continue;
        }
        // No answer (lost, or persistence is slow or down): ask again.
        ++counters_.handoff_resends;
        handoff.writes = store_.queue().writes(txn, handoff.user, handoff.seq);
        send_handoff(request_id, handoff, *record);
    }
}

void OfflinePath::fetch_timers(std::uint64_t now) {
    while (!fetch_timers_.empty() && fetch_timers_.begin()->first <= now) {
        const std::uint64_t request_id = fetch_timers_.begin()->second;
        fetch_timers_.erase(fetch_timers_.begin());
        auto request = fetches_.find(request_id);
        if (request == fetches_.end()) continue;
        const FetchRequest fetch = std::move(request->second);
        fetches_.erase(request);
        UserState* user = delivery_.find(fetch.user);
        if (user == nullptr || user->epoch != fetch.epoch || user->fetch_request_id != request_id)
            continue;
        // No answer: fetch again from the same cursor (a late answer is now stale).
        // Meanwhile local messages go out: persistence down must not stop them.
        user->fetch_request_id = 0;
        user->remote_stalled = true;
        delivery_.mark_dirty(fetch.user);
    }
}

void OfflinePath::scan(std::uint64_t now) {
    if (!persistence_) return;
    if (!scan_active_) {
        if (!scan_wanted_ || now < scan_not_before_) return;
        scan_active_ = true; // a new pass, from the start of the store
        scan_wanted_ = false;
        scan_position_.clear();
        pass_users_ = std::move(scan_users_);
        scan_users_.clear();
    }
    if (handoffs_.size() >= config_.max_handoffs) return; // resumes when answers free slots

    std::optional<lmdb::Txn> read_txn; // the store as the core sees it (deferred deletions)
    lmdb::Txn& txn = store_.reader(read_txn);
    StoreScan cursor(txn, store_.queue(), scan_position_);
    std::string user;
    for (std::size_t visited = 0; cursor.valid() && visited < config_.handoff_scan_budget;
         ++visited) {
        if (!cursor.is_message()) { // never written by us
            cursor.next();
            continue;
        }
        user.assign(cursor.user());
        if (delivery_.online(user)) {
            // Online: its messages are delivered from here. Skip past all of them.
            cursor.skip_user();
            continue;
        }
        const std::uint64_t seq = cursor.seq();
        if (!handoff_by_seq_.contains(seq) && !rejected_.contains(seq)) {
            if (handoffs_.size() >= config_.max_handoffs) {
                scan_position_.assign(cursor.key()); // resume here
                return;
            }
            auto record = store_.decode(cursor.record());
            if (record) offer(seq, *record, store_.queue().writes(txn, user, seq));
        }
        cursor.next();
    }
    if (cursor.valid()) {
        scan_position_.assign(cursor.key()); // the budget is spent: resume at the next tick
    } else {
        scan_active_ = false; // a whole pass done
        pass_users_.clear();
        first_pass_ = false;
    }
}

std::optional<std::uint64_t> OfflinePath::next_deadline_ms() const {
    std::optional<std::uint64_t> earliest;
    for (const auto* timers : {&handoff_timers_, &fetch_timers_})
        if (!timers->empty() && (!earliest || timers->begin()->first < *earliest))
            earliest = timers->begin()->first;
    return earliest;
}

} // namespace vartalap::session
