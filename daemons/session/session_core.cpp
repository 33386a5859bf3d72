// Thread: the session daemon's thread (see session_core.hpp); tests call it from theirs.
#include "daemons/session/session_core.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace vartalap::session {
namespace {

// A random start for request ids: a gateway may answer a request sent before this process
// restarted, and that answer must not match a request of this run. 2^62 values: a collision
// needs a restart to land within the previous run's id range.
std::uint64_t random_request_id_start() {
    std::random_device device;
    const std::uint64_t high = device();
    const std::uint64_t low = device();
    return (((high << 32) | low) >> 2) + 1;
}

constexpr std::string_view kStorageFull = "server storage full";

} // namespace

SessionCore::SessionCore(lmdb::Env& env, Outbox& outbox, const Clock& clock, SessionConfig config)
    : outbox_(outbox), clock_(clock), config_(config),
      request_ids_(random_request_id_start()), store_(env),
      delivery_(store_, outbox_, clock_, config_, counters_, request_ids_),
      offline_(store_, delivery_, outbox_, clock_, config_, counters_, request_ids_),
      ephemeral_(outbox_, clock_, config_, counters_, request_ids_) {
    // A zero window would never deliver; a zero global bound would starve everyone.
    config_.window = std::max<std::size_t>(config_.window, 1);
    config_.max_in_flight = std::max<std::size_t>(config_.max_in_flight, 1);
    config_.max_ephemeral_pending = std::max<std::size_t>(config_.max_ephemeral_pending, 1);
    delivery_.set_hooks(offline_);
    prefer_in_flight_ = [this](std::uint64_t seq) { return delivery_.in_flight_contains(seq); };
}

// ---------------------------------------------------------------------------------------
// Batches

void SessionCore::handle_batch(std::span<Envelope> batch) {
    if (batch.empty()) return;
    confirmations_.take(batch);

    switch (writes_of(batch)) {
    case Writes::none:
        apply_writes(nullptr, batch, WriteMode::all);
        break;
    case Writes::deletions:
        if (config_.delete_delay_ms == 0 || !defer_deletions(batch)) commit(batch);
        break;
    case Writes::stores:
        commit(batch);
        break;
    }
    apply_effects(batch);
    count_unacked_writes();
    if (!confirmations_.empty()) {
        // Committed here (new or already stored), or never storable: the owner may forget it.
        confirmations_.send(
            [this](std::size_t i) {
                const Outcome outcome = effects_[i].outcome;
                return outcome == Outcome::stored || outcome == Outcome::duplicate ||
                       outcome == Outcome::invalid;
            },
            outbox_, counters_);
    }
    delivery_.pump_dirty_users();
    if (store_.deferred_count() >= config_.max_deferred_deletes) flush();
}

void SessionCore::flush() {
    if (store_.has_deferred()) commit({});
}

bool SessionCore::defer_deletions(std::span<Envelope> batch) {
    const std::size_t before = store_.deferred_count();
    const bool began = !store_.has_deferred();
    lmdb::Txn& txn = store_.deferred_txn();
    deferring_ = true;
    const bool written = apply_writes(&txn, batch, WriteMode::all);
    deferring_ = false;
    if (!written) {
        // LMDB is full even for a deletion: the deferred transaction is unusable (aborted
        // here). commit() applies the earlier batches' recorded deletions again.
        store_.truncate_deferred(before);
        store_.take_deferred_txn();
        return false;
    }
    if (began) deferred_since_ms_ = clock_.monotonic_ms();
    counters_.deletes_deferred += store_.deferred_count() - before;
    return true;
}

