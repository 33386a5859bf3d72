// Thread: main (see status.hpp).
#include "tools/vartalapctl/status.hpp"

#include "common/zmq/curve.hpp"
#include "common/zmq/socket.hpp"
#include "topology/endpoints.hpp"

#include <zmq.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

namespace vartalap::ctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitNotOk = 1;
constexpr int kExitBadFile = 2;

// A JSON number as text: integers without a fraction, "-" for anything else.
std::string number_text(const nlohmann::json& value) {
    if (value.is_number_unsigned()) return std::to_string(value.get<std::uint64_t>());
    if (value.is_number_integer()) return std::to_string(value.get<std::int64_t>());
    if (value.is_number_float()) return format_count(value.get<double>());
    return "-";
}

// reply[key] if the reply has it, else null.
const nlohmann::json& field(const DaemonStatus& status, const char* key) {
    static const nlohmann::json null;
    if (!status.reply || !status.reply->is_object()) return null;
    const auto it = status.reply->find(key);
    return it == status.reply->end() ? null : *it;
}

std::string messages_in_out(const DaemonStatus& status) {
    const nlohmann::json& counters = field(status, "counters");
    if (!counters.is_object()) return "-";
    const auto count = [&](const char* name) -> std::string {
        const auto it = counters.find(name);
        if (it == counters.end() || !it->is_number()) return "-";
        return format_count(it->get<double>());
    };
    const std::string in = count("messages_in_total");
    const std::string out = count("messages_out_total");
    if (in == "-" && out == "-") return "-";
    return in + "/" + out;
}

// The address to connect to for a control endpoint as written in the file, or empty with
// `why` set when it cannot be asked from here.
std::string connect_address(const topology::DaemonSpec& spec, std::string& why) {
    const std::string endpoint = spec.endpoint("control");
    if (endpoint.empty()) {
        why = "no control endpoint in the file";
        return {};
    }
    if (endpoint.rfind("ipc://", 0) == 0) return endpoint;
    if (endpoint.rfind("tcp://", 0) != 0) {
        why = "control '" + endpoint + "' cannot be reached from another process";
        return {};
    }
    const std::string rest = endpoint.substr(6);
    const auto colon = rest.rfind(':');
    const std::string address = rest.substr(0, colon);
    const std::string port = colon == std::string::npos ? "" : rest.substr(colon + 1);
    if (port.empty() || port == "*" || port == "0") {
        why = "control '" + endpoint + "' has a kernel-chosen port";
        return {};
    }
    // A wildcard bind listens on every address of its host: ask the host by name.
    if (address == "*" || address == "0.0.0.0" || address == "[::]")
        return "tcp://" + spec.host + ":" + port;
    return endpoint;
}

} // namespace

std::string health_of(const DaemonStatus& status) {
    if (!status.reply) return status.missing;
    const nlohmann::json& health = field(status, "health");
    return health.is_string() ? health.get<std::string>() : "invalid";
}

std::string format_uptime(std::uint64_t seconds) {
    char text[32];
    if (seconds < 60) {
        std::snprintf(text, sizeof text, "%llus", static_cast<unsigned long long>(seconds));
    } else if (seconds < 3600) {
        std::snprintf(text, sizeof text, "%llum%02llus", static_cast<unsigned long long>(seconds / 60),
                      static_cast<unsigned long long>(seconds % 60));
    } else if (seconds < 86400) {
        std::snprintf(text, sizeof text, "%lluh%02llum", static_cast<unsigned long long>(seconds / 3600),
                      static_cast<unsigned long long>(seconds % 3600 / 60));
    } else {
        std::snprintf(text, sizeof text, "%llud%02lluh", static_cast<unsigned long long>(seconds / 86400),
                      static_cast<unsigned long long>(seconds % 86400 / 3600));
    }
    return text;
}

