// vartalap-json-bench: CPU and heap allocations per client message of the gateway's parse
// (common/wire/client_message: validate, build the envelope, write the payload a recipient
// reads), on the message shapes of a chat: the load generator's text message, a CLIENT_ACK,
// a read receipt and a text message with meta and escapes. Run by hand (BENCHMARKS.md):
//
//   build/release/tools/vartalap-json-bench [--iterations N]
//
// Prints one line per shape: ns per message (wall time of a single-threaded loop, best of
// five rounds) and heap allocations per message (operator new calls; the Envelope is reused
// across calls as the gateways reuse theirs).
#include "common/wire/client_message.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

namespace {

std::atomic<std::uint64_t> g_allocations{0};

} // namespace

void* operator new(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

struct Shape {
    const char* name;
    std::string text;
};

std::vector<Shape> shapes() {
    return {
        {"text (loadgen)",
         R"({"_v":2.1,"body":{"sent":1764500000123456789,"text":"load"},"head":{"action":"message","chatid":"u17","contentType":"text","to":"u18","type":"individual"},"id":"u17-123456"})"},
        {"CLIENT_ACK",
         R"({"_v":2.1,"head":{"contentType":"CLIENT_ACK","to":"server","type":"individual"},"id":"u18-123456"})"},
        {"receipt",
         R"({"_v":2.1,"id":"r-99","head":{"type":"individual","to":"+911234567890","from":"+919876543210","chatid":"c-1","contentType":"text","action":"state","category":"system","ephemeral":false},"meta":{"createdAt":1700000000000},"body":{"ids":["m-1","m-2","m-3","m-4"],"state":"read"}})"},
        {"text, meta, escapes",
         R"({ "_v": 2.1, "id": "6f1c2a9e-4d3b-11ee-be56-0242ac120002",
  "head": { "type": "individual", "to": "+911234567890", "from": "+919876543210",
            "chatid": "chat-\u00e9-1", "contentType": "text", "action": "message",
            "category": "message", "ephemeral": false },
  "meta": { "createdAt": 1700000000000, "contentHash": "9b74c9897bac770ffc029102a200c5de" },
  "body": { "text": "Hello \"Bob\", see you at 10:30\n\u0928\u092e\u0938\u094d\u0924\u0947 \ud83d\ude00", "state": "new" } })"},
    };
}

} // namespace

int main(int argc, char** argv) {
    std::size_t iterations = 200000;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == "--iterations") iterations = std::strtoull(argv[i + 1], nullptr, 10);
    vartalap::ClientOrigin origin;
    origin.user = "+919876543210";
    origin.gateway = "ws-1";
    origin.connection = 42;
    origin.wants_server_ack = true;
    origin.now_ms = 1764500000123;
    vartalap::Envelope envelope;
    std::string error;
    std::size_t sink = 0;
    std::printf("%-22s %10s %14s %10s\n", "shape", "bytes", "ns/message", "allocs/msg");
    for (const Shape& shape : shapes()) {
        if (!vartalap::parse_client_message(shape.text, origin, envelope, error)) {
            std::fprintf(stderr, "%s: refused: %s\n", shape.name, error.c_str());
            return 1;
        }
        double best_ns = 1e30;
        std::uint64_t allocations = 0;
        for (int round = 0; round < 5; ++round) {
            const std::uint64_t before = g_allocations.load(std::memory_order_relaxed);
            const auto start = std::chrono::steady_clock::now();
            for (std::size_t i = 0; i < iterations; ++i) {
                vartalap::parse_client_message(shape.text, origin, envelope, error);
                sink += envelope.payload.size();
            }
            const auto elapsed = std::chrono::steady_clock::now() - start;
            allocations = g_allocations.load(std::memory_order_relaxed) - before;
            const double ns =
                std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(iterations);
            if (ns < best_ns) best_ns = ns;
        }
        std::printf("%-22s %10zu %14.0f %10.2f\n", shape.name, shape.text.size(), best_ns,
                    static_cast<double>(allocations) / static_cast<double>(iterations));
    }
    return sink == 0 ? 1 : 0;
}
