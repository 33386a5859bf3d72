#include "tests/integration/support/system_fixture.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

namespace vartalap::testing {

TempDir::TempDir() {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            ("vartalap-test-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

namespace {

std::string control_endpoint(const std::filesystem::path& data_dir, const std::string& name) {
    std::string endpoint = "ipc://" + (data_dir / ("ctl-" + name)).string();
    if (endpoint.size() - 6 > 107)
        throw std::runtime_error("test data dir too long for an ipc:// path: " + endpoint);
    return endpoint;
}

} // namespace

topology::Topology local_topology(const std::filesystem::path& data_dir,
                                  const std::function<void(topology::Topology&)>& edit) {
    auto loaded = topology::load_file(std::filesystem::path(VARTALAP_SOURCE_DIR) / "topology/local.toml");
    if (!loaded.topology) {
        std::string errors;
        for (const auto& e : loaded.errors) errors += e.str() + "\n";
        throw std::runtime_error("local.toml does not load:\n" + errors);
    }
    topology::Topology topology = std::move(*loaded.topology);
    topology.data_dir = data_dir.string();
    for (auto& daemon : topology.daemons) {
        auto it = daemon.endpoints.find("listen");
        if (it != daemon.endpoints.end()) it->second = "127.0.0.1:0";
        daemon.endpoints["metrics"] = "127.0.0.1:0";
        daemon.endpoints["control"] = control_endpoint(data_dir, daemon.name);
        // ctest runs the whole suite once more with VARTALAP_TEST_DURABILITY=process
        // (tests/integration/CMakeLists.txt): every store then commits without a sync.
        if (const char* durability = std::getenv("VARTALAP_TEST_DURABILITY");
            durability != nullptr && (daemon.kind == "session" || daemon.kind == "persistence"))
            daemon.options.insert_or_assign("durability", std::string(durability));
    }
    if (edit) edit(topology);
    return topology;
}

std::string without_send_limit(const std::string& toml) {
    std::istringstream in(toml);
    std::string line, out, kind;
    bool pending = false; // a gateway's block whose options do not have the line yet
    const auto flush = [&] {
        if (pending) out += "[daemon.options]\nsend_rate_per_minute = 0\n";
        pending = false;
    };
    const std::regex kind_line(R"re(^kind\s*=\s*"([^"]+)")re");
    while (std::getline(in, line)) {
        if (line.rfind("[[", 0) == 0) {
            flush();
            kind.clear();
        }
        std::smatch match;
        if (std::regex_search(line, match, kind_line)) {
            kind = match[1].str();
            pending = kind == "ws-gateway" || kind == "rest-gateway";
        }
        out += line + "\n";
        if (pending && line.rfind("[daemon.options]", 0) == 0) {
            out += "send_rate_per_minute = 0\n";
            pending = false;
        }
    }
    flush();
    return out;
}

void write_local_topology(const std::filesystem::path& file, const std::filesystem::path& data_dir) {
    std::ifstream in(std::filesystem::path(VARTALAP_SOURCE_DIR) / "topology/local.toml");
    std::stringstream text;
    text << in.rdbuf();
    std::string toml = std::regex_replace(text.str(), std::regex(R"(127\.0\.0\.1:\d+)"), "127.0.0.1:0");
    toml = std::regex_replace(toml, std::regex(R"(data_dir\s*=\s*"[^"]*")"),
                              "data_dir = \"" + data_dir.string() + "\"");
    // control = "ipc:///tmp/vartalap/local/<name>.control" -> the test's own socket files.
    std::string out;
    const std::regex control(R"re(control = "ipc://[^"]*/([^/"]+)\.control")re");
    auto last = toml.cbegin();
    for (std::sregex_iterator it(toml.begin(), toml.end(), control), end; it != end; ++it) {
        out.append(last, (*it)[0].first);
        out += "control = \"" + control_endpoint(data_dir, (*it)[1].str()) + "\"";
        last = (*it)[0].second;
    }
    out.append(last, toml.cend());
    std::ofstream(file) << out;
}

std::function<void(topology::Topology&)> session_retries(int ack_timeout_ms, int retry_limit) {
    return [ack_timeout_ms, retry_limit](topology::Topology& topology) {
        for (auto& daemon : topology.daemons)
            if (daemon.kind == "session") {
                daemon.options.insert_or_assign("ack_timeout_ms", ack_timeout_ms);
                daemon.options.insert_or_assign("retry_limit", retry_limit);
            }
    };
}

RunningSystem::RunningSystem(topology::Topology topology, std::string host, bool wait_serving)
    : system_(std::make_unique<System>(std::move(topology), std::move(host))) {
    system_->start();
    if (wait_serving)
        if (const auto waiting = system_->wait_serving(std::chrono::seconds(10)); !waiting.empty())
            throw std::runtime_error("not serving within 10 s: " + waiting.front());
    for (const auto& [name, endpoints] : system_->bound_endpoints()) {
        const auto* spec = system_->topology().find(name);
        auto it = endpoints.find("listen");
        if (!spec || it == endpoints.end()) continue;
        const int port = std::stoi(it->second.substr(it->second.rfind(':') + 1));
        if (spec->kind == "ws-gateway" && ws_port_ == 0) ws_port_ = port;
        if (spec->kind == "rest-gateway" && rest_port_ == 0) rest_port_ = port;
    }
}

RunningSystem::~RunningSystem() { stop(); }

std::string RunningSystem::endpoint(const std::string& instance, const std::string& role) const {
    return system_->bound_endpoints().at(instance).at(role);
}

HttpResponse http_at(const std::string& host_port, const std::string& method,
                     const std::string& target, std::chrono::milliseconds deadline) {
    const auto colon = host_port.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("not host:port: " + host_port);
    std::string host = host_port.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    return http_request(host, std::stoi(host_port.substr(colon + 1)), method, target, {}, {},
                        deadline);
}

void RunningSystem::stop() {
    if (system_) system_->stop();
}

HttpResponse RunningSystem::http(const std::string& method, const std::string& target,
                                 const std::string& body,
                                 const std::map<std::string, std::string>& headers,
                                 std::chrono::milliseconds deadline) {
    return http_request("127.0.0.1", rest_port_, method, target, body, headers, deadline);
}

LoggedIn RunningSystem::login(const std::string& user) {
    const nlohmann::json body = {{"username", user}, {"authToken", "dev-token"},
                                 {"notificationToken", "fcm-" + user}, {"deviceId", "default"}};
    const auto response = http("POST", "/v1.0/login", body.dump());
    EXPECT_EQ(response.status, 200) << response.body;
    const auto reply = nlohmann::json::parse(response.body, nullptr, false);
    if (response.status != 200 || !reply.is_object() || !reply.contains("accesskey"))
        throw std::runtime_error("login of " + user + " failed: " + response.body);
    return {user, reply["accesskey"].get<std::string>()};
}

WsClient RunningSystem::connect(const LoggedIn& who, bool ack) {
    auto result = WsClient::connect("127.0.0.1", ws_port_, ack ? "/wss?ack=true" : "/wss",
                                    {{"user", who.user}, {"accesskey", who.access_key}});
    if (auto* status = std::get_if<int>(&result))
        throw std::runtime_error("WebSocket upgrade refused with HTTP " + std::to_string(*status));
    return std::move(std::get<WsClient>(result));
}

nlohmann::json text_message(const std::string& id, const std::string& to, const std::string& text) {
    return {{"_v", 2.1},
            {"id", id},
            {"head", {{"type", "individual"}, {"to", to}, {"from", "someone-else"},
                      {"chatid", "chat-" + to}, {"contentType", "text"}, {"action", "message"}}},
            {"meta", {{"createdAt", 1700000000000LL}}},
            {"body", {{"text", text}, {"state", "new"}}}};
}

nlohmann::json receipt(const std::string& id, const std::string& original_sender,
                       const std::vector<std::string>& ids, const std::string& state) {
    return {{"_v", 2.1},
            {"id", id},
            {"head", {{"type", "individual"}, {"to", original_sender}, {"chatid", "chat"},
                      {"contentType", "text"}, {"action", "state"}, {"category", "system"}}},
            {"body", {{"ids", ids}, {"state", state}}}};
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
    const auto end = std::chrono::steady_clock::now() + test::scaled(deadline);
    while (std::chrono::steady_clock::now() < end) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return condition();
}

std::optional<nlohmann::json> wait_for_id(WsClient& client, const std::string& id,
                                          std::chrono::milliseconds deadline) {
    return client.read_json_matching(
        [&](const nlohmann::json& m) {
            return m.is_object() && m.value("id", "") == id &&
                   m.contains("head") && m["head"].value("contentType", "") != "SERVER_ACK";
        },
        deadline);
}

bool wait_for_server_ack(WsClient& client, const std::string& id, std::chrono::milliseconds deadline) {
    return client
        .read_json_matching(
            [&](const nlohmann::json& m) {
                return m.is_object() && m.value("id", "") == id && m.contains("head") &&
                       m["head"].value("contentType", "") == "SERVER_ACK";
            },
            deadline)
        .has_value();
}

bool send_until_server_ack(WsClient& client, const std::string& text, const std::string& id,
                           std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        if (!client.send_text(text)) return false;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left <= std::chrono::milliseconds::zero()) return false;
        auto answer = client.read_json_matching(
            [&](const nlohmann::json& m) {
                if (!m.is_object() || m.value("id", "") != id || !m.contains("head")) return false;
                const std::string type = m["head"].value("contentType", "");
                return type == "SERVER_ACK" || type == "error";
            },
            left);
        if (!answer) return false;
        if ((*answer)["head"].value("contentType", "") == "SERVER_ACK") return true;
        // "server busy, retry": the gateway took nothing (e.g. its PUSH to the routers is not
        // connected yet, just after start); an app resends the same id, and so does this.
        if ((*answer)["body"].value("error", "") != "server busy, retry") return false;
    }
}

} // namespace vartalap::testing
