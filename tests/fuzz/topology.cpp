// Fuzz target: the topology loader (topology/: load_string over toml++), what `vartalapctl`
// and every daemon run on the operator's file at start and on SIGHUP.
//
// Input: the text of a topology file. Besides "no crash, no leak, no UB": a load gives a
// topology or diagnostics, never both nor neither; a topology the loader accepted serves what
// the daemons then ask of it (links, a shard map of every sharded kind that owns each slot,
// the options each daemon reads) without throwing anything the validation should have
// caught.
#include "topology/catalog.hpp"
#include "topology/shard_map.hpp"
#include "topology/topology.hpp"
#include "tests/fuzz/fuzz_check.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

namespace topo = vartalap::topology;

void check_loaded(const topo::Topology& topology) {
    FUZZ_CHECK(!topology.daemons.empty());
    (void)topo::links(topology);
    (void)topology.hosts();
    for (const topo::KindInfo& kind : topo::kinds()) {
        if (!kind.sharded || topology.of_kind(kind.kind).empty()) continue;
        const topo::ShardMap map(topology, kind.kind); // throws if a slot has no owner
        FUZZ_CHECK(map.index_for("alice") < map.instances().size());
        FUZZ_CHECK(map.index_for("{x}") < map.instances().size());
    }
    for (const topo::DaemonSpec& daemon : topology.daemons) {
        FUZZ_CHECK(topology.find(daemon.name) == &daemon);
        for (const topo::SlotRange& range : daemon.slots)
            FUZZ_CHECK(range.first <= range.last && range.last < topo::kSlotCount);
        // Options are read by type when a daemon starts: a wrong type is the documented
        // std::invalid_argument, answered by the daemon with a clear message.
        try {
            (void)daemon.option_int("max_connections", 1);
            (void)daemon.option_string("durability", "");
            (void)daemon.option_bool("fsync", false);
        } catch (const std::invalid_argument&) {
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const topo::LoadResult result = topo::load_string(text, "fuzz.toml");
    FUZZ_CHECK(result.topology.has_value() != !result.errors.empty());
    for (const topo::Diagnostic& diagnostic : result.errors) (void)diagnostic.str();
    if (result.topology) check_loaded(*result.topology);
    return 0;
}
