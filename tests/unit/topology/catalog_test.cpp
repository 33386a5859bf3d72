// Thread: the test's. Unit tests for topology/catalog.hpp: the kinds, the link table (what
// links() derives, what peers() hands a daemon's connect(), and that every daemon asks for
// exactly its kind's links), and the stop order.
#include "tests/unit/topology/topology_test_support.hpp"
#include "topology/catalog.hpp"
#include "topology/shard_map.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace vartalap::topology {
namespace {

using namespace test;

// ---------------------------------------------------------------------------------------
// Links.

TEST(TopologyLocal, LinksFollowFromTheKinds) {
    const LoadResult result = load_file(VARTALAP_SOURCE_DIR "/topology/local.toml");
    ASSERT_TRUE(result.topology) << all_errors(result);
    std::vector<std::string> drawn;
    for (const Link& link : links(*result.topology))
        drawn.push_back(link.from + " " + link.socket + " " + link.to + " " + link.role + " " +
                        link.endpoint);
    std::vector<std::string> expected = {
        "ws-1 PUSH router-1 pull inproc://router-1",
        "ws-1 PUSH session-1 pull inproc://session-1",
        "ws-1 DEALER profile-1 router inproc://profile-1",
        "rest-1 PUSH router-1 pull inproc://router-1",
        "rest-1 DEALER profile-1 router inproc://profile-1",
        "router-1 PUSH session-1 pull inproc://session-1",
        "router-1 DEALER ws-1 router inproc://ws-1",
        "router-1 DEALER rest-1 router inproc://rest-1",
        "session-1 DEALER ws-1 router inproc://ws-1",
        "session-1 DEALER rest-1 router inproc://rest-1",
        "session-1 DEALER persistence-1 router inproc://persistence-1-router",
        "session-1 PUSH persistence-1 pull inproc://persistence-1",
        "rest-1 DEALER persistence-1 router inproc://persistence-1-router",
        "rest-1 DEALER group-1 router inproc://group-1",
        "router-1 PUSH group-router-1 pull inproc://group-router-1",
        "group-router-1 PUSH session-1 pull inproc://session-1",
        "group-router-1 DEALER group-1 router inproc://group-1",
        "group-router-1 DEALER ws-1 router inproc://ws-1",
        "group-router-1 DEALER rest-1 router inproc://rest-1",
        "group-1 PUSH session-1 pull inproc://session-1",
        "group-1 DEALER profile-1 router inproc://profile-1",
        "session-1 DEALER group-router-1 router inproc://group-router-1-confirm",
        "session-1 DEALER group-1 router inproc://group-1",
        "persistence-1 DEALER profile-1 router inproc://profile-1",
    };
    std::sort(drawn.begin(), drawn.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(drawn, expected);
}

TEST(TopologyKinds, EveryKindIsKnownAndLinked) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "persistence"
name = "persistence-1"
pull = "inproc://persistence-1"
router = "inproc://persistence-1-requests"
[[daemon]]
kind = "push"
name = "push-1"
pull = "inproc://push-1"
[[daemon]]
kind = "group"
name = "group-1"
router = "inproc://group-1"
[[daemon]]
kind = "group-router"
name = "group-router-1"
pull = "inproc://group-router-1"
router = "inproc://group-router-1-confirm"
)toml");
    ASSERT_TRUE(result.topology) << all_errors(result);
    EXPECT_TRUE(is_known_kind("group-router"));
    EXPECT_FALSE(is_known_kind("gateway"));
    EXPECT_TRUE(is_sharded_kind("persistence"));
    EXPECT_FALSE(is_sharded_kind("profile"));
    EXPECT_EQ(required_roles("persistence"), (std::vector<std::string>{"pull", "router"}));
    EXPECT_TRUE(required_roles("nope").empty());

