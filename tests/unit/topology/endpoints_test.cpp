// Thread: the test's. Unit tests for topology/endpoints.hpp: host:port and ZeroMQ endpoint
// syntax, and when two bindings clash. (The loader's messages built from these are tested
// in loader_test.)
#include "topology/endpoints.hpp"

#include <gtest/gtest.h>

#include <string>

namespace vartalap::topology {
namespace {

TEST(EndpointsHostPort, AcceptsNamesAddressesAndIpv6) {
    HostPort out;
    EXPECT_EQ(parse_host_port("127.0.0.1:8080", false, out), "");
    EXPECT_EQ(out.host, "127.0.0.1");
    EXPECT_EQ(out.port, 8080);
    EXPECT_EQ(parse_host_port("edge-a.example_1:0", false, out), "");
    EXPECT_EQ(out.host, "edge-a.example_1");
    EXPECT_EQ(out.port, 0);
    EXPECT_EQ(parse_host_port("[::1]:65535", false, out), "");
    EXPECT_EQ(out.host, "[::1]");
    EXPECT_EQ(out.port, 65535);
    EXPECT_EQ(parse_host_port("*:6000", false, out), "");
    EXPECT_EQ(out.host, "*");
    EXPECT_EQ(parse_host_port("*:*", true, out), "");
    EXPECT_EQ(out.port, -1);
}

TEST(EndpointsHostPort, SaysWhatIsWrong) {
    HostPort out;
    EXPECT_EQ(parse_host_port("127.0.0.1", false, out), "expected HOST:PORT");
    EXPECT_EQ(parse_host_port(":80", false, out), "missing host before ':'");
    EXPECT_EQ(parse_host_port("a b:80", false, out), "it contains whitespace");
    EXPECT_EQ(parse_host_port("h/x:80", false, out), "host 'h/x' is not a host name or address");
    EXPECT_EQ(parse_host_port("[::1]80", false, out), "expected [IPv6]:PORT");
    EXPECT_EQ(parse_host_port("[]:80", false, out), "empty IPv6 address");
    EXPECT_EQ(parse_host_port("h:65536", false, out), "port '65536' is not a number in 0-65535");
    EXPECT_EQ(parse_host_port("h:*", false, out), "port '*' is not a number in 0-65535");
    EXPECT_EQ(parse_host_port("h:-1", true, out), "port '-1' is not a number in 0-65535 or *");
    EXPECT_EQ(parse_host_port("h:", false, out), "port '' is not a number in 0-65535");
}

TEST(EndpointsZmq, ParsesEachTransport) {
    ParsedEndpoint out;
    EXPECT_EQ(parse_zmq_endpoint("inproc://session-1", out), "");
    EXPECT_EQ(out.transport, Transport::inproc);
    EXPECT_EQ(out.address, "session-1");
    EXPECT_EQ(parse_zmq_endpoint("ipc:///run/vartalap/ws-1.control", out), "");
    EXPECT_EQ(out.transport, Transport::ipc);
    EXPECT_EQ(out.address, "/run/vartalap/ws-1.control");
    EXPECT_EQ(parse_zmq_endpoint("tcp://10.0.0.1:6001", out), "");
    EXPECT_EQ(out.transport, Transport::tcp);
    EXPECT_EQ(out.address, "10.0.0.1");
    EXPECT_EQ(out.port, 6001);
    EXPECT_EQ(parse_zmq_endpoint("tcp://*:*", out), "");
    EXPECT_EQ(out.port, -1);
}

TEST(EndpointsZmq, SaysWhatIsWrong) {
    ParsedEndpoint out;
    EXPECT_EQ(parse_zmq_endpoint("127.0.0.1:5555", out),
              "expected inproc://NAME, ipc://PATH or tcp://HOST:PORT");
    EXPECT_EQ(parse_zmq_endpoint("udp://h:5", out),
              "unknown transport 'udp' (use inproc, ipc or tcp)");
    EXPECT_EQ(parse_zmq_endpoint("inproc://", out), "inproc:// needs a name");
    EXPECT_EQ(parse_zmq_endpoint("ipc://", out), "ipc:// needs a path");
    EXPECT_EQ(parse_zmq_endpoint("inproc://a ", out), "it contains whitespace");
    EXPECT_EQ(parse_zmq_endpoint("tcp://localhost", out), "expected HOST:PORT");
    // sun_path: at most 107 bytes of path.
    EXPECT_EQ(parse_zmq_endpoint("ipc://" + std::string(kMaxIpcPathBytes, 'p'), out), "");
    EXPECT_EQ(parse_zmq_endpoint("ipc://" + std::string(kMaxIpcPathBytes + 1, 'p'), out),
              "ipc path is longer than 107 bytes, the limit of a Unix socket address");
}

TEST(EndpointsBinding, SameAddressOrWildcardOnOnePortClashes) {
    const ParsedEndpoint any{Transport::tcp, "0.0.0.0", 8080};
    const ParsedEndpoint loopback{Transport::tcp, "127.0.0.1", 8080};
    const ParsedEndpoint other_port{Transport::tcp, "127.0.0.1", 8081};
    const ParsedEndpoint kernel{Transport::tcp, "127.0.0.1", 0};
    const ParsedEndpoint star{Transport::tcp, "*", -1};
    EXPECT_TRUE(same_binding(any, loopback));
    EXPECT_TRUE(same_binding(loopback, loopback));
    EXPECT_FALSE(same_binding(loopback, other_port));
    EXPECT_FALSE(same_binding(kernel, kernel)); // the kernel picks a fresh port each time
    EXPECT_FALSE(same_binding(star, star));
    EXPECT_TRUE(same_binding(ParsedEndpoint{Transport::tcp, "*", 8080}, loopback));
    EXPECT_TRUE(same_binding(ParsedEndpoint{Transport::tcp, "[::]", 8080}, loopback));
    EXPECT_FALSE(same_binding(ParsedEndpoint{Transport::tcp, "10.0.0.1", 8080}, loopback));

    const ParsedEndpoint inproc{Transport::inproc, "gw", 0};
    const ParsedEndpoint ipc{Transport::ipc, "gw", 0};
    EXPECT_TRUE(same_binding(inproc, inproc));
    EXPECT_FALSE(same_binding(inproc, ipc));
    EXPECT_FALSE(same_binding(inproc, ParsedEndpoint{Transport::inproc, "gw2", 0}));
}

TEST(EndpointsDecimal, DigitsOnlyUpToTheMaximum) {
    EXPECT_EQ(parse_decimal("0", 10), 0u);
    EXPECT_EQ(parse_decimal("16383", 16383), 16383u);
    EXPECT_FALSE(parse_decimal("16384", 16383));
    EXPECT_FALSE(parse_decimal("", 10));
    EXPECT_FALSE(parse_decimal("+1", 10));
    EXPECT_FALSE(parse_decimal("-1", 10));
    EXPECT_FALSE(parse_decimal("1 ", 10));
    EXPECT_FALSE(parse_decimal("1234567890", UINT32_MAX)); // more than 9 digits
    EXPECT_TRUE(valid_host_name("edge-a.example_1"));
    EXPECT_FALSE(valid_host_name(""));
    EXPECT_FALSE(valid_host_name("a:b"));
}

} // namespace
} // namespace vartalap::topology
