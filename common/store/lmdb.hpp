// A thin RAII wrapper over LMDB (lmdb.h is the contract; read its caveats). The durable
// per-user queue of the session and persistence daemons builds on it (user_queue.hpp).
//
// Ownership: Env owns the MDB_env; Txn owns an MDB_txn and aborts it unless committed.
// Errors: results the caller must handle (MDB_NOTFOUND, MDB_KEYEXIST, MDB_MAP_FULL, and a
// full disk: kDiskFull) are returned as int codes; anything else (a corrupt file, EIO, bad
// arguments) throws lmdb::Error, because a daemon cannot continue safely and a restart is
// cheap.
// Thread-safety: an Env is shared by threads; a write Txn belongs to one thread, and the
// Env is opened with MDB_NOTLS so read transactions are not tied to threads either. The
// disk reservation's state is touched by write transactions only, which LMDB serializes.
//
// MDB_WRITEMAP (EnvOptions::write_map): used when the environment is writable and its
// commits do not sync (no_sync, the "process" durability). A commit then writes its pages by
// storing into the shared file mapping instead of pwrite(): no system call at all per commit
// (measured with a 7-put, 7-delete commit: 24 -> 7 us of wall time, 22 -> 3 us of CPU). With
// syncing commits it is not used: there LMDB msync()s the whole map and every page dirtied
// again after a sync takes a write fault (7 per such commit), which measured 2.2-2.6x the
// CPU and 1.1-1.6x the wall time of pwrite() + fdatasync() per commit (ext4, this VM). What it changes, from lmdb.h and mdb.c (0.9.24):
//   - Durability is the no_sync one. A committed transaction is in the kernel's page cache
//     the moment its meta page is stored, so it survives the crash of the process (tested:
//     lmdb_test.cpp); sync() (msync MS_SYNC) makes it survive power loss. A power loss or
//     kernel crash before that may lose it, and LMDB then does not promise a consistent
//     file either (lmdb.h on MDB_NOSYNC: integrity is kept only "if the filesystem
//     preserves write order and the MDB_WRITEMAP flag is not used").
//   - The data file is ftruncate()d to the map size at open and at set_map_size(): a sparse
//     file whose apparent size (ls, du --apparent-size) is the map size, while its disk use
//     (du) is the pages written. Copy it with a sparse-aware tool. On a filesystem without
//     sparse files the whole map is allocated.
//   - A full disk: a store into a hole that the filesystem cannot allocate raises SIGBUS
//     (the process would die, unlogged). The disk reservation below keeps every page a
//     transaction can write backed by the filesystem before LMDB writes it.
//   - Nested transactions are incompatible with MDB_WRITEMAP: Txn has no parent, and the
//     stores never nest (the map-full fallback of UserQueue aborts and begins anew).
//   - A stray write through a pointer into the map could corrupt the file (lmdb.h).
//   - Processes that have one environment open read-write at the same time must agree on
//     it (lmdb.h: "do not mix"); each store has one writing daemon. Read-only opens
//     (read_only, Db::open_existing, group_store::Reader) stay read-only: LMDB ignores
//     MDB_WRITEMAP with MDB_RDONLY (mdb_env_open) and maps the file PROT_READ.
// MDB_NOMETASYNC and MDB_MAPASYNC are not used: with syncing commits either lets a power
// loss undo the last commit (lmdb.h), and no_sync already skips every per-commit flush.
//
// A full disk (issue 14, section 7): a write that finds no space is a result, kDiskFull, like
// MDB_MAP_FULL, never a crash. Writable environments reserve the disk their transactions may
// write before they write it (EnvOptions::reserve_disk): Db::put, Db::del and Cursor::del
// first add to the transaction's bound of new pages (Txn::make_room: every page on the
// database's path copied and split, 2 x (depth + 1), plus the value's overflow pages, plus 8
// bytes of free list per page; 32 pages per transaction for the free list's and the main
// database's paths) and, past what is reserved, extend the data file's allocation with
// fallocate(FALLOC_FL_KEEP_SIZE) to that bound plus 256 KiB.
// When the filesystem cannot give it (ENOSPC, EDQUOT) the write returns kDiskFull before
// LMDB touched a page: with MDB_WRITEMAP no store into an unbacked hole (SIGBUS), with
// pwrite() no short write (which LMDB reports as EIO). Pages below the last committed one are
// backed already (written once), so only growth needs the reservation. The bound is above
// what LMDB allocates, so a full disk refuses a little early, and up to one transaction's
// bound plus 256 KiB of the file may be allocated ahead of use (used by later growth). On a
// filesystem without fallocate the reservation is off (logged once) and a commit's ENOSPC
// is still kDiskFull. Committed data stays intact either way: a transaction writes only to
// pages no committed state refers to. Nothing is remembered of a failure: once space is
// freed the next write reserves it, without a restart.
#pragma once

