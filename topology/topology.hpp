// The topology file: which daemons run, where, and on which endpoints. The format is
// documented in topology/README.md; topology/local.toml is the one-process example.
//
// This header holds the values a loaded file becomes (Topology, DaemonSpec, Diagnostic) and
// the load functions (loader.cpp). The kinds, their roles and links, and the stop order are
// in catalog.hpp; endpoint syntax in endpoints.hpp; slot hashing and ShardMap in
// shard_map.hpp.
//
// Errors: load_* never throw for a bad file; they return diagnostics "file:line: what".
// Thread-safety: a loaded Topology is an immutable value, shared read-only by all threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <vector>

namespace vartalap::topology {

// Users hash to one of kSlotCount slots (slot_of in shard_map.hpp), and sharded daemons
// (session, persistence) own slot ranges.
inline constexpr std::uint32_t kSlotCount = 16384;

struct Diagnostic {
    std::string file;
    int line = 0;          // 0 when the problem is not tied to a line
    std::string message;
    std::string str() const; // "file:line: message"
};

struct SlotRange {
    std::uint32_t first = 0;
    std::uint32_t last = 0; // inclusive
};

struct DaemonSpec {
    std::string kind;       // one of catalog.hpp's kinds: "ws-gateway", "session", ...
    std::string name;       // unique instance name, e.g. "session-1"
    std::string host = "localhost";
    // Endpoints by role: "listen" = host:port of a public server (port 0 = kernel picks),
    // "router"/"pull" = ZeroMQ bind endpoints (inproc://, ipc://, tcp://).
    std::map<std::string, std::string> endpoints;
    // Sharded kinds only. The loader fills in 0-16383 for the single instance of a kind
    // that was written without `slots`.
    std::vector<SlotRange> slots;
    toml::table options;          // kind-specific settings (see topology/README.md)
    int line = 0;                 // where the [[daemon]] table starts

    std::string endpoint(const std::string& role) const; // "" if absent
    // Kind-specific options: `fallback` when absent; present with the wrong TOML type, they
    // throw std::invalid_argument("<name>: option <key> must be an integer") (or "a string",
    // "a boolean"), so a daemon refuses a bad setting at start instead of ignoring it.
    std::int64_t option_int(std::string_view key, std::int64_t fallback) const;
    std::string option_string(std::string_view key, std::string_view fallback) const;
    bool option_bool(std::string_view key, bool fallback) const;
    // An array of strings (empty when absent); anything else throws as above.
    std::vector<std::string> option_strings(std::string_view key) const;
};

// A host's CURVE identity ([host.NAME] in the file; topology/README.md, "Internal transport"):
// every daemon placed on the host uses this key pair on its tcp:// sockets.
struct HostKeys {
    std::string public_key;       // Z85, 40 characters
    std::string secret_key_file;  // where the host keeps its secret key (0600; `vartalapctl keys`)
    int line = 0;                 // where [host.NAME] starts
};

struct Topology {
    std::string file;               // for diagnostics
    std::string name = "vartalap";
    std::string data_dir = "./data";// LMDB environments live in <data_dir>/<instance name>/
    std::string log_level = "info";
    std::string secret;             // configured access-key secret ("" = <data_dir>/secret.key)
    // Access keys older than this are refused by every gateway (0: they never expire); a
    // revoked key is kept on the revocation list only until then.
    int access_key_max_age_days = 0;
    // Event-loop threads shared by the daemons one process runs (ws-gateway, message-router,
    // session, persistence, profile, group, group-router), placed round-robin in file order;
    // 0: a thread per daemon. rest-gateway and push keep a thread each.
    int threads = 1;
    std::vector<DaemonSpec> daemons;
    // CURVE key pairs by host. When present, every host has one and every tcp:// ZeroMQ
    // endpoint is CURVE (the loader checks it); absent, a tcp:// endpoint needs
    // `insecure_tcp = true`.
    std::map<std::string, HostKeys> host_keys;
    bool insecure_tcp = false;      // [system] insecure_tcp: plain tcp:// allowed (warned)

    // True when the file names host keys: tcp:// endpoints are CURVE.
    bool curve() const { return !host_keys.empty(); }
    const HostKeys* keys_of(std::string_view host) const; // null without [host.<host>]
    std::vector<const DaemonSpec*> of_kind(std::string_view kind) const;
    const DaemonSpec* find(std::string_view name) const;
    // Distinct `host` values in file order.
    std::vector<std::string> hosts() const;
    // "" if some daemon is placed on `host`, else the operator's error:
    // "<file>: no daemon is placed on host 'x' (hosts: a, b)".
    std::string unknown_host_error(std::string_view host) const;
};

struct LoadResult {
    std::optional<Topology> topology; // set only when there are no errors
    std::vector<Diagnostic> errors;
};

LoadResult load_file(const std::filesystem::path& file);
LoadResult load_string(std::string_view text, std::string file_name);

} // namespace vartalap::topology
