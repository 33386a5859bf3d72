// Thread: the owning daemon's (see acked_ids.hpp).
#include "common/store/acked_ids.hpp"

#include <vector>

namespace vartalap {
namespace {

constexpr std::size_t kMaxKeyBytes = 511; // LMDB's default key limit

std::uint64_t fnv1a(std::string_view bytes) {
    std::uint64_t hash = 14695981039346656037ull;
    for (const char c : bytes) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 1099511628211ull;
    }
    return hash;
}

} // namespace

AckedIds::AckedIds(lmdb::Env& env) : env_(env) {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    acked_ = lmdb::Db::open(txn, "acked_ids");
    expiry_ = lmdb::Db::open(txn, "acked_expiry");
    // Database handles opened in a write transaction are valid only once it commits.
    lmdb::check(txn.commit(), "acked ids: opening the store");
}

bool AckedIds::make_key(std::string_view user, std::string_view sender, std::string_view id) {
    if (user.size() > UINT16_MAX || id.size() > UINT16_MAX) return false;
    key_.clear();
    lmdb::append_length_prefixed(key_, user);
    lmdb::append_length_prefixed(key_, id);
    lmdb::append_u64_be(key_, fnv1a(sender));
    return key_.size() + 8 <= kMaxKeyBytes; // the expiry key is 8 bytes longer
}

int AckedIds::record(lmdb::Txn& txn, std::string_view user, std::string_view sender,
                     std::string_view id, std::uint64_t now_ms, std::uint64_t fresh_since_ms) {
    if (!make_key(user, sender, id)) return 0;
    std::string_view value;
    if (acked_.get(txn, key_, value) == 0 && value.size() >= 8) {
        const std::uint64_t at = lmdb::read_u64_be(value);
        if (value.substr(8) == sender && at >= fresh_since_ms) return 0;
        // Renewed (or taken over by a colliding sender): the old expiry entry goes.
        other_.clear();
        lmdb::append_u64_be(other_, at);
        other_.append(key_);
        const int rc = expiry_.del(txn, other_);
        if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    }
    other_.clear();
    lmdb::append_u64_be(other_, now_ms);
    other_.append(sender);
    int rc = acked_.put(txn, key_, other_);
    if (rc != 0) return rc;
    other_.clear();
    lmdb::append_u64_be(other_, now_ms);
    other_.append(key_);
    rc = expiry_.put(txn, other_, {});
    return rc;
}

bool AckedIds::contains(lmdb::Txn& txn, std::string_view user, std::string_view sender,
                        std::string_view id, std::uint64_t since_ms) {
    if (!make_key(user, sender, id)) return false;
    std::string_view value;
    if (acked_.get(txn, key_, value) != 0 || value.size() < 8) return false;
    return value.substr(8) == sender && lmdb::read_u64_be(value) >= since_ms;
}

int AckedIds::prune(lmdb::Txn& txn, std::uint64_t before_ms, std::size_t batch,
                    std::size_t& pruned) {
    pruned = 0;
    std::vector<std::string> expired;
    {
        lmdb::Cursor cursor(txn, expiry_);
        for (bool more = cursor.first(); more && expired.size() < batch; more = cursor.next()) {
            const std::string_view key = cursor.key();
            if (key.size() >= 8 && lmdb::read_u64_be(key) >= before_ms) break; // the rest is newer
            expired.emplace_back(key);
        }
    }
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
        ++pruned;
    }
    return 0;
}

std::size_t AckedIds::size() const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    MDB_stat stat{};
    lmdb::check(mdb_stat(txn.get(), acked_.handle(), &stat), "mdb_stat");
    return stat.ms_entries;
}

} // namespace vartalap
