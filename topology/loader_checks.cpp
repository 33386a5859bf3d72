// Thread: any (one Loader per load). Step 3 of a load: the checks that need every daemon at
// once (unique names, endpoints, slot coverage, required kinds, group placement); see
// loader.hpp for the steps.
#include "topology/loader.hpp"

#include <algorithm>
#include <set>
#include <utility>

namespace vartalap::topology::detail {

namespace {

std::string range_text(std::uint32_t first, std::uint32_t last) {
    if (first == last) return std::to_string(first);
    return std::to_string(first) + "-" + std::to_string(last);
}

int host_line(const DaemonDraft& draft) {
    auto it = draft.key_lines.find("host");
    return it != draft.key_lines.end() ? it->second : draft.spec.line;
}

} // namespace

void Loader::check_names() {
    std::map<std::string, std::size_t> first_by_name;
    for (std::size_t i = 0; i < drafts_.size(); ++i) {
        DaemonDraft& draft = drafts_[i];
        if (!draft.named) continue;
        const auto [it, inserted] = first_by_name.emplace(draft.spec.name, i);
        if (inserted) continue;
        add(draft.key_lines["name"],
            "duplicate daemon name '" + draft.spec.name + "' (first defined at line " +
                std::to_string(drafts_[it->second].spec.line) + ")");
        draft.named = false;
    }
}

// ---------------------------------------------------------------------------------------
// Endpoints.

void Loader::check_endpoints() {
    check_inproc_on_one_host();
    check_double_binds();
    check_cross_host_links();
}

// inproc:// reaches only sockets of the same ZeroMQ context, i.e. one process; a topology
// spread over hosts runs several processes.
void Loader::check_inproc_on_one_host() {
    std::set<std::string> hosts;
    for (const auto& draft : drafts_)
        if (draft.host_ok) hosts.insert(draft.spec.host);
    if (hosts.size() <= 1) return;
    for (const auto& endpoint : endpoints_) {
        if (endpoint.parsed.transport != Transport::inproc) continue;
        add(endpoint.line,
            drafts_[endpoint.daemon].label + ": " + endpoint.role + " '" + endpoint.text +
                "' uses inproc://, which works only inside one process, but the topology "
                "spans " + std::to_string(hosts.size()) + " hosts (" + join(hosts) +
                "); use tcp:// or ipc://");
    }
}

std::string Loader::where(const BoundEndpoint& endpoint) const {
    return drafts_[endpoint.daemon].label + " (" + endpoint.role + ")";
}

// The same address bound twice on one host fails at start with EADDRINUSE; saying so now
// names both owners.
void Loader::check_double_binds() {
    for (std::size_t i = 0; i < endpoints_.size(); ++i) {
        const BoundEndpoint& later = endpoints_[i];
        for (std::size_t j = 0; j < i; ++j) {
            const BoundEndpoint& earlier = endpoints_[j];
            if (drafts_[earlier.daemon].spec.host != drafts_[later.daemon].spec.host) continue;
            if (!same_binding(earlier.parsed, later.parsed)) continue;
            add(later.line, drafts_[later.daemon].label + ": " + later.role + " '" + later.text +
                                "' is already bound by " + where(earlier) + " at line " +
                                std::to_string(earlier.line));
            break;
        }
    }
}

// A peer on another host cannot reach an ipc:// socket or guess a kernel-chosen port. The
// links are the catalog's, over the daemons read well enough to place.
void Loader::check_cross_host_links() {
    Topology partial;
    std::vector<std::size_t> draft_of; // partial.daemons index -> drafts_ index
    for (std::size_t i = 0; i < drafts_.size(); ++i) {
        if (!drafts_[i].kind || !drafts_[i].named || !drafts_[i].host_ok) continue;
        partial.daemons.push_back(drafts_[i].spec);
        draft_of.push_back(i);
    }
    std::set<std::pair<std::string, std::string>> reported; // (daemon, role)
    for (const Link& link : links(partial)) {
        const DaemonSpec* from = partial.find(link.from);
        const DaemonSpec* to = partial.find(link.to);
        if (from->host == to->host) continue;
        ParsedEndpoint parsed;
        if (!parse_zmq_endpoint(link.endpoint, parsed).empty()) continue;
        std::string problem;
        if (parsed.transport == Transport::ipc)
            problem = "ipc:// works only within one host";
        else if (parsed.transport == Transport::tcp && parsed.port <= 0)
            problem = "a kernel-chosen port cannot be known by another host";
        if (problem.empty() || !reported.emplace(link.to, link.role).second) continue;
        const std::size_t to_index = draft_of[static_cast<std::size_t>(to - partial.daemons.data())];
        DaemonDraft& target = drafts_[to_index];
        add(target.key_lines[link.role],
            target.label + ": " + link.role + " '" + link.endpoint + "' must be reached by '" +
                link.from + "' on host '" + from->host + "', but " + problem +
                "; use tcp://HOST:PORT");
    }
}

// ---------------------------------------------------------------------------------------
// Slots.

void Loader::check_slots() {
    for (const KindInfo& kind : kinds()) {
        if (!kind.sharded) continue;
        const std::vector<std::size_t> instances = instances_of(kind);
        if (instances.empty()) continue;
        const bool complete = assign_default_slots(kind, instances);
        check_slot_coverage(kind, instances, complete);
    }
}

std::vector<std::size_t> Loader::instances_of(const KindInfo& kind) const {
    std::vector<std::size_t> instances;
    for (std::size_t i = 0; i < drafts_.size(); ++i)
        if (drafts_[i].kind == &kind) instances.push_back(i);
    return instances;
}

// The single instance of a kind written without `slots` owns them all; with several, each
// must say. Returns true if every instance's slots were read without error.
bool Loader::assign_default_slots(const KindInfo& kind, const std::vector<std::size_t>& instances) {
    bool complete = true;
    for (std::size_t i : instances) {
        DaemonDraft& draft = drafts_[i];
        if (!draft.slots_ok) complete = false;
        if (draft.has_slots) continue;
        if (instances.size() == 1) {
            draft.spec.slots = {SlotRange{0, kSlotCount - 1}};
        } else {
            add(draft.spec.line,
                draft.label + ": missing slots: with " + std::to_string(instances.size()) + " " +
                    std::string(kind.kind) + " instances each must own a slot range (e.g. "
                    "slots = \"0-8191\")");
            complete = false;
        }
    }
    return complete;
}

// Every slot is owned exactly once: overlaps are reported at the later range, and then the
// first gap, unless there were overlaps or `complete` is false (a range that could not be
// read would show up as a gap).
void Loader::check_slot_coverage(const KindInfo& kind, const std::vector<std::size_t>& instances,
                                 bool complete) {
    struct Owned {
        SlotRange range;
        std::size_t draft;
    };
    std::vector<Owned> owned;
    for (std::size_t i : instances)
        for (const SlotRange& range : drafts_[i].spec.slots) owned.push_back({range, i});
    std::sort(owned.begin(), owned.end(), [](const Owned& a, const Owned& b) {
        return a.range.first < b.range.first ||
               (a.range.first == b.range.first && a.range.last < b.range.last);
    });

    // Overlaps: each range against the furthest-reaching range before it.
    bool overlapping = false;
    for (std::size_t k = 1, reach = 0; k < owned.size(); ++k) {
        const Owned& previous = owned[reach];
        const Owned& current = owned[k];
        if (current.range.first <= previous.range.last) {
            overlapping = true;
            const std::uint32_t last = std::min(previous.range.last, current.range.last);
            const std::string span = range_text(current.range.first, last);
            DaemonDraft& draft = drafts_[current.draft];
            if (current.draft == previous.draft)
                add(draft.key_lines["slots"], draft.label + ": slots " + span + " are listed twice");
            else
                add(draft.key_lines["slots"], draft.label + ": slots " + span +
                                                  " are also owned by '" +
                                                  drafts_[previous.draft].spec.name + "'");
        }
        if (current.range.last > previous.range.last) reach = k;
    }
    if (!complete || overlapping) return;

    // Gaps: the first slot range nobody owns. Reported at the instance just before the hole
    // (where an operator would extend a range), else the one just after.
    std::uint32_t next = 0;
    std::optional<std::size_t> before;
    std::optional<SlotRange> gap;
    std::optional<std::size_t> after;
    for (const Owned& entry : owned) {
        if (entry.range.first > next) {
            gap = SlotRange{next, entry.range.first - 1};
            after = entry.draft;
            break;
        }
        next = std::max(next, entry.range.last + 1);
        before = entry.draft;
    }
    if (!gap && next < kSlotCount) gap = SlotRange{next, kSlotCount - 1};
    if (!gap) return;
    DaemonDraft& blamed = drafts_[before ? *before : *after];
    add(blamed.key_lines["slots"],
        "slots " + range_text(gap->first, gap->last) + " of kind " + std::string(kind.kind) +
            " are owned by no instance (the " + std::string(kind.kind) +
            " instances together must cover 0-" + std::to_string(kSlotCount - 1) + ")");
}

// ---------------------------------------------------------------------------------------
// Kinds.

void Loader::check_required_kinds() {
    auto count = [&](std::string_view kind) {
        return std::count_if(drafts_.begin(), drafts_.end(),
                             [&](const DaemonDraft& d) { return d.spec.kind == kind; });
    };
    for (std::string_view kind : {"message-router", "session", "profile"}) {
        if (count(kind) == 0) add(0, "no " + std::string(kind) + ": a topology needs at least one");
    }
    if (count("ws-gateway") == 0 && count("rest-gateway") == 0)
        add(0, "no ws-gateway or rest-gateway: clients need at least one way in");
    check_group_placement(count("group"));
}

// The group store is one LMDB environment: one group daemon owns it, and every group-router
// reads it directly, so it must run on the same host.
void Loader::check_group_placement(std::ptrdiff_t groups) {
    const DaemonDraft* first_group = nullptr;
    for (const auto& draft : drafts_) {
        if (draft.spec.kind != "group") continue;
        if (!first_group) {
            first_group = &draft;
        } else {
            add(draft.spec.line, draft.label + ": a second group daemon; the group store is "
                                               "not sharded, so there is exactly one");
        }
    }
    for (const auto& draft : drafts_) {
        if (draft.spec.kind != "group-router") continue;
        if (groups == 0) {
            add(draft.spec.line, draft.label + ": a group-router needs a group daemon, whose "
                                               "store it reads");
        } else if (first_group && first_group->spec.host != draft.spec.host) {
            add(host_line(draft),
                draft.label + ": group-router on host '" + draft.spec.host +
                    "' cannot read the group store of '" + first_group->spec.name +
                    "' on host '" + first_group->spec.host +
                    "' (LMDB is read in place: place it on the same host)");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Identity.

namespace {

// Whether a listener on `host` is reachable only from this machine: localhost, 127.0.0.0/8,
// ::1. A wildcard, another address or any other host name may be reachable from outside.
bool loopback_host(std::string_view host) {
    if (host == "localhost" || host == "::1" || host == "[::1]") return true;
    if (!host.starts_with("127.")) return false;
    int dots = 0;
    for (char c : host) {
        if (c == '.') ++dots;
        else if (c < '0' || c > '9') return false;
    }
    return dots == 3;
}

} // namespace

// The development identity provider accepts any non-empty token for any username: behind a
// listener others can reach, anyone logs in as anyone. It is for a developer's machine.
void Loader::check_development_identity() {
    const BoundEndpoint* exposed = nullptr;
    for (const auto& endpoint : endpoints_) {
        const std::string& kind = drafts_[endpoint.daemon].spec.kind;
        if (endpoint.role == "listen" && (kind == "ws-gateway" || kind == "rest-gateway") &&
            !loopback_host(endpoint.parsed.address)) {
            exposed = &endpoint;
            break;
        }
    }
    if (!exposed) return;
    for (const auto& draft : drafts_) {
        if (draft.spec.kind != "profile") continue;
        const auto* provider = draft.spec.options.get("identity_provider");
        if (provider && !(provider->is_string() && provider->value_or(std::string_view{}) == "development"))
            continue; // another provider (or a wrong type, which the daemon refuses at start)
        const auto options = draft.key_lines.find("options");
        add(provider && options != draft.key_lines.end() ? options->second : draft.spec.line,
            draft.label + ": identity_provider \"development\" accepts any identity token, "
            "so anyone could log in as anyone, but " + drafts_[exposed->daemon].label +
            " serves the non-loopback address '" + exposed->text + "' (line " +
            std::to_string(exposed->line) + "); set identity_provider = \"firebase\" "
            "(README.md, \"Running with the Firebase identity provider\") or listen on "
            "127.0.0.1");
    }
}

} // namespace vartalap::topology::detail
