// Revoked access keys (revocation_store.hpp). Thread: the profile daemon's thread.
#include "daemons/profile/revocation_store.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <boost/algorithm/hex.hpp>

#include <iterator>
#include <stdexcept>

namespace vartalap::profile {
namespace {

using nlohmann::json;

constexpr std::string_view kEpochKey = "revocation_epoch";
constexpr std::string_view kSeqKey = "revocation_seq";

std::string seq_key(std::uint64_t seq) {
    std::string out;
    lmdb::append_u64_be(out, seq);
    return out;
}

std::string user_key(std::string_view user, std::string_view key) {
    std::string out;
    lmdb::append_length_prefixed(out, user.substr(0, 65535));
    out.append(key);
    return out;
}

bool decode(std::uint64_t seq, std::string_view value, Revocation& out) {
    const json record = json::parse(value, nullptr, false);
    if (!record.is_object()) return false;
    auto user = record.find("user");
    auto key = record.find("key");
    auto expires = record.find("expires");
    if (user == record.end() || !user->is_string() || key == record.end() || !key->is_string())
        return false;
    out.seq = seq;
    out.user = user->get<std::string>();
    out.key = key->get<std::string>();
    out.expires = expires != record.end() && expires->is_number_unsigned()
                      ? expires->get<std::uint64_t>() : 0;
    return true;
}

} // namespace

RevocationStore::RevocationStore(lmdb::Env& env) : env_(env) {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    revoked_ = lmdb::Db::open(txn, "revoked");
    by_key_ = lmdb::Db::open(txn, "revoked_keys");
    meta_ = lmdb::Db::open(txn, "meta");
    std::string_view value;
    if (meta_.get(txn, kEpochKey, value) == 0) {
        epoch_ = std::string(value);
    } else {
        unsigned char bytes[16];
        if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
        boost::algorithm::hex_lower(std::begin(bytes), std::end(bytes), std::back_inserter(epoch_));
        lmdb::check(meta_.put(txn, kEpochKey, epoch_), "profile: write revocation epoch");
    }
    if (meta_.get(txn, kSeqKey, value) == 0) version_ = lmdb::read_u64_be(value);
    lmdb::check(txn.commit(), "profile: create revocation dbs");
}

RevocationStore::Result RevocationStore::revoke(std::string_view user, std::string_view key,
                                                std::uint64_t expires) {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    const std::string index = user_key(user, key);
    std::string_view existing;
    if (by_key_.get(txn, index, existing) == 0) return Result::already;
    const std::uint64_t seq = version_ + 1;
    const std::string seq_bytes = seq_key(seq);
    const std::string record = json{{"user", user}, {"key", key}, {"expires", expires}}.dump();
    if (lmdb::out_of_space(revoked_.put(txn, seq_bytes, record)) ||
        lmdb::out_of_space(by_key_.put(txn, index, seq_bytes)) ||
        lmdb::out_of_space(meta_.put(txn, kSeqKey, seq_bytes)))
        return Result::full;
    const int committed = txn.commit();
    if (lmdb::out_of_space(committed)) return Result::full;
    lmdb::check(committed, "profile: commit a revocation");
    version_ = seq;
    return Result::revoked;
}

RevocationStore::Page RevocationStore::since(std::string_view epoch, std::uint64_t since,
                                             std::size_t max) const {
    Page page;
    page.epoch = epoch_;
    page.version = version_;
    if (epoch != epoch_) since = 0;
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    lmdb::Cursor cursor(txn, revoked_);
    for (bool more = cursor.seek(seq_key(since + 1)); more; more = cursor.next()) {
        if (page.entries.size() >= max) {
            page.complete = false;
            break;
        }
        Revocation entry;
        if (decode(lmdb::read_u64_be(cursor.key()), cursor.value(), entry))
            page.entries.push_back(std::move(entry));
    }
    return page;
}

std::size_t RevocationStore::prune(std::uint64_t now_seconds, std::size_t max) {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    std::size_t removed = 0;
    {
        lmdb::Cursor cursor(txn, revoked_);
        bool more = cursor.seek(seq_key(prune_after_ + 1));
        if (!more) {
            prune_after_ = 0; // round again from the start next time
            return 0;
        }
        for (std::size_t seen = 0; more && seen < max; ++seen) {
            Revocation entry;
            const std::uint64_t seq = lmdb::read_u64_be(cursor.key());
            prune_after_ = seq;
            const bool valid = decode(seq, cursor.value(), entry);
            if (!valid || (entry.expires != 0 && entry.expires <= now_seconds)) {
                if (valid) by_key_.del(txn, user_key(entry.user, entry.key));
                cursor.del();
                ++removed;
                more = cursor.seek(seq_key(seq + 1));
            } else {
                more = cursor.next();
            }
        }
    }
    if (removed == 0) return 0;
    lmdb::check(txn.commit(), "profile: prune revocations");
    return removed;
}

} // namespace vartalap::profile
