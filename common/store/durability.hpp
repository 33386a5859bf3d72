// How a store's commits reach the disk: the `durability` option of the daemons that own an
// LMDB store (session, persistence). lmdb.hpp includes it, so it reads as lmdb::Durability.
// Thread-safety: pure functions. Errors: parse_durability returns nullopt for unknown text.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vartalap::lmdb {

enum class Durability : std::uint8_t {
    fsync,   // survives power loss: every commit syncs (one commit per drained batch)
    process, // survives a crash of any process: MDB_NOSYNC, synced every sync_interval_ms
};
std::optional<Durability> parse_durability(std::string_view text);
const char* to_string(Durability durability);

} // namespace vartalap::lmdb
