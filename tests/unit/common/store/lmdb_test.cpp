// The LMDB wrapper's environment flags over real files: MDB_WRITEMAP on writable
// environments whose commits do not sync, never on others nor on read-only ones; the sparse
// data file it implies (grown with the map); and what a commit without a sync survives: the
// crash of the process that made it. A full disk (a small tmpfs; skipped unless root): a
// write that finds no space is kDiskFull, never SIGBUS or an exception, in both modes, and
// the next write after space is freed succeeds.
#include "common/store/lmdb.hpp"

#include "tests/support/fixtures.hpp"
#include "tests/support/tmpfs.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vartalap::lmdb {
namespace {

constexpr std::size_t kMapSize = std::size_t{64} << 20;

EnvOptions options(bool no_sync = false) {
    EnvOptions o;
    o.map_size = kMapSize;
    o.no_sync = no_sync;
    return o;
}

unsigned flags_of(const Env& env) {
    unsigned flags = 0;
    check(mdb_env_get_flags(env.get(), &flags), "mdb_env_get_flags");
    return flags;
}

void put(Env& env, const char* db_name, std::string_view key, std::string_view value) {
    Txn txn(env, Txn::read_write);
    const Db db = Db::open(txn, db_name);
    ASSERT_EQ(db.put(txn, key, value), 0);
    ASSERT_EQ(txn.commit(), 0);
}

std::optional<std::string> get(Env& env, const char* db_name, std::string_view key) {
    Txn txn(env, Txn::read_only);
    const auto db = Db::open_existing(txn, db_name);
    if (!db) return std::nullopt;
    std::string_view value;
    if (db->get(txn, key, value) != 0) return std::nullopt;
    return std::string(value);
}

struct FileSize {
    std::uintmax_t apparent = 0;  // st_size
    std::uintmax_t allocated = 0; // st_blocks * 512
};

FileSize data_file(const std::filesystem::path& directory) {
    struct stat st {};
    EXPECT_EQ(::stat((directory / "data.mdb").c_str(), &st), 0);
    return {static_cast<std::uintmax_t>(st.st_size), static_cast<std::uintmax_t>(st.st_blocks) * 512};
}

// Runs `body` in a child process that then dies by SIGKILL (no destructor, no close, no
// sync): what it committed must be found by the parent afterwards.
template <class Body>
void in_killed_child(Body&& body) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        body();
        ::kill(::getpid(), SIGKILL);
        ::_exit(1); // not reached
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(LmdbEnvTest, WriteMapOnlyWhereCommitsDoNotSyncAndNeverReadOnly) {
    test::TempDirectory dir("lmdb");
    {
        Env env(dir.path(), options(/*no_sync=*/true));
        EXPECT_NE(flags_of(env) & MDB_WRITEMAP, 0u);
        put(env, "d", "k", "v");
    }
    {
        Env env(dir.path(), options(/*no_sync=*/false)); // syncing commits: pwrite + fdatasync
        EXPECT_EQ(flags_of(env) & MDB_WRITEMAP, 0u);
        EXPECT_EQ(get(env, "d", "k"), "v");
    }
    {
        EnvOptions read_only = options(/*no_sync=*/true); // would use it, were it writable
        read_only.read_only = true;
        Env env(dir.path(), read_only);
        EXPECT_EQ(flags_of(env) & MDB_WRITEMAP, 0u);
        EXPECT_NE(flags_of(env) & MDB_RDONLY, 0u);
        EXPECT_EQ(get(env, "d", "k"), "v");
        EXPECT_THROW(Txn(env, Txn::read_write), Error); // EACCES: still read-only
    }
    {
        EnvOptions without = options(/*no_sync=*/true);
        without.write_map = false;
        Env env(dir.path(), without);
        EXPECT_EQ(flags_of(env) & MDB_WRITEMAP, 0u);
        EXPECT_EQ(get(env, "d", "k"), "v"); // the same file either way
    }
}

TEST(LmdbEnvTest, TheDataFileIsSparseAtTheMapSizeAndGrowsWithTheMap) {
    test::TempDirectory dir("lmdb");
    Env env(dir.path(), options(/*no_sync=*/true));
    put(env, "d", "k", std::string(10'000, 'x'));
    FileSize size = data_file(dir.path());
    EXPECT_EQ(size.apparent, kMapSize);
    EXPECT_LT(size.allocated, std::uintmax_t{1} << 20); // the pages written, not the map

    env.set_map_size(2 * kMapSize);
    put(env, "d", "k2", "v2");
    size = data_file(dir.path());
    EXPECT_EQ(size.apparent, 2 * kMapSize);
    EXPECT_LT(size.allocated, std::uintmax_t{1} << 20);
}

TEST(LmdbEnvTest, AnUnsyncedCommitSurvivesTheCrashOfItsProcess) {
    test::TempDirectory dir("lmdb");
    { Env create(dir.path(), options(/*no_sync=*/true)); } // the files exist before the fork

    in_killed_child([&] {
        Env env(dir.path(), options(/*no_sync=*/true));
        Txn committed(env, Txn::read_write);
        const Db db = Db::open(committed, "d");
        if (db.put(committed, "committed", "yes") != 0 || committed.commit() != 0) ::_exit(2);
        // Written but never committed: must not be found.
        Txn open(env, Txn::read_write);
        if (db.put(open, "uncommitted", "no") != 0) ::_exit(3);
    });

    Env env(dir.path(), options(/*no_sync=*/true));
    EXPECT_EQ(get(env, "d", "committed"), "yes");
    EXPECT_EQ(get(env, "d", "uncommitted"), std::nullopt);
}

// Fills a 1 MiB tmpfs with 4 KiB values, one commit each, in `no_sync` mode (MDB_WRITEMAP:
// without the reservation the process dies of SIGBUS) or with syncing commits (pwrite: LMDB
// would report the short write as EIO, an exception).
void fill_until_full_then_resume(bool no_sync) {
    test::TempDirectory dir("lmdb-full");
    test::Tmpfs tmpfs(dir.path() / "fs", "1m");
    if (!tmpfs.mounted()) GTEST_SKIP() << "needs a tmpfs it can mount (" << tmpfs.error() << ")";
    Env env(tmpfs.path(), options(no_sync));
    const std::string value(4096, 'v');
    int committed = 0;
    int rc = 0;
    while (rc == 0 && committed < 1000) {
        Txn txn(env, Txn::read_write);
        const Db db = Db::open(txn, "d");
        rc = db.put(txn, "k" + std::to_string(committed), value);
        if (rc == 0) rc = txn.commit();
        if (rc == 0) ++committed;
    }
    ASSERT_EQ(rc, kDiskFull) << mdb_strerror(rc) << " after " << committed;
    EXPECT_TRUE(out_of_space(rc));
    EXPECT_GT(committed, 50); // most of the 1 MiB holds data
    EXPECT_GE(env.disk_full_count(), 1u);
    for (int i = 0; i < committed; ++i) EXPECT_EQ(get(env, "d", "k" + std::to_string(i)), value) << i;

    // Still full: refused again, nothing thrown. Then space is freed: accepted.
    {
        Txn txn(env, Txn::read_write);
        const Db db = Db::open(txn, "d");
        EXPECT_EQ(db.put(txn, "again", value), kDiskFull);
    }
    ASSERT_TRUE(tmpfs.resize("4m"));
    put(env, "d", "after", value);
    EXPECT_EQ(get(env, "d", "after"), value);
    EXPECT_EQ(get(env, "d", "k0"), value);
}

TEST(LmdbDiskFullTest, WithWriteMapAFullDiskIsAResultAndWritesResumeWhenSpaceIsFreed) {
    fill_until_full_then_resume(/*no_sync=*/true);
}

TEST(LmdbDiskFullTest, WithSyncedCommitsAFullDiskIsAResultAndWritesResumeWhenSpaceIsFreed) {
    fill_until_full_then_resume(/*no_sync=*/false);
}

} // namespace
} // namespace vartalap::lmdb
