// Reading group membership from the group store (group_store.hpp): the interface the
// group-router's core reads through, and its LMDB implementation over the store opened
// read-only (or shared with this process's group daemon, see group_store::shared_env).
//
// Thread-safety: a Reader belongs to one thread (its read transaction is that thread's).
// Errors: a store that does not exist yet is "not ready" (retried, logged once); a corrupt
// record is treated as an absent group (logged); other LMDB errors throw lmdb::Error.
// Ownership: the Reader keeps a reference to the Clock, which must outlive it.
#pragma once

#include "common/clock.hpp"
#include "common/store/lmdb.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace vartalap::group_store {

// Read access to group membership.
class Membership {
public:
    virtual ~Membership() = default;
    // Starts a read snapshot for a batch. False: the store is not available (yet).
    virtual bool begin() = 0;
    virtual void end() = 0;
    // The members of `group_id` in order (views valid until end()); false: no such group.
    virtual bool members(std::string_view group_id, std::vector<std::string_view>& out) = 0;
};

// The group store at `directory`. Opening is retried at most every `retry_ms` until the
// group daemon has created the store.
class Reader final : public Membership {
public:
    Reader(std::filesystem::path directory, const Clock& clock, std::uint64_t retry_ms = 1000);
    ~Reader() override;
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    // Opens the store if needed (rate limited); true once it is open.
    bool ready();
    bool begin() override;
    void end() override;
    bool members(std::string_view group_id, std::vector<std::string_view>& out) override;

private:
    bool try_open();

    std::filesystem::path directory_;
    const Clock& clock_;
    std::uint64_t retry_ms_;
    std::uint64_t next_attempt_ms_ = 0;
    bool logged_unavailable_ = false;
    std::shared_ptr<lmdb::Env> env_;
    lmdb::Db groups_;
    bool open_ = false;
    std::optional<lmdb::Txn> txn_;
};

} // namespace vartalap::group_store