void SessionCore::commit(std::span<Envelope> batch) {
    // The first pass runs in the deferred transaction if one is open (its deletions are in
    // it); any other pass runs in a fresh one, which applies the recorded deletions again.
    std::optional<lmdb::Txn> deferred = store_.take_deferred_txn();
    bool fresh = !deferred.has_value();
    const BatchWrite write = store_.queue().write_batch(
        [&](lmdb::Txn* txn, WriteMode mode) {
            const bool replay = fresh && mode != WriteMode::none;
            // A pass from scratch: the marks of the batches before it are recorded again.
            if (fresh) store_.acked().discard_pending();
            fresh = true;
            if (replay && !store_.replay_deferred(*txn)) return false;
            return apply_writes(txn, batch, mode);
        },
        [] { return false; }, &deferred);
    // Committed (with everything, or deletions only): the deferred deletions are in. Not even
    // deletions fit: they are given up like the batch's own acks (redelivered later).
    store_.deferred_done();
    if (write.rc == 0) {
        ++counters_.commits;
        store_.acked().commit_pending();
    } else {
        store_.acked().discard_pending();
    }
    if (write.first_rc == 0) return;
    // The map is full. New messages are refused (not durable, so no server_ack: the
    // senders resend), but acks still free space and stop retries (deletions only). If
    // not even deletions fit, the outcomes are worked out without writing, so that
    // connects, results and acks still take effect in memory (retries stop; the acked
    // copies stay stored and a new connection delivers them again, which at-least-once
    // allows).
    // A full disk (lmdb::kDiskFull) is the same case: nothing is written that does not fit.
    std::uint64_t refused = 0;
    for (const Effect& effect : effects_)
        if (effect.outcome == Outcome::refused) ++refused;
    const bool disk = write.first_rc == lmdb::kDiskFull;
    (disk ? counters_.disk_full_refusals : counters_.map_full_refusals) += refused;
    if (!full_log_.allow(clock_.monotonic_ms())) return;
    lmdb::Env& env = store_.env();
    const std::string what = disk ? "disk full (ENOSPC: " + env.path().string() + ")"
                             : write.first_rc == MDB_TXN_FULL
                                 ? "LMDB transaction too large (MDB_TXN_FULL)"
                                 : "LMDB map full (MDB_MAP_FULL)";
    spdlog::error("session: {} ({} of {} bytes used): refused {} new message(s) (no "
                  "server_ack; the senders are told \"{}\"); {}; {} more such batch(es) since "
                  "the last line; {} refused for a full map, {} for a full disk so far",
                  what, env.used_bytes(), env.map_size(), refused, kStorageFull,
                  write.rc == 0 ? "acks applied"
                                : "acks could not be written either (copies stay stored "
                                  "and are redelivered on the next connect)",
                  full_log_.take_suppressed(), counters_.map_full_refusals,
                  counters_.disk_full_refusals);
}

SessionCore::Writes SessionCore::writes_of(std::span<const Envelope> batch) const {
    Writes writes = Writes::none;
    for (const Envelope& message : batch) {
        if (message.kind == Kind::deliver && !message.has(flag_ephemeral)) return Writes::stores;
        if (message.kind == Kind::offline_stored && message.status == Status::ok &&
            offline_.handoff(message.request_id) != nullptr)
            return Writes::stores; // the confirmed handoff's local copy is deleted at once
        if (message.kind == Kind::ack) writes = Writes::deletions;
        if (message.kind == Kind::deliver_result && message.status == Status::ok) {
            const session::InFlight* entry = delivery_.by_request(message.request_id);
            if (entry != nullptr && entry->system && !entry->remote) writes = Writes::deletions;
        }
    }
    return writes;
}

