// Thread: the persistence daemon's thread (see persistence_core.hpp); tests call it from theirs.
#include "daemons/persistence/persistence_core.hpp"

#include "common/log.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

namespace vartalap::persistence {
namespace {

using json = nlohmann::json;

constexpr const char* kStoreFull = "offline store full";
// The envelope decoder's array limit (DecodeLimits::max_array_items): a fetched reply with
// more items would be dropped by the session as malformed.
constexpr std::uint32_t kMaxItemsPerReply = 10000;

// Whether a client message JSON says head.contentType == "notification" (group events and
// other notifications get no push, PROTOCOL.md "Push").
bool is_notification_content(std::string_view payload) {
    const json message = json::parse(payload, nullptr, false);
    if (!message.is_object()) return false;
    const auto head = message.find("head");
    if (head == message.end() || !head->is_object()) return false;
    const auto type = head->find("contentType");
    return type != head->end() && type->is_string() &&
           type->get_ref<const std::string&>() == "notification";
}

} // namespace

lmdb::EnvOptions persistence_env_options(const PersistenceConfig& config) {
    lmdb::EnvOptions options;
    options.map_size = config.map_size_mb << 20;
    options.no_sync = config.durability == Durability::process;
    return options;
}

lmdb::Env& PersistenceCore::reader_checked(lmdb::Env& env, PersistenceCounters& counters) {
    // Stale reader slots of processes that died holding a read transaction pin old pages
    // (the map fills up although little is stored): clear them before the first write.
    counters.stale_readers += static_cast<std::uint64_t>(env.reader_check());
    return env;
}

PersistenceCore::PersistenceCore(lmdb::Env& env, PersistenceOutbox& outbox, const Clock& clock,
                                 PersistenceConfig config)
    : env_(env), outbox_(outbox), clock_(clock), config_(config),
      queue_(reader_checked(env, counters_), "ids", /*ids_hold_time=*/true, "persistence",
             [](std::string_view record) -> std::optional<std::string> {
                 auto message = decode_envelope(header_frame(Kind::deliver), record);
                 if (!message) return std::nullopt;
                 return std::move(message->from);
             }),
      acked_(env), deliver_header_(header_frame(Kind::deliver)) {
    set_limits(config_.ttl_seconds, config_.fetch_limit_max, config_.rest_default_limit);
    config_.expiry_batch = std::max<std::size_t>(config_.expiry_batch, 1);
    config_.max_map_size_mb = std::max(config_.max_map_size_mb, config_.map_size_mb);

    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    expiry_ = lmdb::Db::open(txn, "expiry");
    // Database handles opened in a write transaction are valid only once it commits.
    const int rc = txn.commit();
    if (rc != 0) throw lmdb::Error("persistence: opening the store", rc);

    const std::uint64_t now = clock_.monotonic_ms();
    next_expiry_ms_ = now; // the first tick expires what aged while the daemon was down
    next_sync_ms_ = now + config_.sync_interval_ms;
    next_reader_check_ms_ = now + config_.reader_check_interval_ms;
}

// ---------------------------------------------------------------------------------------
// Batches

void PersistenceCore::handle_batch(std::span<PersistenceInput> batch) {
    if (batch.empty()) return;

    bool needs_write = false;
    for (const PersistenceInput& input : batch) {
        if (input.envelope.kind == Kind::offline_store || input.envelope.kind == Kind::ack) {
            needs_write = true;
            break;
        }
    }

    if (!needs_write) {
        classify_without_writes(batch, nullptr);
        acked_.commit_pending(); // nothing pending: ends the read snapshot
    } else {
        maybe_grow(/*must=*/false);
        // Growth first: a full map that may grow is not a refusal. Full: new messages are
        // refused (the session keeps its copy and tries again later), but acks still free
        // space (the queue's map-full fallback).
        const BatchWrite write = queue_.write_batch(
            [&](lmdb::Txn* txn, WriteMode mode) {
                acked_.discard_pending(); // each pass works the whole batch out again
                return apply_writes(*txn, batch, mode);
            },
            [&] { return maybe_grow(/*must=*/true); });
        if (write.rc == 0) {
            ++counters_.commits;
            unsynced_ = true;
            acked_.commit_pending();
        } else {
            acked_.discard_pending();
        }
        if (write.first_rc != 0) {
            const int first_rc = write.first_rc;
            const int rc = write.rc;
            std::uint64_t refused = 0;
            for (const Effect& effect : effects_)
                if (effect.outcome == Outcome::refused) ++refused;
            // A full disk (lmdb::kDiskFull: no map growth helps) is the same case.
            const bool disk = first_rc == lmdb::kDiskFull;
            (disk ? counters_.disk_full_refusals : counters_.map_full_refusals) += refused;
            // Logged for the first and then every 100th full batch: a full store under load
            // must not flood the journal.
            if (count_sampled(full_log_count_, 100))
                spdlog::error("persistence: {} ({} of {} bytes used): refused {} "
                              "message(s) with \"{}\"; {} ({} full batches so far)",
                              disk ? "disk full (ENOSPC: " + env_.path().string() + ")"
                              : first_rc == MDB_TXN_FULL
                                  ? std::string("LMDB transaction too large (MDB_TXN_FULL)")
                                  : std::string("LMDB map full (MDB_MAP_FULL)"),
                              env_.used_bytes(), env_.map_size(), refused, kStoreFull,
                              rc == 0 ? "acks applied" : "acks could not be applied either",
                              full_log_count_);
        }
    }
    send_results(batch);
}

void PersistenceCore::classify_without_writes(std::span<PersistenceInput> batch,
                                              lmdb::Txn* read_txn) {
    // Outcomes only, from committed state: a duplicate is still ok, a new message refused.
    effects_.assign(batch.size(), Effect{});
    std::optional<lmdb::Txn> own_txn;
    lmdb::Txn* txn = read_txn;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const Envelope& message = batch[i].envelope;
        Effect& effect = effects_[i];
        effect.request_id = message.request_id;
        switch (message.kind) {
        case Kind::offline_store: {
            if (const char* why = invalid_store(message)) {
                effect.outcome = Outcome::invalid;
                effect.error = why;
                break;
            }
            if (!txn) txn = &own_txn.emplace(env_, lmdb::Txn::read_only);
            effect.outcome = queue_.contains(*txn, message.to, message.from, message.id) ||
                                     acked_.contains(message.to, message.from, message.id,
                                                     acked_since(clock_.wall_ms()))
                                 ? Outcome::duplicate
                                 : Outcome::refused;
            break;
        }
        case Kind::ack: effect.outcome = Outcome::acked; break; // nothing deleted
        case Kind::fetch: effect.outcome = Outcome::fetch; break;
        case Kind::request: effect.outcome = Outcome::request; break;
        default: effect.outcome = Outcome::dropped; break;
        }
    }
}

