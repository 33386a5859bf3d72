// Thread: the owning daemon's (see acked_ids.hpp).
#include "common/store/acked_ids.hpp"
#include "common/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace vartalap {
namespace {

constexpr std::size_t kMaxKeyBytes = 511;                       // LMDB's default key limit
constexpr std::size_t kMaxMapBytes = std::size_t{1} << 40;      // growth stops here (1 TiB)
constexpr std::size_t kMigrateBatch = 10000;                    // entries per transaction
constexpr const char* kAckedDb = "acked_ids";
constexpr const char* kExpiryDb = "acked_expiry";

std::uint64_t fnv1a(std::string_view bytes) {
    std::uint64_t hash = 14695981039346656037ull;
    for (const char c : bytes) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 1099511628211ull;
    }
    return hash;
}

lmdb::EnvOptions acked_env_options() {
    lmdb::EnvOptions options;
    options.max_dbs = 4;
    options.no_sync = true;    // synced by the owner, off its loop (see the header)
    options.write_map = false; // a full disk is then an error code, not a SIGBUS
    return options;
}

} // namespace

AckedIds::AckedIds(lmdb::Env& owner)
    : env_(std::make_unique<lmdb::Env>(owner.path() / "acked-ids", acked_env_options())) {
    lmdb::Txn txn(*env_, lmdb::Txn::read_write);
    acked_ = lmdb::Db::open(txn, kAckedDb);
    expiry_ = lmdb::Db::open(txn, kExpiryDb);
    // Database handles opened in a write transaction are valid only once it commits.
    lmdb::check(txn.commit(), "acked ids: opening the store");
    migrate(owner);
    sync_ = std::make_unique<lmdb::BackgroundSync>(*env_, thread_name(owner.path().filename().string(), "-acked"));
}

AckedIds::~AckedIds() {
    reader_.reset();
    try {
        sync_->stop_and_sync();
    } catch (const lmdb::Error& error) {
        spdlog::error("acked ids: the last sync of {} failed: {}", env_->path().string(), error.what());
    }
}

void AckedIds::on_timer(std::uint64_t now_ms) {
    if (!unsynced_ || now_ms < next_sync_ms_) return;
    sync_->request();
    unsynced_ = false;
    next_sync_ms_ = now_ms + kSyncIntervalMs;
}

bool AckedIds::make_key(std::string& out, std::string_view user, std::string_view sender,
                        std::string_view id) {
    if (user.size() > UINT16_MAX || id.size() > UINT16_MAX) return false;
    out.clear();
    lmdb::append_length_prefixed(out, user);
    lmdb::append_length_prefixed(out, id);
    lmdb::append_u64_be(out, fnv1a(sender));
    return out.size() + 8 <= kMaxKeyBytes; // the expiry key is 8 bytes longer
}

void AckedIds::record(std::string_view user, std::string_view sender, std::string_view id,
                      std::uint64_t now_ms, std::uint64_t fresh_since_ms) {
    if (!make_key(key_, user, sender, id)) return;
    Pending& mark = pending_[key_];
    mark.at = now_ms;
    mark.fresh_since = fresh_since_ms;
    mark.sender.assign(sender);
}

bool AckedIds::contains(std::string_view user, std::string_view sender, std::string_view id,
                        std::uint64_t since_ms) {
    if (!make_key(key_, user, sender, id)) return false;
    if (const auto found = pending_.find(key_); found != pending_.end())
        if (found->second.sender == sender && found->second.at >= since_ms) return true;
    if (!reader_) reader_.emplace(*env_, lmdb::Txn::read_only);
    std::string_view value;
    if (acked_.get(*reader_, key_, value) != 0 || value.size() < 8) return false;
    return value.substr(8) == sender && lmdb::read_u64_be(value) >= since_ms;
}

void AckedIds::discard_pending() { pending_.clear(); }

int AckedIds::write(lmdb::Txn& txn, const std::string& key, const Pending& mark) {
    std::string_view value;
    if (acked_.get(txn, key, value) == 0 && value.size() >= 8) {
        const std::uint64_t at = lmdb::read_u64_be(value);
        if (value.substr(8) == mark.sender && at >= mark.fresh_since) return 0;
        // Renewed (or taken over by a colliding sender): the old expiry entry goes.
        other_.clear();
        lmdb::append_u64_be(other_, at);
        other_.append(key);
        const int rc = expiry_.del(txn, other_);
        if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    }
    other_.clear();
    lmdb::append_u64_be(other_, mark.at);
    other_.append(mark.sender);
    int rc = acked_.put(txn, key, other_);
    if (rc != 0) return rc;
    other_.clear();
    lmdb::append_u64_be(other_, mark.at);
    other_.append(key);
    return expiry_.put(txn, other_, {});
}

int AckedIds::write_pending() {
    lmdb::Txn txn(*env_, lmdb::Txn::read_write);
    // Key order: neighbouring marks share pages, and LMDB's page splits stay local.
    std::vector<const std::pair<const std::string, Pending>*> order;
    order.reserve(pending_.size());
    for (const auto& entry : pending_) order.push_back(&entry);
    std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* entry : order)
        if (const int rc = write(txn, entry->first, entry->second); rc != 0) return rc;
    const int rc = txn.commit();
    if (rc == 0) unsynced_ = true;
    return rc;
}