bool SessionCore::apply_writes(lmdb::Txn* txn, std::span<Envelope> batch, WriteMode mode) {
    effects_.assign(batch.size(), Effect{});
    deleted_seqs_.clear();
    deleted_in_batch_.clear();
    forward_ids_.clear();
    converted_.clear();
    UserQueue& queue = store_.queue();
    AckedIds& acked = store_.acked();
    const bool persistence = offline_.enabled();
    const std::uint64_t now = clock_.wall_ms();
    const std::uint64_t acked_since = now - std::min(now, config_.dedupe_window_ms);
    // Acked ids are marks in their own store, written after this batch commits (AckedIds):
    // recorded whenever the batch's deletions are written, full store or not.
    const bool record_acks = mode != WriteMode::none;

    for (std::size_t i = 0; i < batch.size(); ++i) {
        Envelope& message = batch[i];
        Effect& effect = effects_[i];
        switch (message.kind) {
        case Kind::deliver: {
            if (!valid_deliver(message)) {
                effect.outcome = Outcome::invalid;
                break;
            }
            if (message.has(flag_ephemeral)) {
                effect.outcome = Outcome::ephemeral;
                break;
            }
            if (offline_.recipient_full(message.to, clock_.monotonic_ms()) &&
                !delivery_.online(message.to)) {
                effect.outcome = Outcome::quota_full; // the sender hears it; nothing stored
                break;
            }
            std::uint64_t seq = 0;
            switch (store_.store(*txn, message, mode, seq, acked_since)) {
            case Stored::out_of_space: return false;
            case Stored::duplicate: effect.outcome = Outcome::duplicate; break;
            case Stored::refused: effect.outcome = Outcome::refused; break;
            case Stored::stored:
                effect.outcome = Outcome::stored;
                effect.seq = seq;
                break;
            }
            break;
        }
        case Kind::ack: {
            if (message.from.empty() || message.from.size() > config_.max_user_bytes) {
                effect.outcome = Outcome::invalid;
                break;
            }
            effect.outcome = Outcome::acked;
            effect.acked_begin = static_cast<std::uint32_t>(deleted_seqs_.size());
            effect.forward_begin = static_cast<std::uint32_t>(forward_ids_.size());
            // A receipt names the original sender (`to`): only that sender's copy is
            // acked. Without one (CLIENT_ACK, a group receipt), the copy being delivered,
            // else the oldest, is: one ack never deletes the copies of several senders.
            const std::optional<std::string_view> sender =
                message.to.empty() ? std::nullopt : std::optional<std::string_view>(message.to);
            for (const std::string& id : message.ids) {
                if (id.empty() || id.size() > config_.max_id_bytes) continue; // never stored
                IdEntry entry;
                const int rc = queue.erase_by_id(*txn, message.from, sender, id, mode, entry,
                                                 prefer_in_flight_);
                if (queue.full(rc)) return false;
                if (rc != 0) {
                    // Not here: handed off to persistence (a late ack, or one of a message
                    // fetched from there), or never ours. Persistence deletes its copy if it
                    // has one; without persistence the ack is ignored. Its id is recorded as
                    // acked here too where the sender is known (a fetched message in flight,
                    // or a receipt naming it): a resend then never reaches the user again.
                    if (persistence) forward_ids_.push_back(id);
                    const Envelope* remote = delivery_.remote_message(message.from, id, sender);
                    const std::string* known = remote != nullptr ? &remote->from
                                               : sender       ? &message.to
                                                              : nullptr;
                    if (record_acks && known != nullptr) {
                        acked.record(message.from, *known, id, now, acked_since);
                        if (deferring_) store_.defer(message.from, id, 0, known, now);
                    }
                    continue;
                }
                if (record_acks) acked.record(message.from, entry.sender, id, now, acked_since);
                if (deferring_)
                    store_.defer(message.from, id, entry.seq, record_acks ? &entry.sender : nullptr,
                                 now);
                deleted_seqs_.push_back(entry.seq);
                deleted_in_batch_.insert(entry.seq);
                // While a handoff is outstanding persistence may hold a copy as well.
                if (persistence && offline_.acked_during_handoff(entry.seq))
                    forward_ids_.push_back(id);
            }
            effect.acked_end = static_cast<std::uint32_t>(deleted_seqs_.size());
            effect.forward_end = static_cast<std::uint32_t>(forward_ids_.size());
            break;
        }
        case Kind::deliver_result: {
            effect.outcome = Outcome::result;
            if (message.status != Status::ok) break;
            std::uint64_t seq = 0;
            const session::InFlight* entry = delivery_.by_request(message.request_id, &seq);
            if (entry == nullptr || !entry->system) break;
            effect.seq = seq;
            if (entry->remote) break; // not stored here: persistence is told after the commit
            // A receipt's socket write is its ack: it is done, delete it with this batch.
            if (mode != WriteMode::none &&
                queue.full(queue.erase(*txn, entry->user, entry->id, seq)))
                return false;
            if (deferring_) store_.defer(entry->user, entry->id, seq);
            deleted_in_batch_.insert(seq);
            break;
        }
        case Kind::connect:
            effect.outcome = Outcome::connect;
            break;
        case Kind::disconnect:
            effect.outcome = Outcome::disconnect;
            break;
        case Kind::offline_stored: {
            const session::Handoff* handoff = offline_.handoff(message.request_id);
            if (handoff == nullptr) {
                effect.outcome = Outcome::stale; // a late answer to an attempt already settled
                break;
            }
            if (message.status != Status::ok) {
                effect.outcome = Outcome::handoff_failed;
                break;
            }
            effect.seq = handoff->seq;
            if (mode == WriteMode::none) {
                effect.outcome = Outcome::handoff_unapplied;
                break;
            }
            // Persistence has it: the local copy goes. If it is being delivered right now,
            // its record is kept for the retries from memory (read before the delete).
            if (delivery_.in_flight_contains(handoff->seq)) {
                std::string_view record;
                if (queue.get(*txn, handoff->user, handoff->seq, record) == 0)
                    converted_.emplace_back(handoff->seq, std::string(record));
            }
            if (queue.full(queue.erase(*txn, handoff->user, handoff->id, handoff->seq)))
                return false;
            effect.outcome = Outcome::handed_off;
            break;
        }
        case Kind::fetched:
            effect.outcome = Outcome::fetched;
            break;
        default:
            effect.outcome = Outcome::invalid;
            break;
        }
    }
    return true;
}