bool PersistenceCore::apply_writes(lmdb::Txn& txn, std::span<PersistenceInput> batch,
                                   WriteMode mode) {
    if (mode == WriteMode::none) { // not even deletions fit
        classify_without_writes(batch, &txn);
        return true;
    }
    effects_.assign(batch.size(), Effect{});
    quota_usage_.clear(); // a retried pass counts again
    const std::uint64_t now = clock_.wall_ms();

    for (std::size_t i = 0; i < batch.size(); ++i) {
        Envelope& message = batch[i].envelope;
        Effect& effect = effects_[i];
        effect.request_id = message.request_id;
        switch (message.kind) {
        case Kind::offline_store: {
            if (const char* why = invalid_store(message)) {
                effect.outcome = Outcome::invalid;
                effect.error = why;
                break;
            }
            // The TTL counts from the server's receive time; a missing or future one (clock
            // skew between hosts) counts from now, so it can never extend a message's life.
            // (Its id entry and expiry key hold this time.)
            if (message.created_at_ms == 0 || message.created_at_ms > now)
                message.created_at_ms = now;
            // The record is what a session is handed back in `fetched`: a deliver envelope
            // with `cursor` = its seq and none of the per-request fields. (These edits are
            // idempotent: a batch retried after MAP_FULL writes the same record.)
            const auto encode = [&](std::uint64_t seq) -> std::string_view {
                const std::uint64_t request_id = message.request_id;
                message.request_id = 0;
                message.cursor = seq;
                message.status = Status::ok;
                message.error.clear();
                message.origin_gateway.clear();
                message.connection = 0;
                const std::uint32_t writes = message.retry_count; // kept apart (below)
                message.retry_count = 0;
                message.limit = 0;
                message.items.clear();
                encode_envelope(message, record_);
                message.request_id = request_id;
                message.retry_count = writes;
                return record_;
            };
            if (over_quota(txn, message) &&
                !queue_.contains(txn, message.to, message.from, message.id) &&
                !acked_.contains(message.to, message.from, message.id, acked_since(now))) {
                effect.outcome = Outcome::over_quota; // (a duplicate would still be ok)
                break;
            }
            std::uint64_t seq = 0;
            // Delivered and acked already (the sender resent after a lost SERVER_ACK, and
            // the session no longer knew): answered ok, not stored again.
            const Stored stored =
                acked_.contains(message.to, message.from, message.id, acked_since(now))
                    ? Stored::duplicate
                    : queue_.store(txn, message.to, message.from, message.id, mode, encode, seq,
                                   message.created_at_ms);
            if (stored == Stored::out_of_space) return false;
            if (stored == Stored::duplicate) {
                effect.outcome = Outcome::duplicate;
                break;
            }
            if (stored == Stored::refused) {
                effect.outcome = Outcome::refused;
                break;
            }
            expiry_key(key_, message.created_at_ms, message.to, seq);
            if (queue_.full(expiry_.put(txn, key_, message.id))) return false;
            if (queue_.full(note_recipient(txn, message, seq))) return false; // short TTL?
            // retry_count of an offline_store: its socket writes without an ack so far.
            if (message.retry_count > 0 &&
                queue_.full(queue_.set_writes(txn, message.to, seq, message.retry_count)))
                return false;
            effect.outcome = Outcome::stored;
            effect.seq = seq;
            count_stored_for_quota(message);
            break;
        }
        case Kind::ack: {
            if (message.from.empty() || message.from.size() > config_.max_user_bytes) {
                effect.outcome = Outcome::dropped;
                break;
            }
            effect.outcome = Outcome::acked;
            if (message.limit > 0) {
                if (!count_unacked_writes(txn, message, mode, now)) return false;
                break;
            }
            // `to`: the sender whose messages are acked; empty: one copy of each id,
            // the oldest (delivered first), whoever sent it.
            const std::optional<std::string_view> sender =
                message.to.empty() ? std::nullopt : std::optional<std::string_view>(message.to);
            for (const std::string& id : message.ids) {
                if (id.empty() || id.size() > config_.max_id_bytes) continue; // never stored
                IdEntry entry;
                const int rc = queue_.erase_by_id(txn, message.from, sender, id, mode, entry);
                if (queue_.full(rc)) return false;
                if (rc != 0) continue; // not here: already gone
                expiry_key(key_, entry.time, message.from, entry.seq);
                if (queue_.full(expiry_.del(txn, key_))) return false;
                // Kept as acked (in its own store, after this batch commits: AckedIds).
                acked_.record(message.from, entry.sender, id, now, acked_since(now));
                ++effect.seq; // count of deleted messages
            }
            break;
        }
        case Kind::fetch: effect.outcome = Outcome::fetch; break;
        case Kind::request: effect.outcome = Outcome::request; break;
        default: effect.outcome = Outcome::dropped; break;
        }
    }
    return true;
}

