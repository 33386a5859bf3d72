// vartalap-mqtt-bench's idle and drain modes, the MQTT counterparts of vartalap-loadgen's
// (tools/loadgen/idle.cpp, drain.cpp).
//
// Idle: `idle` clients connect and subscribe QoS 1 to their own topic (an MQTT client's
// equivalent of an authenticated WebSocket; raw sockets, see idle_socket); once every SUBACK
// is in and the broker is quiet, the broker's RSS growth since before the first connection,
// per connection.
//
// Drain: `drain_users` persistent sessions (clean_session false, subscribed QoS 1) connect
// and leave; `drain_senders` clients publish `drain_messages` QoS 1 messages to each of
// their topics (`window` unacknowledged per sender), which the broker queues; once it is
// quiet every session reconnects at once and the clock runs until every message has
// arrived (each PUBACKed by libmosquitto).
#include "tools/bench/measure.hpp"
#include "tools/mqtt-bench/mqtt_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vartalap::mqtt_bench {
namespace {

namespace bench = vartalap::bench;

std::string run_prefix(const std::string& what) {
    return what + "-" + std::to_string(Clock::now().time_since_epoch().count() % 1000000007) + "-";
}
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Creates `n` clients named prefix + i with topic "vartalap/" + name, connects them and runs
// until every one has subscribed. False (with a message) on failure.
bool connect_all(std::vector<std::unique_ptr<Client>>& clients, std::size_t n, const std::string& prefix,
                 bool clean_session, const Options& o, std::vector<pollfd>& fds, double timeout_s) {
    try {
        for (std::size_t i = 0; i < n; ++i) {
            const std::string id = prefix + std::to_string(i);
            clients.push_back(std::make_unique<Client>(id, "vartalap/" + id, clean_session));
            clients.back()->connect(o.host, o.port);
        }
    } catch (const std::exception& e) {
        std::cerr << "vartalap-mqtt-bench: " << e.what() << '\n';
        return false;
    }
    if (!run_until(clients, fds, Clock::now() + bench::to_duration(timeout_s), [&] {
            return std::all_of(clients.begin(), clients.end(), [](const auto& c) { return c->ready(); });
        })) {
        std::cerr << "vartalap-mqtt-bench: clients did not connect and subscribe\n";
        return false;
    }
    return true;
}

// An idle client without libmosquitto, which holds three descriptors per client (the
// socket and a socketpair): 10,000 of those pass the 20,000 open files of a process. This
// one holds the socket only: a blocking connect, then CONNECT (MQTT 3.1.1, clean session, no
// keep-alive) and SUBSCRIBE (QoS 1) in one write, the broker's CONNACK and SUBACK read later.
int idle_socket(const Options& o, const std::string& id) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_port = htons(static_cast<std::uint16_t>(o.port));
    if (inet_pton(AF_INET, o.host.c_str(), &at.sin_addr) != 1 ||
        ::connect(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) {
        close(fd);
        return -1;
    }
    const std::string topic = "vartalap/" + id;
    auto string_field = [](std::string& out, const std::string& value) {
        out += static_cast<char>(value.size() >> 8);
        out += static_cast<char>(value.size() & 0xff);
        out += value;
    };
    std::string connect_body("\x00\x04MQTT\x04\x02\x00\x00", 10); // protocol, level 4, clean session, keep-alive 0
    string_field(connect_body, id);
    std::string subscribe_body("\x00\x01", 2); // packet id 1
    string_field(subscribe_body, topic);
    subscribe_body += '\x01'; // QoS 1
    if (connect_body.size() > 127 || subscribe_body.size() > 127) {
        close(fd);
        return -1;
    }
    const std::string packets = std::string(1, '\x10') + static_cast<char>(connect_body.size()) + connect_body +
                                std::string(1, '\x82') + static_cast<char>(subscribe_body.size()) + subscribe_body;
    if (write(fd, packets.data(), packets.size()) != static_cast<ssize_t>(packets.size())) {
        close(fd);
        return -1;
    }
    return fd;
}

// Reads CONNACK (4 bytes, return code 0) and SUBACK (5 bytes, granted QoS 1) from `fd`.
bool idle_acknowledged(int fd) {
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    unsigned char got[9];
    std::size_t have = 0;
    while (have < sizeof got) {
        const ssize_t n = read(fd, got + have, sizeof got - have);
        if (n <= 0) return false;
        have += static_cast<std::size_t>(n);
    }
    return got[0] == 0x20 && got[3] == 0 && got[4] == 0x90 && got[8] == 1;
}

} // namespace

