// Thread-safety: see net.hpp.
#include "common/http/net.hpp"

#include <boost/asio/io_context.hpp>

#include <stdexcept>

namespace vartalap {

boost::asio::ip::tcp::endpoint tcp_endpoint_of(std::string_view owner, std::string_view role,
                                               std::string_view host_port) {
    const std::string what = std::string(owner) + ": " + std::string(role) + " '" +
                             std::string(host_port) + "'";
    const auto colon = host_port.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == host_port.size())
        throw std::runtime_error(what + " is not host:port");
    std::string host(host_port.substr(0, colon));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    const std::string port(host_port.substr(colon + 1));
    try {
        boost::asio::io_context io;
        boost::asio::ip::tcp::resolver resolver(io);
        const auto results =
            resolver.resolve(host, port, boost::asio::ip::tcp::resolver::numeric_service);
        if (results.empty()) throw std::runtime_error("no address");
        return results.begin()->endpoint();
    } catch (const std::exception& e) {
        throw std::runtime_error(what + " does not resolve: " + e.what());
    }
}

SourceCount::Address source_key(const boost::asio::ip::address& address) {
    namespace ip = boost::asio::ip;
    return address.is_v4() ? ip::make_address_v6(ip::v4_mapped, address.to_v4()).to_bytes()
                           : address.to_v6().to_bytes();
}

std::string to_host_port(const boost::asio::ip::tcp::endpoint& endpoint) {
    const std::string port = std::to_string(endpoint.port());
    return endpoint.address().is_v6() ? "[" + endpoint.address().to_string() + "]:" + port
                                      : endpoint.address().to_string() + ":" + port;
}

} // namespace vartalap
