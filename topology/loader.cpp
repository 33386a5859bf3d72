// Thread: any. Loading builds a new value from text; everything else reads immutable values.
//
// The loader never stops at the first problem: an operator fixing a file wants every error
// in one run, so each check records a Diagnostic and carries on with what it could read.
// Checks that would only repeat an earlier error (e.g. slot gaps when a range was
// malformed) are skipped instead of piling up noise.
#include "topology/topology.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace vartalap::topology {

namespace {

// ---------------------------------------------------------------------------------------
// What each kind binds, and which kinds are sharded. Kinds whose daemons are not written yet
// (persistence, push, group, group-router) are known here so that later issues only add a
// factory; the runner refuses them at start, the file format already accepts them.

enum class EndpointSyntax { zmq, host_port };

struct RoleInfo {
    std::string_view role;
    EndpointSyntax syntax;
    std::string_view example; // shown in "missing ..." errors so the fix is obvious
};

constexpr std::array kRoles = {
    RoleInfo{"listen", EndpointSyntax::host_port, "127.0.0.1:8080"},
    RoleInfo{"router", EndpointSyntax::zmq, "inproc://NAME"},
    RoleInfo{"pull", EndpointSyntax::zmq, "inproc://NAME"},
    RoleInfo{"metrics", EndpointSyntax::host_port, "127.0.0.1:9100"},
    RoleInfo{"control", EndpointSyntax::zmq, "ipc:///run/vartalap/NAME.control"},
};

// Roles any kind may bind in addition to its required ones.
constexpr std::array<std::string_view, 2> kOptionalRoles = {"metrics", "control"};

struct KindInfo {
    std::string_view kind;
    std::array<std::string_view, 2> roles; // required endpoint roles; "" = unused slot
    bool sharded;
};

constexpr std::array kKinds = {
    KindInfo{"ws-gateway", {"listen", "router"}, false},
    KindInfo{"rest-gateway", {"listen", "router"}, false},
    KindInfo{"message-router", {"pull", ""}, false},
    KindInfo{"session", {"pull", ""}, true},
    KindInfo{"profile", {"router", ""}, false},
    KindInfo{"persistence", {"pull", "router"}, true},
    KindInfo{"push", {"pull", ""}, false},
    KindInfo{"group", {"router", ""}, false},
    KindInfo{"group-router", {"pull", ""}, false},
};

// Who connects to whom. Order matters only for output stability (links() and `show`).
struct LinkRule {
    std::string_view from_kind;
    std::string_view socket;
    std::string_view to_kind;
    std::string_view role;
};

constexpr std::array kLinkRules = {
    LinkRule{"ws-gateway", "PUSH", "message-router", "pull"},
    // connect/disconnect go straight to the user's session shard.
    LinkRule{"ws-gateway", "PUSH", "session", "pull"},
    LinkRule{"rest-gateway", "PUSH", "message-router", "pull"},
    LinkRule{"rest-gateway", "DEALER", "profile", "router"},
    LinkRule{"rest-gateway", "DEALER", "persistence", "router"},
    LinkRule{"rest-gateway", "DEALER", "group", "router"},
    LinkRule{"message-router", "PUSH", "session", "pull"},
    LinkRule{"message-router", "PUSH", "group-router", "pull"},
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
    LinkRule{"persistence", "PUSH", "push", "pull"},
    LinkRule{"push", "DEALER", "profile", "router"},
};

constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug", "info", "warn",
                                                        "error", "critical", "off"};
constexpr std::array<std::string_view, 4> kSystemKeys = {"name", "data_dir", "log_level",
                                                         "secret"};
constexpr std::array<std::string_view, 5> kDaemonPlainKeys = {"kind", "name", "host", "slots",
                                                              "options"};

// AccessKeys refuses shorter secrets; checking here turns a start-up failure into a
// validation error.
constexpr std::size_t kMinSecretBytes = 32;

// sun_path is 108 bytes on Linux, one of which is the terminating NUL.
constexpr std::size_t kMaxIpcPathBytes = 107;

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
    return std::find(kOptionalRoles.begin(), kOptionalRoles.end(), role) !=
           kOptionalRoles.end();
}

template <typename Range>
bool contains(const Range& range, std::string_view value) {
    return std::find(range.begin(), range.end(), value) != range.end();
}

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

std::string kind_roles_text(const KindInfo& kind) {
    return join(kind.roles);
}