bool AckedIds::grow() {
    const std::size_t now = env_->map_size();
    if (now >= kMaxMapBytes) return false;
    env_->set_map_size(std::min(now * 2, kMaxMapBytes));
    return true;
}

int AckedIds::commit_pending() {
    reader_.reset(); // the batch's snapshot ends; also required before the map can grow
    if (pending_.empty()) return 0;
    int rc = 0;
    try {
        while ((rc = write_pending()) == MDB_MAP_FULL && grow()) {
        }
    } catch (const lmdb::Error& error) {
        rc = error.code();
    }
    if (rc != 0) {
        lost_ += pending_.size();
        // Sampled: a full disk must not flood the journal.
        if (lost_ == pending_.size() || lost_ % 10000 < pending_.size())
            spdlog::error("acked ids: {} mark(s) not recorded ({}; {} so far): a resend of "
                          "those ids would be delivered again",
                          pending_.size(), mdb_strerror(rc), lost_);
    }
    pending_.clear();
    return rc;
}

int AckedIds::prune(std::uint64_t before_ms, std::size_t batch, std::size_t& pruned) {
    pruned = 0;
    reader_.reset();
    try {
        lmdb::Txn txn(*env_, lmdb::Txn::read_write);
        std::vector<std::string> expired;
        {
            lmdb::Cursor cursor(txn, expiry_);
            for (bool more = cursor.first(); more && expired.size() < batch; more = cursor.next()) {
                const std::string_view key = cursor.key();
                if (key.size() >= 8 && lmdb::read_u64_be(key) >= before_ms) break; // the rest is newer
                expired.emplace_back(key);
            }
        }
        if (expired.empty()) return 0;
        for (const std::string& key : expired) {
            int rc = expiry_.del(txn, key);
            if (rc != 0 && rc != MDB_NOTFOUND) return rc;
            if (key.size() > 8) {
                // The entry itself, unless it was renewed since (its time is then newer).
                const std::string_view acked_key = std::string_view(key).substr(8);
                std::string_view value;
                if (acked_.get(txn, acked_key, value) == 0 &&
                    (value.size() < 8 || lmdb::read_u64_be(value) == lmdb::read_u64_be(key))) {
                    rc = acked_.del(txn, acked_key);
                    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
                }
            }
        }
        if (const int rc = txn.commit(); rc != 0) return rc;
        unsynced_ = true;
        pruned = expired.size();
        return 0;
    } catch (const lmdb::Error& error) {
        return error.code();
    }
}

std::size_t AckedIds::size() {
    reader_.reset();
    lmdb::Txn txn(*env_, lmdb::Txn::read_only);
    MDB_stat stat{};
    lmdb::check(mdb_stat(txn.get(), acked_.handle(), &stat), "mdb_stat");
    return stat.ms_entries;
}

void AckedIds::migrate(lmdb::Env& owner) {
    // The earlier layout: the same two databases in the owner's environment.
    std::optional<lmdb::Db> old_acked;
    {
        lmdb::Txn txn(owner, lmdb::Txn::read_only);
        old_acked = lmdb::Db::open_existing(txn, kAckedDb);
        lmdb::check(txn.commit(), "acked ids: opening the earlier layout"); // keeps the handle
    }
    if (!old_acked) return;
    // Copied in key order, a bounded number per transaction (puts overwrite: a crash before
    // the drop below copies again). The expiry entries follow from the values.
    std::string resume;
    bool first = true;
    while (true) {
        std::vector<std::pair<std::string, std::string>> chunk;
        {
            lmdb::Txn txn(owner, lmdb::Txn::read_only);
            lmdb::Cursor cursor(txn, *old_acked);
            bool more = first ? cursor.first() : cursor.seek(resume);
            if (!first && more && cursor.key() == resume) more = cursor.next();
            for (; more && chunk.size() < kMigrateBatch; more = cursor.next())
                chunk.emplace_back(cursor.key(), cursor.value());
        }
        first = false;
        if (chunk.empty()) break;
        lmdb::Txn txn(*env_, lmdb::Txn::read_write);
        for (const auto& [key, value] : chunk) {
            if (value.size() < 8) continue;
            lmdb::check(acked_.put(txn, key, value), "acked ids: moving an entry");
            other_.clear();
            lmdb::append_u64_be(other_, lmdb::read_u64_be(value));
            other_.append(key);
            lmdb::check(expiry_.put(txn, other_, {}), "acked ids: moving an entry");
        }
        lmdb::check(txn.commit(), "acked ids: moving entries");
        migrated_ += chunk.size();
        resume = chunk.back().first;
    }
    env_->sync(true); // on disk before the originals go
    lmdb::Txn txn(owner, lmdb::Txn::read_write);
    lmdb::Db::open(txn, kAckedDb).drop(txn);
    if (auto expiry = lmdb::Db::open_existing(txn, kExpiryDb)) expiry->drop(txn);
    lmdb::check(txn.commit(), "acked ids: dropping the earlier layout");
    spdlog::info("acked ids: moved {} entries of {} into {}", migrated_, owner.path().string(),
                 env_->path().string());
}

} // namespace vartalap
