// The systemd units and nginx site that vartalapctl renders, checked by the real tools:
// systemd-analyze verify and security (exposure ≤ 2.0), and nginx -t.
#include "tests/integration/support/system_fixture.hpp"
#include "tools/vartalapctl/render.hpp"

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
)";

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
    std::ofstream(dir.path() / "nginx.conf")
        << "pid " << (dir.path() / "nginx.pid").string() << ";\n"
        << "error_log stderr;\nevents {}\nhttp {\n"
        << "  access_log off;\n"
        << "  client_body_temp_path " << dir.path().string() << ";\n"
        << "  proxy_temp_path " << dir.path().string() << ";\n"
        << "  fastcgi_temp_path " << dir.path().string() << ";\n"
        << "  uwsgi_temp_path " << dir.path().string() << ";\n"
        << "  scgi_temp_path " << dir.path().string() << ";\n"
        << "  include " << (dir.path() / "site.conf").string() << ";\n}\n";
    const std::string site_local = std::regex_replace(site, std::regex("server edge:"), "server 127.0.0.1:");
    std::ofstream(dir.path() / "site.conf") << site_local;
    const Ran check = run("nginx -t -p " + dir.path().string() + " -c " + (dir.path() / "nginx.conf").string());
    EXPECT_EQ(check.status, 0) << check.output;
}

} // namespace
} // namespace vartalap::testing
