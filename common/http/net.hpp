// TCP addresses of the topology's public roles (`listen`, `metrics`): "host:port" or
// "[v6]:port"; port 0 lets the kernel choose.
// Thread-safety: pure functions (resolution uses a local resolver).
#pragma once

#include "common/http/source_count.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <string>
#include <string_view>

namespace vartalap {

// Resolves `host_port` (numeric port; the host may be a name). Throws std::runtime_error
// "<owner>: <role> '<text>' ..." when it is not host:port or does not resolve.
boost::asio::ip::tcp::endpoint tcp_endpoint_of(std::string_view owner, std::string_view role,
                                               std::string_view host_port);
// The key of `address` for SourceCount (IPv4 as its IPv4-mapped IPv6 form).
SourceCount::Address source_key(const boost::asio::ip::address& address);
// "127.0.0.1:40123" or "[::1]:40123".
std::string to_host_port(const boost::asio::ip::tcp::endpoint& endpoint);

} // namespace vartalap
