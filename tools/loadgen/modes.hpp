// vartalap-loadgen's options and its three modes (main.cpp parses, one of these runs):
// pairs.cpp (throughput and latency), idle.cpp (server memory per idle connection),
// drain.cpp (offline messages delivered on reconnect). Thread: main, one io_context.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <string>
#include <vector>

namespace vartalap::loadgen {

struct Options {
    std::string host = "127.0.0.1";
    std::vector<int> ws_ports{8080}; // user i connects to ws_ports[i % size]
    int http_port = 8081;
    std::vector<int> server_pids; // the server's processes: CPU, RSS, kernel counters
    bool perf_stat = false;       // system calls and context switches via perf (else /proc)
    std::size_t parallel = 256;   // WebSocket handshakes in flight while connecting (spread
                                  // over 16 loopback source addresses: ws_client.hpp, open_all)
    // pairs
    int pairs = 20, window = 8;
    double seconds = 10, warmup = 2, rate = 0;
    bool receipts = false;  // the recipient answers with a `delivered` receipt
    std::size_t text_bytes = 64;
    // idle
    int idle = 0; // > 0: idle mode with this many connections
    // drain
    int drain_users = 0; // > 0: drain mode
    int drain_messages = 100, drain_senders = 10;
    double drain_timeout = 120;

    std::vector<boost::asio::ip::tcp::endpoint> ws_endpoints() const {
        std::vector<boost::asio::ip::tcp::endpoint> out;
        for (const int port : ws_ports)
            out.emplace_back(boost::asio::ip::make_address(host), static_cast<unsigned short>(port));
        return out;
    }
};

// A prefix that makes this run's user names fresh: messages a previous run left unacked
// would otherwise arrive.
std::string run_prefix(const std::string& what);

int run_pairs(const Options& options);
int run_idle(const Options& options);
int run_drain(const Options& options);

} // namespace vartalap::loadgen