    std::vector<std::string> drawn;
    for (const Link& link : links(*result.topology))
        drawn.push_back(link.from + " " + link.socket + " " + link.to + " " + link.role);
    auto has = [&](const std::string& text) {
        return std::find(drawn.begin(), drawn.end(), text) != drawn.end();
    };
    EXPECT_TRUE(has("tail-router PUSH group-router-1 pull"));
    EXPECT_TRUE(has("group-router-1 PUSH tail-session pull"));
    EXPECT_TRUE(has("group-router-1 DEALER group-1 router"));
    EXPECT_TRUE(has("tail-session PUSH persistence-1 pull"));
    EXPECT_TRUE(has("persistence-1 PUSH push-1 pull"));
    EXPECT_TRUE(has("tail-session DEALER persistence-1 router"));
    EXPECT_TRUE(has("tail-session DEALER tail-rest router"));
    EXPECT_TRUE(has("group-router-1 DEALER tail-rest router"));
    EXPECT_TRUE(has("group-1 PUSH tail-session pull"));
    EXPECT_TRUE(has("group-1 DEALER tail-profile router"));
    EXPECT_TRUE(has("push-1 DEALER tail-profile router"));
    EXPECT_TRUE(has("tail-rest DEALER persistence-1 router"));
    EXPECT_TRUE(has("tail-rest DEALER group-1 router"));
    EXPECT_TRUE(has("tail-rest DEALER tail-profile router"));
    EXPECT_TRUE(has("tail-rest PUSH tail-router pull"));
    EXPECT_TRUE(has("tail-router PUSH tail-session pull"));
    EXPECT_TRUE(has("tail-session DEALER group-router-1 router"));
    EXPECT_TRUE(has("tail-session DEALER group-1 router"));
    EXPECT_TRUE(has("tail-router DEALER tail-rest router"));
    EXPECT_TRUE(has("persistence-1 DEALER tail-profile router"));
    EXPECT_EQ(drawn.size(), 20u);
}

TEST(CatalogLinks, EveryRuleJoinsKnownKindsOnARoleTheTargetMustBind) {
    ASSERT_FALSE(link_rules().empty());
    for (const LinkRule& rule : link_rules()) {
        const std::string text = std::string(rule.from_kind) + " -> " + std::string(rule.to_kind) +
                                 " " + std::string(rule.role);
        EXPECT_TRUE(is_known_kind(rule.from_kind)) << text;
        ASSERT_TRUE(is_known_kind(rule.to_kind)) << text;
        // links() and the cross-host check rely on the target always binding the role.
        const std::vector<std::string> required = required_roles(rule.to_kind);
        EXPECT_NE(std::find(required.begin(), required.end(), rule.role), required.end()) << text;
        // PUSH feeds a PULL; DEALER talks to a ROUTER.
        const std::string expected_role = rule.socket == "PUSH" ? "pull" : "router";
        EXPECT_TRUE(rule.socket == "PUSH" || rule.socket == "DEALER") << text;
        EXPECT_EQ(rule.role, expected_role) << text;
    }
}

// The source of every file in `directory` (recursively), concatenated.
std::string read_sources(const std::filesystem::path& directory) {
    std::string out;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(directory)) {
        const std::string extension = entry.path().extension().string();
        if (!entry.is_regular_file() || (extension != ".cpp" && extension != ".hpp")) continue;
        std::ifstream in(entry.path());
        std::ostringstream text;
        text << in.rdbuf();
        out += text.str();
    }
    return out;
}

// Each daemon's connect() asks peers(topology, self, "<kind>", "<role>") for every link it
// connects, with the kind and role written out. This reads daemons/<kind>/ and checks that
// the links asked for are exactly the catalog's links of that kind, so what `vartalapctl
// show` draws is what the daemons do. (peers() itself refuses a link the catalog lacks.)
TEST(CatalogLinks, EveryLinkIsAskedForByItsKindsDaemon) {
    const std::regex call(R"re(peers\(\s*[^;()]*,\s*[^;()]*,\s*"([a-z-]+)"\s*,\s*"([a-z]+)"\s*\))re");
    for (const KindInfo& kind : kinds()) {
        std::string folder(kind.kind);
        std::replace(folder.begin(), folder.end(), '-', '_');
        const std::filesystem::path directory =
            std::filesystem::path(VARTALAP_SOURCE_DIR) / "daemons" / folder;
        ASSERT_TRUE(std::filesystem::is_directory(directory)) << directory;
        const std::string source = read_sources(directory);

        std::set<std::pair<std::string, std::string>> asked;
        for (auto it = std::sregex_iterator(source.begin(), source.end(), call);
             it != std::sregex_iterator(); ++it)
            asked.emplace((*it)[1].str(), (*it)[2].str());
        std::set<std::pair<std::string, std::string>> declared;
        for (const LinkRule& rule : link_rules())
            if (rule.from_kind == kind.kind)
                declared.emplace(std::string(rule.to_kind), std::string(rule.role));
        EXPECT_EQ(asked, declared) << "the peers() calls under " << directory.string()
                                   << " differ from the catalog's links of a " << kind.kind;
    }
}

// ---------------------------------------------------------------------------------------
// Peers.

