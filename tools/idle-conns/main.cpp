// vartalap-idle-conns: what one idle authenticated WebSocket costs a running server. Logs in
// N users over REST (one keep-alive HTTP connection), reads the server's RSS, opens one
// WebSocket per user (headers user + accesskey, as the app does), waits until every one is
// open and the server's RSS has settled, reads the RSS again and prints the difference per
// connection. The sockets then stay idle: nothing is sent but the answers to the server's
// pings (Beast answers them while a read is pending).
//
//   ulimit -n 20000   # N sockets here and N in the server (each process: its own limit)
//   vartalap-idle-conns --connections 5000 --server-pid PID [--hold]
//
// The RSS is VmRSS of /proc/PID/status (resident anonymous and file pages of the whole
// server process: every daemon of a one-process topology counts). "Settled": two readings
// --settle-ms apart that differ by less than 1 KiB per 100 connections, at most 30 readings.
// Exit 0 when every connection opened, 1 otherwise. Thread: one io_context thread.
#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

// Resident set of `pid` in KiB (VmRSS), or -1.
long rss_kib(int pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

// Logs every user in over one keep-alive HTTP connection (reopened if the server closes it).
std::vector<std::string> login_all(asio::io_context& io, const tcp::resolver::results_type& http_at,
                                   const std::vector<std::string>& users) {
    std::vector<std::string> keys;
    keys.reserve(users.size());
    std::unique_ptr<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    for (const std::string& user : users) {
        for (int attempt = 0;; ++attempt) {
            try {
                if (!stream) {
                    stream = std::make_unique<beast::tcp_stream>(io);
                    stream->connect(http_at);
                    buffer.clear();
                }
                http::request<http::string_body> request(http::verb::post, "/v1.0/login", 11);
                request.set(http::field::host, "localhost");
                request.set(http::field::content_type, "application/json");
                request.keep_alive(true);
                request.body() = json{{"username", user}, {"authToken", "idle-conns"},
                                      {"notificationToken", "none"}}.dump();
                request.prepare_payload();
                http::write(*stream, request);
                http::response<http::string_body> response;
                http::read(*stream, buffer, response);
                if (response.result() != http::status::ok)
                    throw std::runtime_error("login of " + user + ": HTTP " +
                                             std::to_string(response.result_int()));
                keys.push_back(json::parse(response.body()).at("accesskey").get<std::string>());
                if (!response.keep_alive()) stream.reset();
                break;
            } catch (const beast::system_error&) {
                stream.reset(); // the server closed the connection: reconnect once
                if (attempt > 0) throw;
            }
        }
    }
    return keys;
}

struct Run {
    asio::io_context& io;
    tcp::resolver::results_type ws_at;
    std::string ws_host;
    const std::vector<std::string>& users;
    const std::vector<std::string>& keys;
    std::size_t next = 0;      // next user to connect
    std::size_t in_flight = 0; // handshakes under way
    std::size_t open = 0;
    std::size_t failed = 0;
    std::function<void()> all_done;
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(Run& run, std::size_t index) : run_(run), index_(index), ws_(run.io) {}

    void start() {
        beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
        beast::get_lowest_layer(ws_).async_connect(
            run_.ws_at, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                if (ec) return self->finish(false, "connect", ec);
                self->handshake();
            });
    }

private:
    void handshake() {
        ws_.set_option(websocket::stream_base::decorator([this](websocket::request_type& request) {
            request.set("user", run_.users[index_]);
            request.set("accesskey", run_.keys[index_]);
        }));
        ws_.async_handshake(run_.ws_host, "/wss", [self = shared_from_this()](beast::error_code ec) {
            if (ec) return self->finish(false, "handshake", ec);
            beast::get_lowest_layer(self->ws_).expires_never();
            self->finish(true, "", ec);
            self->read();
        });
    }

    // Pending for the life of the socket: Beast answers the server's pings meanwhile.
    void read() {
        ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            self->buffer_.consume(self->buffer_.size());
            self->read();
        });
    }

    void finish(bool ok, const char* step, const beast::error_code& ec) {
        --run_.in_flight;
        if (ok) {
            ++run_.open;
        } else if (++run_.failed <= 5) {
            std::cerr << "vartalap-idle-conns: " << run_.users[index_] << ": " << step << ": "
                      << ec.message() << '\n';
        }
        run_.all_done();
    }

    Run& run_;
    std::size_t index_;
    websocket::stream<beast::tcp_stream> ws_;
    beast::flat_buffer buffer_;
};

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalap-idle-conns: server RSS per idle authenticated WebSocket"};
    std::string host = "127.0.0.1";
    int ws_port = 8080, http_port = 8081, server_pid = 0;
    std::size_t connections = 1000, parallel = 128;
    int settle_ms = 1000;
    bool hold = false;
    app.add_option("--host", host);
    app.add_option("--ws-port", ws_port);
    app.add_option("--http-port", http_port);
    app.add_option("--connections", connections, "idle WebSockets to open (one user each)");
    app.add_option("--server-pid", server_pid, "the server process whose RSS is read")->required();
    app.add_option("--parallel", parallel, "handshakes under way at once");
    app.add_option("--settle-ms", settle_ms, "time between RSS readings while it settles");
    app.add_flag("--hold", hold, "keep the connections open until killed");
    CLI11_PARSE(app, argc, argv);

    asio::io_context io(1);
    const std::string run = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000007);
    std::vector<std::string> users;
    for (std::size_t i = 0; i < connections; ++i) users.push_back("idle-" + run + "-" + std::to_string(i));
    std::vector<std::string> keys;
    const auto login_start = std::chrono::steady_clock::now();
    try {
        keys = login_all(io, tcp::resolver(io).resolve(host, std::to_string(http_port)), users);
    } catch (const std::exception& e) {
        std::cerr << "vartalap-idle-conns: " << e.what() << '\n';
        return 1;
    }
    std::printf("logged in %zu users in %.1f s\n", users.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - login_start).count());

    const long before = rss_kib(server_pid);
    if (before < 0) {
        std::cerr << "vartalap-idle-conns: cannot read /proc/" << server_pid << "/status\n";
        return 1;
    }
    Run state{io, tcp::resolver(io).resolve(host, std::to_string(ws_port)), host, users, keys};
    std::vector<std::shared_ptr<Connection>> open;
    open.reserve(connections);
    const auto connect_start = std::chrono::steady_clock::now();
    state.all_done = [&] {
        while (state.in_flight < parallel && state.next < users.size()) {
            auto connection = std::make_shared<Connection>(state, state.next++);
            ++state.in_flight;
            open.push_back(connection);
            connection->start();
        }
    };
    // Runs the io_context until every handshake finished.
    asio::steady_timer poll(io);
    std::function<void()> wait_all = [&] {
        if (state.open + state.failed == users.size()) return;
        poll.expires_after(std::chrono::milliseconds(50));
        poll.async_wait([&](beast::error_code) { wait_all(); });
    };
    state.all_done();
    wait_all();
    while (state.open + state.failed < users.size()) io.run_one();
    std::printf("opened %zu WebSockets (%zu failed) in %.1f s\n", state.open, state.failed,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - connect_start).count());

    // Let the server finish what the opens started (connect events, session state), then
    // read until the RSS stops moving; the io_context keeps answering pings meanwhile.
    long after = rss_kib(server_pid);
    const long tolerance = std::max<long>(1, static_cast<long>(state.open / 100));
    for (int i = 0; i < 30; ++i) {
        io.run_for(std::chrono::milliseconds(settle_ms));
        const long now = rss_kib(server_pid);
        const bool settled = std::labs(now - after) < tolerance;
        after = now;
        if (settled) break;
    }
    const double per_connection =
        state.open == 0 ? 0.0 : 1024.0 * static_cast<double>(after - before) / static_cast<double>(state.open);
    std::printf("server RSS: %ld KiB before, %ld KiB with %zu idle WebSockets: %.0f bytes per connection\n",
                before, after, state.open, per_connection);
    if (hold) io.run();
    return state.failed == 0 ? 0 : 1;
}
