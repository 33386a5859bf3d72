// The loader's inside: the Loader class behind load_string/load_file (topology.hpp) and what
// it remembers while it reads. Included only by loader.cpp and loader_checks.cpp; nothing
// else should need it.
//
// A load runs in named steps (Loader::run):
//   1. parse the TOML text                           loader.cpp
//   2. read [system] and each [[daemon]] on its own  loader.cpp (read_*)
//   3. check what needs every daemon at once         loader_checks.cpp (check_*):
//      unique names, endpoints (clashes, transports across hosts), slot coverage of each
//      sharded kind, the kinds a topology needs, group placement; the hosts' CURVE keys
//      and the tcp:// rule (loader_keys.cpp); no development identity provider behind a
//      public listener
//   4. finish: sort the diagnostics by line; a Topology only when there are none
//
// The loader never stops at the first problem: an operator fixing a file wants every error
// in one run, so each step records a Diagnostic and carries on with what it could read.
// Checks that would only repeat an earlier error (e.g. slot gaps when a range was
// malformed) are skipped instead of piling up noise.
//
// Thread-safety: a Loader is used once, by one thread.
#pragma once

#include "topology/catalog.hpp"
#include "topology/endpoints.hpp"
#include "topology/topology.hpp"

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::topology::detail {

// "a, b, c" from the non-empty items of a range of strings.
template <typename Range>
std::string join(const Range& range, std::string_view separator = ", ") {
    std::string out;
    for (const auto& item : range) {
        if (item.empty()) continue;
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

// What the loader remembers about one [[daemon]] beyond the DaemonSpec itself.
struct DaemonDraft {
    DaemonSpec spec;
    const KindInfo* kind = nullptr; // null: missing or unknown kind
    bool named = false;             // the name is valid and unique
    bool host_ok = true;
    std::map<std::string, int> key_lines; // where each key was written
    bool has_slots = false;
    bool slots_ok = true;
    std::string label;              // how errors refer to this daemon
};

// One endpoint a daemon binds, parsed, for the clash and cross-host checks.
struct BoundEndpoint {
    std::size_t daemon = 0; // index into the drafts
    std::string role;
    std::string text;
    ParsedEndpoint parsed;
    int line = 0;
};

class Loader {
public:
    explicit Loader(std::string file) : file_(std::move(file)) { topology_.file = file_; }

    LoadResult run(std::string_view text);

private:
    void add(int line, std::string message) {
        errors_.push_back(Diagnostic{file_, line, std::move(message)});
    }
    LoadResult finish();

    // Step 2, loader.cpp: one table at a time.
    void read_root(const toml::table& root);
    std::optional<std::string> string_value(const toml::node& node, const std::string& what);
    void read_system(const toml::table& table);
    void read_system_key(const std::string& name, const std::string& value, int line);
    void read_secret(const std::string& value, int line);
    void read_threads(const toml::node& node, int line);
    void read_daemon(const toml::table& table);
    void read_name(DaemonDraft& draft, const toml::table& table);
    void read_kind(DaemonDraft& draft, const toml::table& table);
    void read_daemon_key(DaemonDraft& draft, const std::string& name, const toml::node& node,
                         int line);
    void read_host(DaemonDraft& draft, const toml::node& node, int line);
    void read_endpoint(DaemonDraft& draft, const RoleInfo& role, const std::string& text,
                       int line);
    void read_slots(DaemonDraft& draft, const toml::node& node, int line);
    void read_slot_range(DaemonDraft& draft, std::string_view part, int line);
    void check_kind_keys(DaemonDraft& draft, const toml::table& table);

    // Step 3, loader_checks.cpp: across daemons.
    void check_names();
    void check_endpoints();
    void check_inproc_on_one_host();
    void check_double_binds();
    void check_cross_host_links();
    std::string where(const BoundEndpoint& endpoint) const;
    void check_slots();
    std::vector<std::size_t> instances_of(const KindInfo& kind) const;
    bool assign_default_slots(const KindInfo& kind, const std::vector<std::size_t>& instances);
    void check_slot_coverage(const KindInfo& kind, const std::vector<std::size_t>& instances,
                             bool complete);
    void check_required_kinds();
    void check_group_placement(std::ptrdiff_t groups);
    void check_development_identity();

    // loader_keys.cpp: [host.NAME] key pairs and the tcp:// rule.
    void read_hosts(const toml::table& table);
    void read_host_keys(const std::string& host, const toml::table& table, int line);
    void check_transport();

    std::string file_;
    Topology topology_;
    std::vector<DaemonDraft> drafts_;
    std::vector<BoundEndpoint> endpoints_;
    std::vector<Diagnostic> errors_;
};

} // namespace vartalap::topology::detail
