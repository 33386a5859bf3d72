// Thread: the owning daemon's (see user_queue.hpp).
#include "common/store/user_queue.hpp"


#include <algorithm>

namespace vartalap {
namespace {

constexpr std::string_view kNextSeqKey = "next_seq";

} // namespace

UserQueue::UserQueue(lmdb::Env& env, const char* ids_db, bool ids_hold_time, const char* what)
    : env_(env), ids_hold_time_(ids_hold_time) {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    messages_ = lmdb::Db::open(txn, "messages");
    ids_ = lmdb::Db::open(txn, ids_db);
    meta_ = lmdb::Db::open(txn, "meta");
    std::string_view value;
    if (meta_.get(txn, kNextSeqKey, value) == 0 && value.size() == 8)
        next_seq_ = std::max<std::uint64_t>(lmdb::read_u64_be(value), 1);
    // Database handles opened in a write transaction are valid only once it commits.
    const int rc = txn.commit();
    if (rc != 0) throw lmdb::Error(std::string(what) + ": opening the store", rc);
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

void UserQueue::id_key(std::string& out, std::string_view user, std::string_view id) {
    user_prefix(out, user);
    out.append(id);
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

int UserQueue::find(lmdb::Txn& txn, std::string_view user, std::string_view id, IdEntry& entry) {
    id_key(id_key_, user, id);
    std::string_view value;
    const int rc = ids_.get(txn, id_key_, value);
    if (rc != 0) return rc;
    entry.seq = lmdb::read_u64_be(value);
    entry.time = value.size() >= 16 ? lmdb::read_u64_be(value.substr(8)) : 0;
    return 0;
}

bool UserQueue::contains(lmdb::Txn& txn, std::string_view user, std::string_view id) {
    id_key(id_key_, user, id);
    std::string_view ignored;
    return ids_.get(txn, id_key_, ignored) == 0;
}

int UserQueue::erase_by_id(lmdb::Txn& txn, std::string_view user, std::string_view id,
                           WriteMode mode, IdEntry& entry) {
    // find() reads the entry before the writes below invalidate the view.
    int rc = find(txn, user, id, entry);
    if (rc != 0 || mode == WriteMode::none) return rc;
    rc = ids_.del(txn, id_key_);
    if (rc != 0) return rc;
    message_key(message_key_, user, entry.seq);
    rc = messages_.del(txn, message_key_);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int UserQueue::erase(lmdb::Txn& txn, std::string_view user, std::string_view id,
                     std::uint64_t seq) {
    message_key(message_key_, user, seq);
    int rc = messages_.del(txn, message_key_);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    id_key(id_key_, user, id);
    rc = ids_.del(txn, id_key_);
    return rc == MDB_NOTFOUND ? 0 : rc;
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

bool UserQueue::contains(std::string_view user, std::string_view id) const {
    lmdb::Txn txn(env_, lmdb::Txn::read_only);
    std::string key;
    id_key(key, user, id);
    std::string_view value;
    return ids_.get(txn, key, value) == 0;
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
