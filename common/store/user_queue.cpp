// Thread: the owning daemon's (see user_queue.hpp).
#include "common/store/user_queue.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace vartalap {
namespace {

constexpr std::string_view kNextSeqKey = "next_seq";
constexpr std::string_view kSchemaKey = "schema";

} // namespace

UserQueue::UserQueue(lmdb::Env& env, const char* ids_db, bool ids_hold_time, const char* what,
                     const SenderOf& sender_of, std::size_t migrate_batch)
    : env_(env), ids_hold_time_(ids_hold_time) {
    const std::string ids_v2 = std::string(ids_db) + "_v2";
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    messages_ = lmdb::Db::open(txn, "messages");
    ids_ = lmdb::Db::open(txn, ids_v2.c_str());
    meta_ = lmdb::Db::open(txn, "meta");
    writes_ = lmdb::Db::open(txn, "writes");
    std::string_view value;
    if (meta_.get(txn, kNextSeqKey, value) == 0 && value.size() == 8)
        next_seq_ = std::max<std::uint64_t>(lmdb::read_u64_be(value), 1);
    const bool current = meta_.get(txn, kSchemaKey, value) == 0 && value.size() == 4 &&
                         lmdb::read_u64_be(value) >= kUserQueueSchema;
    // Database handles opened in a write transaction are valid only once it commits.
    const int rc = txn.commit();
    if (rc != 0) throw lmdb::Error(std::string(what) + ": opening the store", rc);
    if (!current) migrate(ids_db, what, sender_of, std::max<std::size_t>(migrate_batch, 1));
}

void UserQueue::migrate(const char* ids_db, const char* what, const SenderOf& sender_of,
                        std::size_t batch) {
    // Schema 1: [2][user][id] -> [u64 seq](+[u64 time]). Each round moves up to `batch`
    // entries and commits, so a large store never makes one huge transaction and a crash
    // resumes with what is left; the last round drops the old index and writes the schema.
    std::vector<std::pair<std::string, std::string>> round;
    for (;;) {
        lmdb::Txn txn(env_, lmdb::Txn::read_write);
        std::optional<lmdb::Db> old = lmdb::Db::open_existing(txn, ids_db);
        round.clear();
        if (old) {
            lmdb::Cursor cursor(txn, *old);
            for (bool more = cursor.first(); more && round.size() < batch; more = cursor.next())
                round.emplace_back(cursor.key(), cursor.value());
        }
        for (const auto& [key, value] : round) {
            const std::size_t user_length = user_length_at(key, 0);
            if (key.size() > 2 + user_length && value.size() >= 8) {
                const std::string_view user = std::string_view(key).substr(2, user_length);
                const std::string_view id = std::string_view(key).substr(2 + user_length);
                const std::uint64_t seq = lmdb::read_u64_be(value);
                std::string_view record;
                message_key(message_key_, user, seq);
                // An index entry without its message (never left by us) is dropped.
                if (messages_.get(txn, message_key_, record) == 0) {
                    const std::optional<std::string> sender = sender_of(record);
                    if (!sender)
                        spdlog::warn("{}: migrating the id index: the record of seq {} does "
                                     "not decode; indexed with no sender", what, seq);
                    id_key(id_key_, user, id, seq);
                    value_.assign(value.substr(0, ids_hold_time_ ? 16 : 8));
                    value_.resize(ids_hold_time_ ? 16 : 8, '\0');
                    if (sender) value_.append(*sender);
                    if (out_of_space(ids_.put(txn, id_key_, value_)))
                        throw lmdb::Error(std::string(what) + ": migrating the id index",
                                          MDB_MAP_FULL);
                    ++migrated_;
                }
            }
            if (out_of_space(old->del(txn, key)))
                throw lmdb::Error(std::string(what) + ": migrating the id index", MDB_MAP_FULL);
        }
        const bool last = round.empty();
        if (last) {
            if (old) old->drop(txn);
            value_.clear();
            for (int shift = 24; shift >= 0; shift -= 8)
                value_.push_back(static_cast<char>((kUserQueueSchema >> shift) & 0xff));
            if (out_of_space(meta_.put(txn, kSchemaKey, value_)))
                throw lmdb::Error(std::string(what) + ": writing the schema version", MDB_MAP_FULL);
        }
        lmdb::check(txn.commit(), "user queue: migrating the id index");
        if (last) break;
    }
    if (migrated_ > 0)
        spdlog::info("{}: id index migrated to schema {} ({} entries keyed by sender)", what,
                     kUserQueueSchema, migrated_);
}