std::string format_count(double value) {
    if (!std::isfinite(value) || value < 0) return "-";
    char text[32];
    if (value < 10000) {
        std::snprintf(text, sizeof text, "%.0f", std::floor(value));
        return text;
    }
    constexpr std::array<std::pair<double, const char*>, 3> units{
        {{1e9, "G"}, {1e6, "M"}, {1e3, "k"}}};
    for (const auto& [scale, suffix] : units) {
        if (value < scale) continue;
        const double scaled = value / scale;
        // One decimal while it fits in four characters ("12.3k"), none above ("123k").
        std::snprintf(text, sizeof text, scaled < 100 ? "%.1f%s" : "%.0f%s",
                      std::floor(scaled * (scaled < 100 ? 10 : 1)) / (scaled < 100 ? 10 : 1),
                      suffix);
        return text;
    }
    return "-";
}

std::string status_table(const std::vector<DaemonStatus>& statuses) {
    using Row = std::array<std::string, 8>;
    std::vector<Row> rows;
    rows.push_back({"INSTANCE", "KIND", "HOST", "HEALTH", "UPTIME", "PID", "VERSION", "IN/OUT"});
    for (const DaemonStatus& status : statuses) {
        const nlohmann::json& uptime = field(status, "uptime_seconds");
        const nlohmann::json& version = field(status, "version");
        rows.push_back({status.instance, status.kind, status.host, health_of(status),
                        uptime.is_number() ? format_uptime(uptime.get<std::uint64_t>()) : "-",
                        number_text(field(status, "pid")),
                        version.is_string() ? version.get<std::string>() : "-",
                        messages_in_out(status)});
    }
    std::array<std::size_t, 8> width{};
    for (const Row& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());

    std::string out;
    for (const Row& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
        }
        out += line + "\n";
    }

    // "8 daemons: 7 ok, 1 down", healths in order of first appearance.
    std::vector<std::pair<std::string, int>> counts;
    for (const DaemonStatus& status : statuses) {
        const std::string health = health_of(status);
        auto it = std::find_if(counts.begin(), counts.end(),
                               [&](const auto& c) { return c.first == health; });
        if (it == counts.end())
            counts.emplace_back(health, 1);
        else
            ++it->second;
    }
    out += std::to_string(statuses.size()) + (statuses.size() == 1 ? " daemon" : " daemons");
    for (std::size_t i = 0; i < counts.size(); ++i)
        out += (i == 0 ? ": " : ", ") + std::to_string(counts[i].second) + " " + counts[i].first;
    out += "\n";
    for (const DaemonStatus& status : statuses)
        if (!status.note.empty()) out += status.instance + ": " + status.note + "\n";
    return out;
}

nlohmann::json status_array(const std::vector<DaemonStatus>& statuses) {
    nlohmann::json array = nlohmann::json::array();
    for (const DaemonStatus& status : statuses) {
        if (status.reply) {
            array.push_back(*status.reply);
            continue;
        }
        nlohmann::json entry = {{"instance", status.instance},
                                {"kind", status.kind},
                                {"host", status.host},
                                {"health", status.missing}};
        if (!status.note.empty()) entry["note"] = status.note;
        array.push_back(std::move(entry));
    }
    return array;
}

int status_exit_code(const std::vector<DaemonStatus>& statuses) {
    if (statuses.empty()) return kExitNotOk;
    const bool all_ok = std::all_of(statuses.begin(), statuses.end(),
                                    [](const DaemonStatus& s) { return health_of(s) == "ok"; });
    return all_ok ? kExitOk : kExitNotOk;
}