#include "common/store/durability.hpp"

#include <lmdb.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace vartalap::lmdb {

class Error : public std::runtime_error {
public:
    Error(const std::string& what, int code);
    int code() const { return code_; }

private:
    int code_;
};

// Throws Error unless rc == 0.
void check(int rc, const char* what);

// The result of a write that found no disk space (ENOSPC; EDQUOT is reported as it too).
inline constexpr int kDiskFull = ENOSPC;
// Whether `rc` says "no room": the map (MDB_MAP_FULL), the transaction (MDB_TXN_FULL) or the
// disk (kDiskFull). Each such write leaves the transaction to be aborted.
inline bool out_of_space(int rc) {
    return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL || rc == kDiskFull;
}

struct EnvOptions {
    std::size_t map_size = std::size_t{1} << 30; // 1 GiB: address space, not disk, until used
    unsigned max_dbs = 16;
    unsigned max_readers = 126;                  // LMDB's default
    bool read_only = false;
    bool no_sync = false;                        // MDB_NOSYNC: caller syncs periodically
    bool write_map = true;                       // MDB_WRITEMAP if no_sync and not read_only
    bool reserve_disk = true;                    // reserve disk before writes (see above)
};

class Env {
public:
    // Creates the directory if needed (unless read_only) and opens the environment.
    Env(const std::filesystem::path& directory, const EnvOptions& options = {});
    ~Env();
    Env(const Env&) = delete;
    Env& operator=(const Env&) = delete;

    MDB_env* get() const { return env_; }
    const std::filesystem::path& path() const { return path_; }
    // Flush to disk (needed with no_sync). Throws on I/O error. Safe to call from another
    // thread than the one that writes (lmdb::BackgroundSync does): mdb_env_sync takes no
    // LMDB lock, and sync_mutex_ keeps it apart from set_map_size, which remaps the file.
    void sync(bool force = true);
    // Clears stale reader slots left by dead processes; returns how many were cleared.
    int reader_check();
    // Current map size and bytes in use (last page used * page size).
    std::size_t map_size() const;
    std::size_t used_bytes() const;
    // Grows the map; only valid when this process has no transaction open. Waits for a
    // sync running on another thread.
    void set_map_size(std::size_t bytes);
    std::size_t page_size() const { return page_size_; }
    // Makes sure the data file's first `end` bytes are backed by the filesystem (capped at
    // the map size: LMDB writes nothing beyond it). False when the filesystem is full; each
    // such failure is counted. On the writing thread only (Txn::make_room calls it).
    bool reserve(std::size_t end);
    bool reserving() const { return fd_ >= 0; }
    // Bytes of the data file known to be backed (while reserving).
    std::size_t reserved_bytes() const { return reserved_end_; }
    // Writes refused for lack of disk so far (reservations and commits that hit ENOSPC).
    std::uint64_t disk_full_count() const {
        return disk_full_count_.load(std::memory_order_relaxed);
    }
    void count_disk_full() { disk_full_count_.fetch_add(1, std::memory_order_relaxed); }

private:
    MDB_env* env_ = nullptr;
    std::size_t page_size_ = 4096;
    int fd_ = -1;                  // the data file, while reserving
    std::size_t reserved_end_ = 0; // its bytes known to be backed (under LMDB's writer lock)
    std::atomic<std::uint64_t> disk_full_count_{0};
    std::mutex sync_mutex_; // sync() against set_map_size(): never the map under an msync
    std::filesystem::path path_;
};

