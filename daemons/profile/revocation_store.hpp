// The revoked access keys, durable in the profile daemon's LMDB environment, and the
// versioned list every gateway polls (docs/INTERNAL_PROTOCOL.md, "Identity and revocation").
//
// Layout: `revoked` (big-endian seq -> JSON {"user","key","expires"}), `revoked_keys`
// (length-prefixed user + key -> big-endian seq: a key is revoked once), `meta`
// (`revocation_epoch`: random hex made with the database, `revocation_seq`: the last seq).
//
// Thread-safety: the profile daemon's thread (like ProfileCore). Errors: LMDB failures other
// than a full map or disk (lmdb::out_of_space) throw.
#pragma once

#include "common/store/lmdb.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::profile {

struct Revocation {
    std::uint64_t seq = 0;
    std::string user;
    std::string key;
    std::uint64_t expires = 0; // unix seconds after which the key is refused anyway; 0 = never
};

class RevocationStore {
public:
    explicit RevocationStore(lmdb::Env& env);

    enum class Result : std::uint8_t { revoked, already, full };
    Result revoke(std::string_view user, std::string_view key, std::uint64_t expires);

    struct Page {
        std::string epoch;
        std::uint64_t version = 0; // the last seq ever given
        std::vector<Revocation> entries;
        bool complete = true;
    };
    // The revocations after `since` (from the start when `epoch` is not this store's), at
    // most `max` of them.
    Page since(std::string_view epoch, std::uint64_t since, std::size_t max) const;

    // Deletes expired revocations among the next `max` entries (a scan that goes round the
    // table over successive calls). Returns how many went.
    std::size_t prune(std::uint64_t now_seconds, std::size_t max);

    const std::string& epoch() const { return epoch_; }
    std::uint64_t version() const { return version_; }

private:
    lmdb::Env& env_;
    lmdb::Db revoked_;
    lmdb::Db by_key_;
    lmdb::Db meta_;
    std::string epoch_;
    std::uint64_t version_ = 0;
    std::uint64_t prune_after_ = 0; // the scan's position (a seq)
};

} // namespace vartalap::profile
