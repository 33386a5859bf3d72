// Rendering systemd units and an nginx site from a topology. Thread: main.
#include "tools/vartalapctl/render.hpp"

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace vartalap::ctl {
namespace {

// Daemons that accept connections from outside the host need no different sandbox: every
// kind talks only TCP/Unix sockets, so one hardening block fits all, and its score is
// checked by tests/integration/units_test.cpp (systemd-analyze security ≤ 2.0).
constexpr const char* kHardening = R"(UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
DevicePolicy=closed
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
)";

bool write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
        std::cerr << path.string() << ": cannot write\n";
        return false;
    }
    return true;
}

std::string public_address(const topology::DaemonSpec& spec) {
    std::string listen = spec.endpoint("listen");
    const auto colon = listen.rfind(':');
    std::string host = listen.substr(0, colon);
    // A wildcard bind is reachable at the daemon's host name, not at 0.0.0.0.
    if (host == "0.0.0.0" || host == "[::]" || host == "*")
        host = spec.host == "localhost" ? "127.0.0.1" : spec.host;
    return host + listen.substr(colon);
}

} // namespace

std::string unit_template(const std::string& kind, const std::string& bindir) {
    std::ostringstream unit;
    unit << "# Rendered by `vartalapctl units`; one instance per daemon: vartalap-" << kind
         << "@<instance>.service\n"
         << "[Unit]\n"
         << "Description=Vartalap " << kind << " %i\n"
         << "Documentation=https://github.com/ramank775/vartalap\n"
         << "PartOf=vartalap.target\n"
         << "After=network-online.target\n"
         << "Wants=network-online.target\n\n"
         << "[Service]\n"
         // READY=1 comes after every socket is bound; the watchdog is pinged from the
         // process's signal loop at half of WatchdogSec.
         << "Type=notify\n"
         << "NotifyAccess=main\n"
         << "EnvironmentFile=/etc/vartalap/%i.env\n"
         << "ExecStart=" << bindir << "/vartalapd " << kind
         << " --topology ${VARTALAP_TOPOLOGY} --instance %i --data-dir /var/lib/vartalap\n"
         << "ExecReload=/bin/kill -HUP $MAINPID\n"
         << "Restart=on-failure\n"
         << "RestartSec=1s\n"
         << "WatchdogSec=10s\n"
         // The drain is bounded at 5 s (then the process exits 1 by itself); 15 s leaves
         // room for LMDB's final sync before systemd escalates to SIGKILL.
         << "TimeoutStopSec=15s\n"
         // Each WebSocket is a descriptor; this machine class allows at most 20000.
         << "LimitNOFILE=16384\n"
         << "User=vartalap\n"
         << "Group=vartalap\n"
         << "StateDirectory=vartalap\n"
         << "StateDirectoryMode=0700\n"
         << "RuntimeDirectory=vartalap\n"
         // ipc:// sockets live here: only the daemons' user may enter (docs/SECURITY.md).
         << "RuntimeDirectoryMode=0700\n"
         << "RuntimeDirectoryPreserve=yes\n"
         << kHardening << "\n"
         << "[Install]\n"
         << "WantedBy=vartalap.target\n";
    return unit.str();
}

int render_units(const topology::Topology& topology, const std::string& host,
                 const std::filesystem::path& dir, const std::string& bindir,
                 const std::string& topology_path) {
    std::vector<const topology::DaemonSpec*> here;
    for (const auto& spec : topology.daemons)
        if (spec.host == host) here.push_back(&spec);
    if (here.empty()) {
        std::cerr << topology.unknown_host_error(host) << '\n';
        return 1;
    }
    for (const auto* spec : here)
        for (const auto& [role, endpoint] : spec->endpoints)
            if (endpoint.rfind("inproc://", 0) == 0) {
                std::cerr << topology.file << ":" << spec->line << ": daemon '" << spec->name
                          << "' uses " << endpoint
                          << ": one process per daemon needs ipc:// or tcp:// endpoints\n";
                return 1;
            }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        std::cerr << dir.string() << ": " << ec.message() << '\n';
        return 1;
    }
    std::set<std::string> kinds;
    std::ostringstream wants;
    for (const auto* spec : here) {
        kinds.insert(spec->kind);
        wants << "Wants=vartalap-" << spec->kind << "@" << spec->name << ".service\n";
        if (!write_file(dir / (spec->name + ".env"),
                        "# /etc/vartalap/" + spec->name + ".env\nVARTALAP_TOPOLOGY=" + topology_path + "\n"))
            return 1;
    }
    for (const auto& kind : kinds)
        if (!write_file(dir / ("vartalap-" + kind + "@.service"), unit_template(kind, bindir))) return 1;
    const std::string target = "# Rendered by `vartalapctl units` for host " + host +
                               ": every daemon instance placed on it.\n[Unit]\n"
                               "Description=Vartalap chat server on " + host + "\n"
                               "Wants=network-online.target\nAfter=network-online.target\n" +
                               wants.str() + "\n[Install]\nWantedBy=multi-user.target\n";
    if (!write_file(dir / "vartalap.target", target)) return 1;
    // The dedicated user, for systemd-sysusers (or create it with useradd --system).
    if (!write_file(dir / "vartalap.sysusers.conf",
                    "u vartalap - \"Vartalap chat server\" /var/lib/vartalap\n"))
        return 1;
    return 0;
}

