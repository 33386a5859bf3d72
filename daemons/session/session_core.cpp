// Thread: the session daemon's thread (see session_core.hpp); tests call it from theirs.
#include "daemons/session/session_core.hpp"

#include "common/log.hpp"
#include "common/user_keys.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace vartalap {
namespace {

constexpr std::string_view kNextSeqKey = "next_seq";

// A random start for request ids: a gateway may answer a request sent before this process
// restarted, and that answer must not match a request of this run. 2^62 values: a collision
// needs a restart to land within the previous run's id range.
std::uint64_t random_request_id_start() {
    std::random_device device;
    const std::uint64_t high = device();
    const std::uint64_t low = device();
    return (((high << 32) | low) >> 2) + 1;
}

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

constexpr std::string_view kStorageFull = "server storage full";
// Bound on rejected_ (seqs persistence answered bad_request): 8 bytes each.
constexpr std::size_t kMaxRejected = 4096;

} // namespace

SessionCore::SessionCore(lmdb::Env& env, Outbox& outbox, const Clock& clock, SessionConfig config)
    : env_(env), outbox_(outbox), clock_(clock), config_(config),
      next_request_id_(random_request_id_start()), deliver_header_(header_frame(Kind::deliver)) {
    // A zero window would never deliver; a zero global bound would starve everyone.
    config_.window = std::max<std::size_t>(config_.window, 1);
    config_.max_in_flight = std::max<std::size_t>(config_.max_in_flight, 1);
    config_.max_ephemeral_pending = std::max<std::size_t>(config_.max_ephemeral_pending, 1);

    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    messages_ = lmdb::Db::open(txn, "messages");
    message_ids_ = lmdb::Db::open(txn, "message_ids");
    meta_ = lmdb::Db::open(txn, "meta");
    std::string_view value;
    if (meta_.get(txn, kNextSeqKey, value) == 0 && value.size() == 8)
        next_seq_ = std::max<std::uint64_t>(lmdb::read_u64_be(value), 1);
    // Database handles opened in a write transaction are valid only once it commits.
    const int rc = txn.commit();
    if (rc != 0) throw lmdb::Error("session: opening the store", rc);

    persistence_ = outbox_.has_persistence();
    // A previous run may have left messages of offline users that were never handed off
    // (it crashed between the commit and the confirmation): the first scan finds them.
    scan_wanted_ = persistence_;
}

// ---------------------------------------------------------------------------------------
// Batches

void SessionCore::handle_batch(std::span<Envelope> batch) {
    if (batch.empty()) return;

    // Most batches write; one made only of connects, disconnects and chat deliver_results
    // does not need the writer lock or a commit.
    bool needs_write = false;
    for (const Envelope& message : batch) {
        if ((message.kind == Kind::deliver && !message.has(flag_ephemeral)) ||
            message.kind == Kind::ack) {
            needs_write = true;
            break;
        }
        if (message.kind == Kind::deliver_result && message.status == Status::ok) {
            auto request = requests_.find(message.request_id);
            if (request != requests_.end()) {
                const InFlight& entry = in_flight_.at(request->second);
                if (entry.system && !entry.remote) {
                    needs_write = true;
                    break;
                }
            }
        }
        if (message.kind == Kind::offline_stored && message.status == Status::ok &&
            handoffs_.contains(message.request_id)) {
            needs_write = true; // the confirmed handoff's local copy is deleted
            break;
        }
    }

    const std::uint64_t seq_before = next_seq_;
    if (!needs_write) {
        apply_writes(nullptr, batch, WriteMode::all);
    } else {
        int rc = 0;
        {
            lmdb::Txn txn(env_, lmdb::Txn::read_write);
            rc = apply_writes(&txn, batch, WriteMode::all) ? txn.commit() : full_rc_;
        } // an uncommitted txn is aborted here
        if (rc != 0) {
            const int first_rc = rc;
            // The map is full. New messages are refused (not durable, so no server_ack: the
            // senders resend), but acks must still free space and stop retries, so the batch
            // is applied again with deletions only.
            next_seq_ = seq_before;
            {
                lmdb::Txn txn(env_, lmdb::Txn::read_write);
                rc = apply_writes(&txn, batch, WriteMode::deletions_only) ? txn.commit()
                                                                          : full_rc_;
            }
            if (rc != 0) {
                // Not even deletions fit. Work out the outcomes without writing, so that
                // connects, results and acks still take effect in memory (retries stop; the
                // acked copies stay stored and a new connection delivers them again, which
                // at-least-once allows).
                lmdb::Txn txn(env_, lmdb::Txn::read_only);
                apply_writes(&txn, batch, WriteMode::none);
            }
            std::uint64_t refused = 0;
            for (const Effect& effect : effects_)
                if (effect.outcome == Outcome::refused) ++refused;
            counters_.map_full_refusals += refused;
            spdlog::error("session: LMDB {} ({} of {} bytes used): refused {} new "
                          "message(s) (no server_ack; the senders are told \"{}\"); {}",
                          first_rc == MDB_TXN_FULL ? "transaction too large (MDB_TXN_FULL)"
                                                   : "map full (MDB_MAP_FULL)",
                          env_.used_bytes(), env_.map_size(), refused, kStorageFull,
                          rc == 0 ? "acks applied"
                                  : "acks could not be written either (copies stay stored "
                                    "and are redelivered on the next connect)");
        }
    }
    apply_effects(batch);
    pump_dirty_users();
}

