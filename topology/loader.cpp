// Thread: any (one Loader per load). Steps 1, 2 and 4 of a load: parse the TOML text, read
// [system] and each [[daemon]] table on its own, and finish; see loader.hpp for the steps
// and loader_checks.cpp for the checks across daemons.
#include "topology/loader.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

namespace vartalap::topology {

namespace detail {

namespace {

constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug", "info", "warn",
                                                        "error", "critical", "off"};
constexpr std::array<std::string_view, 7> kSystemKeys = {"name", "data_dir", "log_level",
                                                         "secret", "threads",
                                                         "access_key_max_age_days",
                                                         "insecure_tcp"};
constexpr std::int64_t kMaxKeyAgeDays = 36500;
constexpr std::int64_t kMaxThreads = 64;
constexpr std::array<std::string_view, 5> kDaemonPlainKeys = {"kind", "name", "host", "slots",
                                                              "options"};

// AccessKeys refuses shorter secrets; checking here turns a start-up failure into a
// validation error.
constexpr std::size_t kMinSecretBytes = 32;

template <typename Range>
bool contains(const Range& range, std::string_view value) {
    return std::find(range.begin(), range.end(), value) != range.end();
}

// The instance-name rule: safe in file paths, systemd instance names and log lines.
bool valid_name(std::string_view name) {
    auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (name.empty() || !lower_or_digit(name.front())) return false;
    return std::all_of(name.begin(), name.end(), [&](char c) {
        return lower_or_digit(c) || c == '.' || c == '_' || c == '-';
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

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

bool valid_hex(std::string_view text) {
    if (text.size() % 2 != 0) return false;
    return std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
}

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

// The role's example with NAME replaced by the instance name.
std::string example_endpoint(const RoleInfo& role, const std::string& name) {
    std::string example(role.example);
    const auto at = example.find("NAME");
    if (at != std::string::npos) example.replace(at, 4, name.empty() ? "name" : name);
    return example;
}

} // namespace

// ---------------------------------------------------------------------------------------
// Steps 1 and 4.

LoadResult Loader::run(std::string_view text) {
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
    check_transport();
    check_development_identity();
    return finish();
}

LoadResult Loader::finish() {
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

// ---------------------------------------------------------------------------------------
// Step 2: the top level and [system].

void Loader::read_root(const toml::table& root) {
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
        } else if (key == "host") {
            if (const auto* table = node.as_table())
                read_hosts(*table);
            else
                add(line, "'host' must be a table of hosts: write [host.NAME] before each "
                          "host's keys");
        } else {
            add(line, "unknown top-level key '" + std::string(key.str()) + "'" +
                          suggestion(key.str(), std::array<std::string_view, 3>{
                                                    "system", "daemon", "host"}) +
                          "; expected [system], [[daemon]] and [host.NAME] tables");
        }
    }
}

// Reads a string value or records "<what> must be a string".
std::optional<std::string> Loader::string_value(const toml::node& node, const std::string& what) {
    if (const auto* value = node.as_string()) return value->get();
    add(line_of(node.source()), what + " must be a string, not " + type_name(node));
    return std::nullopt;
}

void Loader::read_system(const toml::table& table) {
    for (auto&& [key, node] : table) {
        const int line = line_of(key.source());
        const std::string name(key.str());
        if (!contains(kSystemKeys, name)) {
            add(line, "unknown key '" + name + "' in [system]" + suggestion(name, kSystemKeys) +
                          "; known: " + join(kSystemKeys));
            continue;
        }
        if (name == "threads") {
            read_threads(node, line);
            continue;
        }
        if (name == "insecure_tcp") {
            if (const auto* value = node.as_boolean())
                topology_.insecure_tcp = value->get();
            else
                add(line, "system.insecure_tcp must be a boolean (true or false), not " +
                              type_name(node));
            continue;
        }
        if (name == "access_key_max_age_days") {
            const auto days = node.value_exact<std::int64_t>();
            if (!days || *days < 0 || *days > kMaxKeyAgeDays)
                add(line, "system.access_key_max_age_days must be an integer from 0 (keys never "
                          "expire) to " + std::to_string(kMaxKeyAgeDays));
            else
                topology_.access_key_max_age_days = static_cast<int>(*days);
            continue;
        }
        if (const auto value = string_value(node, "system." + name))
            read_system_key(name, *value, line);
    }
}

void Loader::read_system_key(const std::string& name, const std::string& value, int line) {
    if (name == "name") {
        if (!valid_name(value))
            add(line, "system.name '" + value + "' must match [a-z0-9][a-z0-9._-]*");
        else
            topology_.name = value;
    } else if (name == "data_dir") {
        if (value.empty())
            add(line, "system.data_dir must not be empty");
        else
            topology_.data_dir = value;
    } else if (name == "log_level") {
        if (!contains(kLogLevels, value))
            add(line, "system.log_level '" + value + "' is not one of " + join(kLogLevels));
        else
            topology_.log_level = value;
    } else if (name == "secret") {
        read_secret(value, line);
    }
}

void Loader::read_threads(const toml::node& node, int line) {
    const auto value = node.value_exact<std::int64_t>();
    if (!value || *value < 0 || *value > kMaxThreads) {
        add(line, "system.threads must be an integer from 0 (one thread per daemon) to " +
                      std::to_string(kMaxThreads));
        return;
    }
    topology_.threads = static_cast<int>(*value);
}

void Loader::read_secret(const std::string& value, int line) {
    // Never echo the secret itself into a diagnostic: diagnostics end up in logs.
    if (value.rfind("hex:", 0) == 0) {
        const std::string_view hex = std::string_view(value).substr(4);
        if (!valid_hex(hex))
            add(line, "system.secret: 'hex:' must be followed by an even number of hex digits");
        else if (hex.size() / 2 < kMinSecretBytes)
            add(line, "system.secret must be at least " + std::to_string(kMinSecretBytes) +
                          " bytes (" + std::to_string(kMinSecretBytes * 2) + " hex digits)");
        else
            topology_.secret = value;
    } else if (value.size() < kMinSecretBytes) {
        add(line, "system.secret must be at least " + std::to_string(kMinSecretBytes) +
                      " bytes (or 'hex:' and " + std::to_string(kMinSecretBytes * 2) +
                      " hex digits)");
    } else {
        topology_.secret = value;
    }
}

// ---------------------------------------------------------------------------------------
// Step 2: one [[daemon]].

void Loader::read_daemon(const toml::table& table) {
    DaemonDraft draft;
    draft.spec.line = line_of(table.source());
    draft.label = "[[daemon]] #" + std::to_string(drafts_.size() + 1);

    // Kind and name first: every later message names the daemon and checks keys
    // against its kind.
    read_name(draft, table);
    read_kind(draft, table);
    for (auto&& [key, node] : table) {
        const int line = line_of(key.source());
        const std::string name(key.str());
        draft.key_lines[name] = line;
        if (name == "kind" || name == "name") continue;
        read_daemon_key(draft, name, node, line);
    }
    if (draft.kind) check_kind_keys(draft, table);
    drafts_.push_back(std::move(draft));
}

void Loader::read_name(DaemonDraft& draft, const toml::table& table) {
    const auto* node = table.get("name");
    if (!node) {
        add(draft.spec.line, draft.label + ": missing name (a unique instance name, e.g. "
                                           "name = \"session-1\")");
        return;
    }
    draft.key_lines["name"] = line_of(node->source());
    auto value = string_value(*node, draft.label + ": name");
    if (!value) return;
    if (!valid_name(*value)) {
        add(line_of(node->source()),
            draft.label + ": name '" + *value + "' must match [a-z0-9][a-z0-9._-]*");
        return;
    }
    draft.spec.name = *value;
    draft.label = "daemon '" + draft.spec.name + "'";
    draft.named = true;
}

void Loader::read_kind(DaemonDraft& draft, const toml::table& table) {
    const auto* node = table.get("kind");
    if (!node) {
        add(draft.spec.line, draft.label + ": missing kind (ws-gateway, rest-gateway, "
                                           "message-router, session, profile, ...)");
        return;
    }
    draft.key_lines["kind"] = line_of(node->source());
    auto value = string_value(*node, draft.label + ": kind");
    if (!value) return;
    draft.spec.kind = *value;
    draft.kind = kind_info(*value);
    if (draft.kind) return;
    std::vector<std::string_view> known;
    for (const auto& info : kinds()) known.push_back(info.kind);
    add(line_of(node->source()), draft.label + ": unknown kind '" + *value + "'" +
                                     suggestion(*value, known) + "; known: " + join(known));
}

void Loader::read_daemon_key(DaemonDraft& draft, const std::string& name, const toml::node& node,
                             int line) {
    if (name == "host") {
        read_host(draft, node, line);
    } else if (name == "slots") {
        draft.has_slots = true;
        read_slots(draft, node, line);
    } else if (name == "options") {
        if (const auto* options = node.as_table())
            draft.spec.options = *options;
        else
            add(line, draft.label + ": options must be a table ([daemon.options]), not " +
                          type_name(node));
    } else if (const RoleInfo* role = role_info(name)) {
        if (draft.kind && !kind_binds(*draft.kind, name)) {
            add(line, draft.label + ": a " + std::string(draft.kind->kind) + " has no '" + name +
                          "' endpoint (it binds " + join(draft.kind->roles) +
                          "; any daemon may add " + join(optional_roles()) + ")");
            return;
        }
        if (auto value = string_value(node, draft.label + ": " + name))
            read_endpoint(draft, *role, *value, line);
    } else {
        std::vector<std::string_view> known(kDaemonPlainKeys.begin(), kDaemonPlainKeys.end());
        for (const auto& info : roles()) known.push_back(info.role);
        add(line, draft.label + ": unknown key '" + name + "'" + suggestion(name, known) +
                      "; known: " + join(known));
    }
}

void Loader::read_host(DaemonDraft& draft, const toml::node& node, int line) {
    auto value = string_value(node, draft.label + ": host");
    if (!value) {
        draft.host_ok = false;
    } else if (!valid_host_name(*value)) {
        add(line, draft.label + ": host '" + *value +
                      "' must be a host name (letters, digits, '.', '-', '_')");
        draft.host_ok = false;
    } else {
        draft.spec.host = *value;
    }
}

// What a known kind demands of its table: its required endpoints, and slots only if sharded.
void Loader::check_kind_keys(DaemonDraft& draft, const toml::table& table) {
    const KindInfo& kind = *draft.kind;
    for (std::string_view role : kind.roles) {
        if (role.empty() || table.contains(role)) continue;
        add(draft.spec.line, draft.label + ": a " + std::string(kind.kind) + " needs '" +
                                 std::string(role) + "' (e.g. " + std::string(role) + " = \"" +
                                 example_endpoint(*role_info(role), draft.spec.name) + "\")");
    }
    if (draft.has_slots && !kind.sharded) {
        add(draft.key_lines["slots"],
            draft.label + ": slots apply only to sharded kinds (session, persistence), "
                          "not to a " + std::string(kind.kind));
        draft.slots_ok = false;
    }
}

void Loader::read_endpoint(DaemonDraft& draft, const RoleInfo& role, const std::string& text,
                           int line) {
    if (role.syntax == EndpointSyntax::host_port) {
        HostPort host_port;
        const std::string error = parse_host_port(text, false, host_port);
        if (!error.empty()) {
            add(line, draft.label + ": " + std::string(role.role) + " '" + text +
                          "' is malformed: " + error + " (e.g. " + std::string(role.example) +
                          "; port 0 = kernel picks)");
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
    endpoints_.push_back(BoundEndpoint{drafts_.size(), std::string(role.role), text, parsed, line});
}

void Loader::read_slots(DaemonDraft& draft, const toml::node& node, int line) {
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
    while (true) {
        const auto comma = rest.find(',');
        read_slot_range(draft, trim(rest.substr(0, comma)), line);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
}

// One "FIRST-LAST" or "SLOT" of a slots list.
void Loader::read_slot_range(DaemonDraft& draft, std::string_view part, int line) {
    constexpr std::uint32_t max_slot = kSlotCount - 1;
    const auto dash = part.find('-');
    const std::string_view first_text = trim(part.substr(0, dash));
    const std::string_view last_text =
        dash == std::string_view::npos ? first_text : trim(part.substr(dash + 1));
    const auto first = parse_decimal(first_text, UINT32_MAX / 2);
    const auto last = parse_decimal(last_text, UINT32_MAX / 2);
    if (!first || !last) {
        add(line, draft.label + ": slots: malformed range '" + std::string(part) +
                      "' (expected FIRST-LAST or SLOT, e.g. \"0-8191,10000\")");
        draft.slots_ok = false;
    } else if (*first > max_slot || *last > max_slot) {
        add(line, draft.label + ": slots: range '" + std::string(part) + "' is outside 0-" +
                      std::to_string(max_slot));
        draft.slots_ok = false;
    } else if (*first > *last) {
        add(line, draft.label + ": slots: range '" + std::string(part) + "' ends before it starts");
        draft.slots_ok = false;
    } else {
        draft.spec.slots.push_back(SlotRange{*first, *last});
    }
}

} // namespace detail

// ---------------------------------------------------------------------------------------

LoadResult load_string(std::string_view text, std::string file_name) {
    return detail::Loader(std::move(file_name)).run(text);
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

} // namespace vartalap::topology
