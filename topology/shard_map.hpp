// Slot hashing and shard maps: which instance of a sharded kind (session, persistence) owns
// a user.
//
// Users hash to one of kSlotCount slots (CRC16/XMODEM of the user id, as Redis Cluster
// does), and each instance of a sharded kind owns slot ranges (the `slots` key of the
// topology file; the loader checks that the ranges cover every slot exactly once).
//
// Thread-safety: slot_of is a pure function; a ShardMap is immutable after construction and
// may be read from any thread. It points into the Topology it was built from, which must
// outlive it.
// Errors: ShardMap's constructor throws std::invalid_argument (see below); lookups never fail.
#pragma once

#include "topology/topology.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace vartalap::topology {

// The slot of a user id, 0-16383: the same number Redis Cluster's CLUSTER KEYSLOT gives,
// hash tags included ("{alice}.device2" hashes "alice").
std::uint32_t slot_of(std::string_view user);

// Maps a user to the instance of a sharded kind that owns the user's slot.
// Built once per daemon; lookups are O(1). Throws std::invalid_argument if the topology has
// no instance of `kind` or leaves a slot unowned (a validated topology never does the latter;
// check of_kind() first for optional kinds).
class ShardMap {
public:
    ShardMap(const Topology& topology, std::string_view kind);
    // Index into instances(); the validator guarantees every slot is owned.
    std::size_t index_for(std::string_view user) const;
    // The instances in file order: the order of peers(topology, self, kind, role), so a
    // daemon's i-th socket to `kind` is shard i (catalog.hpp).
    const std::vector<const DaemonSpec*>& instances() const { return instances_; }

private:
    std::vector<const DaemonSpec*> instances_;
    std::vector<std::uint16_t> owner_; // kSlotCount entries
};

} // namespace vartalap::topology