bool SessionCore::apply_writes(lmdb::Txn* txn, std::span<Envelope> batch, WriteMode mode) {
    effects_.assign(batch.size(), Effect{});
    deleted_seqs_.clear();
    deleted_in_batch_.clear();
    forward_ids_.clear();
    converted_.clear();
    bool stored_any = false;

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
            user_keys::id_key(key_, message.to, message.id);
            std::string_view existing;
            if (message_ids_.get(*txn, key_, existing) == 0) {
                effect.outcome = Outcome::duplicate;
                break;
            }
            if (mode != WriteMode::all) {
                effect.outcome = Outcome::refused;
                break;
            }
            const std::uint64_t seq = next_seq_++;
            // What is stored is what a gateway will be sent, minus the per-attempt fields.
            message.request_id = 0;
            message.retry_count = 0;
            message.status = Status::ok;
            encode_envelope(message, value_);
            user_keys::message_key(key2_, message.to, seq);
            if (full(messages_.put(*txn, key2_, value_))) return false;
            value_.clear();
            lmdb::append_u64_be(value_, seq);
            if (full(message_ids_.put(*txn, key_, value_))) return false;
            effect.outcome = Outcome::stored;
            effect.seq = seq;
            stored_any = true;
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
            for (const std::string& id : message.ids) {
                if (id.empty() || id.size() > config_.max_id_bytes) continue; // never stored
                std::uint64_t seq = 0;
                const int rc = delete_by_id(*txn, message.from, id, seq, mode);
                if (full(rc)) return false;
                if (rc != 0) {
                    // Not here: handed off to persistence (a late ack, or one of a message
                    // fetched from there), or never ours. Persistence deletes its copy if it
                    // has one; without persistence the ack is ignored.
                    if (persistence_) forward_ids_.push_back(id);
                    continue;
                }
                deleted_seqs_.push_back(seq);
                deleted_in_batch_.insert(seq);
                // While a handoff is outstanding persistence may hold a copy as well.
                if (persistence_) {
                    if (auto handoff = handoff_by_seq_.find(seq); handoff != handoff_by_seq_.end()) {
                        forward_ids_.push_back(id);
                        handoffs_.at(handoff->second).acked = true; // idempotent on a retry
                    }
                }
            }
            effect.acked_end = static_cast<std::uint32_t>(deleted_seqs_.size());
            effect.forward_end = static_cast<std::uint32_t>(forward_ids_.size());
            break;
        }
        case Kind::deliver_result: {
            effect.outcome = Outcome::result;
            if (message.status != Status::ok) break;
            auto request = requests_.find(message.request_id);
            if (request == requests_.end()) break;
            const InFlight& entry = in_flight_.at(request->second);
            if (!entry.system) break;
            effect.seq = request->second;
            if (entry.remote) break; // not stored here: persistence is told after the commit
            // A receipt's socket write is its ack: it is done, delete it with this batch.
            if (mode != WriteMode::none) {
                const int rc = delete_by_seq(*txn, entry.user, entry.id, request->second);
                if (full(rc)) return false;
            }
            effect.seq = request->second;
            deleted_in_batch_.insert(request->second);
            break;
        }
        case Kind::connect:
            effect.outcome = Outcome::connect;
            break;
        case Kind::disconnect:
            effect.outcome = Outcome::disconnect;
            break;
        case Kind::offline_stored: {
            auto handoff = handoffs_.find(message.request_id);
            if (handoff == handoffs_.end()) {
                effect.outcome = Outcome::stale; // a late answer to an attempt already settled
                break;
            }
            if (message.status != Status::ok) {
                effect.outcome = Outcome::handoff_failed;
                break;
            }
            const Handoff& confirmed = handoff->second;
            effect.seq = confirmed.seq;
            if (mode == WriteMode::none) {
                effect.outcome = Outcome::handoff_unapplied;
                break;
            }
            // Persistence has it: the local copy goes. If it is being delivered right now,
            // its record is kept for the retries from memory (read before the delete).
            if (in_flight_.contains(confirmed.seq)) {
                user_keys::message_key(key2_, confirmed.user, confirmed.seq);
                std::string_view value;
                if (messages_.get(*txn, key2_, value) == 0)
                    converted_.emplace_back(confirmed.seq, std::string(value));
            }
            const int rc = delete_by_seq(*txn, confirmed.user, confirmed.id, confirmed.seq);
            if (full(rc)) return false;
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

    if (stored_any) {
        value_.clear();
        lmdb::append_u64_be(value_, next_seq_);
        if (full(meta_.put(*txn, kNextSeqKey, value_))) return false;
    }
    return true;
}

bool SessionCore::full(int rc) {
    // Out of space: the write transaction is unusable from here on and must be aborted.
    if (rc != MDB_MAP_FULL && rc != MDB_TXN_FULL) return false;
    full_rc_ = rc;
    return true;
}

