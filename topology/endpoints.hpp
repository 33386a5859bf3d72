// Endpoint syntax of a topology file: "host:port" for HTTP listeners and metrics, and ZeroMQ
// endpoints (inproc://NAME, ipc://PATH, tcp://HOST:PORT) for the sockets daemons bind.
//
// The loader uses these to validate a file and to tell when two bindings clash; they check
// syntax only and never resolve a name or touch the network.
//
// Errors: the parse functions return an error text ("" on success) that the loader puts
// after "<daemon>: <role> '<text>' is malformed: ", so it reads as the reason.
// Thread-safety: pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vartalap::topology {

// sun_path is 108 bytes on Linux, one of which is the terminating NUL.
inline constexpr std::size_t kMaxIpcPathBytes = 107;

struct HostPort {
    std::string host;
    int port = 0; // -1 = "*" (ZeroMQ's kernel-chosen port)
};

// "host:port" or "[v6]:port"; `allow_star_port` admits ZeroMQ's "*" port.
std::string parse_host_port(std::string_view text, bool allow_star_port, HostPort& out);

enum class Transport { inproc, ipc, tcp };

struct ParsedEndpoint {
    Transport transport = Transport::tcp;
    std::string address; // inproc name, ipc path, or tcp host
    int port = 0;        // tcp only; 0 or -1 = kernel picks
};

// inproc://NAME, ipc://PATH (at most kMaxIpcPathBytes) or tcp://HOST:PORT (PORT may be *).
std::string parse_zmq_endpoint(std::string_view text, ParsedEndpoint& out);

// True for a tcp:// ZeroMQ endpoint (the transport that crosses hosts: CURVE applies).
bool is_tcp_endpoint(std::string_view text);

// True if two endpoints bound on the same host would clash (EADDRINUSE at start): the same
// inproc name or ipc path, or the same TCP port on the same or a wildcard address. An HTTP
// listener is a tcp ParsedEndpoint: it shares the port space with ZeroMQ's tcp://. Ports
// the kernel picks (0, *) never clash.
bool same_binding(const ParsedEndpoint& a, const ParsedEndpoint& b);

// Letters, digits, '.', '-', '_': a host name or an IPv4 address (no port, no brackets).
bool valid_host_name(std::string_view host);

// A decimal number of 1-9 digits that is at most `max`; nullopt otherwise (signs, spaces,
// overflow). Ports and slot numbers use it.
std::optional<std::uint32_t> parse_decimal(std::string_view text, std::uint32_t max);

} // namespace vartalap::topology
