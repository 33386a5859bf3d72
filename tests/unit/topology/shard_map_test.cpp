// Thread: the test's. Unit tests for topology/shard_map.hpp: slot hashing (Redis Cluster's
// numbers) and the slot -> instance map.
#include "tests/unit/topology/topology_test_support.hpp"
#include "topology/shard_map.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace vartalap::topology {
namespace {

using namespace test;

TEST(TopologySlotOf, MatchesRedisCluster) {
    // crc16("123456789") = 0x31C3, the CRC16/XMODEM check value Redis's crc16.c cites.
    EXPECT_EQ(slot_of("123456789"), 0x31C3u % kSlotCount);
    EXPECT_EQ(slot_of("123456789"), 12739u);
    // CLUSTER KEYSLOT values from the Redis documentation.
    EXPECT_EQ(slot_of("foo"), 12182u);
    EXPECT_EQ(slot_of("somekey"), 11058u);
    EXPECT_EQ(slot_of("hello"), 866u);
    EXPECT_EQ(slot_of(""), 0u);
}

TEST(TopologySlotOf, HashTagsLikeRedis) {
    EXPECT_EQ(slot_of("{user1000}.following"), slot_of("user1000"));
    EXPECT_EQ(slot_of("{user1000}.followers"), slot_of("user1000"));
    EXPECT_EQ(slot_of("foo{bar}{zap}"), slot_of("bar"));
    // Empty tag: the whole key is hashed.
    EXPECT_EQ(slot_of("foo{}{bar}"), 8363u);
    // First '{' to the first '}' after it.
    EXPECT_EQ(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    // No closing brace: the whole key.
    EXPECT_NE(slot_of("{user1000"), slot_of("user1000"));
}

// CRC16/XMODEM bit by bit, straight from its definition (poly 0x1021, init 0, MSB first):
// the reference the library's table-driven CRC must agree with.
std::uint16_t crc16_reference(std::string_view bytes) {
    std::uint16_t crc = 0;
    for (const char c : bytes) {
        crc = static_cast<std::uint16_t>(crc ^ (static_cast<std::uint8_t>(c) << 8));
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

TEST(TopologySlotOf, AgreesWithTheBitwiseCrc16) {
    std::string key;
    for (int i = 0; i < 2000; ++i) {
        // Keys of every length up to 64 over all byte values, no braces (hash tags aside).
        key.assign(static_cast<std::size_t>(i % 65), '\0');
        for (std::size_t j = 0; j < key.size(); ++j) {
            char c = static_cast<char>((i * 131 + static_cast<int>(j) * 29) & 0xff);
            if (c == '{' || c == '}') c = 'x';
            key[j] = c;
        }
        ASSERT_EQ(slot_of(key), crc16_reference(key) % kSlotCount) << "key #" << i;
    }
}

TEST(TopologyShardMap, TwoRanges) {
    const LoadResult result = load_sessions("0-8191", "8192-16383");
    ASSERT_TRUE(result.topology) << all_errors(result);
    const ShardMap map(*result.topology, "session");
    ASSERT_EQ(map.instances().size(), 2u);
    EXPECT_EQ(map.instances()[0]->name, "s1");
    EXPECT_EQ(map.instances()[1]->name, "s2");
    EXPECT_EQ(slot_of("alice"), 749u);
    EXPECT_EQ(slot_of("bob"), 8955u);
    EXPECT_EQ(map.index_for("alice"), 0u);
    EXPECT_EQ(map.index_for("bob"), 1u);
    EXPECT_EQ(map.index_for("123456789"), 1u);
    EXPECT_EQ(map.index_for("{alice}.device2"), 0u);
}

TEST(TopologyShardMap, InterleavedRangesAndSingleInstance) {
    const LoadResult result = load_sessions("0-748,750-16383", "749");
    ASSERT_TRUE(result.topology) << all_errors(result);
    const ShardMap map(*result.topology, "session");
    EXPECT_EQ(map.index_for("alice"), 1u);
    EXPECT_EQ(map.index_for("bob"), 0u);

    const LoadResult local = load_file(VARTALAP_SOURCE_DIR "/topology/local.toml");
    ASSERT_TRUE(local.topology);
    const ShardMap single(*local.topology, "session");
    EXPECT_EQ(single.index_for("alice"), 0u);
    EXPECT_EQ(single.index_for("bob"), 0u);
}

TEST(TopologyShardMap, RefusesAnIncompleteHandBuiltTopology) {
    Topology topology;
    EXPECT_THROW(ShardMap(topology, "session"), std::invalid_argument);
    DaemonSpec a;
    a.kind = "session";
    a.name = "a";
    a.slots = {SlotRange{0, 100}};
    DaemonSpec b = a;
    b.name = "b";
    b.slots = {SlotRange{102, kSlotCount - 1}};
    topology.daemons = {a, b};
    EXPECT_THROW(ShardMap(topology, "session"), std::invalid_argument);
}

} // namespace
} // namespace vartalap::topology