// The instance-name rule: safe in file paths, systemd instance names and log lines.
bool valid_name(std::string_view name) {
    auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (name.empty() || !lower_or_digit(name.front())) return false;
    return std::all_of(name.begin(), name.end(), [&](char c) {
        return lower_or_digit(c) || c == '.' || c == '_' || c == '-';
    });
}

bool valid_host_name(std::string_view host) {
    if (host.empty()) return false;
    return std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '-' || c == '_';
    });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                               diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// " (did you mean 'router'?)" when a candidate is within two edits, else "".
template <typename Range>
std::string suggestion(std::string_view typo, const Range& candidates) {
    std::string_view best;
    std::size_t best_distance = 3;
    for (const auto& candidate : candidates) {
        const std::size_t distance = edit_distance(typo, candidate);
        if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    if (best.empty()) return {};
    return " (did you mean '" + std::string(best) + "'?)";
}

std::optional<std::uint32_t> parse_uint(std::string_view text, std::uint32_t max) {
    if (text.empty() || text.size() > 9) return std::nullopt;
    std::uint32_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size() || value > max)
        return std::nullopt;
    return value;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// ---------------------------------------------------------------------------------------
// Endpoint syntax.

bool has_space(std::string_view text) {
    return std::any_of(text.begin(), text.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

struct HostPort {
    std::string host;
    int port = 0; // -1 = "*" (ZeroMQ's kernel-chosen port)
};

// "host:port" or "[v6]:port". Returns an error text, or "" on success.
std::string parse_host_port(std::string_view text, bool allow_star_port, HostPort& out) {
    if (has_space(text)) return "it contains whitespace";
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return "expected [IPv6]:PORT";
        host = text.substr(0, close + 1);
        port = text.substr(close + 2);
        if (host.size() <= 2) return "empty IPv6 address";
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return "expected HOST:PORT";
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.empty()) return "missing host before ':'";
        if (host != "*" && !valid_host_name(host))
            return "host '" + std::string(host) + "' is not a host name or address";
    }
    if (port == "*" && allow_star_port) {
        out.host = std::string(host);
        out.port = -1;
        return {};
    }
    const auto number = parse_uint(port, 65535);
    if (!number)
        return "port '" + std::string(port) + "' is not a number in 0-65535" +
               (allow_star_port ? " or *" : "");
    out.host = std::string(host);
    out.port = static_cast<int>(*number);
    return {};
}

enum class Transport { inproc, ipc, tcp };

struct ParsedEndpoint {
    Transport transport = Transport::tcp;
    std::string address; // inproc name, ipc path, or tcp host
    int port = 0;        // tcp only; 0 or -1 = kernel picks
};

std::string parse_zmq_endpoint(std::string_view text, ParsedEndpoint& out) {
    if (has_space(text)) return "it contains whitespace";
    const auto scheme_end = text.find("://");
    if (scheme_end == std::string_view::npos)
        return "expected inproc://NAME, ipc://PATH or tcp://HOST:PORT";
    const std::string_view scheme = text.substr(0, scheme_end);
    const std::string_view rest = text.substr(scheme_end + 3);
    if (scheme == "inproc") {
        if (rest.empty()) return "inproc:// needs a name";
        out = {Transport::inproc, std::string(rest), 0};
        return {};
    }
    if (scheme == "ipc") {
        if (rest.empty()) return "ipc:// needs a path";
        if (rest.size() > kMaxIpcPathBytes)
            return "ipc path is longer than " + std::to_string(kMaxIpcPathBytes) +
                   " bytes, the limit of a Unix socket address";
        out = {Transport::ipc, std::string(rest), 0};
        return {};
    }
    if (scheme == "tcp") {
        HostPort host_port;
        std::string error = parse_host_port(rest, true, host_port);
        if (!error.empty()) return error;
        out = {Transport::tcp, host_port.host, host_port.port};
        return {};
    }
    return "unknown transport '" + std::string(scheme) + "' (use inproc, ipc or tcp)";
}

bool wildcard_address(std::string_view host) {
    return host == "*" || host == "0.0.0.0" || host == "[::]";
}

bool valid_hex(std::string_view text) {
    if (text.size() % 2 != 0) return false;
    return std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
}

// ---------------------------------------------------------------------------------------
// The loader.

int line_of(const toml::source_region& region) {
    return static_cast<int>(region.begin.line);
}

std::string type_name(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time: return "a date/time";
    default: return "a value";
    }
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

struct BoundEndpoint {
    std::size_t daemon = 0;
    std::string role;
    std::string text;
    ParsedEndpoint parsed;
    int line = 0;
};

class Loader {
public:
    explicit Loader(std::string file) : file_(std::move(file)) { topology_.file = file_; }

    LoadResult run(std::string_view text) {
        toml::table root;
        try {
            root = toml::parse(text, file_);
        } catch (const toml::parse_error& error) {
            add(line_of(error.source()), "TOML syntax error: " + std::string(error.description()));
            return finish();
        }
        read_root(root);
        check_names();
        check_endpoints();
        check_slots();
        check_required_kinds();
        return finish();
    }

private:
    void add(int line, std::string message) {
        errors_.push_back(Diagnostic{file_, line, std::move(message)});
    }

    LoadResult finish() {
        // Line order reads like the file; file-wide problems (line 0) come last.
        std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
            const int a_key = a.line == 0 ? INT32_MAX : a.line;
            const int b_key = b.line == 0 ? INT32_MAX : b.line;
            return a_key < b_key;
        });
        LoadResult result;
        result.errors = std::move(errors_);
        if (result.errors.empty()) {
            for (auto& draft : drafts_) topology_.daemons.push_back(std::move(draft.spec));
            result.topology = std::move(topology_);
        }
        return result;
    }

    void read_root(const toml::table& root) {
        for (auto&& [key, node] : root) {
            const int line = line_of(key.source());
            if (key == "system") {
                if (const auto* table = node.as_table())
                    read_system(*table);
                else
                    add(line, "'system' must be a table: write [system]");
            } else if (key == "daemon") {
                const auto* array = node.as_array();
                if (!array || (!array->empty() && !array->is_array_of_tables())) {
                    add(line, "'daemon' must be an array of tables: write [[daemon]] before each "
                              "daemon");
                    continue;
                }
                for (auto&& element : *array) read_daemon(*element.as_table());
            } else {
                add(line, "unknown top-level key '" + std::string(key.str()) + "'" +
                              suggestion(key.str(), std::array<std::string_view, 2>{
                                                        "system", "daemon"}) +
                              "; expected [system] and [[daemon]] tables");
            }
        }
    }

    // Reads a string value or records "<what> must be a string".
    std::optional<std::string> string_value(const toml::node& node, const std::string& what) {
        if (const auto* value = node.as_string()) return value->get();
        add(line_of(node.source()), what + " must be a string, not " + type_name(node));
        return std::nullopt;
    }

    void read_system(const toml::table& table) {
        for (auto&& [key, node] : table) {
            const int line = line_of(key.source());
            const std::string name(key.str());
            if (!contains(kSystemKeys, name)) {
                add(line, "unknown key '" + name + "' in [system]" +
                              suggestion(name, kSystemKeys) + "; known: " + join(kSystemKeys));
                continue;
            }
            const auto value = string_value(node, "system." + name);
            if (!value) continue;
            if (name == "name") {
                if (!valid_name(*value))
                    add(line, "system.name '" + *value + "' must match [a-z0-9][a-z0-9._-]*");
                else
                    topology_.name = *value;
            } else if (name == "data_dir") {
                if (value->empty())
                    add(line, "system.data_dir must not be empty");
                else
                    topology_.data_dir = *value;
            } else if (name == "log_level") {
                if (!contains(kLogLevels, *value))
                    add(line, "system.log_level '" + *value + "' is not one of " +
                                  join(kLogLevels));
                else
                    topology_.log_level = *value;
            } else if (name == "secret") {
                // Never echo the secret itself into a diagnostic: diagnostics end up in logs.
                if (value->rfind("hex:", 0) == 0) {
                    const std::string_view hex = std::string_view(*value).substr(4);
                    if (!valid_hex(hex))
                        add(line, "system.secret: 'hex:' must be followed by an even number of "
                                  "hex digits");
                    else if (hex.size() / 2 < kMinSecretBytes)
                        add(line, "system.secret must be at least " +
                                      std::to_string(kMinSecretBytes) + " bytes (" +
                                      std::to_string(kMinSecretBytes * 2) + " hex digits)");
                    else
                        topology_.secret = *value;
                } else if (value->size() < kMinSecretBytes) {
                    add(line, "system.secret must be at least " + std::to_string(kMinSecretBytes) +
                                  " bytes (or 'hex:' and " + std::to_string(kMinSecretBytes * 2) +
                                  " hex digits)");
                } else {
                    topology_.secret = *value;
                }
            }
        }
    }

    void read_daemon(const toml::table& table) {
        DaemonDraft draft;
        draft.spec.line = line_of(table.source());
        draft.label = "[[daemon]] #" + std::to_string(drafts_.size() + 1);
        DaemonSpec& spec = draft.spec;

        // Kind and name first: every later message names the daemon and checks keys
        // against its kind.
        if (const auto* node = table.get("name")) {
            draft.key_lines["name"] = line_of(node->source());
            if (auto value = string_value(*node, draft.label + ": name")) {
                if (!valid_name(*value)) {
                    add(line_of(node->source()),
                        draft.label + ": name '" + *value + "' must match [a-z0-9][a-z0-9._-]*");
                } else {
                    spec.name = *value;
                    draft.label = "daemon '" + spec.name + "'";
                    draft.named = true;
                }
            }
        } else {
            add(spec.line, draft.label + ": missing name (a unique instance name, e.g. "
                                         "name = \"session-1\")");
        }
        if (const auto* node = table.get("kind")) {
            draft.key_lines["kind"] = line_of(node->source());
            if (auto value = string_value(*node, draft.label + ": kind")) {
                spec.kind = *value;
                draft.kind = kind_info(*value);
                if (!draft.kind) {
                    std::vector<std::string_view> kinds;
                    for (const auto& info : kKinds) kinds.push_back(info.kind);
                    add(line_of(node->source()), draft.label + ": unknown kind '" + *value + "'" +
                                                     suggestion(*value, kinds) +
                                                     "; known: " + join(kinds));
                }
            }
        } else {
            add(spec.line, draft.label + ": missing kind (ws-gateway, rest-gateway, "
                                         "message-router, session, profile, ...)");
        }

        for (auto&& [key, node] : table) {
            const int line = line_of(key.source());
            const std::string name(key.str());
            draft.key_lines[name] = line;
            if (name == "kind" || name == "name") continue;
            if (name == "host") {
                if (auto value = string_value(node, draft.label + ": host")) {
                    if (!valid_host_name(*value)) {
                        add(line, draft.label + ": host '" + *value +
                                      "' must be a host name (letters, digits, '.', '-', '_')");
                        draft.host_ok = false;
                    } else {
                        spec.host = *value;
                    }
                } else {
                    draft.host_ok = false;
                }
            } else if (name == "slots") {
                draft.has_slots = true;
                read_slots(draft, node, line);
            } else if (name == "options") {
                if (const auto* options = node.as_table())
                    spec.options = *options;
                else
                    add(line, draft.label + ": options must be a table ([daemon.options]), not " +
                                  type_name(node));
            } else if (const RoleInfo* role = role_info(name)) {
                if (draft.kind && !kind_binds(*draft.kind, name)) {
                    add(line, draft.label + ": a " + std::string(draft.kind->kind) +
                                  " has no '" + name + "' endpoint (it binds " +
                                  kind_roles_text(*draft.kind) + "; any daemon may add " +
                                  join(kOptionalRoles) + ")");
                    continue;
                }
                auto value = string_value(node, draft.label + ": " + name);
                if (!value) continue;
                read_endpoint(draft, *role, *value, line);
            } else {
                std::vector<std::string_view> known(kDaemonPlainKeys.begin(),
                                                    kDaemonPlainKeys.end());
                for (const auto& info : kRoles) known.push_back(info.role);
                add(line, draft.label + ": unknown key '" + name + "'" + suggestion(name, known) +
                              "; known: " + join(known));
            }
        }

        if (draft.kind) {
            for (std::string_view role : draft.kind->roles) {
                if (role.empty() || table.contains(role)) continue;
                add(spec.line, draft.label + ": a " + std::string(draft.kind->kind) +
                                   " needs '" + std::string(role) + "' (e.g. " +
                                   std::string(role) + " = \"" +
                                   example_endpoint(*role_info(role), spec.name) + "\")");
            }
            if (draft.has_slots && !draft.kind->sharded) {
                add(draft.key_lines["slots"],
                    draft.label + ": slots apply only to sharded kinds (session, persistence), "
                                  "not to a " + std::string(draft.kind->kind));
                draft.slots_ok = false;
            }
        }
        drafts_.push_back(std::move(draft));
    }

    static std::string example_endpoint(const RoleInfo& role, const std::string& name) {
        std::string example(role.example);
        const auto at = example.find("NAME");
        if (at != std::string::npos) example.replace(at, 4, name.empty() ? "name" : name);
        return example;
    }

    void read_endpoint(DaemonDraft& draft, const RoleInfo& role, const std::string& text,
                       int line) {
        if (role.syntax == EndpointSyntax::host_port) {
            HostPort host_port;
            const std::string error = parse_host_port(text, false, host_port);
            if (!error.empty()) {
                add(line, draft.label + ": " + std::string(role.role) + " '" + text +
                              "' is malformed: " + error + " (e.g. " +
                              std::string(role.example) + "; port 0 = kernel picks)");
                return;
            }
            draft.spec.endpoints[std::string(role.role)] = text;
            endpoints_.push_back(BoundEndpoint{
                drafts_.size(), std::string(role.role), text,
                ParsedEndpoint{Transport::tcp, host_port.host, host_port.port}, line});
            return;
        }
        ParsedEndpoint parsed;
        const std::string error = parse_zmq_endpoint(text, parsed);
        if (!error.empty()) {
            add(line, draft.label + ": " + std::string(role.role) + " '" + text +
                          "' is not a ZeroMQ endpoint: " + error);
            return;
        }
        // The control socket is asked by another process (vartalapctl status), which an
        // inproc:// endpoint cannot reach.
        if (role.role == "control" && parsed.transport == Transport::inproc) {
            add(line, draft.label + ": control '" + text + "' uses inproc://, which no other "
                          "process can reach; use ipc:// or tcp:// (e.g. control = \"" +
                          example_endpoint(role, draft.spec.name) + "\")");
            return;
        }
        draft.spec.endpoints[std::string(role.role)] = text;
        endpoints_.push_back(
            BoundEndpoint{drafts_.size(), std::string(role.role), text, parsed, line});
    }

    void read_slots(DaemonDraft& draft, const toml::node& node, int line) {
        const auto* value = node.as_string();
        if (!value) {
            add(line, draft.label + ": slots must be a string like \"0-8191,10000-10010\", not " +
                          type_name(node));
            draft.slots_ok = false;
            return;
        }
        std::string_view rest = value->get();
        if (trim(rest).empty()) {
            add(line, draft.label + ": slots is empty (write ranges like \"0-8191\")");
            draft.slots_ok = false;
            return;
        }
        constexpr std::uint32_t max_slot = kSlotCount - 1;
        while (true) {
            const auto comma = rest.find(',');
            const std::string_view part = trim(rest.substr(0, comma));
            const auto dash = part.find('-');
            const std::string_view first_text = trim(part.substr(0, dash));
            const std::string_view last_text =
                dash == std::string_view::npos ? first_text : trim(part.substr(dash + 1));
            const auto first = parse_uint(first_text, UINT32_MAX / 2);
            const auto last = parse_uint(last_text, UINT32_MAX / 2);
            if (!first || !last) {
                add(line, draft.label + ": slots: malformed range '" + std::string(part) +
                              "' (expected FIRST-LAST or SLOT, e.g. \"0-8191,10000\")");
                draft.slots_ok = false;
            } else if (*first > max_slot || *last > max_slot) {
                add(line, draft.label + ": slots: range '" + std::string(part) +
                              "' is outside 0-" + std::to_string(max_slot));
                draft.slots_ok = false;
            } else if (*first > *last) {
                add(line, draft.label + ": slots: range '" + std::string(part) +
                              "' ends before it starts");
                draft.slots_ok = false;
            } else {
                draft.spec.slots.push_back(SlotRange{*first, *last});
            }
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }

    void check_names() {
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

    std::string where(const BoundEndpoint& endpoint) const {
        return drafts_[endpoint.daemon].label + " (" + endpoint.role + ")";
    }

    void check_endpoints() {
        std::set<std::string> hosts;
        for (const auto& draft : drafts_)
            if (draft.host_ok) hosts.insert(draft.spec.host);

        // inproc:// reaches only sockets of the same ZeroMQ context, i.e. one process; a
        // topology spread over hosts runs several processes.
        if (hosts.size() > 1) {
            for (const auto& endpoint : endpoints_) {
                if (endpoint.parsed.transport != Transport::inproc) continue;
                add(endpoint.line,
                    drafts_[endpoint.daemon].label + ": " + endpoint.role + " '" + endpoint.text +
                        "' uses inproc://, which works only inside one process, but the "
                        "topology spans " + std::to_string(hosts.size()) + " hosts (" +
                        join(hosts) + "); use tcp:// or ipc://");
            }
        }

        // The same address bound twice on one host fails at start with EADDRINUSE; saying
        // so now names both owners.
        for (std::size_t i = 0; i < endpoints_.size(); ++i) {
            const BoundEndpoint& later = endpoints_[i];
            for (std::size_t j = 0; j < i; ++j) {
                const BoundEndpoint& earlier = endpoints_[j];
                if (!same_binding(earlier, later)) continue;
                add(later.line, drafts_[later.daemon].label + ": " + later.role + " '" +
                                    later.text + "' is already bound by " + where(earlier) +
                                    " at line " + std::to_string(earlier.line));
                break;
            }
        }

        // A peer on another host cannot reach an ipc:// socket or guess a kernel-chosen port.
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

    bool same_binding(const BoundEndpoint& a, const BoundEndpoint& b) const {
        if (drafts_[a.daemon].spec.host != drafts_[b.daemon].spec.host) return false;
        if (a.parsed.transport != b.parsed.transport) return false;
        if (a.parsed.transport != Transport::tcp) return a.parsed.address == b.parsed.address;
        // Port 0 / * asks the kernel for a fresh port each time: never a clash.
        if (a.parsed.port <= 0 || a.parsed.port != b.parsed.port) return false;
        return a.parsed.address == b.parsed.address || wildcard_address(a.parsed.address) ||
               wildcard_address(b.parsed.address);
    }

    void check_slots() {
        for (const KindInfo& kind : kKinds) {
            if (!kind.sharded) continue;
            std::vector<std::size_t> instances;
            for (std::size_t i = 0; i < drafts_.size(); ++i)
                if (drafts_[i].kind == &kind) instances.push_back(i);
            if (instances.empty()) continue;

            bool complete = true; // every instance's slots were read without error
            for (std::size_t i : instances) {
                DaemonDraft& draft = drafts_[i];
                if (!draft.slots_ok) complete = false;
                if (draft.has_slots) continue;
                if (instances.size() == 1) {
                    draft.spec.slots = {SlotRange{0, kSlotCount - 1}};
                } else {
                    add(draft.spec.line,
                        draft.label + ": missing slots: with " + std::to_string(instances.size()) +
                            " " + std::string(kind.kind) + " instances each must own a slot "
                            "range (e.g. slots = \"0-8191\")");
                    complete = false;
                }
            }

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
                        add(draft.key_lines["slots"],
                            draft.label + ": slots " + span + " are listed twice");
                    else
                        add(draft.key_lines["slots"],
                            draft.label + ": slots " + span + " are also owned by '" +
                                drafts_[previous.draft].spec.name + "'");
                }
                if (current.range.last > previous.range.last) reach = k;
            }
            if (!complete || overlapping) continue;

            // Gaps: the first slot range nobody owns. Reported at the instance just before
            // the hole (where an operator would extend a range), else the one just after.
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
            if (!gap) continue;
            DaemonDraft& blamed = drafts_[before ? *before : *after];
            add(blamed.key_lines["slots"],
                "slots " + range_text(gap->first, gap->last) + " of kind " +
                    std::string(kind.kind) + " are owned by no instance (the " +
                    std::string(kind.kind) + " instances together must cover 0-" +
                    std::to_string(kSlotCount - 1) + ")");
        }
    }

    static int host_line(const DaemonDraft& draft) {
        auto it = draft.key_lines.find("host");
        return it != draft.key_lines.end() ? it->second : draft.spec.line;
    }

    static std::string range_text(std::uint32_t first, std::uint32_t last) {
        if (first == last) return std::to_string(first);
        return std::to_string(first) + "-" + std::to_string(last);
    }

    void check_required_kinds() {
        auto count = [&](std::string_view kind) {
            return std::count_if(drafts_.begin(), drafts_.end(),
                                 [&](const DaemonDraft& d) { return d.spec.kind == kind; });
        };
        for (std::string_view kind : {"message-router", "session", "profile"}) {
            if (count(kind) == 0)
                add(0, "no " + std::string(kind) + ": a topology needs at least one");
        }
        if (count("ws-gateway") == 0 && count("rest-gateway") == 0)
            add(0, "no ws-gateway or rest-gateway: clients need at least one way in");
        check_group_placement(count("group"));
    }

    // The group store is one LMDB environment: one group daemon owns it, and every
    // group-router reads it directly, so it must run on the same host.
    void check_group_placement(std::ptrdiff_t groups) {
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

    std::string file_;
    Topology topology_;
    std::vector<DaemonDraft> drafts_;
    std::vector<BoundEndpoint> endpoints_;
    std::vector<Diagnostic> errors_;
};

// CRC16/XMODEM (poly 0x1021, init 0, no reflection): the checksum Redis Cluster hashes
// keys with, so slot numbers match what operators know from Redis.
constexpr std::array<std::uint16_t, 256> make_crc16_table() {
    std::array<std::uint16_t, 256> table{};
    for (std::uint32_t byte = 0; byte < 256; ++byte) {
        std::uint16_t crc = static_cast<std::uint16_t>(byte << 8);
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
        table[byte] = crc;
    }
    return table;
}
constexpr auto kCrc16Table = make_crc16_table();

std::uint16_t crc16(std::string_view bytes) {
    std::uint16_t crc = 0;
    for (const char c : bytes) {
        const auto byte = static_cast<std::uint8_t>(c);
        crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ byte) & 0xff]);
    }
    return crc;
}

} // namespace

