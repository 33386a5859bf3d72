// Thread: caller's; see lmdb.hpp.
#include "common/store/lmdb.hpp"

#include <boost/endian/conversion.hpp>

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace vartalap::lmdb {
namespace {

// How far past a transaction's need the reservation reaches: one fallocate per 256 KiB of
// growth (a system call per that much data is nothing; the space is used by later growth).
constexpr std::size_t kReserveAhead = std::size_t{256} << 10;
// Pages every write transaction may need besides its writes' own: the free list's database
// (its path copied, its records of reused pages deleted) and the main database's records of
// the named ones a commit rewrites.
constexpr std::size_t kTxnSlackPages = 32;

} // namespace

Error::Error(const std::string& what, int code)
    : std::runtime_error(what + ": " + mdb_strerror(code)), code_(code) {}

void check(int rc, const char* what) {
    if (rc != 0) throw Error(what, rc);
}

Env::Env(const std::filesystem::path& directory, const EnvOptions& options) : path_(directory) {
    if (!options.read_only) std::filesystem::create_directories(directory);
    check(mdb_env_create(&env_), "mdb_env_create");
    try {
        check(mdb_env_set_maxdbs(env_, options.max_dbs), "mdb_env_set_maxdbs");
        check(mdb_env_set_maxreaders(env_, options.max_readers), "mdb_env_set_maxreaders");
        check(mdb_env_set_mapsize(env_, options.map_size), "mdb_env_set_mapsize");
        unsigned flags = MDB_NOTLS;
        if (options.read_only) flags |= MDB_RDONLY;
        if (options.no_sync) flags |= MDB_NOSYNC;
        // Only without per-commit syncs: see lmdb.hpp for why and for the caveats.
        if (options.write_map && options.no_sync && !options.read_only) flags |= MDB_WRITEMAP;
        check(mdb_env_open(env_, directory.c_str(), flags, 0600),
              ("mdb_env_open " + directory.string()).c_str());
        int dead = 0;
        mdb_reader_check(env_, &dead);
        MDB_stat stat{};
        check(mdb_env_stat(env_, &stat), "mdb_env_stat");
        page_size_ = stat.ms_psize;
        if (options.reserve_disk && !options.read_only) {
            check(mdb_env_get_fd(env_, &fd_), "mdb_env_get_fd");
            reserved_end_ = used_bytes(); // written once, so backed
        }
    } catch (...) {
        mdb_env_close(env_);
        env_ = nullptr;
        throw;
    }
}

Env::~Env() {
    if (env_) mdb_env_close(env_);
}

void Env::sync(bool force) {
    const std::lock_guard lock(sync_mutex_);
    check(mdb_env_sync(env_, force ? 1 : 0), "mdb_env_sync");
}

int Env::reader_check() {
    int dead = 0;
    check(mdb_reader_check(env_, &dead), "mdb_reader_check");
    return dead;
}

std::size_t Env::map_size() const {
    MDB_envinfo info{};
    mdb_env_info(env_, &info);
    return info.me_mapsize;
}

std::size_t Env::used_bytes() const {
    MDB_envinfo info{};
    MDB_stat stat{};
    mdb_env_info(env_, &info);
    mdb_env_stat(env_, &stat);
    return (info.me_last_pgno + 1) * static_cast<std::size_t>(stat.ms_psize);
}

void Env::set_map_size(std::size_t bytes) {
    const std::lock_guard lock(sync_mutex_);
    check(mdb_env_set_mapsize(env_, bytes), "mdb_env_set_mapsize");
}

bool Env::reserve(std::size_t end) {
    if (fd_ < 0 || end <= reserved_end_) return true;
    end = std::min(end, map_size()); // LMDB writes nothing beyond the map (MDB_MAP_FULL)
    if (end <= reserved_end_) return true;
    // Ahead of need, so that small transactions reach for the disk once per 256 KiB of growth;
    // if that much is not free, exactly what is needed.
    const std::size_t ahead = std::min(map_size(), end + kReserveAhead);
    for (const std::size_t target : {ahead, end}) {
        int rc = 0;
        do {
            rc = ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(reserved_end_),
                             static_cast<off_t>(target - reserved_end_)) == 0 ? 0 : errno;
        } while (rc == EINTR);
        if (rc == 0) {
            reserved_end_ = target;
            return true;
        }
        if (rc == EOPNOTSUPP || rc == ENOSYS) {
            spdlog::warn("lmdb: {}: the filesystem cannot reserve disk (fallocate: {}); a full "
                         "disk is then noticed at commit only",
                         path_.string(), std::strerror(rc));
            fd_ = -1;
            return true;
        }
        if (rc != ENOSPC && rc != EDQUOT) throw Error("fallocate " + path_.string(), rc);
    }
    count_disk_full();
    return false;
}