int SessionCore::delete_by_id(lmdb::Txn& txn, std::string_view user, std::string_view id,
                              std::uint64_t& seq, WriteMode mode) {
    user_keys::id_key(key_, user, id);
    std::string_view value;
    int rc = message_ids_.get(txn, key_, value);
    if (rc != 0) return rc;
    seq = lmdb::read_u64_be(value); // read before the write below invalidates the view
    if (mode == WriteMode::none) return 0;
    rc = message_ids_.del(txn, key_);
    if (rc != 0) return rc;
    user_keys::message_key(key2_, user, seq);
    rc = messages_.del(txn, key2_);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int SessionCore::delete_by_seq(lmdb::Txn& txn, std::string_view user, std::string_view id,
                               std::uint64_t seq) {
    user_keys::message_key(key2_, user, seq);
    int rc = messages_.del(txn, key2_);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    user_keys::id_key(key_, user, id);
    rc = message_ids_.del(txn, key_);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

bool SessionCore::valid_deliver(const Envelope& message) const {
    if (message.to.empty() || message.to.size() > config_.max_user_bytes) return false;
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
            refuse(message, Status::refused, kStorageFull);
            break;
        case Outcome::ephemeral:
            on_ephemeral(message);
            break;
        case Outcome::acked:
            on_acked(message, effect);
            break;
        case Outcome::result:
            on_result(message, effect.seq);
            break;
        case Outcome::connect:
            on_connect(message);
            break;
        case Outcome::disconnect:
            on_disconnect(message);
            break;
        case Outcome::invalid:
            ++counters_.invalid;
            spdlog::debug("session: dropped invalid {} envelope (id length {}, to length {})",
                          to_string(message.kind), message.id.size(), message.to.size());
            // A sender waiting for its SERVER_ACK (a REST send) learns why none comes.
            if (message.kind == Kind::deliver) refuse(message, Status::bad_request, "invalid message");
            break;
        case Outcome::handed_off:
            on_handed_off(message, effect);
            break;
        case Outcome::handoff_unapplied:
            // Confirmed, but even the deletion did not fit in the map: forget the request;
            // the copy stays and is offered again later (persistence dedupes it).
            erase_handoff(message.request_id);
            scan_not_before_ = saturating_add(clock_.monotonic_ms(), config_.handoff_refused_retry_ms);
            scan_wanted_ = true;
            break;
        case Outcome::handoff_failed:
            on_handoff_failed(message);
            break;
        case Outcome::stale:
            ++counters_.stale_results;
            break;
        case Outcome::fetched:
            on_fetched(message);
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
    auto found = users_.find(message.to);
    if (found == users_.end()) {
        // Offline: with persistence it becomes an offline message now (stored there,
        // announced by push); without, it waits here for the next connect.
        if (persistence_) start_handoff(seq, message);
        return;
    }
    UserState& state = found->second;
    // The hot path: nothing older is waiting, so send straight from the batch without
    // reading back what was just written.
    if (state.caught_up && state.in_flight.size() < config_.window &&
        in_flight_.size() < config_.max_in_flight) {
        state.scan_seq = seq + 1;
        start_delivery(found->first, state, seq, message);
        return;
    }
    // Older messages (or a full window) come first: the pump reads it back in order.
    state.caught_up = false;
    mark_dirty(found->first);
}

void SessionCore::on_ephemeral(Envelope& message) {
    auto found = users_.find(message.to);
    if (found == users_.end()) {
        ++counters_.ephemeral_dropped; // typing for an offline user: meaningless later
        return;
    }
    const UserState& state = found->second;
    const std::uint64_t request_id = next_request_id_++;
    message.request_id = request_id;
    message.connection = state.connection;
    message.retry_count = 0;
    if (!outbox_.deliver(state.gateway, message)) {
        ++counters_.ephemeral_dropped;
        return;
    }
    if (ephemeral_expiry_.size() >= config_.max_ephemeral_pending) {
        ephemeral_requests_.erase(ephemeral_expiry_.front().second); // forget the oldest
        ephemeral_expiry_.pop_front();
    }
    ephemeral_requests_.emplace(request_id, EphemeralRequest{found->first, state.epoch});
    ephemeral_expiry_.emplace_back(
        saturating_add(clock_.monotonic_ms(), config_.send_timeout_ms), request_id);
}

void SessionCore::on_connect(const Envelope& message) {
    const std::string& user = message.from;
    if (user.empty() || user.size() > config_.max_user_bytes || message.origin_gateway.empty()) {
        ++counters_.invalid;
        return;
    }
    if (!outbox_.knows_gateway(message.origin_gateway)) {
        ++counters_.invalid;
        spdlog::warn("session: connect from unknown gateway '{}' ignored (topology mismatch?)",
                     message.origin_gateway);
        return;
    }
    ++counters_.connects;
    auto found = users_.find(user);
    if (found != users_.end()) {
        UserState& old = found->second;
        if (old.gateway == message.origin_gateway && old.connection == message.connection)
            return; // repeated connect for the current connection: nothing changes
        // One live socket per user (PROTOCOL.md): the newer connection wins.
        outbox_.close_connection(old.gateway, old.connection, user);
        while (!old.in_flight.empty()) erase_in_flight(*old.in_flight.begin());
    } else {
        if (users_.size() >= config_.max_online_users) {
            ++counters_.user_limit_refusals;
            spdlog::warn("session: {} users online, the configured limit: refusing a "
                         "connection (closed; its messages stay stored)",
                         users_.size());
            outbox_.close_connection(message.origin_gateway, message.connection, user);
            return;
        }
        found = users_.emplace(user, UserState{}).first;
    }
    UserState& state = found->second;
    state.gateway = message.origin_gateway;
    state.connection = message.connection;
    state.epoch = next_epoch_++;
    // From the oldest stored message, parked ones included: a new connection is the moment
    // parked messages are tried again.
    state.scan_seq = 0;
    state.caught_up = false;
    // Then the user's queue in persistence, from its start (what earlier connections did
    // not get acked is there again).
    state.remote_cursor = 0;
    state.remote_done = !persistence_;
    state.fetch_request_id = 0; // an answer to an older connection's fetch is stale
    mark_dirty(user);
}

void SessionCore::on_disconnect(const Envelope& message) {
    ++counters_.disconnects;
    auto found = users_.find(message.from);
    if (found == users_.end()) return;
    // A disconnect of a connection the user already replaced is stale: ignore it.
    if (found->second.gateway != message.origin_gateway ||
        found->second.connection != message.connection)
        return;
    go_offline(found->first);
}

void SessionCore::on_result(const Envelope& result, std::uint64_t deleted_seq) {
    if (auto ephemeral = ephemeral_requests_.find(result.request_id);
        ephemeral != ephemeral_requests_.end()) {
        const EphemeralRequest request = std::move(ephemeral->second);
        ephemeral_requests_.erase(ephemeral);
        if (result.status == Status::ok) {
            ++counters_.delivered;
        } else {
            ++counters_.ephemeral_dropped;
            auto user = users_.find(request.user);
            if (result.status == Status::not_connected && user != users_.end() &&
                user->second.epoch == request.epoch)
                go_offline(request.user);
        }
        return;
    }

    auto request = requests_.find(result.request_id);
    if (request == requests_.end()) {
        // Answer to a request that timed out, or of a connection that was replaced.
        ++counters_.stale_results;
        return;
    }
    const std::uint64_t seq = request->second;
    InFlight& entry = in_flight_.at(seq);
    requests_.erase(request);
    entry.request_id = 0;
    const std::uint64_t now = clock_.monotonic_ms();

    switch (result.status) {
    case Status::ok:
        ++counters_.delivered;
        if (!entry.written && entry.entered)
            latency_.delivery.observe_ms(now - std::min(now, entry.entered_ms));
        entry.written = true;
        if (entry.system) {
            // Deleted in this batch's transaction (deleted_seq == seq), unless the map was
            // so full that even deletions failed; then it is redelivered on a new connect.
            // A remote receipt is deleted by persistence, told here.
            (void)deleted_seq;
            if (entry.remote) {
                const std::string ids[1] = {entry.id};
                forward_acks(entry.user, ids);
            }
            const std::string user = entry.user;
            erase_in_flight(seq);
            mark_dirty(user);
        } else {
            set_deadline(seq, entry, Phase::awaiting_ack,
                         saturating_add(now, config_.ack_timeout_ms));
        }
        break;
    case Status::not_connected: {
        // In-flight entries always belong to the user's current connection (a connect
        // clears the old ones), so the user is gone. Everything stays stored.
        const std::string user = entry.user;
        go_offline(user);
        break;
    }
    default:
        // overloaded (the client's write queue is full) or anything unexpected: not
        // written; try again after a pause without counting it as a timeout.
        ++counters_.overloaded;
        set_deadline(seq, entry, Phase::backoff, saturating_add(now, config_.overload_retry_ms));
        break;
    }
}

void SessionCore::go_offline(const std::string& user_name) {
    auto found = users_.find(user_name);
    if (found == users_.end()) return;
    const std::string user = found->first; // user_name may refer to an entry erased below
    // Local messages of the user (in flight, or not read yet) are offline messages now: the
    // handoff scan takes them to persistence.
    bool local_left = !found->second.caught_up;
    for (const std::uint64_t key : found->second.in_flight)
        if (!in_flight_.at(key).remote) local_left = true;
    if (persistence_ && local_left) scan_wanted_ = true;
    while (!found->second.in_flight.empty()) erase_in_flight(*found->second.in_flight.begin());
    starved_users_.erase(user);
    users_.erase(found);
}

void SessionCore::on_acked(const Envelope& message, const Effect& effect) {
    counters_.acked += effect.acked_end - effect.acked_begin;
    for (std::uint32_t k = effect.acked_begin; k < effect.acked_end; ++k) {
        auto entry = in_flight_.find(deleted_seqs_[k]);
        if (entry == in_flight_.end()) continue; // parked or offline: just deleted
        observe_ack(entry->second);
        const std::string user = entry->second.user;
        erase_in_flight(deleted_seqs_[k]);
        mark_dirty(user);
    }
    if (effect.forward_end == effect.forward_begin) return;
    const std::span<const std::string> ids(forward_ids_.data() + effect.forward_begin,
                                           effect.forward_end - effect.forward_begin);
    forward_acks(message.from, ids);
    // Remote messages in flight stop here; persistence deletes the stored copies.
    auto user = users_.find(message.from);
    if (user == users_.end()) return;
    bool erased = false;
    for (const std::string& id : ids) {
        auto remote = user->second.remote_ids.find(id);
        if (remote == user->second.remote_ids.end()) continue;
        observe_ack(in_flight_.at(remote->second));
        erase_in_flight(remote->second);
        erased = true;
    }
    if (erased) mark_dirty(user->first);
}

void SessionCore::observe_ack(const InFlight& entry) {
    if (!entry.entered) return;
    const std::uint64_t now = clock_.monotonic_ms();
    const std::uint64_t since_entered = now - std::min(now, entry.entered_ms);
    latency_.ack.observe_ms(since_entered);
    if (entry.written) return;
    // The client's ack overtook the gateway's deliver_result (common on a fast path): the
    // ack proves the delivery, so it counts as one now (the late result is then stale).
    ++counters_.delivered;
    latency_.delivery.observe_ms(since_entered);
}

void SessionCore::set_limits(const SessionLimits& limits) {
    const bool wider = limits.window > config_.window;
    config_.ack_timeout_ms = limits.ack_timeout_ms;
    config_.retry_limit = limits.retry_limit;
    config_.window = limits.window;
    if (!wider) return;
    std::vector<std::string> online;
    online.reserve(users_.size());
    for (const auto& [user, state] : users_) online.push_back(user);
    for (const std::string& user : online) mark_dirty(user);
}

void SessionCore::refuse(const Envelope& message, Status status, std::string_view reason) {
    if (message.origin_gateway.empty()) return; // nobody to tell (not from a gateway)
    ++counters_.refusals_sent;
    outbox_.refuse(message.origin_gateway, message.connection, message.id, message.from, status,
                   reason);
}

void SessionCore::forward_acks(std::string_view user, std::span<const std::string> ids) {
    if (outbox_.ack_to_persistence(user, ids)) {
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
// Delivery

void SessionCore::start_delivery(const std::string& user, UserState& state, std::uint64_t seq,
                                 Envelope& message) {
    InFlight& entry = in_flight_[seq];
    entry.user = user;
    entry.id = message.id;
    entry.epoch = state.epoch;
    entry.system = message.has(flag_system);
    state.in_flight.insert(seq);
    send_attempt(seq, entry, state, message);
}

void SessionCore::send_attempt(std::uint64_t seq, InFlight& entry, const UserState& state,
                               Envelope& message) {
    const std::uint64_t request_id = next_request_id_++;
    message.kind = Kind::deliver;
    message.request_id = request_id;
    message.connection = state.connection;
    message.retry_count = entry.retry_count;
    message.status = Status::ok;
    const std::uint64_t now = clock_.monotonic_ms();
    if (!entry.entered) {
        entry.entered = true;
        entry.entered_ms = now;
    }
    if (outbox_.deliver(state.gateway, message)) {
        entry.request_id = request_id;
        requests_.emplace(request_id, seq);
        set_deadline(seq, entry, Phase::sending, saturating_add(now, config_.send_timeout_ms));
    } else {
        // Our own queue to that gateway is full (or it is unknown): the same as overloaded.
        ++counters_.overloaded;
        entry.request_id = 0;
        set_deadline(seq, entry, Phase::backoff, saturating_add(now, config_.overload_retry_ms));
    }
}

void SessionCore::set_deadline(std::uint64_t seq, InFlight& entry, Phase phase,
                               std::uint64_t deadline) {
    timers_.erase({entry.deadline_ms, seq}); // no-op for a new entry
    entry.phase = phase;
    entry.deadline_ms = deadline;
    timers_.emplace(deadline, seq);
}

void SessionCore::erase_in_flight(std::uint64_t seq) {
    auto found = in_flight_.find(seq);
    if (found == in_flight_.end()) return;
    InFlight& entry = found->second;
    timers_.erase({entry.deadline_ms, seq});
    if (entry.request_id != 0) requests_.erase(entry.request_id);
    auto user = users_.find(entry.user);
    if (user != users_.end()) user->second.in_flight.erase(seq);
    if (entry.remote) {
        remote_bytes_ -= std::min(remote_bytes_, entry.remote->payload.size());
        if (user != users_.end()) user->second.remote_ids.erase(entry.id);
    }
    in_flight_.erase(found);
}

void SessionCore::mark_dirty(const std::string& user) {
    auto found = users_.find(user);
    if (found == users_.end() || found->second.dirty) return;
    found->second.dirty = true;
    dirty_users_.push_back(found->first);
}

bool SessionCore::below_global_limits() const {
    return in_flight_.size() < config_.max_in_flight && remote_bytes_ < config_.max_remote_bytes;
}

void SessionCore::pump_dirty_users() {
    // Users that waited for a global slot go first once slots are free again.
    if (!starved_users_.empty() && below_global_limits()) {
        if (in_flight_limit_logged_) {
            spdlog::info("session: in-flight messages below the limit again ({}), resuming",
                         config_.max_in_flight);
            in_flight_limit_logged_ = false;
        }
        for (const std::string& user : starved_users_) mark_dirty(user);
        starved_users_.clear();
    }
    if (dirty_users_.empty()) return;
    std::optional<lmdb::Txn> read_txn; // one read transaction for every pump of this round
    // pump() never adds to dirty_users_ (starve() uses starved_users_), so the vector is
    // stable while it is walked.
    for (std::size_t i = 0; i < dirty_users_.size(); ++i) {
        auto found = users_.find(dirty_users_[i]);
        if (found == users_.end()) continue; // went offline meanwhile
        found->second.dirty = false;
        pump(found->first, found->second, read_txn);
    }
    dirty_users_.clear();
}

void SessionCore::pump(const std::string& user, UserState& state,
                       std::optional<lmdb::Txn>& read_txn) {
    // Local messages first, then (once none is waiting) the user's queue in persistence.
    if (!state.caught_up) pump_local(user, state, read_txn);
    if (state.caught_up) pump_remote(user, state);
}

void SessionCore::pump_local(const std::string& user, UserState& state,
                             std::optional<lmdb::Txn>& read_txn) {
    if (state.in_flight.size() >= config_.window) return;
    if (in_flight_.size() >= config_.max_in_flight) {
        starve(user);
        return;
    }
    if (!read_txn) read_txn.emplace(env_, lmdb::Txn::read_only);
    lmdb::Cursor cursor(*read_txn, messages_);
    user_keys::user_prefix(prefix_, user);
    user_keys::message_key(key2_, user, state.scan_seq);
    // Reads at most `window` messages of this user: a backlog of any size stays on disk.
    bool positioned = cursor.seek(key2_);
    while (state.in_flight.size() < config_.window) {
        const std::string_view key = positioned ? cursor.key() : std::string_view{};
        if (!positioned || key.size() != prefix_.size() + 8 || !key.starts_with(prefix_)) {
            state.caught_up = true;
            return;
        }
        if (in_flight_.size() >= config_.max_in_flight) {
            starve(user);
            return;
        }
        const std::uint64_t seq = lmdb::read_u64_be(key.substr(prefix_.size()));
        state.scan_seq = seq + 1;
        std::string error;
        auto decoded = decode_envelope(deliver_header_, cursor.value(), &error);
        if (!decoded) {
            // We wrote it; an undecodable record means corruption. Skip it rather than stall
            // the user's queue behind it.
            spdlog::error("session: undecodable stored message seq {} of a user: {}", seq,
                          error);
            positioned = cursor.next();
            continue;
        }
        if (!in_flight_.contains(seq)) start_delivery(user, state, seq, *decoded);
        positioned = cursor.next();
    }
}

void SessionCore::pump_remote(const std::string& user, UserState& state) {
    if (state.remote_done || state.fetch_request_id != 0) return; // one fetch at a time
    if (state.in_flight.size() >= config_.window) return; // the next ack frees the window
    if (!below_global_limits()) {
        starve(user);
        return;
    }
    // At most the free window (and the global room): the user's queue stays in persistence
    // and arrives batch by batch as acks come, so a backlog of any size costs bounded memory
    // and bounded work per turn.
    const std::size_t room = std::min(config_.window - state.in_flight.size(),
                                      config_.max_in_flight - in_flight_.size());
    Envelope fetch;
    fetch.kind = Kind::fetch;
    fetch.to = user;
    fetch.cursor = state.remote_cursor;
    fetch.limit = static_cast<std::uint32_t>(std::min<std::size_t>(room, UINT32_MAX));
    fetch.request_id = next_request_id_++;
    const bool queued = outbox_.to_persistence(fetch);
    // Not queued (our queue to that shard is full): the "timeout" comes soon and retries.
    const std::uint64_t deadline = saturating_add(
        clock_.monotonic_ms(), queued ? config_.fetch_timeout_ms : config_.overload_retry_ms);
    fetches_.emplace(fetch.request_id, FetchRequest{user, state.epoch, deadline});
    fetch_timers_.emplace(deadline, fetch.request_id);
    state.fetch_request_id = fetch.request_id;
    if (queued) ++counters_.fetches;
}

void SessionCore::starve(const std::string& user) {
    ++counters_.in_flight_limit_hits;
    if (!in_flight_limit_logged_) {
        spdlog::warn("session: {} messages in flight, the configured limit: users with a "
                     "backlog wait for acks before more is sent",
                     in_flight_.size());
        in_flight_limit_logged_ = true;
    }
    starved_users_.insert(user);
}

// ---------------------------------------------------------------------------------------
// Timers

void SessionCore::on_timer() {
    const std::uint64_t now = clock_.monotonic_ms();

    // Ephemeral requests whose result never came: forget them (never retried).
    while (!ephemeral_expiry_.empty() && ephemeral_expiry_.front().first <= now) {
        ephemeral_requests_.erase(ephemeral_expiry_.front().second);
        ephemeral_expiry_.pop_front();
    }

    due_.clear();
    for (auto timer = timers_.begin(); timer != timers_.end() && timer->first <= now; ++timer)
        due_.push_back(timer->second);

    std::optional<lmdb::Txn> read_txn;
    for (const std::uint64_t seq : due_) {
        auto found = in_flight_.find(seq);
        if (found == in_flight_.end()) continue;
        InFlight& entry = found->second;
        if (entry.phase != Phase::backoff) {
            if (entry.phase == Phase::sending) {
                // The gateway did not answer: treat the attempt as not delivered. A late
                // answer no longer matches a request and is ignored.
                ++counters_.send_timeouts;
                requests_.erase(entry.request_id);
                entry.request_id = 0;
            }
            if (entry.retry_count >= config_.retry_limit) {
                const std::string user = entry.user;
                if (entry.remote) {
                    // Fetched from persistence: it is still stored there, and the next
                    // connection fetches it again. Just stop trying.
                    ++counters_.remote_parked;
                    erase_in_flight(seq);
                    mark_dirty(user);
                    continue;
                }
                // Parked: it is an offline message now. With persistence it is handed off;
                // without, it stays stored here. Either way it is tried again on the
                // user's next connection.
                ++counters_.parked;
                spdlog::debug("session: message seq {} parked after {} attempts", seq,
                              entry.retry_count + 1);
                erase_in_flight(seq);
                if (persistence_) {
                    if (!read_txn) read_txn.emplace(env_, lmdb::Txn::read_only);
                    if (auto record = read_record(*read_txn, user, seq)) start_handoff(seq, *record);
                }
                mark_dirty(user);
                continue;
            }
            ++entry.retry_count;
            ++counters_.retried;
        }
        if (!read_txn) read_txn.emplace(env_, lmdb::Txn::read_only);
        resend(seq, entry, *read_txn);
    }
    if (persistence_) {
        handoff_timers(now, read_txn);
        fetch_timers(now);
    }
    read_txn.reset();
    if (persistence_) scan_for_handoffs(now);
    pump_dirty_users();
}

void SessionCore::resend(std::uint64_t seq, InFlight& entry, lmdb::Txn& read_txn) {
    auto user = users_.find(entry.user);
    if (entry.remote && user != users_.end()) {
        send_attempt(seq, entry, user->second, *entry.remote); // not stored here: from memory
        return;
    }
    user_keys::message_key(key2_, entry.user, seq);
    std::string_view value;
    std::optional<Envelope> decoded;
    if (user != users_.end() && messages_.get(read_txn, key2_, value) == 0)
        decoded = decode_envelope(deliver_header_, value);
    if (!decoded) {
        // Deleted meanwhile (or unreadable): nothing left to deliver.
        const std::string name = entry.user;
        erase_in_flight(seq);
        mark_dirty(name);
        return;
    }
    send_attempt(seq, entry, user->second, *decoded);
}

std::optional<std::uint64_t> SessionCore::next_deadline_ms() const {
    std::optional<std::uint64_t> earliest;
    for (const auto* timers : {&timers_, &handoff_timers_, &fetch_timers_})
        if (!timers->empty() && (!earliest || timers->begin()->first < *earliest))
            earliest = timers->begin()->first;
    return earliest;
}

// ---------------------------------------------------------------------------------------
// The offline path

void SessionCore::start_handoff(std::uint64_t seq, Envelope& record) {
    if (handoff_by_seq_.contains(seq)) return; // one request per message at a time
    if (handoffs_.size() >= config_.max_handoffs) {
        // The bound's policy: the message stays stored here; the scan offers it once
        // confirmations free a slot.
        ++counters_.handoffs_deferred;
        scan_wanted_ = true;
        return;
    }
    const std::uint64_t request_id = next_request_id_++;
    Handoff& handoff = handoffs_[request_id];
    handoff.user = record.to;
    handoff.id = record.id;
    handoff.seq = seq;
    handoff_by_seq_.emplace(seq, request_id);
    rejected_.erase(seq);
    ++counters_.handoffs_sent;
    send_handoff(request_id, handoff, record);
}

void SessionCore::send_handoff(std::uint64_t request_id, Handoff& handoff, Envelope& record) {
    // The stored deliver envelope, as an offline_store request. The same request_id on every
    // attempt: a late answer to an earlier attempt is as good a confirmation as any.
    record.kind = Kind::offline_store;
    record.request_id = request_id;
    record.retry_count = 0;
    record.status = Status::ok;
    const bool queued = outbox_.to_persistence(record);
    const std::uint64_t deadline = saturating_add(
        clock_.monotonic_ms(), queued ? config_.handoff_timeout_ms : config_.overload_retry_ms);
    handoff_timers_.erase({handoff.deadline_ms, request_id}); // no-op for a new one
    handoff.deadline_ms = deadline;
    handoff_timers_.emplace(deadline, request_id);
}

void SessionCore::erase_handoff(std::uint64_t request_id) {
    auto found = handoffs_.find(request_id);
    if (found == handoffs_.end()) return; // a second answer in the same batch
    handoff_timers_.erase({found->second.deadline_ms, request_id});
    handoff_by_seq_.erase(found->second.seq);
    handoffs_.erase(found);
}

void SessionCore::on_handed_off(const Envelope& reply, const Effect& effect) {
    auto handoff = handoffs_.find(reply.request_id);
    if (handoff == handoffs_.end()) return; // answered twice in one batch
    ++counters_.handed_off;
    if (handoff->second.acked) {
        // Acked meanwhile: the first forward may have overtaken the message; this one
        // cannot (persistence has committed it).
        const std::string user = handoff->second.user;
        const std::string ids[1] = {handoff->second.id};
        erase_handoff(reply.request_id);
        forward_acks(user, ids);
        return;
    }
    erase_handoff(reply.request_id);
    const std::uint64_t seq = effect.seq;
    auto entry = in_flight_.find(seq);
    if (entry == in_flight_.end() || entry->second.remote) return;
    // It is being delivered from the local copy, which is gone now: it goes on from memory,
    // as a remote entry (a fetch of the same id is then recognised and skipped).
    InFlight& in_flight = entry->second;
    std::optional<Envelope> decoded;
    for (const auto& [converted_seq, record] : converted_)
        if (converted_seq == seq) decoded = decode_envelope(deliver_header_, record);
    auto user = users_.find(in_flight.user);
    if (!decoded || user == users_.end()) {
        const std::string name = in_flight.user;
        erase_in_flight(seq);
        mark_dirty(name);
        return;
    }
    remote_bytes_ += decoded->payload.size();
    in_flight.remote = std::make_unique<Envelope>(std::move(*decoded));
    user->second.remote_ids.emplace(in_flight.id, seq);
}

void SessionCore::on_handoff_failed(const Envelope& reply) {
    auto found = handoffs_.find(reply.request_id);
    if (found == handoffs_.end()) return;
    ++counters_.handoff_refusals;
    const std::uint64_t seq = found->second.seq;
    erase_handoff(reply.request_id);
    // Either way the local copy stays (the message is still durable here).
    if (reply.status == Status::refused) {
        // Persistence is full: offer it (and the rest) again after a pause.
        scan_not_before_ = saturating_add(clock_.monotonic_ms(), config_.handoff_refused_retry_ms);
        scan_wanted_ = true;
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

void SessionCore::on_fetched(Envelope& reply) {
    auto request = fetches_.find(reply.request_id);
    if (request == fetches_.end()) {
        ++counters_.stale_results; // timed out and fetched again
        return;
    }
    const FetchRequest fetch = std::move(request->second);
    fetches_.erase(request);
    fetch_timers_.erase({fetch.deadline_ms, reply.request_id});
    auto found = users_.find(fetch.user);
    if (found == users_.end() || found->second.epoch != fetch.epoch ||
        found->second.fetch_request_id != reply.request_id) {
        ++counters_.stale_results; // the user went offline or reconnected meanwhile
        return;
    }
    const std::string& user = found->first;
    UserState& state = found->second;
    state.fetch_request_id = 0;
    if (reply.status != Status::ok) {
        spdlog::warn("session: persistence refused a fetch ({}: {}); the user's stored "
                     "messages wait for the next connection",
                     to_string(reply.status), reply.error);
        state.remote_done = true;
        return;
    }

    std::optional<lmdb::Txn> read_txn;
    bool all_taken = true;
    for (const std::string& item : reply.items) {
        if (state.in_flight.size() >= config_.window || in_flight_.size() >= config_.max_in_flight) {
            // The window filled meanwhile (new messages went straight out): the rest is
            // fetched again from the cursor when it frees.
            all_taken = false;
            break;
        }
        auto decoded = decode_envelope(deliver_header_, item);
        if (!decoded || decoded->to != user || decoded->id.empty() ||
            decoded->id.size() > config_.max_id_bytes) {
            ++counters_.invalid;
            if (decoded) state.remote_cursor = std::max(state.remote_cursor, decoded->cursor);
            continue;
        }
        state.remote_cursor = std::max(state.remote_cursor, decoded->cursor);
        // Already in flight (handed off while being delivered), or still stored here (its
        // handoff is being confirmed): the local path delivers it; never twice at once.
        if (state.remote_ids.contains(decoded->id)) continue;
        if (!read_txn) read_txn.emplace(env_, lmdb::Txn::read_only);
        user_keys::id_key(key_, user, decoded->id);
        std::string_view ignored;
        if (message_ids_.get(*read_txn, key_, ignored) == 0) continue;

        const std::uint64_t key = next_remote_key_++;
        InFlight& entry = in_flight_[key];
        entry.user = user;
        entry.id = decoded->id;
        entry.epoch = state.epoch;
        entry.system = decoded->has(flag_system);
        remote_bytes_ += decoded->payload.size();
        entry.remote = std::make_unique<Envelope>(std::move(*decoded));
        state.in_flight.insert(key);
        state.remote_ids.emplace(entry.id, key);
        ++counters_.fetched_items;
        send_attempt(key, entry, state, *entry.remote);
    }
    if (all_taken) {
        state.remote_cursor = std::max(state.remote_cursor, reply.cursor);
        // `limit` of a fetched reply: non-zero while more messages follow the cursor.
        if (reply.limit == 0) state.remote_done = true;
    }
    mark_dirty(user); // more fits in the window: fetch the next batch
}

void SessionCore::handoff_timers(std::uint64_t now, std::optional<lmdb::Txn>& read_txn) {
    due_.clear();
    for (auto timer = handoff_timers_.begin();
         timer != handoff_timers_.end() && timer->first <= now; ++timer)
        due_.push_back(timer->second);
    for (const std::uint64_t request_id : due_) {
        auto found = handoffs_.find(request_id);
        if (found == handoffs_.end()) continue;
        Handoff& handoff = found->second;
        if (!read_txn) read_txn.emplace(env_, lmdb::Txn::read_only);
        auto record = read_record(*read_txn, handoff.user, handoff.seq);
        if (!record) {
            erase_handoff(request_id); // acked (deleted) meanwhile: nothing to hand off
            continue;
        }
        // No answer (lost, or persistence is slow or down): ask again.
        ++counters_.handoff_resends;
        send_handoff(request_id, handoff, *record);
    }
}

void SessionCore::fetch_timers(std::uint64_t now) {
    while (!fetch_timers_.empty() && fetch_timers_.begin()->first <= now) {
        const std::uint64_t request_id = fetch_timers_.begin()->second;
        fetch_timers_.erase(fetch_timers_.begin());
        auto request = fetches_.find(request_id);
        if (request == fetches_.end()) continue;
        const FetchRequest fetch = std::move(request->second);
        fetches_.erase(request);
        auto user = users_.find(fetch.user);
        if (user == users_.end() || user->second.epoch != fetch.epoch ||
            user->second.fetch_request_id != request_id)
            continue;
        // No answer: fetch again from the same cursor (a late answer is now stale).
        user->second.fetch_request_id = 0;
        mark_dirty(user->first);
    }
}

void SessionCore::scan_for_handoffs(std::uint64_t now) {
    if (!scan_active_) {
        if (!scan_wanted_ || now < scan_not_before_) return;
        scan_active_ = true; // a new pass, from the start of the store
        scan_wanted_ = false;
        scan_position_.clear();
    }
    if (handoffs_.size() >= config_.max_handoffs) return; // resumes when answers free slots

    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    lmdb::Cursor cursor(txn, messages_);
    bool positioned = scan_position_.empty() ? cursor.first() : cursor.seek(scan_position_);
    std::string user;
    for (std::size_t visited = 0; positioned && visited < config_.handoff_scan_budget; ++visited) {
        const std::string_view key = cursor.key();
        const std::size_t length = user_keys::user_length_at(key, 0);
        if (key.size() != 2 + length + 8) { // not a message key (never written by us)
            positioned = cursor.next();
            continue;
        }
        user.assign(key.substr(2, length));
        if (users_.contains(user)) {
            // Online: its messages are delivered from here. Skip past all of them.
            user_keys::message_key(key2_, user, UINT64_MAX);
            positioned = cursor.seek(key2_);
            continue;
        }
        const std::uint64_t seq = lmdb::read_u64_be(key.substr(2 + length));
        if (!handoff_by_seq_.contains(seq) && !rejected_.contains(seq)) {
            if (handoffs_.size() >= config_.max_handoffs) {
                scan_position_.assign(key); // resume here
                return;
            }
            auto record = decode_envelope(deliver_header_, cursor.value());
            if (record) start_handoff(seq, *record);
        }
        positioned = cursor.next();
    }
    if (positioned) {
        scan_position_.assign(cursor.key()); // the budget is spent: resume at the next tick
    } else {
        scan_active_ = false; // a whole pass done
    }
}

std::optional<Envelope> SessionCore::read_record(lmdb::Txn& txn, std::string_view user,
                                                 std::uint64_t seq) {
    user_keys::message_key(key2_, user, seq);
    std::string_view value;
    if (messages_.get(txn, key2_, value) != 0) return std::nullopt;
    return decode_envelope(deliver_header_, value);
}

// ---------------------------------------------------------------------------------------
// Inspection

std::size_t SessionCore::in_flight_of(std::string_view user) const {
    auto found = users_.find(std::string(user));
    return found == users_.end() ? 0 : found->second.in_flight.size();
}

bool SessionCore::is_stored(std::string_view recipient, std::string_view id) const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    std::string key;
    user_keys::id_key(key, recipient, id);
    std::string_view value;
    return message_ids_.get(txn, key, value) == 0;
}

std::size_t SessionCore::stored_count(std::string_view recipient) const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    return user_keys::count_messages(txn, messages_, recipient);
}

} // namespace vartalap
