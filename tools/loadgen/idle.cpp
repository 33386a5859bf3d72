// Idle mode: the server's memory per idle authenticated WebSocket. Logs in `idle` fresh
// users over REST (timed), opens a WebSocket for each (timed; at most `parallel`
// handshakes in flight), checks every one is served (a "ping" each, all "pong"s back), waits
// until the server is quiet, and reports the RSS growth of the server's processes (VmRSS,
// summed) from before the logins, divided by the connections.
#include "tools/bench/measure.hpp"
#include "tools/bench/ws_client.hpp"
#include "tools/loadgen/modes.hpp"

#include <iostream>

namespace vartalap::loadgen {

namespace bench = vartalap::bench;
namespace ws = vartalap::bench::ws;
using bench::Clock;

int run_idle(const Options& o) {
    if (o.server_pids.empty()) {
        std::cerr << "vartalap-loadgen: --idle needs --server-pid\n";
        return 2;
    }
    const auto n = static_cast<std::size_t>(o.idle);
    const auto rss_before = bench::total_rss_kib(o.server_pids);
    boost::asio::io_context io(1);
    const std::string prefix = run_prefix("idle");
    std::vector<std::shared_ptr<ws::Connection>> connections;
    std::vector<std::string> keys;
    std::size_t pongs = 0;
    const auto login_start = Clock::now();
    try {
        ws::Login login(o.host, o.http_port);
        for (std::size_t i = 0; i < n; ++i) {
            const std::string user = prefix + std::to_string(i);
            keys.push_back(login.key(user));
            connections.push_back(std::make_shared<ws::Connection>(io, user));
            connections.back()->on_text([&pongs](std::string_view text) {
                if (text == "pong") ++pongs;
            });
        }
    } catch (const std::exception& e) {
        std::cerr << "vartalap-loadgen: " << e.what() << '\n';
        return 1;
    }
    const double login_s = std::chrono::duration<double>(Clock::now() - login_start).count();
    const auto rss_logged_in = bench::total_rss_kib(o.server_pids);

    const auto connect_start = Clock::now();
    const std::size_t opened = ws::open_all(io, connections, keys, o.ws_endpoints(), "/wss", o.parallel,
                                            connect_start + std::chrono::seconds(120));
    const double connect_s = std::chrono::duration<double>(Clock::now() - connect_start).count();
    if (opened != n) {
        std::cerr << "vartalap-loadgen: " << opened << " of " << n << " WebSockets opened\n";
        return 1;
    }
    for (const auto& c : connections) c->send("ping");
    const auto pong_deadline = Clock::now() + std::chrono::seconds(60);
    while (pongs < n && Clock::now() < pong_deadline) io.run_one_until(pong_deadline);
    if (pongs < n) {
        std::cerr << "vartalap-loadgen: " << pongs << " of " << n << " connections answered ping\n";
        return 1;
    }
    const bool quiet = bench::wait_until_quiet(o.server_pids, Clock::now() + std::chrono::seconds(30));
    const auto rss_after = bench::total_rss_kib(o.server_pids);
    if (!rss_before || !rss_logged_in || !rss_after) {
        std::cerr << "vartalap-loadgen: server RSS unreadable\n";
        return 1;
    }
    const double per_connection = static_cast<double>(*rss_after - *rss_before) * 1024.0 / static_cast<double>(n);
    std::cout << "idle connections: " << n << " users logged in over REST in " << login_s << " s ("
              << static_cast<double>(n) / login_s << " logins/s), WebSockets opened in " << connect_s
              << " s, every one answered ping\n"
              << "server RSS (" << o.server_pids.size() << " process(es)): " << *rss_before << " KiB before, "
              << *rss_logged_in << " KiB after the logins, " << *rss_after << " KiB with every connection open"
              << (quiet ? "" : " (the server was not quiet within 30 s)") << '\n'
              << "server RSS per idle authenticated WebSocket: " << per_connection << " bytes ("
              << per_connection / 1024.0 << " KiB; "
              << static_cast<double>(*rss_after - *rss_logged_in) * 1024.0 / static_cast<double>(n)
              << " bytes of it after the logins)\n";
    bench::ResultLine result;
    result.add("connections", n).add("rss_per_conn_bytes", per_connection).add("login_s", login_s).add("connect_s", connect_s);
    result.print(std::cout);
    return 0;
}

} // namespace vartalap::loadgen
