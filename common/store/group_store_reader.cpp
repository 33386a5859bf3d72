// Thread: the reading daemon's thread (see group_store_reader.hpp).
#include "common/store/group_store_reader.hpp"

#include "common/store/group_store.hpp"

#include <spdlog/spdlog.h>

#include <mutex>

namespace vartalap::group_store {
namespace {

// mdb_dbi_open must not run concurrently in one process (lmdb.h); group-routers of one
// process open the shared store from their own threads.
std::mutex& dbi_open_mutex() {
    static std::mutex mutex;
    return mutex;
}

} // namespace

Reader::Reader(std::filesystem::path directory, const Clock& clock, std::uint64_t retry_ms)
    : directory_(std::move(directory)), clock_(clock), retry_ms_(retry_ms) {}

Reader::~Reader() { end(); }

bool Reader::ready() { return open_ || try_open(); }

bool Reader::try_open() {
    const std::uint64_t now = clock_.monotonic_ms();
    if (now < next_attempt_ms_) return false;
    next_attempt_ms_ = now + retry_ms_;
    std::lock_guard lock(dbi_open_mutex());
    if (!env_) env_ = find_shared_env(directory_);
    if (!env_) {
        if (!std::filesystem::exists(directory_ / "data.mdb")) {
            if (!logged_unavailable_)
                spdlog::warn("group-router: group store {} does not exist yet; waiting for the group daemon",
                             directory_.string());
            logged_unavailable_ = true;
            return false;
        }
        lmdb::EnvOptions options;
        options.read_only = true;
        try {
            env_ = shared_env(directory_, options);
        } catch (const std::exception& e) {
            if (!logged_unavailable_)
                spdlog::error("group-router: cannot open the group store {}: {}", directory_.string(), e.what());
            logged_unavailable_ = true;
            return false;
        }
    }
    lmdb::Txn txn(*env_, lmdb::Txn::read_only);
    const auto groups = lmdb::Db::open_existing(txn, kGroupsDb);
    txn.commit(); // keeps the handle for later transactions
    if (!groups) return false; // the group daemon has not created its databases yet
    groups_ = *groups;
    open_ = true;
    spdlog::info("group-router: reading group membership from {}", directory_.string());
    return true;
}

bool Reader::begin() {
    end();
    if (!ready()) return false;
    try {
        txn_.emplace(*env_, lmdb::Txn::read_only);
    } catch (const lmdb::Error& e) {
        if (e.code() != MDB_MAP_RESIZED) throw;
        env_->set_map_size(0); // the group daemon grew its map: adopt the new size
        txn_.emplace(*env_, lmdb::Txn::read_only);
    }
    return true;
}

void Reader::end() { txn_.reset(); }

bool Reader::members(std::string_view group_id, std::vector<std::string_view>& out) {
    out.clear();
    if (!txn_) return false;
    std::string_view value;
    if (groups_.get(*txn_, group_id, value) == MDB_NOTFOUND) return false;
    if (!member_views(value, out)) {
        spdlog::error("group-router: corrupt record for group {}; treated as absent", group_id);
        return false;
    }
    return true;
}

} // namespace vartalap::group_store
