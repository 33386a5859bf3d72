// Thread: any (one Loader per load). The internal transport's part of a load: each host's
// CURVE key pair ([host.NAME] public_key, secret_key_file) read in step 2, and in step 3 the
// rule that a tcp:// ZeroMQ endpoint is either CURVE (every host has keys) or allowed in
// plain text by `[system] insecure_tcp = true`. See topology/README.md, "Internal transport".
#include "topology/loader.hpp"

#include <set>

namespace vartalap::topology::detail {

namespace {

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
constexpr std::size_t kZ85KeyChars = 40; // a 32-byte CURVE key in Z85

int line_of(const toml::node& node) { return static_cast<int>(node.source().begin.line); }

// A 32-byte key in Z85: 40 characters of the alphabet, each group of five worth < 2^32.
bool valid_z85_key(std::string_view text) {
    if (text.size() != kZ85KeyChars) return false;
    for (std::size_t group = 0; group < text.size(); group += 5) {
        std::uint64_t value = 0;
        for (std::size_t i = group; i < group + 5; ++i) {
            const auto digit = kZ85Alphabet.find(text[i]);
            if (digit == std::string_view::npos) return false;
            value = value * 85 + digit;
        }
        if (value > 0xffffffffULL) return false;
    }
    return true;
}

} // namespace

void Loader::read_hosts(const toml::table& table) {
    for (auto&& [key, node] : table) {
        const int line = static_cast<int>(key.source().begin.line);
        const std::string host(key.str());
        if (!valid_host_name(host)) {
            add(line, "[host." + host + "]: '" + host +
                          "' must be a host name (letters, digits, '.', '-', '_')");
            continue;
        }
        if (const auto* keys = node.as_table())
            read_host_keys(host, *keys, line);
        else
            add(line, "host." + host + " must be a table: write [host." + host + "]");
    }
}

void Loader::read_host_keys(const std::string& host, const toml::table& table, int line) {
    HostKeys keys;
    keys.line = line;
    bool ok = true;
    for (auto&& [key, node] : table) {
        const std::string name(key.str());
        const int key_line = static_cast<int>(key.source().begin.line);
        if (name != "public_key" && name != "secret_key_file") {
            add(key_line, "[host." + host + "]: unknown key '" + name +
                              "'; known: public_key, secret_key_file");
            ok = false;
            continue;
        }
        const auto* value = node.as_string();
        if (!value) {
            add(line_of(node), "host." + host + "." + name + " must be a string");
            ok = false;
        } else if (name == "public_key") {
            keys.public_key = value->get();
            if (!valid_z85_key(keys.public_key)) {
                add(key_line, "host." + host + ".public_key must be a CURVE public key: 40 "
                                  "characters of Z85 (made by `vartalapctl keys`)");
                ok = false;
            }
        } else {
            keys.secret_key_file = value->get();
            if (keys.secret_key_file.empty()) {
                add(key_line, "host." + host + ".secret_key_file must not be empty");
                ok = false;
            }
        }
    }
    for (const char* required : {"public_key", "secret_key_file"}) {
        if (table.contains(required)) continue;
        add(line, "[host." + host + "]: missing " + required +
                      " (`vartalapctl keys DIR --host " + host + "` prints both)");
        ok = false;
    }
    // A failed entry still counts as present, so check_transport does not add "no keys".
    topology_.host_keys[host] = ok ? std::move(keys) : HostKeys{{}, {}, line};
}

// Keys for hosts that run nothing, hosts without keys when others have them, one key
// shared by two hosts, and tcp:// without keys unless insecure_tcp.
void Loader::check_transport() {
    std::set<std::string> placed;
    for (const auto& draft : drafts_)
        if (draft.host_ok) placed.insert(draft.spec.host);
    std::map<std::string, std::string> host_of_key;
    for (const auto& [host, keys] : topology_.host_keys) {
        if (!placed.count(host))
            add(keys.line, "[host." + host + "]: no daemon is placed on host '" + host +
                               "' (hosts: " + join(placed) + ")");
        if (keys.public_key.empty()) continue;
        const auto [it, inserted] = host_of_key.emplace(keys.public_key, host);
        if (!inserted)
            add(keys.line, "[host." + host + "]: the same public key as host '" + it->second +
                               "'; every host needs its own key pair");
    }
    if (!topology_.host_keys.empty()) {
        for (const std::string& host : placed)
            if (!topology_.host_keys.count(host))
                add(0, "host '" + host + "' has no CURVE keys: when any host has [host.NAME] "
                       "keys, every host needs them (`vartalapctl keys DIR --host " + host + "`)");
        return;
    }
    if (topology_.insecure_tcp) return;
    for (const auto& endpoint : endpoints_) {
        const auto& draft = drafts_[endpoint.daemon];
        const RoleInfo* role = role_info(endpoint.role);
        if (!role || role->syntax != EndpointSyntax::zmq || !is_tcp_endpoint(endpoint.text))
            continue;
        add(endpoint.line,
            draft.label + ": " + endpoint.role + " '" + endpoint.text +
                "' is tcp:// without CURVE keys: anyone who reaches the port could send and "
                "read as a daemon. Give every host a key pair ([host.NAME] public_key and "
                "secret_key_file; `vartalapctl keys DIR --host NAME`), or write "
                "`insecure_tcp = true` in [system] to accept that");
        return; // one error says it; the fix is file-wide
    }
}

} // namespace vartalap::topology::detail