bool PersistenceCore::count_unacked_writes(lmdb::Txn& txn, const Envelope& message,
                                           WriteMode mode, std::uint64_t now) {
    if (mode != WriteMode::all) return true; // full: the count waits (it adds data)
    for (const std::string& id : message.ids) {
        if (id.empty() || id.size() > config_.max_id_bytes) continue;
        IdEntry entry;
        if (queue_.find(txn, message.from, std::string_view(message.to), id, entry) != 0)
            continue; // acked (deleted) meanwhile
        ++counters_.unacked_writes;
        const std::uint32_t count = queue_.writes(txn, message.from, entry.seq) + 1;
        if (count < message.limit) {
            if (queue_.full(queue_.set_writes(txn, message.from, entry.seq, count))) return false;
            continue;
        }
        // Written `limit` times without an ack: the app has it (it never acks a message it
        // already has). Deleted as delivered, and kept as acked.
        if (queue_.full(queue_.erase(txn, message.from, id, entry.seq))) return false;
        expiry_key(key_, entry.time, message.from, entry.seq);
        if (queue_.full(expiry_.del(txn, key_))) return false;
        acked_.record(message.from, entry.sender, id, now, now);
        ++counters_.unacked_delivered;
    }
    return true;
}

const char* PersistenceCore::invalid_store(const Envelope& message) const {
    if (message.to.empty() || message.to.size() > config_.max_user_bytes)
        return "invalid recipient";
    if (message.from.size() > config_.max_user_bytes) return "invalid sender";
    if (message.id.empty() || message.id.size() > config_.max_id_bytes) return "invalid message id";
    if (message.payload.size() > config_.max_payload_bytes) return "message too large";
    if (message.has(flag_ephemeral)) return "ephemeral messages are never stored";
    return nullptr;
}

