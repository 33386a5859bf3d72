// The names of a ZeroMQ context's own threads (issue 13: every thread carries its daemon's
// name). libzmq starts an I/O thread per ZMQ_IO_THREADS and a reaper with the context's
// first socket and names them "ZMQbg/IO/0" and "ZMQbg/Reaper". libzmq 4.3.4 (Debian 12)
// takes only an integer ZMQ_THREAD_NAME_PREFIX (a string one is a draft API), so
// name_context_threads sets a prefix no other context of the process has, opens the
// context's first socket (the threads start and call themselves "<prefix>/ZMQbg/..."),
// waits until every one of them shows in /proc/self/task, and renames them through
// /proc/self/task/<tid>/comm: "<owner>-zmq" (each I/O thread) and "<owner>-reap".
//
// Thread-safety: any thread; calls are serialised (a process-wide mutex). Call it before
// the context's first socket: once libzmq has named its threads without the prefix they
// cannot be told from another context's, and the call returns false.
#pragma once

#include <chrono>
#include <string>
#include <zmq.hpp>

namespace vartalap {

// True when every thread of `context` was renamed within `deadline` (then the names are
// final: libzmq names a thread once, when it starts).
bool name_context_threads(zmq::context_t& context, const std::string& owner,
                          std::chrono::milliseconds deadline = std::chrono::seconds(2));

} // namespace vartalap