std::string render_nginx(const topology::Topology& topology, int listen_port,
                         const std::string& server_name) {
    std::ostringstream site;
    site << "# Rendered by `vartalapctl nginx` from " << topology.file << ".\n"
         << "# One public port: /wss, /wss/, /v1.0/wss, /v1.0/wss/ (and an upgrade on / or\n"
         << "# /v1.0/) go to the WebSocket gateways, with their query (?ack=true),\n"
         << "# everything else to the REST gateways. TLS terminates here when configured.\n";
    site << "upstream vartalap_ws {\n"
         // A client reconnects to any gateway: the session re-routes; hash by the user
         // header keeps a user on one gateway while it is up, which avoids replace churn.
         << "    hash $http_user$cookie_user consistent;\n";
    for (const auto* spec : topology.of_kind("ws-gateway"))
        site << "    server " << public_address(*spec) << ";  # " << spec->name << "\n";
    site << "}\n\nupstream vartalap_rest {\n";
    for (const auto* spec : topology.of_kind("rest-gateway"))
        site << "    server " << public_address(*spec) << ";  # " << spec->name << "\n";
    site << "    keepalive 32;\n}\n\n"
         << "map $http_upgrade $vartalap_connection_upgrade {\n"
         << "    default upgrade;\n    ''      close;\n}\n\n"
         << "map $http_upgrade $vartalap_root_upstream {\n"
         << "    default vartalap_ws;\n    ''      vartalap_rest;\n}\n\n"
         << "server {\n"
         << "    listen " << listen_port << ";\n"
         << "    server_name " << server_name << ";\n"
         << "    client_max_body_size 1m;\n\n"
         // The paths the app's deployments use for ws_url: the original server's site took
         // the upgrade under /wss/ and /v1.0/wss/ (chat-server v2.8.3,
         // deployment/config/nginx/nginx.docker.conf).
         << "    location ~ ^(/v1\\.0)?/wss/?$ {\n"
         << "        proxy_pass http://vartalap_ws;\n"
         << "        proxy_http_version 1.1;\n"
         << "        proxy_set_header Upgrade $http_upgrade;\n"
         << "        proxy_set_header Connection $vartalap_connection_upgrade;\n"
         << "        proxy_set_header Host $host;\n"
         << "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
         << "        proxy_read_timeout 1h;\n"
         << "        proxy_send_timeout 1h;\n"
         << "    }\n\n"
         << "    location ~ ^(/v1\\.0)?/$ {\n"
         << "        proxy_pass http://$vartalap_root_upstream;\n"
         << "        proxy_http_version 1.1;\n"
         << "        proxy_set_header Upgrade $http_upgrade;\n"
         << "        proxy_set_header Connection $vartalap_connection_upgrade;\n"
         << "        proxy_set_header Host $host;\n"
         << "        proxy_read_timeout 1h;\n"
         << "    }\n\n"
         << "    location / {\n"
         << "        proxy_pass http://vartalap_rest;\n"
         << "        proxy_http_version 1.1;\n"
         << "        proxy_set_header Connection \"\";\n"
         << "        proxy_set_header Host $host;\n"
         << "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
         << "    }\n"
         << "}\n";
    return site.str();
}

} // namespace vartalap::ctl
