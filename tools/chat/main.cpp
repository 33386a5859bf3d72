// vartalap-chat: a small terminal chat client for trying the server by hand.
//
//   vartalap-chat --user alice [--host 127.0.0.1 --ws-port 8080 --http-port 8081]
//
// Logs in over REST (development identity: any token), opens the WebSocket with
// ?ack=true, then reads lines from stdin:
//   @bob hello there     send "hello there" to bob (bob becomes the current peer)
//   #team hello all      send "hello all" to the group with id "team" (it becomes current)
//   some text            send to the current peer or group
//   /create team bob carol   create group "team" with bob and carol (you are its admin)
//   /add team dave           add dave to "team"; /remove team dave removes him
//   /quit                leave
// Incoming messages are printed and acknowledged with a "delivered" receipt, as the app does.
// Thread: one thread runs one io_context (stdin, the WebSocket, its reads and writes).
#include "common/wire/client_message.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <iostream>
#include <random>
#include <sstream>
#include <unistd.h>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using nlohmann::json;

namespace {

std::string login(const std::string& host, const std::string& port, const std::string& user) {
    asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.connect(resolver.resolve(host, port));
    http::request<http::string_body> request(http::verb::post, "/v1.0/login", 11);
    request.set(http::field::host, host);
    request.set(http::field::content_type, "application/json");
    request.body() = json{{"username", user}, {"authToken", "terminal-dev-token"},
                          {"notificationToken", ""}, {"deviceId", "terminal"}}
                         .dump();
    request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    if (response.result() != http::status::ok)
        throw std::runtime_error("login failed: HTTP " + std::to_string(response.result_int()) + " " + response.body());
    return json::parse(response.body()).at("accesskey").get<std::string>();
}

std::string new_id() {
    static std::mt19937_64 random{std::random_device{}()};
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(random()));
    return buffer;
}

class ChatClient {
public:
    ChatClient(asio::io_context& io, std::string user) : io_(io), user_(std::move(user)), ws_(io), input_(io, ::dup(STDIN_FILENO)) {}

    void run(const std::string& host, const std::string& port, const std::string& key) {
        tcp::resolver resolver(io_);
        beast::get_lowest_layer(ws_).connect(resolver.resolve(host, port));
        ws_.set_option(websocket::stream_base::decorator([&](websocket::request_type& request) {
            request.set("user", user_);
            request.set("accesskey", key);
        }));
        ws_.handshake(host + ":" + port, "/wss?ack=true");
        std::cout << "connected as " << user_ << ". Type '@user text' to send, '/quit' to leave.\n";
        do_read();
        do_input();
    }

private:
    void do_read() {
        ws_.async_read(read_buffer_, [this](beast::error_code ec, std::size_t) {
            if (ec) {
                std::cout << "connection closed: " << ec.message() << " (code " << ws_.reason().code << ")\n";
                io_.stop();
                return;
            }
            const std::string text = beast::buffers_to_string(read_buffer_.data());
            read_buffer_.consume(read_buffer_.size());
            show(text);
            do_read();
        });
    }

    void show(const std::string& text) {
        json frame = json::parse(text, nullptr, false);
        if (frame.is_discarded()) {
            std::cout << "< " << text << "\n";
            return;
        }
        if (!frame.is_array()) frame = json::array({frame});
        for (const auto& message : frame) {
            if (!message.is_object() || !message.contains("head")) continue;
            const auto& head = message["head"];
            const std::string content_type = head.value("contentType", "");
            const std::string from = head.value("from", "?");
            if (content_type == "SERVER_ACK") {
                std::cout << "  (server has " << message.value("id", "") << ")\n";
            } else if (content_type == "error") {
                std::cout << "! server: " << message["body"].value("error", "") << "\n";
            } else if (head.value("type", "") == "group" && content_type == "notification") {
                std::cout << "  (group " << head.value("to", "") << ": " << from << " "
                          << head.value("action", "") << " " << message["body"].dump() << ")\n";
            } else if (head.value("action", "") == "state") {
                std::cout << "  (" << from << ": " << message["body"].value("state", "") << " "
                          << message["body"].value("ids", json::array()).dump() << ")\n";
            } else {
                const std::string where =
                    head.value("type", "") == "group" ? "#" + head.value("to", "") + " " : "";
                std::cout << "[" << where << from << "] "
                          << message["body"].value("text", message["body"].dump()) << "\n";
                send(json{{"_v", 2.1}, {"id", new_id()},
                          {"head", {{"type", "individual"}, {"to", from}, {"chatid", from},
                                    {"contentType", "text"}, {"action", "state"}, {"category", "system"}}},
                          {"body", {{"ids", {message.value("id", "")}}, {"state", "delivered"}}}}
                         .dump());
            }
        }
        std::cout.flush();
    }