Txn::Txn(Env& env, Mode mode) {
    check(mdb_txn_begin(env.get(), nullptr, mode == read_only ? MDB_RDONLY : 0, &txn_),
          "mdb_txn_begin");
    if (mode == read_write) {
        env_ = &env;
        // New pages start after the last committed one; kTxnSlackPages for the free list's
        // own records and the roots a commit writes.
        bound_ = env.used_bytes() + kTxnSlackPages * env.page_size();
    }
}

Txn::~Txn() { abort(); }

Txn::Txn(Txn&& other) noexcept : txn_(other.txn_), env_(other.env_), bound_(other.bound_) {
    other.txn_ = nullptr;
    other.env_ = nullptr;
}

int Txn::commit() {
    MDB_txn* txn = txn_;
    txn_ = nullptr;
    const int rc = mdb_txn_commit(txn);
    if (rc == MDB_MAP_FULL) return rc;
    if (rc == ENOSPC || rc == EDQUOT) {
        // Not reserved (a filesystem without fallocate, or pages LMDB needed beyond the
        // bound): the pages went nowhere committed state refers to.
        if (env_ != nullptr) env_->count_disk_full();
        return kDiskFull;
    }
    check(rc, "mdb_txn_commit");
    return 0;
}

int Txn::make_room(MDB_dbi dbi, std::size_t value_bytes) {
    if (env_ == nullptr || !env_->reserving()) return 0;
    MDB_stat stat{};
    check(mdb_stat(txn_, dbi, &stat), "mdb_stat");
    // A write copies each page on its path and may split each of them, the leaf's new
    // sibling and a new root included: 2 x (depth + 1). A value that does not fit a leaf
    // takes overflow pages of its own. Each page copied frees one, which the commit lists
    // in the free list: 8 bytes each.
    const std::size_t page = env_->page_size();
    const std::size_t pages = 2 * (stat.ms_depth + 1) + (value_bytes + page - 1) / page;
    bound_ += pages * (page + 8);
    return env_->reserve(bound_) ? 0 : kDiskFull;
}

void Txn::abort() {
    if (txn_) mdb_txn_abort(txn_);
    txn_ = nullptr;
}

Db Db::open(Txn& txn, const char* name, unsigned flags) {
    Db db;
    check(mdb_dbi_open(txn.get(), name, flags | MDB_CREATE, &db.dbi_), "mdb_dbi_open");
    return db;
}

std::optional<Db> Db::open_existing(Txn& txn, const char* name) {
    Db db;
    const int rc = mdb_dbi_open(txn.get(), name, 0, &db.dbi_);
    if (rc == MDB_NOTFOUND) return std::nullopt;
    check(rc, "mdb_dbi_open");
    return db;
}

void Db::drop(Txn& txn) {
    check(mdb_drop(txn.get(), dbi_, 1), "mdb_drop");
    dbi_ = 0;
}

int Db::get(Txn& txn, std::string_view key, std::string_view& value) const {
    MDB_val k = to_val(key);
    MDB_val v{};
    const int rc = mdb_get(txn.get(), dbi_, &k, &v);
    if (rc == MDB_NOTFOUND) return rc;
    check(rc, "mdb_get");
    value = to_view(v);
    return 0;
}

