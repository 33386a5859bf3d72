// Thread: see context_threads.hpp.
#include "common/zmq/context_threads.hpp"

#include "common/thread_name.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

namespace vartalap {

namespace {

std::mutex naming; // one context at a time: the prefix search sees only its own threads
int next_prefix = 1;

// Renames this process's threads whose name begins with `tag`; returns how many it renamed.
int rename_tagged(const std::string& tag, const std::string& owner) {
    return rename_other_threads([&](const std::string& name) -> std::optional<std::string> {
        if (name.rfind(tag, 0) != 0) return std::nullopt;
        const bool io = name.compare(tag.size(), 2, "IO") == 0; // else "Reaper"
        return thread_name(owner, io ? "-zmq" : "-reap");
    });
}

} // namespace

bool name_context_threads(zmq::context_t& context, const std::string& owner,
                          std::chrono::milliseconds deadline) {
    const std::lock_guard lock(naming);
    const int prefix = next_prefix++;
    context.set(zmq::ctxopt::thread_name_prefix, prefix);
    const int expected = context.get(zmq::ctxopt::io_threads) + 1; // the I/O threads, the reaper
    zmq::socket_t first(context, zmq::socket_type::pair);          // starts the threads
    const std::string tag = std::to_string(prefix) + "/ZMQbg/";
    const auto until = std::chrono::steady_clock::now() + deadline;
    int renamed = 0;
    // The threads name themselves the moment they start: a short poll, not a wait on work.
    // From 200 us, doubling up to 20 ms, so a machine too loaded to start them at once is
    // not scanned thousands of times.
    auto pause = std::chrono::microseconds(200);
    for (;;) {
        renamed += rename_tagged(tag, owner);
        if (renamed >= expected) return true;
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(20'000));
    }
}

} // namespace vartalap
