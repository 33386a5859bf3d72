// lmdb::BackgroundSync over real environments: a request is served by its thread while the
// owner goes on committing, requests during a sync fold into one more, stop_and_sync() ends
// the thread and syncs on the caller's, a failing sync is counted and the next one tries
// again, and a map growth (set_map_size remaps the file) is never under a running msync.
#include "common/store/background_sync.hpp"

#include "tests/support/fixtures.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

namespace vartalap::lmdb {
namespace {

using namespace std::chrono_literals;
using test::TempDirectory;

EnvOptions process_options(std::size_t map_size = std::size_t{8} << 20) {
    EnvOptions o;
    o.map_size = map_size;
    o.no_sync = true; // `process` durability: MDB_NOSYNC + MDB_WRITEMAP
    return o;
}

void put(Env& env, const std::string& key, const std::string& value) {
    Txn txn(env, Txn::read_write);
    const Db db = Db::open(txn, "data");
    ASSERT_EQ(db.put(txn, key, value), 0);
    ASSERT_EQ(txn.commit(), 0);
}

// Waits (with a deadline) until `done` holds.
template <class Done>
bool eventually(Done done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + vartalap::test::scaled(limit);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::yield();
    }
    return true;
}

TEST(BackgroundSyncTest, ARequestIsSyncedOnItsThreadWhileTheOwnerCommits) {
    TempDirectory dir("bgsync");
    Env env(dir.path(), process_options());
    BackgroundSync sync(env, "test-sync");
    put(env, "a", "1");
    sync.request();
    ASSERT_TRUE(eventually([&] { return sync.syncs() >= 1; }));
    for (int i = 0; i < 100; ++i) { // the owner never waits for a running sync
        put(env, "k" + std::to_string(i), std::string(1000, 'x'));
        sync.request();
    }
    // The requests after the first sync are served (requests made while one sync runs
    // fold into one more sync: at most one per request).
    ASSERT_TRUE(eventually([&] { return sync.syncs() >= 2; }));
    sync.stop_and_sync();
    const std::uint64_t after_stop = sync.syncs();
    EXPECT_LE(after_stop, 102u); // 101 requests, and the final sync on this thread
    EXPECT_EQ(sync.failures(), 0u);
    sync.request();      // after stop: nothing runs, nothing throws
    sync.stop_and_sync(); // idempotent: only syncs
}

TEST(BackgroundSyncTest, AFailedSyncIsCountedAndStopThrowsWhatTheSyncThrows) {
    TempDirectory dir("bgsync-fail");
    { Env writer(dir.path(), process_options()); put(writer, "a", "1"); }
    EnvOptions read_only;
    read_only.read_only = true;
    Env env(dir.path(), read_only); // mdb_env_sync refuses a read-only environment (EACCES)
    BackgroundSync sync(env, "test-sync");
    sync.request();
    ASSERT_TRUE(eventually([&] { return sync.failures() >= 1; }));
    EXPECT_EQ(sync.syncs(), 0u);
    sync.request(); // the next request tries again
    ASSERT_TRUE(eventually([&] { return sync.failures() >= 2; }));
    EXPECT_THROW(sync.stop_and_sync(), Error);
}

TEST(BackgroundSyncTest, TheMapGrowsWhileSyncsRun) {
    TempDirectory dir("bgsync-grow");
    std::size_t map_size = std::size_t{1} << 20;
    Env env(dir.path(), process_options(map_size));
    BackgroundSync sync(env, "test-sync");
    const std::string value(4000, 'v');
    for (int i = 0; i < 2000; ++i) {
        Txn txn(env, Txn::read_write);
        const Db db = Db::open(txn, "data");
        int rc = db.put(txn, "k" + std::to_string(i), value);
        if (rc == 0) rc = txn.commit();
        if (rc == MDB_MAP_FULL) {
            // No transaction open: grow, as the daemons do, while the thread may be syncing.
            if (txn.get() != nullptr) txn.abort();
            map_size *= 2;
            env.set_map_size(map_size);
            --i;
            continue;
        }
        ASSERT_EQ(rc, 0);
        sync.request();
    }
    sync.stop_and_sync();
    EXPECT_EQ(sync.failures(), 0u);
    EXPECT_GT(env.map_size(), std::size_t{1} << 20);
    Txn txn(env, Txn::read_only);
    const auto db = Db::open_existing(txn, "data");
    ASSERT_TRUE(db);
    std::string_view found;
    EXPECT_EQ(db->get(txn, "k1999", found), 0);
}

} // namespace
} // namespace vartalap::lmdb
