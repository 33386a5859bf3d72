// The one rule for the names users are known by and messages are addressed to: a login
// username (profile), the user an access key is checked for (both gateways), a message's
// recipient (`head.to`, common/wire/client_message), a group member and a group id (group,
// group-router). One function each, so a name that cannot log in cannot be addressed either.
//
// A username is 1..kMaxUsernameBytes bytes of printable ASCII (0x21-0x7e) other than `"`,
// `;`, `,` (they delimit cookies and headers), `\` and `/` (no path can be spelt, `../`
// included), and not reserved:
//   - `server` in any letter case: the sender of SERVER_ACKs and error frames, and the
//     recipient that makes a receipt an ack only (PROTOCOL.md);
//   - a name that starts with `~`: the server's own ids begin `~server:` (group events);
//   - a name shaped like a server-made group id (8-4-4-4-12 hex digits, a UUID): group ids
//     and usernames share the app's chat list (a chat's id is the peer or the group), so a
//     user named like a group could post into that group's chat in a member's app.
// The app's usernames are E.164 phone numbers ("+911234567890"): always valid.
// A group id (client-made, the async create) follows the same character rule, is
// 1..kMaxGroupIdBytes bytes, and is not `server` nor starts with `~`.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace vartalap {

inline constexpr std::size_t kMaxUsernameBytes = 64;  // E.164 is at most 16; room for test/bot ids
inline constexpr std::size_t kMaxGroupIdBytes = 128;  // client-made ids (async create)

enum class NameProblem {
    none,
    empty,
    too_long,
    bad_character, // outside printable ASCII, or one of " ; , \ /
    reserved,      // server, ~..., a group-id shape (usernames only)
};

// Why `name` is not a valid username (NameProblem::none: it is).
NameProblem check_username(std::string_view name);
// Why `id` is not a valid group id (NameProblem::none: it is).
NameProblem check_group_id(std::string_view id);

inline bool valid_username(std::string_view name) { return check_username(name) == NameProblem::none; }
inline bool valid_group_id(std::string_view id) { return check_group_id(id) == NameProblem::none; }

// "empty", "too long", "a character that is not allowed", "reserved".
std::string_view describe(NameProblem problem);

// Whether `name` has the shape of a server-made group id (8-4-4-4-12 hex digits).
bool group_id_shaped(std::string_view name);

} // namespace vartalap
