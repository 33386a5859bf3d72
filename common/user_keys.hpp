// LMDB keys of per-user message stores, shared by the session and persistence daemons so that
// both write the same layout (docs: the store layout at the top of session_core.hpp and
// persistence_core.hpp). The layout is on disk: changing it needs a store migration.
//   user prefix:  [2 bytes user length, big-endian][user bytes]
//   message key:  [user prefix][8 bytes seq, big-endian]
//   id key:       [user prefix][id bytes]
// Thread-safety: pure functions on caller-owned buffers (count_messages reads through the
// caller's transaction, on the caller's thread). Errors: none thrown beyond std::bad_alloc
// and what lmdb::Cursor throws.
#pragma once

#include "common/lmdb.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vartalap::user_keys {

// Appends [2 len][user]. Length-prefixed so that no user's keys are a prefix of another
// user's (user names and ids are untrusted bytes: a separator byte could occur inside them).
// Users are at most 65535 bytes (the daemons' max_user_bytes is far below that).
inline void append_user_prefix(std::string& out, std::string_view user) {
    out.push_back(static_cast<char>((user.size() >> 8) & 0xff));
    out.push_back(static_cast<char>(user.size() & 0xff));
    out.append(user);
}

// Replaces `out` with the user prefix: every key of `user`, and only those, starts with it.
inline void user_prefix(std::string& out, std::string_view user) {
    out.clear();
    append_user_prefix(out, user);
}

// Replaces `out` with the key of `user`'s message `seq`; keys sort by seq within a user.
inline void message_key(std::string& out, std::string_view user, std::uint64_t seq) {
    user_prefix(out, user);
    lmdb::append_u64_be(out, seq);
}

// Replaces `out` with the key of `user`'s message id `id` (the dedupe index).
inline void id_key(std::string& out, std::string_view user, std::string_view id) {
    user_prefix(out, user);
    out.append(id);
}

// The user length written by append_user_prefix at key[at]; 0 when the key is too short to
// hold one (a key never written by us — callers then check the whole size and skip it).
inline std::size_t user_length_at(std::string_view key, std::size_t at) {
    if (key.size() < at + 2) return 0;
    return (static_cast<std::size_t>(static_cast<unsigned char>(key[at])) << 8) |
           static_cast<unsigned char>(key[at + 1]);
}

// How many message keys `user` has in `messages` (keys of other shapes are not counted).
// For inspection and tests: it walks every key of the user.
inline std::size_t count_messages(lmdb::Txn& txn, const lmdb::Db& messages, std::string_view user) {
    lmdb::Cursor cursor(txn, messages);
    std::string prefix;
    user_prefix(prefix, user);
    std::size_t count = 0;
    for (bool ok = cursor.seek(prefix); ok && cursor.key().starts_with(prefix) &&
                                        cursor.key().size() == prefix.size() + 8;
         ok = cursor.next())
        ++count;
    return count;
}

} // namespace vartalap::user_keys