bool PersistenceCore::maybe_grow(bool must) {
    if (config_.grow_by_mb == 0) return false;
    const std::size_t limit = config_.max_map_size_mb << 20;
    const std::size_t current = env_.map_size();
    if (current >= limit) return false;
    // 90%: grow before a batch can hit the end, so growing is rarely a retried batch.
    if (!must && env_.used_bytes() / 9 < current / 10) return false;
    const std::size_t grown = std::min(limit, current + (config_.grow_by_mb << 20));
    // Valid here: no transaction of this environment is open in this process.
    env_.set_map_size(grown);
    ++counters_.map_grows;
    spdlog::info("persistence: LMDB map grown from {} to {} MiB (limit {} MiB)", current >> 20,
                 grown >> 20, limit >> 20);
    return true;
}

// ---------------------------------------------------------------------------------------
// After the commit: replies in batch order, notifications, reads.

void PersistenceCore::send_results(std::span<PersistenceInput> batch) {
    std::optional<lmdb::Txn> read_txn; // one read transaction for every read of the batch
    Envelope reply;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const PersistenceInput& input = batch[i];
        const Envelope& message = input.envelope;
        const Effect& effect = effects_[i];
        reply = Envelope{};
        reply.request_id = effect.request_id;
        switch (effect.outcome) {
        case Outcome::stored:
        case Outcome::duplicate:
        case Outcome::refused:
            if (effect.outcome == Outcome::stored) {
                ++counters_.stored;
                maybe_notify(message);
            } else if (effect.outcome == Outcome::duplicate) {
                // Stored before (a session re-sent after a lost reply): it is durable, say so.
                ++counters_.duplicates;
            }
            reply.kind = Kind::offline_stored;
            reply.id = message.id;
            reply.to = message.to;
            if (effect.outcome == Outcome::refused) {
                reply.status = Status::refused;
                reply.error = kStoreFull;
            }
            break;
        case Outcome::over_quota:
            if (count_sampled(counters_.quota_refusals))
                spdlog::warn("persistence: refused an offline message to '{}': {} ({} so far)",
                             message.to.substr(0, 64), kRecipientQuotaFull, counters_.quota_refusals);
            reply.kind = Kind::offline_stored;
            reply.id = message.id;
            reply.to = message.to;
            reply.status = Status::refused;
            reply.error = kRecipientQuotaFull;
            break;
        case Outcome::invalid:
            ++counters_.bad_requests;
            reply.kind = Kind::offline_stored;
            reply.id = message.id;
            reply.to = message.to;
            reply.status = Status::bad_request;
            reply.error = effect.error;
            break;
        case Outcome::acked:
            counters_.acked += effect.seq;
            continue;
        case Outcome::fetch:
            if (!read_txn) read_txn.emplace(env_, lmdb::Txn::read_only);
            reply = serve_fetch(message, *read_txn);
            break;
        case Outcome::request:
            if (!read_txn) read_txn.emplace(env_, lmdb::Txn::read_only);
            reply = serve_request(message, *read_txn);
            break;
        case Outcome::dropped:
        case Outcome::none:
            ++counters_.bad_requests;
            continue;
        }
        if (!input.reply_to.empty()) outbox_.reply(input.reply_to, reply);
    }
}