    void do_input() {
        asio::async_read_until(input_, input_buffer_, '\n', [this](beast::error_code ec, std::size_t n) {
            if (ec) {
                close();
                return;
            }
            std::string line(asio::buffers_begin(input_buffer_.data()), asio::buffers_begin(input_buffer_.data()) + static_cast<long>(n) - 1);
            input_buffer_.consume(n);
            if (line == "/quit") return close();
            if (line.rfind("/create ", 0) == 0 || line.rfind("/add ", 0) == 0 ||
                line.rfind("/remove ", 0) == 0) {
                group_operation(line);
                return do_input();
            }
            if (!line.empty() && (line[0] == '@' || line[0] == '#')) {
                group_ = line[0] == '#';
                const auto space = line.find(' ');
                peer_ = line.substr(1, space == std::string::npos ? std::string::npos : space - 1);
                line = space == std::string::npos ? "" : line.substr(space + 1);
            }
            if (!line.empty()) {
                if (peer_.empty()) {
                    std::cout << "! say who to: @user text\n";
                } else {
                    const std::string id = new_id();
                    send(json{{"_v", 2.1}, {"id", id},
                              {"head", {{"type", group_ ? "group" : "individual"}, {"to", peer_}, {"chatid", peer_},
                                        {"contentType", "text"}, {"action", "message"}, {"category", "message"}}},
                              {"meta", {{"createdAt", std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count()}}},
                              {"body", {{"text", line}, {"state", "new"}}}}
                             .dump());
                }
            }
            do_input();
        });
    }

    // "/create ID member..." | "/add ID member..." | "/remove ID member": a group operation
    // sent as a message (the app's offline-capable path), acknowledged like any message.
    void group_operation(const std::string& line) {
        std::istringstream words(line);
        std::string command, id, member;
        words >> command >> id;
        json members = json::array();
        while (words >> member) members.push_back(member);
        if (id.empty() || members.empty()) {
            std::cout << "! usage: " << command << " GROUP USER...\n";
            return;
        }
        const std::string action = command.substr(1);
        json body;
        if (action == "create") body = {{"name", id}, {"members", members}};
        else if (action == "add") body = {{"added", members}};
        else body = {{"removed", members}};
        send(json{{"_v", 2.1}, {"id", new_id()},
                  {"head", {{"type", "group"}, {"to", id}, {"chatid", id}, {"contentType", "notification"},
                            {"action", action}}},
                  {"body", body}}
                 .dump());
        if (action == "create") {
            peer_ = id;
            group_ = true;
        }
    }

    void send(std::string text) {
        queue_.push_back(std::move(text));
        if (queue_.size() == 1) do_write();
    }

    void do_write() {
        ws_.async_write(asio::buffer(queue_.front()), [this](beast::error_code ec, std::size_t) {
            if (ec) return;
            queue_.pop_front();
            if (!queue_.empty()) do_write();
        });
    }

    void close() {
        ws_.async_close(websocket::close_code::normal, [this](beast::error_code) { io_.stop(); });
    }

    asio::io_context& io_;
    std::string user_;
    std::string peer_;
    bool group_ = false; // peer_ is a group id
    websocket::stream<beast::tcp_stream> ws_;
    asio::posix::stream_descriptor input_;
    asio::streambuf input_buffer_;
    beast::flat_buffer read_buffer_;
    std::deque<std::string> queue_;
};

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vartalap-chat: a terminal client for the Vartalap server"};
    std::string user, host = "127.0.0.1";
    int ws_port = 8080, http_port = 8081;
    app.add_option("--user,-u", user, "your username (any string; a phone number in the app)")->required();
    app.add_option("--host", host, "server address");
    app.add_option("--ws-port", ws_port, "WebSocket gateway port");
    app.add_option("--http-port", http_port, "REST gateway port");
    CLI11_PARSE(app, argc, argv);
    try {
        const std::string key = login(host, std::to_string(http_port), user);
        asio::io_context io;
        ChatClient client(io, user);
        client.run(host, std::to_string(ws_port), key);
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "vartalap-chat: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