int run_idle(const Options& o) {
    if (o.server_pids.empty()) {
        std::cerr << "vartalap-mqtt-bench: --idle needs --server-pid\n";
        return 2;
    }
    const auto n = static_cast<std::size_t>(o.idle);
    const auto rss_before = bench::total_rss_kib(o.server_pids);
    const std::string prefix = run_prefix("idle");
    std::vector<int> sockets;
    std::size_t acknowledged = 0;
    // At most 64 connections not yet acknowledged: more would overflow mosquitto's listen
    // backlog (100) whenever it falls behind, and each dropped SYN costs a 1 s retransmit.
    constexpr std::size_t pending = 64;
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i) {
        const int fd = idle_socket(o, prefix + std::to_string(i));
        if (fd < 0) {
            std::cerr << "vartalap-mqtt-bench: idle connection " << i << ": " << std::strerror(errno) << '\n';
            return 1;
        }
        sockets.push_back(fd);
        if (i >= pending && idle_acknowledged(sockets[i - pending])) ++acknowledged;
    }
    for (std::size_t i = n > pending ? n - pending : 0; i < n; ++i)
        if (idle_acknowledged(sockets[i])) ++acknowledged;
    const double connect_s = seconds_since(start);
    if (acknowledged != n) {
        std::cerr << "vartalap-mqtt-bench: " << acknowledged << " of " << n << " connections got CONNACK and SUBACK\n";
        return 1;
    }
    const bool quiet = bench::wait_until_quiet(o.server_pids, Clock::now() + std::chrono::seconds(30));
    const auto rss_after = bench::total_rss_kib(o.server_pids);
    if (!rss_before || !rss_after) {
        std::cerr << "vartalap-mqtt-bench: broker RSS unreadable\n";
        return 1;
    }
    const double per_connection = static_cast<double>(*rss_after - *rss_before) * 1024.0 / static_cast<double>(n);
    std::cout << "idle connections: " << n << " clients connected and subscribed (QoS 1) in " << connect_s << " s\n"
              << "broker RSS: " << *rss_before << " KiB before, " << *rss_after << " KiB with every connection open"
              << (quiet ? "" : " (the broker was not quiet within 30 s)") << '\n'
              << "broker RSS per idle connection: " << per_connection << " bytes (" << per_connection / 1024.0 << " KiB)\n";
    bench::ResultLine result;
    result.add("connections", n).add("rss_per_conn_bytes", per_connection).add("connect_s", connect_s);
    result.print(std::cout);
    for (const int fd : sockets) close(fd);
    return 0;
}

