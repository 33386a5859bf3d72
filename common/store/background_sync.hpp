// lmdb::BackgroundSync: the periodic sync of a `process`-durability store (MDB_NOSYNC, see
// durability.hpp) on a thread of its own, so that the event loop which commits never waits
// for the disk. request() returns at once; the thread then calls Env::sync() (msync of the
// map, or fdatasync), and requests made while one runs are folded into one more sync.
//
// Why a thread: the sync is the one call of the hot path that waits on the device. On the
// shared event loop ([system] threads) it stalled every daemon of the loop, gateways
// included, for as long as the disk took (measured: 6-8 ms per sync on this VM's disk when
// quiet, far longer while other writers ran). What `process` durability promises does not
// change: a commit survives the crash of any process at once (it is in the page cache), and
// a power loss may lose what was committed since the last finished sync.
//
// Thread-safety: request() and the counters from any thread; stop() from the owner's thread.
// Errors: a failed sync is logged (sampled) and counted, and the next request tries again;
// stop() then syncs on the caller's thread and throws lmdb::Error as Env::sync() does.
// Ownership: keeps a reference to the Env, which must outlive it (stop() or the destructor
// joins the thread first).
#pragma once

#include "common/store/lmdb.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace vartalap::lmdb {

class BackgroundSync {
public:
    // `thread_name`: shown by top -H and perf; make it with thread_name() of
    // common/thread_name.hpp ("<instance>-sync", fitted into the 15 bytes Linux keeps).
    BackgroundSync(Env& env, std::string thread_name);
    ~BackgroundSync(); // stop() without the final sync
    BackgroundSync(const BackgroundSync&) = delete;
    BackgroundSync& operator=(const BackgroundSync&) = delete;

    // Everything committed before this call reaches the disk soon. Never blocks on the disk.
    void request();
    // Waits for a running sync, ends the thread, then syncs once more on this thread (the
    // last commits of a drain). Idempotent: later calls only sync.
    void stop_and_sync();

    std::uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }
    std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
    bool busy() const { return busy_.load(std::memory_order_relaxed); }

private:
    void run();
    void join();

    Env& env_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool wanted_ = false;   // under mutex_
    bool stopping_ = false; // under mutex_
    std::atomic<bool> busy_{false};
    std::atomic<std::uint64_t> syncs_{0};
    std::atomic<std::uint64_t> failures_{0};
    std::thread thread_;
};

} // namespace vartalap::lmdb
