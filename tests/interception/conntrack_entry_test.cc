#include "interception/conntrack_entry.h"

#include <string_view>

#include <gtest/gtest.h>

#include "common/ip_address.h"

namespace pw::interception {
namespace {

IpAddress ip(std::string_view text) {
    return *IpAddress::parse(text);
}

// An inbound TCP connection to a local port that a REDIRECT moved from 80 to 8080.
ConntrackEntry redirected_inbound() {
    return ConntrackEntry{
        .protocol = 6,
        .original = {.source = ip("192.0.2.9"),
                     .source_port = 50000,
                     .destination = ip("192.0.2.1"),
                     .destination_port = 80},
        .reply = {.source = ip("192.0.2.1"),
                  .source_port = 8080,
                  .destination = ip("192.0.2.9"),
                  .destination_port = 50000},
        .mark = 1710,
        .id = 1,
    };
}

TEST(ConntrackEntryTest, AsOutboundNamesTheOriginalSourceLocal) {
    const FlowTuple flow = redirected_inbound().as_outbound();
    EXPECT_EQ(flow, (FlowTuple{.protocol = 6,
                               .local_address = ip("192.0.2.9"),
                               .local_port = 50000,
                               .remote_address = ip("192.0.2.1"),
                               .remote_port = 80}));
}

TEST(ConntrackEntryTest, AsInboundNamesTheLocalEndAsTheInputQueueSawIt) {
    const FlowTuple flow = redirected_inbound().as_inbound();
    EXPECT_EQ(flow, (FlowTuple{.protocol = 6,
                               .local_address = ip("192.0.2.1"),
                               .local_port = 8080,
                               .remote_address = ip("192.0.2.9"),
                               .remote_port = 50000}));
}

TEST(ConntrackEntryTest, OnlyTheProtocolsThePacketParserReadsPortsOfCarryPorts) {
    EXPECT_TRUE(carries_ports(6));   // TCP
    EXPECT_TRUE(carries_ports(17));  // UDP
    EXPECT_TRUE(carries_ports(132)); // SCTP
    EXPECT_TRUE(carries_ports(136)); // UDP-Lite
    EXPECT_FALSE(carries_ports(1));  // ICMP
    EXPECT_FALSE(carries_ports(58)); // ICMPv6
    EXPECT_FALSE(carries_ports(33)); // DCCP: conntrack has ports, the packet parser does not
    EXPECT_FALSE(carries_ports(47)); // GRE
}

} // namespace
} // namespace pw::interception
