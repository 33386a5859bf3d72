// A small WebSocket and HTTP client for integration tests, built on Beast.
//
// Thread: the test's. Each WsClient owns its own io_context and runs it only inside its
// calls, each bounded by a deadline, so a test never hangs on a silent server.
// Errors: nothing throws for network failures; results say what happened (an HTTP status,
// nullopt, false, a close code).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>

namespace vartalap::testing {

class WsClient {
public:
    using Headers = std::map<std::string, std::string>;

    // Connects and upgrades `path` (e.g. "/wss?ack=true") sending `headers`. Returns the
    // client, or the HTTP status the server answered instead of 101 (401, 404, ...), or 0
    // when no HTTP answer came (connection refused, timeout).
    static std::variant<WsClient, int> connect(
        const std::string& host, int port, const std::string& path, const Headers& headers = {},
        std::chrono::milliseconds deadline = std::chrono::seconds(5));

    WsClient(WsClient&&) noexcept;
    WsClient& operator=(WsClient&&) noexcept;
    ~WsClient(); // closes the TCP connection without a closing handshake

    // Sends one text frame; false if the connection is closed or the write failed.
    bool send_text(const std::string& text,
                   std::chrono::milliseconds deadline = std::chrono::seconds(5));
    // Sends one text message as several frames of at most `fragment_bytes` (a first frame
    // and continuation frames), for testing how the server reassembles them.
    bool send_text_fragmented(const std::string& text, std::size_t fragment_bytes,
                              std::chrono::milliseconds deadline = std::chrono::seconds(5));
    // Sends one binary frame (the protocol is text only: for testing the server's answer).
    bool send_binary(const std::string& bytes,
                     std::chrono::milliseconds deadline = std::chrono::seconds(5));

    // The next text (or binary) frame, or nullopt when the deadline passes first or the
    // connection is closed (then close_code() says how). A read that timed out stays
    // pending: the next call continues it, so no frame is lost.
    std::optional<std::string> read_text(std::chrono::milliseconds deadline);

    // Returns the first JSON message received and not yet returned that matches `predicate`,
    // reading frames until one does. Frames that are JSON arrays are flattened. A message
    // that does not match is kept, in order, for later calls, so a test may wait for two
    // messages of one socket in either order (a SERVER_ACK and an event may arrive either
    // way round); frames that are not JSON ("pong") are dropped. nullopt on deadline or close.
    std::optional<nlohmann::json> read_json_matching(
        const std::function<bool(const nlohmann::json&)>& predicate,
        std::chrono::milliseconds deadline);

    // After the connection ended: the close code the server sent (1000, 1001, 1009, 4000...),
    // 1006 if the connection ended without a close frame; 0 while open.
    int close_code() const;
    std::string close_reason() const;
    bool is_open() const;

    // Closing handshake with 1000 (bounded to 2 s), then the socket is closed.
    void close();

private:
    struct Impl;
    explicit WsClient(std::unique_ptr<Impl> impl);
    bool send(const std::string& data, bool text, std::chrono::milliseconds deadline);
    // read_text up to a point in time (the callers have scaled their deadline already).
    std::optional<std::string> read_text_until(std::chrono::steady_clock::time_point until);
    std::unique_ptr<Impl> impl_;
};

struct HttpResponse {
    int status = 0; // 0: no answer (connection failed, timeout)
    std::string body;
};

// One HTTP/1.1 request with `Connection: close`, bounded by `deadline`.
// Every deadline of this file is multiplied by test::time_scale() (tests/support/deadline.hpp).
HttpResponse http_request(const std::string& host, int port, const std::string& method,
                          const std::string& target, const std::string& body,
                          const std::map<std::string, std::string>& headers,
                          std::chrono::milliseconds deadline = std::chrono::seconds(5));

} // namespace vartalap::testing
