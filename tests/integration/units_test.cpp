// The systemd units and nginx site that vartalapctl renders, checked by the real tools:
// systemd-analyze verify and security (exposure ≤ 2.0), nginx -t, and a real nginx serving
// the site in front of running daemons.
#include "tests/integration/support/child_process.hpp"
#include "tests/integration/support/system_fixture.hpp"
#include "tools/vartalapctl/render.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

namespace vartalap::testing {
namespace {

struct Ran {
    int status = -1;
    std::string output; // stdout and stderr
};

Ran run(const std::string& command) {
    Ran ran;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return ran;
    std::array<char, 4096> chunk{};
    while (std::size_t n = std::fread(chunk.data(), 1, chunk.size(), pipe)) ran.output.append(chunk.data(), n);
    const int status = ::pclose(pipe);
    ran.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return ran;
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

const char* kTwoHosts = R"(
[system]
data_dir = "/var/lib/vartalap"
insecure_tcp = true
[[daemon]]
kind = "ws-gateway"
name = "ws-1"
host = "edge"
listen = "0.0.0.0:8080"
router = "tcp://10.0.0.1:6001"
[[daemon]]
kind = "ws-gateway"
name = "ws-2"
host = "edge"
listen = "10.0.0.1:8082"
router = "tcp://10.0.0.1:6002"
[[daemon]]
kind = "rest-gateway"
name = "rest-1"
host = "edge"
listen = "10.0.0.1:8081"
router = "tcp://10.0.0.1:6003"
[[daemon]]
kind = "message-router"
name = "router-1"
host = "core"
pull = "tcp://10.0.0.2:6101"
[[daemon]]
kind = "session"
name = "session-1"
host = "core"
pull = "tcp://10.0.0.2:6103"
[[daemon]]
kind = "profile"
name = "profile-1"
host = "core"
router = "tcp://10.0.0.2:6102"
[daemon.options]
identity_provider = "firebase"
firebase_project_id = "units-test"
)";

// nginx.conf in `dir` around the site in dir/site.conf: `prelude` first, every temporary
// path in `dir`, nothing logged but errors (to stderr).
void write_nginx_conf(const std::filesystem::path& dir, const std::string& prelude) {
    std::ofstream(dir / "nginx.conf")
        << prelude << "pid " << (dir / "nginx.pid").string() << ";\n"
        << "error_log stderr;\nevents {}\nhttp {\n"
        << "  access_log off;\n"
        << "  client_body_temp_path " << dir.string() << ";\n"
        << "  proxy_temp_path " << dir.string() << ";\n"
        << "  fastcgi_temp_path " << dir.string() << ";\n"
        << "  uwsgi_temp_path " << dir.string() << ";\n"
        << "  scgi_temp_path " << dir.string() << ";\n"
        << "  include " << (dir / "site.conf").string() << ";\n}\n";
}

topology::Topology two_hosts() {
    auto loaded = topology::load_string(kTwoHosts, "two-hosts.toml");
    if (!loaded.topology) throw std::runtime_error(loaded.errors.front().str());
    return *loaded.topology;
}

TEST(UnitsTest, RenderedUnitsPassVerifyAndSecurity) {
    TempDir dir;
    const auto t = two_hosts();
    ASSERT_EQ(ctl::render_units(t, "core", dir.path(), VARTALAPD_DIR, "/etc/vartalap/topology.toml"), 0);
    const std::string target = read_file(dir.path() / "vartalap.target");
    EXPECT_NE(target.find("Wants=vartalap-session@session-1.service"), std::string::npos);
    EXPECT_NE(target.find("Wants=vartalap-profile@profile-1.service"), std::string::npos);
    EXPECT_EQ(target.find("ws-gateway"), std::string::npos); // placed on edge, not core
    EXPECT_NE(read_file(dir.path() / "session-1.env").find("VARTALAP_TOPOLOGY=/etc/vartalap/topology.toml"),
              std::string::npos);

    int units = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        const std::string name = entry.path().filename();
        if (entry.path().extension() != ".service" && entry.path().extension() != ".target") continue;
        const Ran verify = run("systemd-analyze verify " + entry.path().string());
        EXPECT_EQ(verify.status, 0) << name << ":\n" << verify.output;
        EXPECT_EQ(verify.output, "") << name << ": verify printed warnings";
        if (entry.path().extension() != ".service") continue;
        ++units;
        const Ran security = run("systemd-analyze security --offline=true " + entry.path().string());
        std::smatch score;
        ASSERT_TRUE(std::regex_search(security.output, score,
                                      std::regex(R"(Overall exposure level for \S+: ([0-9.]+))")))
            << name << ":\n" << security.output;
        EXPECT_LE(std::stod(score[1]), 2.0) << name << ":\n" << security.output;
    }
    EXPECT_EQ(units, 3); // message-router, session, profile templates
}

TEST(UnitsTest, InprocTopologiesAreRefused) {
    TempDir dir;
    auto loaded = topology::load_file(std::filesystem::path(VARTALAP_SOURCE_DIR) / "topology/local.toml");
    ASSERT_TRUE(loaded.topology);
    EXPECT_EQ(ctl::render_units(*loaded.topology, "localhost", dir.path(), VARTALAPD_DIR, "/x"), 1);
    EXPECT_EQ(ctl::render_units(two_hosts(), "nowhere", dir.path(), VARTALAPD_DIR, "/x"), 1);
}

TEST(UnitsTest, SystemdDirectoryHoldsTheRenderedTemplates) {
    // systemd/ in the repository is what `vartalapctl units` writes for /usr/local/bin.
    for (const char* kind : {"ws-gateway", "rest-gateway", "message-router", "session", "profile",
                             "persistence", "push", "group", "group-router"}) {
        const auto file = std::filesystem::path(VARTALAP_SOURCE_DIR) / "systemd" /
                          (std::string("vartalap-") + kind + "@.service");
        EXPECT_EQ(read_file(file), ctl::unit_template(kind, "/usr/local/bin")) << file;
    }
}

TEST(NginxTest, RenderedSitePassesNginxT) {
    TempDir dir;
    const std::string site = ctl::render_nginx(two_hosts(), 18080, "chat.example.org");
    EXPECT_NE(site.find("server 10.0.0.1:8082;"), std::string::npos);
    EXPECT_NE(site.find("server edge:8080;"), std::string::npos); // wildcard bind → host name
    EXPECT_NE(site.find("server 10.0.0.1:8081;"), std::string::npos);
    std::ofstream(dir.path() / "site.conf") << site;
    // The upstream host "edge" must resolve for nginx -t; map it like /etc/hosts would.
    write_nginx_conf(dir.path(), "");
    const std::string site_local = std::regex_replace(site, std::regex("server edge:"), "server 127.0.0.1:");
    std::ofstream(dir.path() / "site.conf") << site_local;
    const Ran check = run("nginx -t -p " + dir.path().string() + " -c " + (dir.path() / "nginx.conf").string());
    EXPECT_EQ(check.status, 0) << check.output;
}

// A loopback port free a moment ago (nginx takes a port number, not 0); the caller retries
// with another if nginx finds it taken after all.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
        throw std::runtime_error("no free port");
    ::close(fd);
    return ntohs(address.sin_port);
}