namespace {

// ENOSPC/EDQUOT from a write (LMDB spills dirty pages to the file when a transaction holds
// many): a full disk, like a failed reservation.
int space_result(int rc) { return rc == ENOSPC || rc == EDQUOT ? kDiskFull : rc; }

} // namespace

int Db::put(Txn& txn, std::string_view key, std::string_view value, unsigned flags) const {
    if (const int room = txn.make_room(dbi_, key.size() + value.size()); room != 0) return room;
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    const int rc = space_result(mdb_put(txn.get(), dbi_, &k, &v, flags));
    if (rc == MDB_KEYEXIST || out_of_space(rc)) return rc;
    check(rc, "mdb_put");
    return 0;
}

int Db::del(Txn& txn, std::string_view key) const {
    // A delete copies pages too, so it can run out of space like a put.
    if (const int room = txn.make_room(dbi_, 0); room != 0) return room;
    MDB_val k = to_val(key);
    const int rc = space_result(mdb_del(txn.get(), dbi_, &k, nullptr));
    if (rc == MDB_NOTFOUND || out_of_space(rc)) return rc;
    check(rc, "mdb_del");
    return 0;
}

Cursor::Cursor(Txn& txn, const Db& db) : txn_(&txn), dbi_(db.handle()) {
    check(mdb_cursor_open(txn.get(), db.handle(), &cursor_), "mdb_cursor_open");
}

Cursor::~Cursor() { mdb_cursor_close(cursor_); }

bool Cursor::move(MDB_cursor_op op) {
    const int rc = mdb_cursor_get(cursor_, &key_, &value_, op);
    if (rc == MDB_NOTFOUND) return false;
    check(rc, "mdb_cursor_get");
    return true;
}

bool Cursor::seek(std::string_view key) {
    key_ = to_val(key);
    return move(MDB_SET_RANGE);
}
bool Cursor::first() { return move(MDB_FIRST); }
bool Cursor::last() { return move(MDB_LAST); }
bool Cursor::next() { return move(MDB_NEXT); }

void Cursor::del() {
    check(txn_->make_room(dbi_, 0), "mdb_cursor_del: reserving disk");
    check(space_result(mdb_cursor_del(cursor_, 0)), "mdb_cursor_del");
}

void append_u16_be(std::string& out, std::uint16_t value) {
    unsigned char bytes[2];
    boost::endian::store_big_u16(bytes, value);
    out.append(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

void append_u32_be(std::string& out, std::uint32_t value) {
    unsigned char bytes[4];
    boost::endian::store_big_u32(bytes, value);
    out.append(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

std::uint16_t read_u16_be(std::string_view bytes) {
    return boost::endian::load_big_u16(reinterpret_cast<const unsigned char*>(bytes.data()));
}

void append_length_prefixed(std::string& out, std::string_view bytes) {
    append_u16_be(out, static_cast<std::uint16_t>(bytes.size()));
    out.append(bytes);
}

bool read_length_prefixed(std::string_view& in, std::string_view& out) {
    if (in.size() < 2) return false;
    const std::size_t n = read_u16_be(in);
    if (in.size() - 2 < n) return false;
    out = in.substr(2, n);
    in.remove_prefix(2 + n);
    return true;
}

void append_u64_be(std::string& out, std::uint64_t value) {
    unsigned char bytes[8];
    boost::endian::store_big_u64(bytes, value);
    out.append(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

std::uint64_t read_u64_be(std::string_view bytes) {
    // Right-aligned in a zeroed buffer: a shorter input reads as the value of its bytes.
    unsigned char buffer[8] = {};
    const std::size_t size = std::min<std::size_t>(bytes.size(), sizeof buffer);
    std::memcpy(buffer + sizeof buffer - size, bytes.data(), size);
    return boost::endian::load_big_u64(buffer);
}

} // namespace vartalap::lmdb
