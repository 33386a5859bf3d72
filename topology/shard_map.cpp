// Thread: any. Slot hashing and the slot -> instance table; see shard_map.hpp.
#include "topology/shard_map.hpp"

#include <algorithm>
#include <boost/crc.hpp>
#include <stdexcept>
#include <string>

namespace vartalap::topology {

namespace {

// CRC16/XMODEM (poly 0x1021, init 0, no reflection, no final xor): the checksum Redis
// Cluster hashes keys with, so slot numbers match what operators know from Redis.
using Crc16Xmodem = boost::crc_optimal<16, 0x1021, 0, 0, false, false>;

std::uint16_t crc16(std::string_view bytes) {
    Crc16Xmodem crc;
    crc.process_bytes(bytes.data(), bytes.size());
    return crc.checksum();
}

} // namespace

std::uint32_t slot_of(std::string_view user) {
    // Redis hash tags: if the id has "{...}" with something inside, only that part is
    // hashed (the first '{' and the first '}' after it), so related ids can share a shard.
    const auto open = user.find('{');
    if (open != std::string_view::npos) {
        const auto close = user.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1)
            user = user.substr(open + 1, close - open - 1);
    }
    // kSlotCount is a power of two: the modulo is Redis's "& 0x3FFF".
    return crc16(user) % kSlotCount;
}

ShardMap::ShardMap(const Topology& topology, std::string_view kind)
    : instances_(topology.of_kind(kind)) {
    if (instances_.empty())
        throw std::invalid_argument("ShardMap: the topology has no " + std::string(kind));
    // owner_ holds uint16 indexes to keep the table at 32 KiB per map.
    if (instances_.size() > UINT16_MAX)
        throw std::invalid_argument("ShardMap: too many " + std::string(kind) + " instances");
    constexpr std::uint16_t unowned = UINT16_MAX;
    owner_.assign(kSlotCount, unowned);
    if (instances_.size() == 1 && instances_.front()->slots.empty()) {
        std::fill(owner_.begin(), owner_.end(), 0);
        return;
    }
    for (std::size_t i = 0; i < instances_.size(); ++i) {
        for (const SlotRange& range : instances_[i]->slots) {
            if (range.first > range.last || range.last >= kSlotCount)
                throw std::invalid_argument("ShardMap: " + instances_[i]->name +
                                            " has a slot range outside 0-16383");
            for (std::uint32_t slot = range.first; slot <= range.last; ++slot)
                owner_[slot] = static_cast<std::uint16_t>(i);
        }
    }
    const auto hole = std::find(owner_.begin(), owner_.end(), unowned);
    if (hole != owner_.end())
        throw std::invalid_argument("ShardMap: slot " + std::to_string(hole - owner_.begin()) +
                                    " of " + std::string(kind) + " has no owner");
}

std::size_t ShardMap::index_for(std::string_view user) const {
    return owner_[slot_of(user)];
}

} // namespace vartalap::topology