void PersistenceCore::maybe_notify(const Envelope& message) {
    // Receipts (flag_system) are not worth waking a phone for; neither is notification
    // content (PROTOCOL.md "Push").
    if (!outbox_.has_push() || message.has(flag_system)) return;
    if (is_notification_content(message.payload)) return;
    Envelope notification;
    notification.kind = Kind::offline_notify;
    notification.id = message.id;
    notification.channel = message.channel;
    notification.from = message.from;
    notification.to = message.to;
    notification.created_at_ms = message.created_at_ms;
    notification.flags = message.flags;
    notification.payload = message.payload;
    if (outbox_.notify(notification))
        ++counters_.notified;
    else
        ++counters_.notify_dropped;
}

// ---------------------------------------------------------------------------------------
// Periodic duties

void PersistenceCore::on_timer() {
    const std::uint64_t now = clock_.monotonic_ms();
    if (now >= next_expiry_ms_) {
        const bool more = expire();
        const bool more_acked = prune_acked_ids();
        next_expiry_ms_ = more || more_acked ? now : now + config_.expiry_interval_ms;
    }
    check_registrations(); // the short TTL: one request to profile in flight at most
    acked_.on_timer(now);
    if (config_.durability == Durability::process && now >= next_sync_ms_) {
        if (background_ == nullptr) {
            flush();
        } else if (unsynced_) {
            background_->request(); // the loop goes on; the disk is the sync thread's wait
            unsynced_ = false;
            ++counters_.syncs;
        }
        next_sync_ms_ = now + config_.sync_interval_ms;
    }
    if (now >= next_reader_check_ms_) {
        const int cleared = env_.reader_check();
        if (cleared > 0)
            spdlog::warn("persistence: cleared {} stale LMDB reader slot(s) of dead processes",
                         cleared);
        counters_.stale_readers += static_cast<std::uint64_t>(cleared);
        next_reader_check_ms_ = now + config_.reader_check_interval_ms;
    }
}

void PersistenceCore::flush() {
    // In fsync mode every commit has synced already.
    if (config_.durability != Durability::process) return;
    if (background_ != nullptr) {
        background_->stop_and_sync(); // also what an earlier request has not synced yet
        background_ = nullptr;
        unsynced_ = false;
        ++counters_.syncs;
        return;
    }
    if (!unsynced_) return;
    env_.sync();
    unsynced_ = false;
    ++counters_.syncs;
}