bool SessionCore::valid_deliver(const Envelope& message) const {
    if (message.to.empty() || message.to.size() > config_.max_user_bytes) return false;
    if (message.from.size() > config_.max_user_bytes) return false;
    if (message.has(flag_ephemeral)) return true; // never stored: no key to bound
    return !message.id.empty() && message.id.size() <= config_.max_id_bytes;
}

// ---------------------------------------------------------------------------------------
// After the commit: memory state and outgoing messages, in batch order.

void SessionCore::apply_effects(std::span<Envelope> batch) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
        Envelope& message = batch[i];
        const Effect& effect = effects_[i];
        switch (effect.outcome) {
        case Outcome::stored:
            ++counters_.stored;
            on_stored(message, effect.seq);
            break;
        case Outcome::duplicate:
            // The client resent after a lost SERVER_ACK: the copy is durable, say so again.
            ++counters_.duplicates;
            if (message.has(flag_wants_server_ack) && !message.origin_gateway.empty())
                outbox_.server_ack(message.origin_gateway, message.connection, message.id,
                                   message.from);
            break;
        case Outcome::refused:
            // Counted and logged with the failed commit; the sender is told why there is no
            // SERVER_ACK (instead of silence until its resend).
            refuse(message, Status::storage_full, kStorageFull);
            break;
        case Outcome::quota_full:
            if (count_sampled(counters_.quota_refusals))
                spdlog::warn("session: refused a message to '{}': {} ({} so far)",
                             message.to.substr(0, 64), kRecipientQuotaFull, counters_.quota_refusals);
            refuse(message, Status::refused, kRecipientQuotaFull);
            break;
        case Outcome::ephemeral:
            on_ephemeral(message);
            break;
        case Outcome::acked:
            on_acked(message, effect);
            break;
        case Outcome::result:
            on_result(message);
            break;
        case Outcome::connect:
            delivery_.connect(message);
            break;
        case Outcome::disconnect:
            delivery_.disconnect(message);
            break;
        case Outcome::invalid:
            ++counters_.invalid;
            spdlog::debug("session: dropped invalid {} envelope (id length {}, to length {})",
                          to_string(message.kind), message.id.size(), message.to.size());
            // A sender waiting for its SERVER_ACK (a REST send) learns why none comes.
            if (message.kind == Kind::deliver) refuse(message, Status::bad_request, "invalid message");
            break;
        case Outcome::handed_off:
            offline_.handed_off(message, effect.seq, converted_);
            break;
        case Outcome::handoff_unapplied:
            offline_.handoff_unapplied(message);
            break;
        case Outcome::handoff_failed:
            offline_.handoff_failed(message);
            break;
        case Outcome::stale:
            ++counters_.stale_results;
            break;
        case Outcome::fetched:
            offline_.fetched(message);
            break;
        case Outcome::none:
            break;
        }
    }
}