// ---------------------------------------------------------------------------------------

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

std::string Diagnostic::str() const {
    if (line > 0) return file + ":" + std::to_string(line) + ": " + message;
    return file + ": " + message;
}

std::string DaemonSpec::endpoint(const std::string& role) const {
    const auto it = endpoints.find(role);
    return it == endpoints.end() ? std::string() : it->second;
}

std::int64_t DaemonSpec::option_int(std::string_view key, std::int64_t fallback) const {
    const toml::node* node = options.get(key);
    if (!node) return fallback;
    if (const auto* value = node->as_integer()) return value->get();
    throw std::invalid_argument(name + ": option " + std::string(key) + " must be an integer");
}

std::string DaemonSpec::option_string(std::string_view key, std::string_view fallback) const {
    const toml::node* node = options.get(key);
    if (!node) return std::string(fallback);
    if (const auto* value = node->as_string()) return value->get();
    throw std::invalid_argument(name + ": option " + std::string(key) + " must be a string");
}

bool DaemonSpec::option_bool(std::string_view key, bool fallback) const {
    const toml::node* node = options.get(key);
    if (!node) return fallback;
    if (const auto* value = node->as_boolean()) return value->get();
    throw std::invalid_argument(name + ": option " + std::string(key) +
                                " must be a boolean (true or false)");
}