bool PersistenceCore::expire() {
    const std::uint64_t ttl_ms =
        config_.ttl_seconds > UINT64_MAX / 1000 ? UINT64_MAX : config_.ttl_seconds * 1000;
    const std::uint64_t now = clock_.wall_ms();
    if (now <= ttl_ms) return false;
    const std::uint64_t cutoff = now - ttl_ms; // older than the TTL: time < cutoff

    expired_.clear();
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    {
        lmdb::Cursor cursor(txn, expiry_);
        for (bool positioned = cursor.first();
             positioned && expired_.size() < config_.expiry_batch; positioned = cursor.next()) {
            const std::string_view key = cursor.key();
            if (key.size() >= 8 && lmdb::read_u64_be(key) >= cutoff) break; // the rest is newer
            ExpiredEntry entry;
            entry.expiry_key.assign(key);
            // [8 time][2 len][user][8 seq]; a malformed key (never written by us) is only
            // removed from the index.
            if (key.size() >= 10) {
                const std::size_t length = UserQueue::user_length_at(key, 8);
                if (key.size() == 10 + length + 8) {
                    entry.user.assign(key.substr(10, length));
                    entry.seq = lmdb::read_u64_be(key.substr(10 + length));
                    entry.id.assign(cursor.value());
                }
            }
            expired_.push_back(std::move(entry));
        }
    }
    if (expired_.empty()) return false;
    int rc = 0;
    for (const ExpiredEntry& entry : expired_) {
        if (!entry.user.empty() &&
            UserQueue::out_of_space(rc = queue_.erase(txn, entry.user, entry.id, entry.seq)))
            break;
        if (UserQueue::out_of_space(rc = expiry_.del(txn, entry.expiry_key))) break;
        rc = 0;
    }
    if (rc == 0) rc = txn.commit();
    if (rc != 0) {
        // Deletions copy pages too; with a completely full map they can fail. Acks (which
        // are tried with deletions only) or growth free the space; expiry tries again.
        if (count_sampled(full_log_count_, 100))
            spdlog::error("persistence: store full (LMDB map or disk) while expiring {} "
                          "message(s); retrying later",
                          expired_.size());
        return false;
    }
    ++counters_.commits;
    unsynced_ = true;
    counters_.expired += expired_.size();
    return expired_.size() == config_.expiry_batch;
}

bool PersistenceCore::prune_acked_ids() {
    const std::uint64_t now = clock_.wall_ms();
    if (now <= config_.dedupe_window_ms) return false;
    std::size_t pruned = 0;
    // Full: deletions copy pages too; this runs again.
    if (acked_.prune(acked_since(now), config_.expiry_batch, pruned) != 0 || pruned == 0)
        return false;
    counters_.acked_ids_pruned += pruned;
    return pruned == config_.expiry_batch;
}

// ---------------------------------------------------------------------------------------
// Inspection

bool PersistenceCore::is_stored(std::string_view user, std::string_view id,
                                std::optional<std::string_view> sender) const {
    return queue_.contains(user, sender, id);
}

std::size_t PersistenceCore::stored_count(std::string_view user) const {
    return queue_.count(user);
}

void PersistenceCore::set_limits(std::uint64_t ttl_seconds, std::uint32_t fetch_limit_max,
                                 std::uint32_t rest_default_limit) {
    config_.ttl_seconds = ttl_seconds;
    config_.fetch_limit_max = std::clamp<std::uint32_t>(fetch_limit_max, 1, kMaxItemsPerReply);
    config_.rest_default_limit =
        std::clamp<std::uint32_t>(rest_default_limit, 1, config_.fetch_limit_max);
}

std::size_t PersistenceCore::total_count() const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    MDB_stat stat{};
    lmdb::check(mdb_stat(txn.get(), expiry_.handle(), &stat), "mdb_stat");
    return stat.ms_entries;
}

// ---------------------------------------------------------------------------------------
// Keys

void PersistenceCore::expiry_key(std::string& out, std::uint64_t time_ms, std::string_view user,
                                 std::uint64_t seq) {
    // [8 time][user prefix][8 seq]: sorted by expiry time, then as the message keys.
    out.clear();
    lmdb::append_u64_be(out, time_ms);
    UserQueue::append_user_prefix(out, user);
    lmdb::append_u64_be(out, seq);
}

} // namespace vartalap::persistence
