// Thread: any. The kind, role and link tables; see catalog.hpp for who reads them.
#include "topology/catalog.hpp"

#include <algorithm>
#include <stdexcept>

namespace vartalap::topology {

namespace {

constexpr std::array kRoles = {
    RoleInfo{"listen", EndpointSyntax::host_port, "127.0.0.1:8080"},
    RoleInfo{"router", EndpointSyntax::zmq, "inproc://NAME"},
    RoleInfo{"pull", EndpointSyntax::zmq, "inproc://NAME"},
    RoleInfo{"metrics", EndpointSyntax::host_port, "127.0.0.1:9100"},
    RoleInfo{"control", EndpointSyntax::zmq, "ipc:///run/vartalap/NAME.control"},
};

// Roles any kind may bind in addition to its required ones.
constexpr std::array<std::string_view, 2> kOptionalRoles = {"metrics", "control"};

// In the order `unknown kind` errors list them.
constexpr std::array kKinds = {
    //       kind               required roles        sharded  stop rank
    KindInfo{"ws-gateway",     {"listen", "router"}, false,   0},
    KindInfo{"rest-gateway",   {"listen", "router"}, false,   0},
    KindInfo{"message-router", {"pull", ""},         false,   1},
    KindInfo{"session",        {"pull", ""},         true,    2},
    KindInfo{"profile",        {"router", ""},       false,   kLastStopRank},
    KindInfo{"persistence",    {"pull", "router"},   true,    kLastStopRank},
    KindInfo{"push",           {"pull", ""},         false,   kLastStopRank},
    KindInfo{"group",          {"router", ""},       false,   kLastStopRank},
    KindInfo{"group-router",   {"pull", "router"},   false,   1},
};

// Who connects to whom. Each daemon's connect() asks peers() for exactly these links (the
// unit test catalog_test checks that every rule is asked for by its kind's daemon).
constexpr std::array kLinkRules = {
    LinkRule{"ws-gateway", "PUSH", "message-router", "pull"},
    // connect/disconnect go straight to the user's session shard.
    LinkRule{"ws-gateway", "PUSH", "session", "pull"},
    // The revocation list's poll (docs/INTERNAL_PROTOCOL.md, "Identity and revocation").
    LinkRule{"ws-gateway", "DEALER", "profile", "router"},
    LinkRule{"rest-gateway", "PUSH", "message-router", "pull"},
    LinkRule{"rest-gateway", "DEALER", "profile", "router"},
    LinkRule{"rest-gateway", "DEALER", "persistence", "router"},
    LinkRule{"rest-gateway", "DEALER", "group", "router"},
    LinkRule{"message-router", "PUSH", "session", "pull"},
    LinkRule{"message-router", "PUSH", "group-router", "pull"},
    // Refusals of messages no session shard took in time go straight to the sender's gateway.
    LinkRule{"message-router", "DEALER", "ws-gateway", "router"},
    LinkRule{"message-router", "DEALER", "rest-gateway", "router"},
    LinkRule{"group-router", "PUSH", "session", "pull"},
    LinkRule{"group-router", "DEALER", "group", "router"},
    // SERVER_ACKs (and refusals) for group messages go straight to the sender's gateway.
    LinkRule{"group-router", "DEALER", "ws-gateway", "router"},
    LinkRule{"group-router", "DEALER", "rest-gateway", "router"},
    LinkRule{"group", "PUSH", "session", "pull"},
    LinkRule{"group", "DEALER", "profile", "router"},
    LinkRule{"session", "DEALER", "ws-gateway", "router"},
    // REST senders wait for their SERVER_ACKs too.
    LinkRule{"session", "DEALER", "rest-gateway", "router"},
    LinkRule{"session", "DEALER", "persistence", "router"},
    LinkRule{"session", "PUSH", "persistence", "pull"},
    // Confirmations of the group copies and group events a session committed (copies_stored).
    LinkRule{"session", "DEALER", "group-router", "router"},
    LinkRule{"session", "DEALER", "group", "router"},
    LinkRule{"persistence", "PUSH", "push", "pull"},
    LinkRule{"persistence", "DEALER", "profile", "router"},
    LinkRule{"push", "DEALER", "profile", "router"},
};

} // namespace

std::span<const KindInfo> kinds() { return kKinds; }
std::span<const RoleInfo> roles() { return kRoles; }
std::span<const std::string_view> optional_roles() { return kOptionalRoles; }
std::span<const LinkRule> link_rules() { return kLinkRules; }

const KindInfo* kind_info(std::string_view kind) {
    for (const auto& info : kKinds)
        if (info.kind == kind) return &info;
    return nullptr;
}

const RoleInfo* role_info(std::string_view role) {
    for (const auto& info : kRoles)
        if (info.role == role) return &info;
    return nullptr;
}

bool kind_binds(const KindInfo& kind, std::string_view role) {
    if (std::find(kind.roles.begin(), kind.roles.end(), role) != kind.roles.end()) return true;
    return std::find(kOptionalRoles.begin(), kOptionalRoles.end(), role) != kOptionalRoles.end();
}

bool is_known_kind(std::string_view kind) {
    return kind_info(kind) != nullptr;
}

bool is_sharded_kind(std::string_view kind) {
    const KindInfo* info = kind_info(kind);
    return info && info->sharded;
}

std::vector<std::string> required_roles(std::string_view kind) {
    std::vector<std::string> out;
    if (const KindInfo* info = kind_info(kind))
        for (std::string_view role : info->roles)
            if (!role.empty()) out.emplace_back(role);
    return out;
}

int stop_rank(std::string_view kind) {
    const KindInfo* info = kind_info(kind);
    return info ? info->stop_rank : kLastStopRank;
}

std::vector<Link> links(const Topology& topology) {
    std::vector<Link> out;
    for (const DaemonSpec& from : topology.daemons) {
        for (const LinkRule& rule : kLinkRules) {
            if (from.kind != rule.from_kind) continue;
            for (const DaemonSpec& to : topology.daemons) {
                if (to.kind != rule.to_kind) continue;
                const std::string role(rule.role);
                out.push_back(Link{from.name, to.name, std::string(rule.socket), role,
                                   to.endpoint(role)});
            }
        }
    }
    return out;
}

std::vector<Peer> peers(const Topology& topology, const DaemonSpec& self,
                        std::string_view to_kind, std::string_view role) {
    const bool linked = std::any_of(kLinkRules.begin(), kLinkRules.end(), [&](const LinkRule& rule) {
        return rule.from_kind == self.kind && rule.to_kind == to_kind && rule.role == role;
    });
    if (!linked)
        throw std::logic_error(self.name + ": the catalog has no link from a " + self.kind +
                               " to the " + std::string(role) + " endpoint of a " +
                               std::string(to_kind));
    std::vector<Peer> out;
    const std::string role_name(role);
    for (const DaemonSpec& to : topology.daemons)
        if (to.kind == to_kind) out.push_back(Peer{&to, to.endpoint(role_name)});
    return out;
}

} // namespace vartalap::topology
