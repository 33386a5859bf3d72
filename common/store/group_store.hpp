// The group store: the LMDB environment the group daemon writes (at its data_dir) and every
// group-router on the same host reads, read-only, to expand group messages
// (docs/INTERNAL_PROTOCOL.md, "Groups"). This header is the contract between the two: the
// database names, the key layouts and the binary encoding of a group record.
//
// Layout (one environment, named databases):
//   groups:      group id                   -> GroupRecord (binary, below)
//   user_groups: [u16 len][user][group id]  -> ""            (the groups of a user, by prefix)
//   applied_ops: [u16 len][actor][op id]    -> encode_applied(...) (async operations already applied)
//   meta:        "next_change"              -> u64           (numbers group events)
//   outbox_*:    see fanout_outbox.hpp (group events not yet handed to session shards)
//
// GroupRecord encoding (all integers big-endian):
//   u8 format (= 1) | u32 name length | name | u8 has_profile_pic | u32 pic length | pic |
//   u64 created_at_ms | u32 member count | member count x (u8 role | u16 length | username)
// Members are kept in the order they joined; "the first remaining member" of the rules is
// the first in this order.
//
// Thread-safety: pure functions, except the shared-environment registry (internally
// locked). Errors: decoders return false for bytes that are not a valid record; they never
// throw and never read past the input.
#pragma once

#include "common/names.hpp"
#include "common/store/lmdb.hpp"
#include "common/wire/envelope.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::group_store {

inline constexpr const char* kGroupsDb = "groups";
inline constexpr const char* kUserGroupsDb = "user_groups";
inline constexpr const char* kAppliedOpsDb = "applied_ops";
inline constexpr const char* kMetaDb = "meta";

// Limits. LMDB keys are at most 511 bytes: [2][user][group id] and [2][actor][op id] fit.
using vartalap::kMaxUsernameBytes; // common/names.hpp: the one username rule
using vartalap::kMaxGroupIdBytes;  // client-generated ids (async create)
inline constexpr std::size_t kMaxOpIdBytes = 250;      // a client message id
inline constexpr std::size_t kMaxNameBytes = 256;
inline constexpr std::size_t kMaxProfilePicBytes = 4096; // a URL or a reference, not an image

enum class Role : std::uint8_t { user = 0, admin = 1 };
const char* to_string(Role role);

struct Member {
    std::string username;
    Role role = Role::user;
    bool operator==(const Member&) const = default;
};

struct GroupRecord {
    std::string name;
    bool has_profile_pic = false;
    std::string profile_pic;
    std::uint64_t created_at_ms = 0;
    std::vector<Member> members;

    // Index of `username` in members, or -1.
    long find(std::string_view username) const;
};

void encode(const GroupRecord& record, std::string& out);
bool decode(std::string_view bytes, GroupRecord& out);

// The group-router's hot path: the member usernames as views into `bytes` (valid as long
// as the bytes are: for LMDB values, until the read transaction ends). `out` is cleared.
bool member_views(std::string_view bytes, std::vector<std::string_view>& out);

// common/names.hpp's rules (a member is a valid username; a group id 1..kMaxGroupIdBytes
// bytes of the same characters, not reserved).
bool valid_username(std::string_view username);
bool valid_group_id(std::string_view group_id);

// The recorded outcome of an async operation (applied_ops): [u8 status][u16 len][group id]
// [error], so a resend is answered as the first attempt was. decode_applied: false for bytes
// that are not such a record.
std::string encode_applied(Status status, std::string_view group_id, std::string_view error);
bool decode_applied(std::string_view bytes, Status& status, std::string& group_id, std::string& error);

// [u16 length][first][second]: a prefix-scannable composite key.
void pair_key(std::string& out, std::string_view first, std::string_view second);

// LMDB forbids opening one environment twice in one process (closing either copy drops the
// other's locks). In one-process mode the group daemon and the group-routers share one
// lmdb::Env through this registry, keyed by the canonical directory.
//   shared_env: returns the environment already open for `directory`, or opens one with
//   `options`. Throws std::runtime_error if a read-write environment is wanted but only a
//   read-only one is open, and lmdb::Error if opening fails.
//   find_shared_env: the open environment, or nullptr.
std::shared_ptr<lmdb::Env> shared_env(const std::filesystem::path& directory,
                                      const lmdb::EnvOptions& options);
std::shared_ptr<lmdb::Env> find_shared_env(const std::filesystem::path& directory);

} // namespace vartalap::group_store