void SessionCore::on_stored(Envelope& message, std::uint64_t seq) {
    if (message.has(flag_wants_server_ack) && !message.origin_gateway.empty())
        outbox_.server_ack(message.origin_gateway, message.connection, message.id, message.from);
    if (deleted_in_batch_.contains(seq)) return; // acked within the same batch
    if (delivery_.offer(message, seq)) return;
    // Offline: with persistence it becomes an offline message now (stored there, announced
    // by push); without, it waits here for the next connect.
    if (offline_.enabled()) offline_.start_handoff(seq, message);
}

void SessionCore::on_ephemeral(Envelope& message) {
    const session::UserState* state = delivery_.find(message.to);
    if (state == nullptr) {
        ++counters_.ephemeral_dropped; // typing for an offline user: meaningless later
        return;
    }
    ephemeral_.send(message, message.to, state->gateway, state->connection, state->epoch);
}

void SessionCore::on_result(const Envelope& result) {
    if (auto request = ephemeral_.take(result.request_id)) {
        if (result.status == Status::ok) {
            ++counters_.delivered;
        } else {
            ++counters_.ephemeral_dropped;
            const session::UserState* user = delivery_.find(request->user);
            if (result.status == Status::not_connected && user != nullptr &&
                user->epoch == request->epoch)
                delivery_.go_offline(request->user);
        }
        return;
    }
    delivery_.on_result(result);
}

void SessionCore::on_acked(const Envelope& message, const Effect& effect) {
    counters_.acked += effect.acked_end - effect.acked_begin;
    for (std::uint32_t k = effect.acked_begin; k < effect.acked_end; ++k)
        delivery_.acked(deleted_seqs_[k]);
    if (effect.forward_end == effect.forward_begin) return;
    const std::span<const std::string> ids(forward_ids_.data() + effect.forward_begin,
                                           effect.forward_end - effect.forward_begin);
    offline_.forward_acks(message.from, message.to, ids);
    // Remote messages in flight stop here; persistence deletes the stored copies.
    delivery_.acked_remote(message.from, ids);
}

void SessionCore::refuse(const Envelope& message, Status status, std::string_view reason) {
    if (message.origin_gateway.empty()) return; // nobody to tell (not from a gateway)
    ++counters_.refusals_sent;
    outbox_.refuse(message.origin_gateway, message.connection, message.id, message.from, status,
                   reason);
}

void SessionCore::set_limits(const SessionLimits& limits) {
    const bool wider = limits.window > config_.window;
    config_.ack_timeout_ms = limits.ack_timeout_ms;
    config_.retry_limit = limits.retry_limit;
    config_.window = limits.window;
    if (wider) delivery_.mark_all_dirty();
}

// ---------------------------------------------------------------------------------------
// Timers

void SessionCore::on_timer() {
    const std::uint64_t now = clock_.monotonic_ms();
    // First: the reads below may go through the deferred transaction, which this commits.
    if (store_.has_deferred() && now >= saturating_add(deferred_since_ms_, config_.delete_delay_ms))
        flush();
    // Ephemeral requests whose result never came: forget them (never retried).
    ephemeral_.expire(now);
    std::optional<lmdb::Txn> read_txn; // shared by the retries and the handoff timers
    delivery_.on_timer(now, read_txn);
    offline_.on_timer(now, read_txn);
    read_txn.reset();
    count_unacked_writes();
    offline_.scan(now);
    if (now >= next_prune_ms_) next_prune_ms_ = prune_acked_ids() ? now : now + 1000;
    store_.acked().on_timer(now);
    delivery_.pump_dirty_users();
}

// ---------------------------------------------------------------------------------------
// Duplicates the app cannot stop (issue 14, section 3)

