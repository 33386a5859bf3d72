// Thread: the persistence daemon's thread (see persistence_core.hpp); tests call it from theirs.
#include "daemons/persistence/persistence_core.hpp"

#include "common/log.hpp"
#include "common/user_keys.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <limits>

namespace vartalap {
namespace {

using json = nlohmann::json;

constexpr std::string_view kNextSeqKey = "next_seq";
constexpr const char* kStoreFull = "offline store full";
// The envelope decoder's array limit (DecodeLimits::max_array_items): a fetched reply with
// more items would be dropped by the session as malformed.
constexpr std::uint32_t kMaxItemsPerReply = 10000;
// Longest decimal u64: the REST cursor is a seq written in decimal (opaque to clients).
constexpr std::size_t kMaxCursorDigits = 20;

// Whether a client message JSON says head.contentType == "notification" (group events and
// other notifications get no push, PROTOCOL.md "Push").
bool out_of_space(int rc) { return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL; }

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

PersistenceCore::PersistenceCore(lmdb::Env& env, PersistenceOutbox& outbox, const Clock& clock,
                                 PersistenceConfig config)
    : env_(env), outbox_(outbox), clock_(clock), config_(config),
      deliver_header_(header_frame(Kind::deliver)) {
    set_limits(config_.ttl_seconds, config_.fetch_limit_max, config_.rest_default_limit);
    config_.expiry_batch = std::max<std::size_t>(config_.expiry_batch, 1);
    config_.max_map_size_mb = std::max(config_.max_map_size_mb, config_.map_size_mb);

    // Stale reader slots of processes that died holding a read transaction pin old pages
    // (the map fills up although little is stored): clear them before the first write.
    counters_.stale_readers += static_cast<std::uint64_t>(env_.reader_check());

    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    messages_ = lmdb::Db::open(txn, "messages");
    ids_ = lmdb::Db::open(txn, "ids");
    expiry_ = lmdb::Db::open(txn, "expiry");
    meta_ = lmdb::Db::open(txn, "meta");
    std::string_view value;
    if (meta_.get(txn, kNextSeqKey, value) == 0 && value.size() == 8)
        next_seq_ = std::max<std::uint64_t>(lmdb::read_u64_be(value), 1);
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
        classify_without_writes(batch);
    } else {
        maybe_grow(/*must=*/false);
        const std::uint64_t seq_before = next_seq_;
        int rc = write_pass(batch, WriteMode::all);
        // Growth first: a full map that may grow is not a refusal.
        while (rc != 0 && full_rc_ == MDB_MAP_FULL && maybe_grow(/*must=*/true)) {
            next_seq_ = seq_before;
            rc = write_pass(batch, WriteMode::all);
        }
        if (rc != 0) {
            const int first_rc = rc;
            // Full. New messages are refused (the session keeps its copy and tries again
            // later), but acks still free space, so the batch is applied again with
            // deletions only.
            next_seq_ = seq_before;
            rc = write_pass(batch, WriteMode::deletions_only);
            if (rc != 0) classify_without_writes(batch); // not even deletions fit
            std::uint64_t refused = 0;
            for (const Effect& effect : effects_)
                if (effect.outcome == Outcome::refused) ++refused;
            counters_.map_full_refusals += refused;
            // Logged for the first and then every 100th full batch: a full store under load
            // must not flood the journal.
            if (count_sampled(full_log_count_, 100))
                spdlog::error("persistence: LMDB {} ({} of {} bytes used): refused {} "
                              "message(s) with \"{}\"; {} ({} full batches so far)",
                              first_rc == MDB_TXN_FULL ? "transaction too large (MDB_TXN_FULL)"
                                                       : "map full (MDB_MAP_FULL)",
                              env_.used_bytes(), env_.map_size(), refused, kStoreFull,
                              rc == 0 ? "acks applied" : "acks could not be applied either",
                              full_log_count_);
        }
    }
    send_results(batch);
}

int PersistenceCore::write_pass(std::span<PersistenceInput> batch, WriteMode mode) {
    int rc = 0;
    {
        lmdb::Txn txn(env_, lmdb::Txn::read_write);
        rc = apply_writes(txn, batch, mode) ? txn.commit() : full_rc_;
    } // an uncommitted transaction is aborted here
    if (rc != 0) full_rc_ = rc; // commit() reports MDB_MAP_FULL itself
    if (rc == 0) {
        ++counters_.commits;
        unsynced_ = true;
    }
    return rc;
}

void PersistenceCore::classify_without_writes(std::span<PersistenceInput> batch) {
    // Outcomes only, from committed state: a duplicate is still ok, a new message refused.
    effects_.assign(batch.size(), Effect{});
    std::optional<lmdb::Txn> txn;
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
            if (!txn) txn.emplace(env_, lmdb::Txn::read_only);
            user_keys::id_key(key_, message.to, message.id);
            std::string_view existing;
            effect.outcome =
                ids_.get(*txn, key_, existing) == 0 ? Outcome::duplicate : Outcome::refused;
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
    effects_.assign(batch.size(), Effect{});
    bool stored_any = false;
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
            user_keys::id_key(key_, message.to, message.id);
            std::string_view existing;
            if (ids_.get(txn, key_, existing) == 0) {
                effect.outcome = Outcome::duplicate;
                break;
            }
            if (mode != WriteMode::all) {
                effect.outcome = Outcome::refused;
                break;
            }
            const std::uint64_t seq = next_seq_++;
            // The TTL counts from the server's receive time; a missing or future one (clock
            // skew between hosts) counts from now, so it can never extend a message's life.
            if (message.created_at_ms == 0 || message.created_at_ms > now)
                message.created_at_ms = now;
            // The record is what a session is handed back in `fetched`: a deliver envelope
            // with `cursor` = its seq and none of the per-request fields. (These edits are
            // idempotent: a batch retried after MAP_FULL writes the same record.)
            const std::uint64_t request_id = message.request_id;
            message.request_id = 0;
            message.cursor = seq;
            message.status = Status::ok;
            message.error.clear();
            message.origin_gateway.clear();
            message.connection = 0;
            message.retry_count = 0;
            message.limit = 0;
            message.items.clear();
            encode_envelope(message, record_);
            message.request_id = request_id;

            user_keys::message_key(key2_, message.to, seq);
            if (full(messages_.put(txn, key2_, record_))) return false;
            value_.clear();
            lmdb::append_u64_be(value_, seq);
            lmdb::append_u64_be(value_, message.created_at_ms);
            if (full(ids_.put(txn, key_, value_))) return false;
            expiry_key(key2_, message.created_at_ms, message.to, seq);
            if (full(expiry_.put(txn, key2_, message.id))) return false;
            effect.outcome = Outcome::stored;
            effect.seq = seq;
            stored_any = true;
            break;
        }
        case Kind::ack: {
            if (message.from.empty() || message.from.size() > config_.max_user_bytes) {
                effect.outcome = Outcome::dropped;
                break;
            }
            effect.outcome = Outcome::acked;
            for (const std::string& id : message.ids) {
                if (id.empty() || id.size() > config_.max_id_bytes) continue; // never stored
                user_keys::id_key(key_, message.from, id);
                std::string_view value;
                if (ids_.get(txn, key_, value) != 0) continue; // not here: already gone
                const std::uint64_t seq = lmdb::read_u64_be(value);
                // Read before the writes below invalidate the view.
                const std::uint64_t time = value.size() >= 16 ? lmdb::read_u64_be(value.substr(8)) : 0;
                if (full(ids_.del(txn, key_))) return false;
                user_keys::message_key(key2_, message.from, seq);
                if (full(messages_.del(txn, key2_))) return false;
                expiry_key(key2_, time, message.from, seq);
                if (full(expiry_.del(txn, key2_))) return false;
                ++effect.seq; // count of deleted messages
            }
            break;
        }
        case Kind::fetch: effect.outcome = Outcome::fetch; break;
        case Kind::request: effect.outcome = Outcome::request; break;
        default: effect.outcome = Outcome::dropped; break;
        }
    }

    if (stored_any) {
        value_.clear();
        lmdb::append_u64_be(value_, next_seq_);
        if (full(meta_.put(txn, kNextSeqKey, value_))) return false;
    }
    return true;
}