TEST(CatalogPeers, ShardedTargetsComeInShardMapOrder) {
    const LoadResult result = load_sessions("8192-16383", "0-8191");
    ASSERT_TRUE(result.topology) << all_errors(result);
    const Topology& topology = *result.topology;
    const DaemonSpec& router = *topology.find("tail-router");
    const std::vector<Peer> sessions = peers(topology, router, "session", "pull");
    const ShardMap map(topology, "session");
    ASSERT_EQ(sessions.size(), map.instances().size());
    ASSERT_EQ(sessions.size(), 2u);
    for (std::size_t i = 0; i < sessions.size(); ++i) {
        EXPECT_EQ(sessions[i].daemon, map.instances()[i]);
        EXPECT_EQ(sessions[i].endpoint, map.instances()[i]->endpoint("pull"));
    }
    EXPECT_EQ(sessions[0].endpoint, "inproc://s1");
    EXPECT_EQ(map.index_for("alice"), 1u); // slot 749 belongs to s2, the second peer
}

TEST(CatalogPeers, EveryInstanceOfTheTargetKindWithItsEndpoint) {
    const LoadResult result = load_file(VARTALAP_SOURCE_DIR "/topology/local.toml");
    ASSERT_TRUE(result.topology) << all_errors(result);
    const Topology& topology = *result.topology;
    const DaemonSpec& session = *topology.find("session-1");
    const std::vector<Peer> gateways = peers(topology, session, "ws-gateway", "router");
    ASSERT_EQ(gateways.size(), 1u);
    EXPECT_EQ(gateways[0].daemon->name, "ws-1");
    EXPECT_EQ(gateways[0].endpoint, "inproc://ws-1");
    const std::vector<Peer> requests = peers(topology, session, "persistence", "router");
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].endpoint, "inproc://persistence-1-router");
    // A linked kind the topology does not run: no peers, no error.
    EXPECT_TRUE(peers(topology, *topology.find("persistence-1"), "push", "pull").empty());
}

TEST(CatalogPeers, RefusesALinkTheCatalogDoesNotHave) {
    const LoadResult result = load_file(VARTALAP_SOURCE_DIR "/topology/local.toml");
    ASSERT_TRUE(result.topology) << all_errors(result);
    const Topology& topology = *result.topology;
    const DaemonSpec& gateway = *topology.find("ws-1");
    EXPECT_THROW(peers(topology, gateway, "group", "router"), std::logic_error);
    EXPECT_THROW(peers(topology, gateway, "session", "router"), std::logic_error); // wrong role
    EXPECT_THROW(peers(topology, *topology.find("profile-1"), "session", "pull"), std::logic_error);
    try {
        peers(topology, gateway, "group", "router");
    } catch (const std::logic_error& error) {
        EXPECT_STREQ(error.what(), "ws-1: the catalog has no link from a ws-gateway to the "
                                   "router endpoint of a group");
    }
}

// ---------------------------------------------------------------------------------------
// Stop order.

TEST(StopRankTest, GatewaysFirstThenRoutersThenSessionsThenTheRest) {
    EXPECT_EQ(stop_rank("ws-gateway"), 0);
    EXPECT_EQ(stop_rank("rest-gateway"), 0);
    EXPECT_EQ(stop_rank("message-router"), 1);
    EXPECT_EQ(stop_rank("group-router"), 1);
    EXPECT_EQ(stop_rank("session"), 2);
    EXPECT_EQ(stop_rank("persistence"), 3);
    EXPECT_EQ(stop_rank("profile"), 3);
    EXPECT_EQ(stop_rank("group"), 3);
    EXPECT_EQ(stop_rank("push"), 3);
}

TEST(StopRankTest, DefinedForEveryKind) {
    std::set<int> ranks;
    for (const KindInfo& kind : kinds()) {
        EXPECT_GE(kind.stop_rank, 0) << kind.kind;
        EXPECT_LE(kind.stop_rank, kLastStopRank) << kind.kind;
        EXPECT_EQ(stop_rank(kind.kind), kind.stop_rank) << kind.kind;
        ranks.insert(kind.stop_rank);
    }
    // System::stop() and the supervisor walk 0..kLastStopRank; every rank has a kind.
    EXPECT_EQ(ranks.size(), static_cast<std::size_t>(kLastStopRank + 1));
    EXPECT_EQ(stop_rank("not-a-kind"), kLastStopRank);
    // Every kind the example runs is in the catalog.
    const LoadResult local = load_file(VARTALAP_SOURCE_DIR "/topology/local.toml");
    ASSERT_TRUE(local.topology) << all_errors(local);
    for (const DaemonSpec& daemon : local.topology->daemons)
        EXPECT_NE(kind_info(daemon.kind), nullptr) << daemon.kind;
}

} // namespace
} // namespace vartalap::topology