void SessionCore::count_unacked_writes() {
    std::vector<UnackedWrite>& writes = delivery_.unacked_writes();
    if (writes.empty()) return;
    // One transaction for the round's writes (the deferred deletions are committed first:
    // there is one writer).
    flush();
    UserQueue& queue = store_.queue();
    const std::uint64_t now = clock_.wall_ms();
    std::optional<lmdb::Txn> own;
    lmdb::Txn& txn = own.emplace(store_.env(), lmdb::Txn::read_write);
    int rc = 0;
    std::size_t given_up = 0;
    for (UnackedWrite& write : writes) {
        IdEntry entry;
        const std::uint64_t seq = write.seq;
        if (queue.find(txn, write.user, std::nullopt, write.id, entry,
                       [seq](std::uint64_t candidate) { return candidate == seq; }) != 0 ||
            entry.seq != seq) {
            write.park = false; // acked (deleted) meanwhile
            continue;
        }
        const std::uint32_t count = queue.writes(txn, write.user, seq) + 1;
        if (count < config_.max_unacked_writes) {
            if (queue.full(rc = queue.set_writes(txn, write.user, seq, count))) break;
            continue;
        }
        // Written max_unacked_writes times without an ack: the app has it (it never acks a
        // message it already has). Counted delivered, deleted, and its id kept as acked.
        if (queue.full(rc = queue.erase(txn, write.user, write.id, seq))) break;
        store_.acked().record(write.user, entry.sender, write.id, now, now);
        write.park = false;
        ++given_up;
    }
    if (rc == 0) rc = own->commit();
    if (rc == 0) {
        ++counters_.commits;
        store_.acked().commit_pending();
    }
    if (rc != 0) {
        store_.acked().discard_pending();
        // LMDB or the disk full: these writes are not counted (the messages come back once
        // more).
        if (full_log_.allow(clock_.monotonic_ms()))
            spdlog::warn("session: store full: {} unacked write(s) not counted", writes.size());
        own.reset();
        given_up = 0;
    }
    counters_.unacked_delivered += given_up;
    // Parked (written, the ack never came): now offered to persistence, with the count.
    std::optional<lmdb::Txn> read_txn;
    for (const UnackedWrite& write : writes)
        if (write.park) offline_.parked(write.user, write.seq, read_txn);
    writes.clear();
}

bool SessionCore::prune_acked_ids() {
    // The marks' own store (not the writer of the deferred transaction): any time.
    const std::uint64_t now = clock_.wall_ms();
    if (now <= config_.dedupe_window_ms) return false;
    std::size_t pruned = 0;
    if (store_.acked().prune(now - config_.dedupe_window_ms, config_.acked_prune_batch, pruned) != 0 ||
        pruned == 0)
        return false; // full: deletions copy pages too; tried again in a second
    counters_.acked_ids_pruned += pruned;
    return pruned == config_.acked_prune_batch;
}

std::optional<std::uint64_t> SessionCore::next_deadline_ms() const {
    std::optional<std::uint64_t> deadline;
    const auto earliest = [&](std::optional<std::uint64_t> candidate) {
        if (candidate && (!deadline || *candidate < *deadline)) deadline = candidate;
    };
    earliest(delivery_.next_deadline_ms());
    earliest(offline_.next_deadline_ms());
    if (store_.has_deferred())
        earliest(saturating_add(deferred_since_ms_, config_.delete_delay_ms));
    return deadline;
}

// ---------------------------------------------------------------------------------------
// Inspection

bool SessionCore::is_stored(std::string_view recipient, std::string_view id,
                            std::optional<std::string_view> sender) {
    std::optional<lmdb::Txn> read_txn;
    IdEntry entry;
    return store_.queue().find(store_.reader(read_txn), recipient, sender, id, entry) == 0;
}

std::size_t SessionCore::stored_count(std::string_view recipient) {
    std::optional<lmdb::Txn> read_txn;
    return store_.queue().count(store_.reader(read_txn), recipient);
}

} // namespace vartalap::session
