// Thread: any. The value types of a loaded topology (topology.hpp); the loader that builds
// them is loader.cpp.
#include "topology/topology.hpp"

#include <algorithm>
#include <stdexcept>

namespace vartalap::topology {

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

std::vector<std::string> DaemonSpec::option_strings(std::string_view key) const {
    const toml::node* node = options.get(key);
    if (!node) return {};
    std::vector<std::string> out;
    const auto* array = node->as_array();
    if (array)
        for (const toml::node& item : *array) {
            const auto* value = item.as_string();
            if (!value) break;
            out.push_back(value->get());
        }
    if (!array || out.size() != array->size())
        throw std::invalid_argument(name + ": option " + std::string(key) +
                                    " must be an array of strings");
    return out;
}

bool DaemonSpec::option_bool(std::string_view key, bool fallback) const {
    const toml::node* node = options.get(key);
    if (!node) return fallback;
    if (const auto* value = node->as_boolean()) return value->get();
    throw std::invalid_argument(name + ": option " + std::string(key) +
                                " must be a boolean (true or false)");
}

const HostKeys* Topology::keys_of(std::string_view host) const {
    const auto it = host_keys.find(std::string(host));
    return it == host_keys.end() ? nullptr : &it->second;
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

} // namespace vartalap::topology
