// Thread: caller's; see lmdb.hpp.
#include "common/store/lmdb.hpp"

#include <boost/endian/conversion.hpp>

#include <algorithm>
#include <cstring>

namespace vartalap::lmdb {

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

Txn::Txn(Env& env, Mode mode) {
    check(mdb_txn_begin(env.get(), nullptr, mode == read_only ? MDB_RDONLY : 0, &txn_),
          "mdb_txn_begin");
}

Txn::~Txn() { abort(); }

Txn::Txn(Txn&& other) noexcept : txn_(other.txn_) { other.txn_ = nullptr; }

int Txn::commit() {
    MDB_txn* txn = txn_;
    txn_ = nullptr;
    const int rc = mdb_txn_commit(txn);
    if (rc == MDB_MAP_FULL) return rc;
    check(rc, "mdb_txn_commit");
    return 0;
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

int Db::put(Txn& txn, std::string_view key, std::string_view value, unsigned flags) const {
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    const int rc = mdb_put(txn.get(), dbi_, &k, &v, flags);
    if (rc == MDB_KEYEXIST || rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) return rc;
    check(rc, "mdb_put");
    return 0;
}

int Db::del(Txn& txn, std::string_view key) const {
    MDB_val k = to_val(key);
    const int rc = mdb_del(txn.get(), dbi_, &k, nullptr);
    // A delete copies pages too, so it can run out of space like a put.
    if (rc == MDB_NOTFOUND || rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) return rc;
    check(rc, "mdb_del");
    return 0;
}

Cursor::Cursor(Txn& txn, const Db& db) {
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

void Cursor::del() { check(mdb_cursor_del(cursor_, 0), "mdb_cursor_del"); }

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