std::vector<DaemonStatus> query_status(const topology::Topology& topology,
                                       const std::string& host,
                                       std::chrono::milliseconds timeout) {
    std::vector<DaemonStatus> statuses;
    std::vector<const topology::DaemonSpec*> specs;
    for (const auto& spec : topology.daemons) {
        if (!host.empty() && spec.host != host) continue;
        statuses.push_back({spec.name, spec.kind, spec.host, std::nullopt, "down", ""});
        specs.push_back(&spec);
    }

    zmq::context_t context(1);
    // tcp:// control sockets are CURVE when the file has host keys: ask with the key pair of a
    // host whose secret key file this user can read (the asked host's first).
    std::optional<CurveKeyPair> own;
    std::string key_problem = "no host's CURVE secret key file is readable here (run it on a "
                              "host of the topology, as the daemons' user)";
    if (topology.curve()) {
        std::vector<std::string> hosts = topology.hosts();
        if (!host.empty()) hosts.insert(hosts.begin(), host);
        for (const std::string& candidate : hosts) {
            const topology::HostKeys* keys = topology.keys_of(candidate);
            if (!keys) continue;
            try {
                CurveKeyPair pair = read_curve_secret_file(keys->secret_key_file);
                if (pair.public_key == keys->public_key) {
                    own = std::move(pair);
                    break;
                }
            } catch (const std::exception& e) {
                key_problem = e.what();
            }
        }
    }
    // sockets[i] asks statuses[at[i]].
    std::vector<zmq::socket_t> sockets;
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        std::string why;
        const std::string address = connect_address(*specs[i], why);
        if (address.empty()) {
            statuses[i].missing = "unknown";
            statuses[i].note = why;
            continue;
        }
        zmq::socket_t socket(context, zmq::socket_type::dealer);
        socket.set(zmq::sockopt::linger, 0); // exit at once even if nobody ever answers
        socket.set(zmq::sockopt::maxmsgsize, kMaxInternalFrameBytes);
        if (topology.curve() && topology::is_tcp_endpoint(address)) {
            if (!own) {
                statuses[i].missing = "unknown";
                statuses[i].note = "control '" + address + "' is CURVE: " + key_problem;
                continue;
            }
            make_curve_client(socket, *own, topology.keys_of(specs[i]->host)->public_key);
        }
        try {
            socket.connect(address);
            // Without ZMQ_IMMEDIATE the message waits in the pipe until the peer is there.
            socket.send(zmq::message_t(), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
            socket.send(zmq::str_buffer("status"), zmq::send_flags::dontwait);
        } catch (const zmq::error_t& e) {
            statuses[i].missing = "unknown";
            statuses[i].note = "cannot ask control '" + address + "': " + e.what();
            continue;
        }
        sockets.push_back(std::move(socket));
        at.push_back(i);
    }

    std::vector<bool> answered(sockets.size(), false);
    std::size_t waiting = sockets.size();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (waiting > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        std::vector<zmq::pollitem_t> items;
        std::vector<std::size_t> item_socket;
        for (std::size_t s = 0; s < sockets.size(); ++s) {
            if (answered[s]) continue;
            items.push_back({sockets[s].handle(), 0, ZMQ_POLLIN, 0});
            item_socket.push_back(s);
        }
        zmq::poll(items, left);
        for (std::size_t k = 0; k < items.size(); ++k) {
            if (!(items[k].revents & ZMQ_POLLIN)) continue;
            const std::size_t s = item_socket[k];
            std::vector<zmq::message_t> frames;
            zmq::message_t frame;
            bool more = true;
            while (more && sockets[s].recv(frame, zmq::recv_flags::dontwait)) {
                more = frame.more();
                frames.push_back(std::move(frame));
            }
            if (frames.empty()) continue;
            answered[s] = true;
            --waiting;
            DaemonStatus& status = statuses[at[s]];
            const std::string text = frames.back().to_string();
            nlohmann::json reply = nlohmann::json::parse(text, nullptr, false);
            if (reply.is_object() && reply.contains("health") && reply["health"].is_string()) {
                status.reply = std::move(reply);
            } else {
                status.missing = "invalid";
                status.note = "not a status reply: " + text.substr(0, 120);
            }
        }
    }
    return statuses;
}

int run_status(const std::string& file, bool json, int timeout_ms, const std::string& host) {
    topology::LoadResult loaded = topology::load_file(file);
    for (const auto& error : loaded.errors) std::cerr << error.str() << '\n';
    if (!loaded.topology) return kExitBadFile;
    if (!host.empty()) {
        if (const std::string error = loaded.topology->unknown_host_error(host); !error.empty()) {
            std::cerr << error << '\n';
            return kExitBadFile;
        }
    }
    const std::vector<DaemonStatus> statuses =
        query_status(*loaded.topology, host, std::chrono::milliseconds(timeout_ms));
    if (json)
        std::cout << status_array(statuses).dump(2) << '\n';
    else
        std::cout << status_table(statuses);
    return status_exit_code(statuses);
}

} // namespace vartalap::ctl