int run_drain(const Options& o) {
    const auto users = static_cast<std::size_t>(o.drain_users);
    const auto per_user = static_cast<std::size_t>(o.drain_messages);
    const auto total = users * per_user;
    const std::string prefix = run_prefix("drain");
    std::vector<pollfd> fds;

    // The persistent sessions: subscribe, then leave.
    {
        std::vector<std::unique_ptr<Client>> sessions;
        if (!connect_all(sessions, users, prefix + "u", false, o, fds, 60)) return 1;
        for (auto& c : sessions) mosquitto_disconnect(c->handle());
    } // destroyed: sockets closed
    if (!o.server_pids.empty()) bench::wait_until_quiet(o.server_pids, Clock::now() + std::chrono::seconds(30));

    // Fill.
    std::vector<std::unique_ptr<Client>> senders;
    if (!connect_all(senders, static_cast<std::size_t>(std::max(1, o.drain_senders)), prefix + "s", true, o, fds, 30)) return 1;
    std::vector<std::size_t> sent(senders.size(), 0), quota(senders.size(), 0);
    for (std::size_t i = 0; i < users; ++i) quota[i % senders.size()] += per_user;
    std::string payload(o.payload_bytes, 'x');
    auto top_up = [&] {
        for (std::size_t j = 0; j < senders.size(); ++j) {
            while (sent[j] < quota[j] && sent[j] - senders[j]->published() < static_cast<std::size_t>(o.window)) {
                const std::size_t k = sent[j]++;
                const std::size_t user = j + senders.size() * (k % (quota[j] / per_user)); // recipients j, j+S, ...
                const Payload head{(static_cast<std::uint64_t>(j) << 32) | k, 0};
                std::memcpy(payload.data(), &head, sizeof head);
                senders[j]->publish("vartalap/" + prefix + "u" + std::to_string(user), payload);
            }
        }
    };
    auto confirmed = [&] {
        std::uint64_t n = 0;
        for (auto& s : senders) n += s->published();
        return n;
    };
    const auto fill_start = Clock::now();
    const bool filled = run_until(senders, fds, fill_start + bench::to_duration(o.drain_timeout), [&] {
        top_up();
        return confirmed() >= total;
    });
    const double fill_s = seconds_since(fill_start);
    const auto fill_confirmed = confirmed();
    std::cout << "fill: " << fill_confirmed << " of " << total << " QoS 1 messages (" << users << " offline sessions x "
              << per_user << ") PUBACKed in " << fill_s << " s (" << static_cast<double>(fill_confirmed) / fill_s << " msg/s)\n";
    if (!filled) return 1;
    for (auto& s : senders) mosquitto_disconnect(s->handle());
    senders.clear();
    if (!o.server_pids.empty()) bench::wait_until_quiet(o.server_pids, Clock::now() + std::chrono::seconds(60));

    // Drain: every session reconnects at once, as fast as the broker accepts them: at most
    // 64 without a CONNACK (mosquitto's listen backlog is 100; a dropped SYN would cost a 1 s
    // retransmit).
    bench::DrainCount<std::uint64_t> count(users, total);
    std::vector<std::unique_ptr<Client>> sessions;
    std::size_t first_unconfirmed = 0;
    auto reconnect_more = [&] {
        while (first_unconfirmed < sessions.size() && sessions[first_unconfirmed]->connected()) ++first_unconfirmed;
        while (sessions.size() < users && sessions.size() - first_unconfirmed < 64) {
            const std::size_t i = sessions.size();
            const std::string id = prefix + "u" + std::to_string(i);
            sessions.push_back(std::make_unique<Client>(id, "vartalap/" + id, false));
            sessions.back()->on_message([&count, i](const mosquitto_message& m) {
                if (m.payloadlen < static_cast<int>(sizeof(Payload))) return;
                Payload head;
                std::memcpy(&head, m.payload, sizeof head);
                count.arrived(i, head.sequence);
            });
            sessions.back()->connect(o.host, o.port);
        }
    };
    bench::CpuWindow cpu(o.server_pids);
    cpu.begin();
    const auto drain_start = Clock::now();
    try {
        run_until(sessions, fds, drain_start + bench::to_duration(o.drain_timeout), [&] {
            reconnect_more();
            return count.done();
        });
    } catch (const std::exception& e) {
        std::cerr << "vartalap-mqtt-bench: " << e.what() << '\n';
        return 1;
    }
    cpu.end();
    const int rc = count.report(std::cout,
                                std::to_string(sessions.size()) + " sessions reconnected at once (at most 64 awaiting CONNACK), each message PUBACKed", cpu,
                                drain_start, static_cast<double>(fill_confirmed) / fill_s);
    for (auto& s : sessions) mosquitto_disconnect(s->handle());
    return rc;
}

} // namespace vartalap::mqtt_bench