const char* PersistenceCore::invalid_store(const Envelope& message) const {
    if (message.to.empty() || message.to.size() > config_.max_user_bytes)
        return "invalid recipient";
    if (message.id.empty() || message.id.size() > config_.max_id_bytes) return "invalid message id";
    if (message.payload.size() > config_.max_payload_bytes) return "message too large";
    if (message.has(flag_ephemeral)) return "ephemeral messages are never stored";
    return nullptr;
}

bool PersistenceCore::full(int rc) {
    // Out of space: the write transaction is unusable from here on and must be aborted.
    if (!out_of_space(rc)) return false;
    full_rc_ = rc;
    return true;
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

void PersistenceCore::collect_page(lmdb::Txn& txn, std::string_view user, std::uint64_t after,
                                   std::uint32_t limit) {
    page_values_.clear();
    page_seqs_.clear();
    page_more_ = false;
    if (after == UINT64_MAX) return;
    user_keys::user_prefix(prefix_, user);
    user_keys::message_key(key2_, user, after + 1);
    lmdb::Cursor cursor(txn, messages_);
    std::size_t bytes = 0;
    // Reads at most `limit` + 1 records: a queue of any length stays on disk.
    for (bool positioned = cursor.seek(key2_); positioned; positioned = cursor.next()) {
        const std::string_view key = cursor.key();
        if (key.size() != prefix_.size() + 8 || !key.starts_with(prefix_)) break;
        const std::string_view value = cursor.value();
        if (page_values_.size() >= limit ||
            (!page_values_.empty() && bytes + value.size() > config_.max_reply_bytes)) {
            page_more_ = true;
            break;
        }
        page_values_.push_back(value); // valid until the read transaction ends
        page_seqs_.push_back(lmdb::read_u64_be(key.substr(prefix_.size())));
        bytes += value.size();
    }
}

Envelope PersistenceCore::serve_fetch(const Envelope& request, lmdb::Txn& txn) {
    Envelope reply;
    reply.kind = Kind::fetched;
    reply.request_id = request.request_id;
    reply.to = request.to;
    reply.cursor = request.cursor;
    if (request.to.empty() || request.to.size() > config_.max_user_bytes) {
        ++counters_.bad_requests;
        reply.status = Status::bad_request;
        reply.error = "invalid user";
        return reply;
    }
    // 0 = "as many as you allow"; more than the maximum is the maximum.
    const std::uint32_t limit = request.limit == 0
                                    ? config_.fetch_limit_max
                                    : std::min(request.limit, config_.fetch_limit_max);
    collect_page(txn, request.to, request.cursor, limit);
    reply.items.reserve(page_values_.size());
    for (const std::string_view value : page_values_) reply.items.emplace_back(value);
    if (!page_seqs_.empty()) reply.cursor = page_seqs_.back();
    // `limit` in a fetched reply: non-zero when more messages follow `cursor` (the session
    // fetches again when its window frees), 0 at the end of the queue.
    reply.limit = page_more_ ? 1 : 0;
    ++counters_.fetches;
    counters_.items_served += reply.items.size();
    return reply;
}

Envelope PersistenceCore::serve_request(const Envelope& request, lmdb::Txn& txn) {
    Envelope reply;
    reply.kind = Kind::reply;
    reply.request_id = request.request_id;
    auto refuse = [&](Status status, const char* error) {
        ++counters_.bad_requests;
        reply.status = status;
        reply.error = error;
        reply.payload = json{{"error", error}}.dump();
        return reply;
    };
    if (request.method != "messages") return refuse(Status::not_found, "unknown method");
    const std::string& user = request.from; // the authenticated user: nobody reads another's
    if (user.empty() || user.size() > config_.max_user_bytes)
        return refuse(Status::unauthorized, "no authenticated user");

    const json body = request.payload.empty() ? json::object()
                                              : json::parse(request.payload, nullptr, false);
    if (!body.is_object()) return refuse(Status::bad_request, "body must be a JSON object");
    std::uint32_t limit = config_.rest_default_limit;
    if (const auto it = body.find("limit"); it != body.end()) {
        if (!it->is_number_integer() || it->get<std::int64_t>() < 1)
            return refuse(Status::bad_request, "limit must be a positive integer");
        // Above the maximum is the maximum: a client asking for "everything" gets pages.
        limit = static_cast<std::uint32_t>(
            std::min<std::int64_t>(it->get<std::int64_t>(), config_.fetch_limit_max));
    }
    std::uint64_t after = 0;
    if (const auto it = body.find("cursor"); it != body.end() && !it->is_null()) {
        // Opaque to clients; here the decimal seq of the last message of the previous page.
        const std::string* text = it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
        if (text == nullptr || text->empty() || text->size() > kMaxCursorDigits)
            return refuse(Status::bad_request, "bad cursor");
        const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), after);
        if (ec != std::errc{} || end != text->data() + text->size())
            return refuse(Status::bad_request, "bad cursor");
    }

    collect_page(txn, user, after, limit);
    // The payloads are already the JSON objects the recipient reads (the gateway wrote
    // them): they are spliced into the reply, not re-serialized.
    std::string& out = reply.payload;
    out = "{\"messages\":[";
    bool first = true;
    for (const std::string_view value : page_values_) {
        auto decoded = decode_envelope(deliver_header_, value);
        if (!decoded || !json::accept(decoded->payload)) {
            // We wrote it; an unreadable record means corruption. Skip it, never break the page.
            ++counters_.corrupt;
            spdlog::error("persistence: unreadable stored message of a user skipped");
            continue;
        }
        if (!first) out.push_back(',');
        first = false;
        out.append(decoded->payload);
        ++counters_.items_served;
    }
    out.append("],\"next\":");
    if (page_more_)
        out.append("\"").append(std::to_string(page_seqs_.back())).append("\"");
    else
        out.append("null");
    out.push_back('}');
    ++counters_.rest_pages;
    return reply;
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
        next_expiry_ms_ = more ? now : now + config_.expiry_interval_ms;
    }
    if (config_.durability == Durability::process && now >= next_sync_ms_) {
        flush();
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
    if (config_.durability != Durability::process || !unsynced_) return;
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
                const std::size_t length = user_keys::user_length_at(key, 8);
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
        if (!entry.user.empty()) {
            user_keys::message_key(key2_, entry.user, entry.seq);
            if (out_of_space(rc = messages_.del(txn, key2_))) break;
            user_keys::id_key(key_, entry.user, entry.id);
            if (out_of_space(rc = ids_.del(txn, key_))) break;
        }
        if (out_of_space(rc = expiry_.del(txn, entry.expiry_key))) break;
        rc = 0;
    }
    if (rc == 0) rc = txn.commit();
    if (rc != 0) {
        // Deletions copy pages too; with a completely full map they can fail. Acks (which
        // are tried with deletions only) or growth free the space; expiry tries again.
        spdlog::error("persistence: LMDB full while expiring {} message(s); retrying later",
                      expired_.size());
        return false;
    }
    ++counters_.commits;
    unsynced_ = true;
    counters_.expired += expired_.size();
    return expired_.size() == config_.expiry_batch;
}

// ---------------------------------------------------------------------------------------
// Inspection

bool PersistenceCore::is_stored(std::string_view user, std::string_view id) const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    std::string key;
    user_keys::id_key(key, user, id);
    std::string_view value;
    return ids_.get(txn, key, value) == 0;
}

std::size_t PersistenceCore::stored_count(std::string_view user) const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    return user_keys::count_messages(txn, messages_, user);
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
    user_keys::append_user_prefix(out, user);
    lmdb::append_u64_be(out, seq);
}

} // namespace vartalap
