// Thread names (issue 13): every thread a daemon starts carries its daemon's instance name,
// so `top -H`, `perf` and a core dump show which daemon is busy. Linux keeps 15 bytes of a
// thread's name (pthread_setname_np, /proc/<pid>/task/<tid>/comm), so a name that does not
// fit is shortened by one rule, the same everywhere:
//
//   name = <owner><suffix>          owner: an instance name ("session-1"), or a label for
//                                   threads several daemons share ("ws-1+8": ws-1 and 8
//                                   more); suffix: what the thread does ("-sync", "-ops")
//   too long: the suffix stays whole, and the owner keeps its head and its last part (the
//   text after its last '-': the shard number, at most 4 bytes), joined by '~' where the
//   middle was cut:  persistence-1 + -sync -> "persiste~1-sync",
//                    message-router-12     -> "message-rout~12".
//   An owner with no such short last part keeps its head: "edge-gateway" + -ops ->
//   "edge-gatew~-ops" ('~' still marks the cut).
//
// Thread-safety: the functions are pure but for name_this_thread (the calling thread's name).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap {

inline constexpr std::size_t kThreadNameMax = 15; // bytes Linux keeps (TASK_COMM_LEN - 1)

// `owner` + `suffix` fitted into `max` bytes by the rule above.
std::string thread_name(std::string_view owner, std::string_view suffix = {},
                        std::size_t max = kThreadNameMax);

// The owner label of a thread shared by the daemons `instances` (in order): the one
// instance's name, or "<first>+<how many more>" ("ws-1+8").
std::string shared_thread_owner(const std::vector<std::string>& instances);

// Names the calling thread thread_name(owner, suffix).
void name_this_thread(std::string_view owner, std::string_view suffix = {});

// Renames threads of this process other than the caller, through
// /proc/self/task/<tid>/comm: each one whose current name `rename` maps to a new name.
// Returns how many were renamed. For the threads a library starts, which this code cannot
// name from inside.
int rename_other_threads(const std::function<std::optional<std::string>(const std::string& name)>& rename);

// A thread a library starts inherits its creator's name (Linux copies it at clone): Asio's
// resolver thread, started by the first async_resolve on an io_context, would carry the
// daemon's own name twice. Renames every other thread of this process that has exactly the
// calling thread's name to thread_name(that name, suffix); returns how many. Call it right
// after the call that starts such a thread. Reads /proc/self/task.
int name_threads_started_here(std::string_view suffix);

} // namespace vartalap