std::vector<const DaemonSpec*> Topology::of_kind(std::string_view kind) const {
    std::vector<const DaemonSpec*> out;
    for (const auto& daemon : daemons)
        if (daemon.kind == kind) out.push_back(&daemon);
    return out;
}

const DaemonSpec* Topology::find(std::string_view name) const {
    for (const auto& daemon : daemons)
        if (daemon.name == name) return &daemon;
    return nullptr;
}

std::vector<std::string> Topology::hosts() const {
    std::vector<std::string> out;
    for (const auto& daemon : daemons)
        if (std::find(out.begin(), out.end(), daemon.host) == out.end())
            out.push_back(daemon.host);
    return out;
}

std::string Topology::unknown_host_error(std::string_view host) const {
    const std::vector<std::string> known = hosts();
    if (std::find(known.begin(), known.end(), host) != known.end()) return {};
    std::string list;
    for (const auto& name : known) list += (list.empty() ? "" : ", ") + name;
    return file + ": no daemon is placed on host '" + std::string(host) + "' (hosts: " + list + ")";
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

LoadResult load_string(std::string_view text, std::string file_name) {
    return Loader(std::move(file_name)).run(text);
}

LoadResult load_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        const std::error_code error(errno, std::generic_category());
        LoadResult result;
        result.errors.push_back(Diagnostic{file.string(), 0, "cannot open: " + error.message()});
        return result;
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        LoadResult result;
        result.errors.push_back(Diagnostic{file.string(), 0, "cannot read the file"});
        return result;
    }
    return load_string(text.str(), file.string());
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
