// The catalog of daemon kinds: what each kind binds, whether it is sharded, who connects to
// whom (the link table), and the order the kinds drain in at stop.
//
// It is the one description of the wiring. Everything that needs the wiring reads it here:
//   - the loader, to validate a file (roles a kind binds, links that cross hosts);
//   - links(), which `vartalapctl show` draws and `vartalapctl up` checks;
//   - each daemon's connect(), through peers(): a daemon connects only along a link of this
//     table, so what `show` draws is what the daemons do;
//   - System::stop() and the `vartalapctl up` supervisor, through stop_rank().
//
// Connections are not written in a topology file: they follow from the kinds (a ws-gateway
// pushes to every message-router's `pull`, a session connects a DEALER to every
// ws-gateway's `router`, ...), so a file cannot describe an impossible wiring.
//
// Thread-safety: constant tables and pure functions; any thread.
// Errors: peers() throws std::logic_error when asked for a link the table does not have
// (a programming error in a daemon, caught by the first test that starts it).
#pragma once

#include "topology/topology.hpp"

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::topology {

enum class EndpointSyntax { zmq, host_port };

// An endpoint role a daemon may bind ("listen", "router", ...).
struct RoleInfo {
    std::string_view role;
    EndpointSyntax syntax;
    std::string_view example; // shown in "missing ..." errors, NAME = the instance name
};

struct KindInfo {
    std::string_view kind;
    std::array<std::string_view, 2> roles; // required endpoint roles; "" = unused slot
    bool sharded;                          // owns slot ranges (see shard_map.hpp)
    // Drain order: lower ranks stop first. What accepts client traffic stops first, so
    // nothing new enters while the inner daemons finish their in-flight work.
    int stop_rank;
};

// One rule of the link table: every daemon of `from_kind` connects a `socket` to the
// `role` endpoint of every daemon of `to_kind`.
struct LinkRule {
    std::string_view from_kind;
    std::string_view socket; // "PUSH", "DEALER"
    std::string_view to_kind;
    std::string_view role;
};

// The tables, in a fixed order (output stability of links() and `show`).
std::span<const KindInfo> kinds();
std::span<const RoleInfo> roles();
std::span<const std::string_view> optional_roles(); // any kind may bind these: metrics, control
std::span<const LinkRule> link_rules();

const KindInfo* kind_info(std::string_view kind); // null for an unknown kind
const RoleInfo* role_info(std::string_view role); // null for an unknown role
// True if `kind` binds `role`: one of its required roles or an optional one.
bool kind_binds(const KindInfo& kind, std::string_view role);

// Kinds the file format knows; each has a daemon (daemons/registry.cpp).
bool is_known_kind(std::string_view kind);
// Session and persistence own slot ranges; other kinds are stateless or unsharded.
bool is_sharded_kind(std::string_view kind);
// Endpoint roles a kind must bind ({"listen", "router"} for a ws-gateway); empty for an
// unknown kind. Every kind may also bind the optional "metrics" and "control" roles.
std::vector<std::string> required_roles(std::string_view kind);

// Drain order of a kind: 0 gateways, 1 routers, 2 sessions, 3 everything else. An unknown
// kind drains last (kLastStopRank).
inline constexpr int kLastStopRank = 3;
int stop_rank(std::string_view kind);

// One derived socket link: `from` connects a `socket` to `to`'s bound `endpoint`.
struct Link {
    std::string from;
    std::string to;
    std::string socket;   // "PUSH", "DEALER"
    std::string role;     // the role of the endpoint in `to` ("pull", "router")
    std::string endpoint; // "" if `to` does not bind `role` (only in a hand-built topology)
};
// Every link of the topology: for each daemon in file order, its rules in table order.
std::vector<Link> links(const Topology& topology);

// One daemon `self` connects to along one of its links.
struct Peer {
    const DaemonSpec* daemon; // points into the Topology
    std::string endpoint;     // its `role` endpoint; "" only in a hand-built topology
};
// The daemons `self` connects to on its link to `to_kind`'s `role` endpoint, in file order.
// For a sharded `to_kind` that is ShardMap(topology, to_kind).instances() order, so index i
// of the result is shard i. Throws std::logic_error if the link table has no link from
// self.kind to (to_kind, role).
std::vector<Peer> peers(const Topology& topology, const DaemonSpec& self,
                        std::string_view to_kind, std::string_view role);

} // namespace vartalap::topology