class Txn {
public:
    enum Mode { read_write, read_only };
    Txn(Env& env, Mode mode);
    ~Txn();
    Txn(Txn&& other) noexcept;
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;

    MDB_txn* get() const { return txn_; }
    // Returns 0, MDB_MAP_FULL or kDiskFull (the transaction is then gone); throws on other
    // errors.
    int commit();
    void abort();
    // Before a write of a `value_bytes` value to `dbi`: adds its pages to the transaction's
    // bound and reserves the disk for it (see above). 0, or kDiskFull (nothing was written;
    // the transaction must then be aborted).
    int make_room(MDB_dbi dbi, std::size_t value_bytes);

private:
    MDB_txn* txn_ = nullptr;
    Env* env_ = nullptr;       // a write transaction's environment
    std::size_t bound_ = 0;    // the file's end this transaction may write up to
};

inline MDB_val to_val(std::string_view s) {
    return MDB_val{s.size(), const_cast<char*>(s.data())};
}
inline std::string_view to_view(const MDB_val& v) {
    return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

class Db {
public:
    Db() = default;
    // Opens (creating unless the txn is read-only) a named database.
    static Db open(Txn& txn, const char* name, unsigned flags = 0);
    // Opens a named database without creating it (the only way in a read-only environment):
    // nullopt if it does not exist yet; throws Error on anything else.
    static std::optional<Db> open_existing(Txn& txn, const char* name);

    // 0 and *value set, or MDB_NOTFOUND. The view is valid until the txn ends or writes.
    int get(Txn& txn, std::string_view key, std::string_view& value) const;
    // 0, MDB_KEYEXIST (with MDB_NOOVERWRITE), or MDB_MAP_FULL / MDB_TXN_FULL / kDiskFull (the
    // txn must then be aborted).
    int put(Txn& txn, std::string_view key, std::string_view value, unsigned flags = 0) const;
    // 0, MDB_NOTFOUND, or MDB_MAP_FULL / MDB_TXN_FULL / kDiskFull (the txn must then be
    // aborted).
    int del(Txn& txn, std::string_view key) const;
    // Deletes the database itself (mdb_drop); the handle is then invalid. Throws Error.
    void drop(Txn& txn);
    MDB_dbi handle() const { return dbi_; }

private:
    MDB_dbi dbi_ = 0;
};

class Cursor {
public:
    Cursor(Txn& txn, const Db& db);
    ~Cursor();
    Cursor(const Cursor&) = delete;
    Cursor& operator=(const Cursor&) = delete;

    // Positions at the first key >= `key`; false if none.
    bool seek(std::string_view key);
    bool first();
    bool last();
    bool next();
    std::string_view key() const { return to_view(key_); }
    std::string_view value() const { return to_view(value_); }
    // Deletes the current item; the cursor then points at the next one (LMDB semantics).
    // Throws Error (kDiskFull too).
    void del();

private:
    bool move(MDB_cursor_op op);
    Txn* txn_ = nullptr;
    MDB_dbi dbi_ = 0;
    MDB_cursor* cursor_ = nullptr;
    MDB_val key_{};
    MDB_val value_{};
};

// The stores' byte encodings, one place for all of them (Boost.Endian underneath).
// Big-endian so that byte order of keys equals numeric order.
void append_u16_be(std::string& out, std::uint16_t value);
void append_u32_be(std::string& out, std::uint32_t value);
void append_u64_be(std::string& out, std::uint64_t value);
// The big-endian u16 at bytes[0..2); the caller has checked that there are 2 bytes.
std::uint16_t read_u16_be(std::string_view bytes);
// [u16 big-endian length][bytes]: a string that no other one is a prefix of, so keys built
// from untrusted names cannot collide. `bytes` must be at most 65535 long.
void append_length_prefixed(std::string& out, std::string_view bytes);
// Reads what append_length_prefixed wrote at the front of `in` into `out` and removes it
// from `in`; false (and `in` unchanged) when `in` is too short to hold it.
bool read_length_prefixed(std::string_view& in, std::string_view& out);
// The big-endian value of the first min(8, size) bytes (fewer than 8: of those bytes alone).
std::uint64_t read_u64_be(std::string_view bytes);

} // namespace vartalap::lmdb