std::string nginx_binary() {
    for (const char* dir : {"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"})
        if (std::filesystem::exists(std::filesystem::path(dir) / "nginx"))
            return (std::filesystem::path(dir) / "nginx").string();
    return {};
}

// Issue 11, section 3: the site `vartalapctl nginx` writes serves the WebSocket paths the
// app's deployments use (/wss, /wss/, /v1.0/wss, /v1.0/wss/, an upgrade on /) with their
// query, and REST beside them: a real nginx (foreground, one process) in front of
// topology/local.toml's daemons.
TEST(NginxTest, RenderedSiteServesTheAppsPaths) {
    const std::string nginx = nginx_binary();
    ASSERT_FALSE(nginx.empty()) << "nginx is not installed (make test installs nginx-light)";
    TempDir dir;
    RunningSystem system(local_topology(dir.path() / "data"));
    // The site for the running system: its gateways' bound ports.
    topology::Topology topology = system.system().topology();
    for (auto& spec : topology.daemons)
        if (spec.kind == "ws-gateway" || spec.kind == "rest-gateway")
            spec.endpoints["listen"] = system.endpoint(spec.name, "listen");
    const auto alice = system.login("+911111111111");
    const auto bob = system.login("+912222222222");

    std::unique_ptr<Child> server;
    int port = 0;
    for (int attempt = 0; attempt < 5 && !server; ++attempt) {
        port = free_port();
        std::ofstream(dir.path() / "site.conf") << ctl::render_nginx(topology, port, "localhost");
        write_nginx_conf(dir.path(), "daemon off;\nmaster_process off;\n");
        auto child = std::make_unique<Child>(
            std::vector<std::string>{nginx, "-p", dir.path().string(), "-c",
                                     (dir.path() / "nginx.conf").string()},
            true);
        // Ready when REST answers through it; an nginx that exits (port taken) is retried.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            if (http_request("127.0.0.1", port, "GET", "/v1.0/alive", "", {}, std::chrono::seconds(1)).status == 200) {
                server = std::move(child);
                break;
            }
            if (child->wait_exit(std::chrono::milliseconds(50))) break; // exited: try another port
        }
    }
    ASSERT_TRUE(server) << "nginx did not start";

    const WsClient::Headers bob_headers{{"user", bob.user}, {"accesskey", bob.access_key}};
    auto bob_result = WsClient::connect("127.0.0.1", port, "/v1.0/wss/?ack=true", bob_headers);
    ASSERT_TRUE(std::holds_alternative<WsClient>(bob_result));
    WsClient& bob_ws = std::get<WsClient>(bob_result);
    int n = 0;
    for (const std::string path : {"/wss", "/wss/", "/v1.0/wss", "/v1.0/wss/", "/", "/v1.0/"}) {
        SCOPED_TRACE(path);
        auto result = WsClient::connect("127.0.0.1", port, path + "?ack=true",
                                        {{"user", alice.user}, {"accesskey", alice.access_key}});
        ASSERT_TRUE(std::holds_alternative<WsClient>(result))
            << "HTTP " << std::get<int>(result);
        WsClient& alice_ws = std::get<WsClient>(result);
        const std::string id = "n-" + std::to_string(++n);
        ASSERT_TRUE(alice_ws.send_text(text_message(id, bob.user, "through nginx").dump()));
        EXPECT_TRUE(wait_for_server_ack(alice_ws, id)); // ?ack=true reached the gateway
        EXPECT_TRUE(wait_for_id(bob_ws, id));
        alice_ws.close();
    }
    // Without credentials the gateway's 401 comes back through nginx; REST paths go to the
    // rest-gateway (its JSON 404 for an unknown one).
    auto anonymous = WsClient::connect("127.0.0.1", port, "/wss/?ack=true", {});
    ASSERT_TRUE(std::holds_alternative<int>(anonymous));
    EXPECT_EQ(std::get<int>(anonymous), 401);
    const auto profile = http_request("127.0.0.1", port, "GET", "/v1.0/profile/get", "",
                                      {{"user", alice.user}, {"accesskey", alice.access_key}});
    EXPECT_EQ(profile.status, 200) << profile.body;
    const auto unknown = http_request("127.0.0.1", port, "GET", "/v1.0/nowhere", "", {});
    EXPECT_EQ(unknown.status, 404);
    EXPECT_EQ(unknown.body, R"({"error":"not found"})");
    bob_ws.close();
}

} // namespace
} // namespace vartalap::testing