// ---------------------------------------------------------------------------------------
// Keys

void UserQueue::append_user_prefix(std::string& out, std::string_view user) {
    lmdb::append_length_prefixed(out, user);
}

void UserQueue::user_prefix(std::string& out, std::string_view user) {
    out.clear();
    append_user_prefix(out, user);
}

void UserQueue::message_key(std::string& out, std::string_view user, std::uint64_t seq) {
    user_prefix(out, user);
    lmdb::append_u64_be(out, seq);
}

void UserQueue::id_prefix(std::string& out, std::string_view user, std::string_view id) {
    user_prefix(out, user);
    lmdb::append_length_prefixed(out, id);
}

void UserQueue::id_key(std::string& out, std::string_view user, std::string_view id,
                       std::uint64_t seq) {
    id_prefix(out, user, id);
    lmdb::append_u64_be(out, seq);
}

std::size_t UserQueue::user_length_at(std::string_view key, std::size_t at) {
    if (key.size() < at + 2) return 0;
    return lmdb::read_u16_be(key.substr(at));
}

// ---------------------------------------------------------------------------------------
// Writes and reads

bool UserQueue::full(int rc) {
    // Out of space: the write transaction is unusable from here on and must be aborted.
    if (!out_of_space(rc)) return false;
    full_rc_ = rc;
    return true;
}

bool UserQueue::save_seq(lmdb::Txn& txn, std::uint64_t seq_before) {
    if (next_seq_ == seq_before) return true; // nothing stored by this pass
    value_.clear();
    lmdb::append_u64_be(value_, next_seq_);
    return !full(meta_.put(txn, kNextSeqKey, value_));
}

void UserQueue::parse_entry(std::string_view value, IdEntry& entry) const {
    entry.seq = lmdb::read_u64_be(value);
    entry.time = ids_hold_time_ && value.size() >= 16 ? lmdb::read_u64_be(value.substr(8)) : 0;
    entry.sender.assign(sender_in(value));
}

int UserQueue::find(lmdb::Txn& txn, std::string_view user, std::optional<std::string_view> sender,
                    std::string_view id, IdEntry& entry, const Prefer& prefer) {
    id_prefix(id_key_, user, id);
    lmdb::Cursor cursor(txn, ids_);
    bool found = false;
    for (bool more = cursor.seek(id_key_); more && cursor.key().starts_with(id_key_);
         more = cursor.next()) {
        const std::string_view value = cursor.value();
        if (value.size() < 8) continue;
        if (sender) {
            if (sender_in(value) != *sender) continue;
            parse_entry(value, entry);
            return 0;
        }
        const std::uint64_t seq = lmdb::read_u64_be(value);
        if (prefer && prefer(seq)) {
            parse_entry(value, entry);
            return 0;
        }
        if (!found || seq < entry.seq) parse_entry(value, entry); // the oldest copy
        found = true;
    }
    return found ? 0 : MDB_NOTFOUND;
}

bool UserQueue::contains(lmdb::Txn& txn, std::string_view user, std::string_view sender,
                         std::string_view id) {
    IdEntry entry;
    return find(txn, user, sender, id, entry) == 0;
}

int UserQueue::erase_by_id(lmdb::Txn& txn, std::string_view user,
                           std::optional<std::string_view> sender, std::string_view id,
                           WriteMode mode, IdEntry& entry, const Prefer& prefer) {
    int rc = find(txn, user, sender, id, entry, prefer);
    if (rc != 0 || mode == WriteMode::none) return rc;
    return erase(txn, user, id, entry.seq);
}

