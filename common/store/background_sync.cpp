// Thread: see background_sync.hpp.
#include "common/store/background_sync.hpp"

#include "common/thread_name.hpp"

#include <spdlog/spdlog.h>

namespace vartalap::lmdb {

BackgroundSync::BackgroundSync(Env& env, std::string thread_name) : env_(env) {
    thread_ = std::thread([this, name = std::move(thread_name)] {
        name_this_thread(name);
        run();
    });
}

BackgroundSync::~BackgroundSync() { join(); }

void BackgroundSync::request() {
    {
        const std::lock_guard lock(mutex_);
        if (stopping_) return;
        wanted_ = true;
    }
    wake_.notify_one();
}

void BackgroundSync::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return wanted_ || stopping_; });
        if (stopping_) return; // the owner syncs once more itself
        wanted_ = false;
        busy_.store(true, std::memory_order_relaxed);
        lock.unlock();
        try {
            env_.sync();
            syncs_.fetch_add(1, std::memory_order_relaxed);
        } catch (const std::exception& e) {
            // Logged for the first and then every 100th: a failing disk must not flood.
            const std::uint64_t failed = failures_.fetch_add(1, std::memory_order_relaxed);
            if (failed % 100 == 0)
                spdlog::error("lmdb: background sync of {} failed ({} failures so far): {}",
                              env_.path().string(), failed + 1, e.what());
        }
        busy_.store(false, std::memory_order_relaxed);
        lock.lock();
    }
}

void BackgroundSync::join() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void BackgroundSync::stop_and_sync() {
    join();
    env_.sync();
    syncs_.fetch_add(1, std::memory_order_relaxed);
}

} // namespace vartalap::lmdb