int UserQueue::erase(lmdb::Txn& txn, std::string_view user, std::string_view id,
                     std::uint64_t seq) {
    message_key(message_key_, user, seq);
    int rc = messages_.del(txn, message_key_);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    id_key(id_key_, user, id, seq);
    rc = ids_.del(txn, id_key_);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    rc = writes_.del(txn, message_key_);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

std::uint32_t UserQueue::writes(lmdb::Txn& txn, std::string_view user, std::uint64_t seq) {
    message_key(message_key_, user, seq);
    std::string_view value;
    if (writes_.get(txn, message_key_, value) != 0 || value.size() != 4) return 0;
    std::uint32_t count = 0;
    for (const char c : value) count = (count << 8) | static_cast<unsigned char>(c);
    return count;
}

int UserQueue::set_writes(lmdb::Txn& txn, std::string_view user, std::uint64_t seq,
                          std::uint32_t count) {
    message_key(message_key_, user, seq);
    value_.clear();
    for (int shift = 24; shift >= 0; shift -= 8)
        value_.push_back(static_cast<char>((count >> shift) & 0xff));
    return writes_.put(txn, message_key_, value_);
}

int UserQueue::get(lmdb::Txn& txn, std::string_view user, std::uint64_t seq,
                   std::string_view& record) {
    message_key(message_key_, user, seq);
    return messages_.get(txn, message_key_, record);
}

std::size_t UserQueue::count(lmdb::Txn& txn, std::string_view user) const {
    std::size_t count = 0;
    for (UserCursor cursor(txn, *this, user, 0); cursor.valid(); cursor.next()) ++count;
    return count;
}

bool UserQueue::contains(std::string_view user, std::optional<std::string_view> sender,
                         std::string_view id) const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    std::string prefix;
    id_prefix(prefix, user, id);
    lmdb::Cursor cursor(txn, ids_);
    for (bool more = cursor.seek(prefix); more && cursor.key().starts_with(prefix);
         more = cursor.next())
        if (!sender || sender_in(cursor.value()) == *sender) return true;
    return false;
}

std::size_t UserQueue::count(std::string_view user) const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    return count(txn, user);
}

// ---------------------------------------------------------------------------------------
// Cursors

UserCursor::UserCursor(lmdb::Txn& txn, const UserQueue& queue, std::string_view user,
                       std::uint64_t from_seq)
    : cursor_(txn, queue.messages()) {
    std::string start;
    UserQueue::message_key(start, user, from_seq);
    UserQueue::user_prefix(prefix_, user);
    valid_ = check(cursor_.seek(start));
}

bool UserCursor::check(bool positioned) {
    if (!positioned) return false;
    const std::string_view key = cursor_.key();
    return key.size() == prefix_.size() + 8 && key.starts_with(prefix_);
}

std::uint64_t UserCursor::seq() const {
    return lmdb::read_u64_be(cursor_.key().substr(prefix_.size()));
}

void UserCursor::next() { valid_ = check(cursor_.next()); }

StoreScan::StoreScan(lmdb::Txn& txn, const UserQueue& queue, std::string_view resume_at)
    : cursor_(txn, queue.messages()) {
    valid_ = resume_at.empty() ? cursor_.first() : cursor_.seek(resume_at);
}

bool StoreScan::is_message() const {
    const std::string_view key = cursor_.key();
    return key.size() == 2 + UserQueue::user_length_at(key, 0) + 8;
}

std::string_view StoreScan::user() const {
    return cursor_.key().substr(2, UserQueue::user_length_at(cursor_.key(), 0));
}

std::uint64_t StoreScan::seq() const {
    const std::string_view key = cursor_.key();
    return lmdb::read_u64_be(key.substr(2 + UserQueue::user_length_at(key, 0)));
}

void StoreScan::skip_user() {
    UserQueue::message_key(scratch_, user(), UINT64_MAX);
    valid_ = cursor_.seek(scratch_);
}

} // namespace vartalap
