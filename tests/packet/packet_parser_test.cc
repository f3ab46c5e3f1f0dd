#include "packet/packet_parser.h"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <new>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "packet/packet_info.h"

namespace pw::packet {

// Incremented by the replaced operator new at the end of this file.
std::size_t allocation_count = 0; // NOLINT(*-avoid-non-const-global-variables): test probe

namespace {

// Packets are built byte by byte, in network order, the way they appear on the wire, so that a
// test reads like the RFC header diagram it checks. Checksums are left zero: the parser does
// not look at them (the kernel has already checked them before NFQUEUE).
using Bytes = std::vector<std::uint8_t>;

void put_u16(Bytes& out, std::uint16_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8U));
    out.push_back(static_cast<std::uint8_t>(value & 0xffU));
}

Bytes concat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& part : parts) {
        out.insert(out.end(), part.begin(), part.end());
    }
    return out;
}

using V4 = std::array<std::uint8_t, 4>;
using V6 = std::array<std::uint8_t, 16>;

constexpr V4 kClientV4 = {192, 0, 2, 10};
constexpr V4 kServerV4 = {198, 51, 100, 7};
constexpr V6 kClientV6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a};
constexpr V6 kServerV6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53, 0x07};

struct Ipv4Fields {
    std::uint8_t protocol = protocol::kTcp;
    V4 source = kClientV4;
    V4 destination = kServerV4;
    // A multiple of 4 bytes. The {} keeps GCC 12 from warning about designated initializers
    // that leave it out (-Wmissing-field-initializers).
    Bytes options{};                  // NOLINT(readability-redundant-member-init): see above
    std::uint16_t flags_fragment = 0; // flags (3 bits) and fragment offset (13 bits)
    int total_length = -1;            // -1: header + payload
    int ihl = -1;                     // -1: from the options
};

Bytes ipv4(const Ipv4Fields& fields, const Bytes& payload) {
    const auto header_length = 20 + fields.options.size();
    const int ihl = fields.ihl >= 0 ? fields.ihl : static_cast<int>(header_length / 4);
    const auto total = fields.total_length >= 0 ? static_cast<std::size_t>(fields.total_length)
                                                : header_length + payload.size();
    Bytes out;
    out.push_back(static_cast<std::uint8_t>(0x40 | ihl));
    out.push_back(0); // DSCP/ECN
    put_u16(out, static_cast<std::uint16_t>(total));
    put_u16(out, 0x1234); // identification
    put_u16(out, fields.flags_fragment);
    out.push_back(64); // TTL
    out.push_back(fields.protocol);
    put_u16(out, 0); // checksum
    out.insert(out.end(), fields.source.begin(), fields.source.end());
    out.insert(out.end(), fields.destination.begin(), fields.destination.end());
    out.insert(out.end(), fields.options.begin(), fields.options.end());
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

Bytes ipv4(std::uint8_t protocol, const Bytes& payload) {
    return ipv4(Ipv4Fields{.protocol = protocol}, payload);
}

// `payload` is everything after the fixed header: extension headers and the transport.
Bytes ipv6(std::uint8_t next_header, const Bytes& payload, const V6& source = kClientV6,
           const V6& destination = kServerV6) {
    Bytes out = {0x60, 0, 0, 0}; // version 6, traffic class 0, flow label 0
    put_u16(out, static_cast<std::uint16_t>(payload.size()));
    out.push_back(next_header);
    out.push_back(64); // hop limit
    out.insert(out.end(), source.begin(), source.end());
    out.insert(out.end(), destination.begin(), destination.end());
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

constexpr std::uint8_t kSyn = 0x02;
constexpr std::uint8_t kAck = 0x10;
constexpr std::uint8_t kPsh = 0x08;

Bytes tcp(std::uint16_t source_port, std::uint16_t destination_port, std::uint8_t flags,
          const Bytes& options = {}, const Bytes& data = {}) {
    Bytes out;
    put_u16(out, source_port);
    put_u16(out, destination_port);
    out.insert(out.end(), {0, 0, 0, 1, 0, 0, 0, 0}); // sequence and acknowledgement numbers
    out.push_back(static_cast<std::uint8_t>(((20 + options.size()) / 4) << 4U));
    out.push_back(flags);
    put_u16(out, 65535); // window
    put_u16(out, 0);     // checksum
    put_u16(out, 0);     // urgent pointer
    out.insert(out.end(), options.begin(), options.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

Bytes udp(std::uint16_t source_port, std::uint16_t destination_port, const Bytes& data = {}) {
    Bytes out;
    put_u16(out, source_port);
    put_u16(out, destination_port);
    put_u16(out, static_cast<std::uint16_t>(8 + data.size()));
    put_u16(out, 0); // checksum
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

// Echo request/reply and most others: type, code, checksum, then 4 message-specific bytes.
Bytes icmp(std::uint8_t type, std::uint8_t code) {
    return {type, code, 0, 0, 0, 7, 0, 1};
}

Bytes sctp(std::uint16_t source_port, std::uint16_t destination_port) {
    Bytes out;
    put_u16(out, source_port);
    put_u16(out, destination_port);
    out.insert(out.end(), {0, 0, 0, 0, 0, 0, 0, 0}); // verification tag, checksum
    return out;
}

// Hop-by-hop, routing and destination options share this layout: next header, length in 8-byte
// units not counting the first 8, then options (PadN here).
Bytes extension_header(std::uint8_t next_header, std::uint8_t length_units) {
    Bytes out = {next_header, length_units};
    out.resize((std::size_t{length_units} + 1) * 8, 0);
    out[2] = 1; // PadN option covering the rest
    out[3] = static_cast<std::uint8_t>(out.size() - 4);
    return out;
}

// RFC 4302: the payload length counts 4-byte units, minus 2.
Bytes authentication_header(std::uint8_t next_header) {
    Bytes out = {next_header, 4, 0, 0}; // (4 + 2) * 4 = 24 bytes
    out.resize(24, 0xAA);
    return out;
}

Bytes fragment_header(std::uint8_t next_header, std::uint16_t offset_units, bool more) {
    Bytes out = {next_header, 0};
    put_u16(out, static_cast<std::uint16_t>((offset_units << 3U) | (more ? 1U : 0U)));
    out.insert(out.end(), {0, 0, 0x12, 0x34}); // identification
    return out;
}

constexpr std::uint8_t kHopByHop = 0;
constexpr std::uint8_t kRouting = 43;
constexpr std::uint8_t kFragment = 44;
constexpr std::uint8_t kEsp = 50;
constexpr std::uint8_t kAuthentication = 51;
constexpr std::uint8_t kNoNextHeader = 59;
constexpr std::uint8_t kDestinationOptions = 60;
constexpr std::uint8_t kGre = 47;

IpAddress v4(const V4& bytes) {
    return IpAddress::from_v4_bytes(bytes);
}
IpAddress v6(const V6& bytes) {
    return IpAddress::from_v6_bytes(bytes);
}

Result<PacketInfo> parse(const Bytes& bytes) {
    return parse_packet(bytes);
}

// The error text, or a marker that makes the EXPECT_EQ fail readably when parsing succeeded.
std::string error_of(const Bytes& bytes) {
    const auto info = parse_packet(bytes);
    return info.has_value() ? "<parsed>" : info.error().what;
}

// ---- IPv4 ----

TEST(PacketParser, ParsesIpv4TcpSyn) {
    const auto info = parse(ipv4(protocol::kTcp, tcp(40000, 443, kSyn)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->ip_family, IpFamily::V4);
    EXPECT_EQ(info->protocol, protocol::kTcp);
    EXPECT_EQ(info->source, v4(kClientV4));
    EXPECT_EQ(info->destination, v4(kServerV4));
    EXPECT_EQ(info->source_port, 40000);
    EXPECT_EQ(info->destination_port, 443);
    EXPECT_TRUE(info->tcp_syn_only);
    EXPECT_FALSE(info->is_later_fragment);
    EXPECT_EQ(info->payload_offset, 40);
}

TEST(PacketParser, TreatsSynAckAsNotSynOnly) {
    const auto info = parse(ipv4(protocol::kTcp, tcp(443, 40000, kSyn | kAck)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_FALSE(info->tcp_syn_only);
}

TEST(PacketParser, TreatsDataSegmentAsNotSynOnly) {
    const auto info = parse(ipv4(protocol::kTcp, tcp(40000, 443, kAck | kPsh, {}, {1, 2, 3})));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_FALSE(info->tcp_syn_only);
    EXPECT_EQ(info->payload_offset, 40);
}

TEST(PacketParser, SkipsTcpOptionsToFindThePayload) {
    const Bytes options = {2, 4, 0x05, 0xb4, 1, 1, 4, 2}; // MSS 1460, NOP, NOP, SACK permitted
    const auto info = parse(ipv4(protocol::kTcp, tcp(40000, 443, kSyn, options, {9, 9})));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->payload_offset, 20 + 28);
    EXPECT_TRUE(info->tcp_syn_only);
}

TEST(PacketParser, ParsesIpv4Udp) {
    const auto info = parse(ipv4(protocol::kUdp, udp(5353, 53, {0xab, 0xcd})));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, protocol::kUdp);
    EXPECT_EQ(info->source_port, 5353);
    EXPECT_EQ(info->destination_port, 53);
    EXPECT_FALSE(info->tcp_syn_only);
    EXPECT_EQ(info->payload_offset, 28);
}

TEST(PacketParser, ParsesIpv4UdpLite) {
    const auto info = parse(ipv4(protocol::kUdpLite, udp(1000, 2000)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, protocol::kUdpLite);
    EXPECT_EQ(info->source_port, 1000);
    EXPECT_EQ(info->destination_port, 2000);
    EXPECT_EQ(info->payload_offset, 28);
}

TEST(PacketParser, ParsesIpv4Sctp) {
    const auto info = parse(ipv4(protocol::kSctp, sctp(3868, 3869)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, protocol::kSctp);
    EXPECT_EQ(info->source_port, 3868);
    EXPECT_EQ(info->destination_port, 3869);
    EXPECT_EQ(info->payload_offset, 32);
}

TEST(PacketParser, ParsesIpv4IcmpEcho) {
    const auto info = parse(ipv4(protocol::kIcmp, icmp(8, 0)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, protocol::kIcmp);
    EXPECT_TRUE(info->is_icmp());
    EXPECT_EQ(info->icmp_type, 8);
    EXPECT_EQ(info->icmp_code, 0);
    EXPECT_EQ(info->source_port, 0);
    EXPECT_EQ(info->destination_port, 0);
    EXPECT_EQ(info->payload_offset, 24);
}

TEST(PacketParser, ParsesIcmpWithOnlyTypeCodeAndChecksum) {
    const auto info = parse(ipv4(protocol::kIcmp, {3, 13, 0, 0}));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->icmp_type, 3);
    EXPECT_EQ(info->icmp_code, 13);
}

TEST(PacketParser, GivesOtherProtocolsNoPorts) {
    const auto info = parse(ipv4(kGre, {0, 0, 0x08, 0x00, 1, 2, 3, 4}));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, kGre);
    EXPECT_FALSE(info->has_ports());
    EXPECT_EQ(info->source_port, 0);
    EXPECT_EQ(info->destination_port, 0);
    EXPECT_EQ(info->payload_offset, 20);
}

TEST(PacketParser, SkipsIpv4Options) {
    // Record Route (7), length 7, pointer 4, one empty slot, then End of Options padding.
    const Bytes options = {7, 7, 4, 0, 0, 0, 0, 0};
    const auto info =
        parse(ipv4(Ipv4Fields{.protocol = protocol::kUdp, .options = options}, udp(68, 67)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->source_port, 68);
    EXPECT_EQ(info->destination_port, 67);
    EXPECT_EQ(info->payload_offset, 28 + 8);
}

TEST(PacketParser, SkipsLongestIpv4Options) {
    const Bytes options(40, 1); // 40 bytes of NOP: IHL 15
    const auto info =
        parse(ipv4(Ipv4Fields{.protocol = protocol::kTcp, .options = options}, tcp(1, 2, kSyn)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->source_port, 1);
    EXPECT_EQ(info->payload_offset, 60 + 20);
}

TEST(PacketParser, MarksIpv4LaterFragmentWithoutPorts) {
    // Offset 185 * 8 = 1480 bytes; the payload is the middle of some UDP datagram.
    const auto info = parse(ipv4(Ipv4Fields{.protocol = protocol::kUdp, .flags_fragment = 185},
                                 {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_TRUE(info->is_later_fragment);
    EXPECT_EQ(info->protocol, protocol::kUdp);
    EXPECT_EQ(info->source_port, 0);
    EXPECT_EQ(info->destination_port, 0);
    EXPECT_EQ(info->payload_offset, 20);
}

TEST(PacketParser, AcceptsLaterFragmentTooShortForATransportHeader) {
    const auto info =
        parse(ipv4(Ipv4Fields{.protocol = protocol::kTcp, .flags_fragment = 0x2000 | 3}, {1}));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_TRUE(info->is_later_fragment);
    EXPECT_EQ(info->protocol, protocol::kTcp);
}

TEST(PacketParser, ParsesFirstIpv4FragmentLikeAWholePacket) {
    // More Fragments set, offset 0: this fragment carries the UDP header.
    const auto info = parse(ipv4(Ipv4Fields{.protocol = protocol::kUdp, .flags_fragment = 0x2000},
                                 udp(5000, 5001, Bytes(100, 0))));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_FALSE(info->is_later_fragment);
    EXPECT_EQ(info->source_port, 5000);
    EXPECT_EQ(info->destination_port, 5001);
}

TEST(PacketParser, IgnoresDontFragmentFlag) {
    const auto info = parse(
        ipv4(Ipv4Fields{.protocol = protocol::kTcp, .flags_fragment = 0x4000}, tcp(1, 2, kSyn)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_FALSE(info->is_later_fragment);
    EXPECT_EQ(info->destination_port, 2);
}

TEST(PacketParser, AcceptsPacketCutAfterTheHeaders) {
    // NFQUEUE copied 40 bytes of a 1500-byte packet: the headers are all we need.
    const auto info = parse(
        ipv4(Ipv4Fields{.protocol = protocol::kTcp, .total_length = 1500}, tcp(1, 443, kAck)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->destination_port, 443);
    EXPECT_EQ(info->payload_offset, 40);
}

TEST(PacketParser, IgnoresBytesPastTheIpv4TotalLength) {
    // Total length says "header only"; what follows is not part of the packet.
    const auto info =
        parse(ipv4(Ipv4Fields{.protocol = protocol::kUdp, .total_length = 20}, udp(1, 2)));
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "UDP header truncated: 0 of 8 bytes");
}

TEST(PacketParser, RejectsIpv4HeaderShorterThanTwentyBytes) {
    const Bytes packet = ipv4(protocol::kTcp, tcp(1, 2, kSyn));
    const auto info = parse(Bytes(packet.begin(), packet.begin() + 12));
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "IPv4 header truncated: 12 of 20 bytes");
}

TEST(PacketParser, RejectsIhlBelowFive) {
    for (const int ihl : {0, 1, 4}) {
        const auto info =
            parse(ipv4(Ipv4Fields{.protocol = protocol::kTcp, .ihl = ihl}, tcp(1, 2, kSyn)));
        ASSERT_FALSE(info.has_value()) << "IHL " << ihl;
        EXPECT_EQ(info.error().what,
                  "bad IPv4 header length " + std::to_string(ihl) + " (minimum 5)");
    }
}

TEST(PacketParser, RejectsIpv4OptionsCutShort) {
    // IHL 15 promises 60 bytes of header; only 20 + 4 arrive.
    const auto info = parse(ipv4(Ipv4Fields{.protocol = protocol::kTcp, .ihl = 15}, {1, 1, 1, 1}));
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "IPv4 header with options truncated: 24 of 60 bytes");
}

TEST(PacketParser, RejectsTotalLengthShorterThanTheHeader) {
    const auto info =
        parse(ipv4(Ipv4Fields{.protocol = protocol::kTcp, .total_length = 19}, tcp(1, 2, kSyn)));
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "IPv4 total length 19 shorter than its header (20 bytes)");
}

TEST(PacketParser, RejectsTcpHeaderCutShort) {
    Bytes packet = ipv4(protocol::kTcp, tcp(1, 2, kSyn));
    packet.resize(20 + 10);
    const auto info = parse(packet);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "TCP header truncated: 10 of 20 bytes");
}

TEST(PacketParser, RejectsTcpOptionsCutShort) {
    Bytes packet = ipv4(protocol::kTcp, tcp(1, 2, kSyn, Bytes(12, 1)));
    packet.resize(20 + 24);
    const auto info = parse(packet);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "TCP header truncated: 24 of 32 bytes");
}

TEST(PacketParser, RejectsTcpDataOffsetBelowFive) {
    for (const int data_offset : {0, 1, 4}) {
        Bytes segment = tcp(1, 2, kSyn);
        segment[12] = static_cast<std::uint8_t>(data_offset << 4);
        const auto info = parse(ipv4(protocol::kTcp, segment));
        ASSERT_FALSE(info.has_value()) << "data offset " << data_offset;
        EXPECT_EQ(info.error().what,
                  "bad TCP data offset " + std::to_string(data_offset) + " (minimum 5)");
    }
}

TEST(PacketParser, RejectsUdpSctpAndIcmpHeadersCutShort) {
    EXPECT_EQ(error_of(ipv4(protocol::kUdp, {0, 53, 0, 53, 0})),
              "UDP header truncated: 5 of 8 bytes");
    EXPECT_EQ(error_of(ipv4(protocol::kUdpLite, {0, 53})),
              "UDP-Lite header truncated: 2 of 8 bytes");
    EXPECT_EQ(error_of(ipv4(protocol::kSctp, {0, 1, 0, 2, 0, 0, 0, 0})),
              "SCTP header truncated: 8 of 12 bytes");
    EXPECT_EQ(error_of(ipv4(protocol::kIcmp, {8, 0, 0})), "ICMP header truncated: 3 of 4 bytes");
    EXPECT_EQ(error_of(ipv6(protocol::kIcmpV6, {128})), "ICMPv6 header truncated: 1 of 4 bytes");
}

// ---- IP version ----

TEST(PacketParser, RejectsEmptyPacket) {
    const auto info = parse({});
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "empty packet");
}

TEST(PacketParser, RejectsUnknownIpVersion) {
    Bytes packet = ipv4(protocol::kTcp, tcp(1, 2, kSyn));
    packet[0] = 0x75;
    const auto info = parse(packet);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "unknown IP version 7");
}

// ---- IPv6 ----

TEST(PacketParser, ParsesIpv6Tcp) {
    const auto info = parse(ipv6(protocol::kTcp, tcp(50000, 22, kSyn)));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->ip_family, IpFamily::V6);
    EXPECT_EQ(info->protocol, protocol::kTcp);
    EXPECT_EQ(info->source, v6(kClientV6));
    EXPECT_EQ(info->destination, v6(kServerV6));
    EXPECT_EQ(info->source.to_string(), "2001:db8::a");
    EXPECT_EQ(info->source_port, 50000);
    EXPECT_EQ(info->destination_port, 22);
    EXPECT_TRUE(info->tcp_syn_only);
    EXPECT_EQ(info->payload_offset, 60);
}

TEST(PacketParser, ParsesIpv6Udp) {
    const auto info = parse(ipv6(protocol::kUdp, udp(546, 547, {1, 2, 3})));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, protocol::kUdp);
    EXPECT_EQ(info->source_port, 546);
    EXPECT_EQ(info->destination_port, 547);
    EXPECT_EQ(info->payload_offset, 48);
}

TEST(PacketParser, ParsesIpv6Icmpv6) {
    const auto info = parse(ipv6(protocol::kIcmpV6, icmp(135, 0))); // neighbour solicitation
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, protocol::kIcmpV6);
    EXPECT_TRUE(info->is_icmp());
    EXPECT_EQ(info->icmp_type, 135);
    EXPECT_EQ(info->icmp_code, 0);
    EXPECT_FALSE(info->has_ports());
    EXPECT_EQ(info->payload_offset, 44);
}

TEST(PacketParser, WalksHopByHopDestinationOptionsAndFragmentHeaders) {
    const Bytes chain = concat({extension_header(kDestinationOptions, 0), // 8 bytes
                                extension_header(kFragment, 1),           // 16 bytes
                                fragment_header(protocol::kUdp, 0, true), // 8 bytes, first
                                udp(4000, 4001, {7})});
    const auto info = parse(ipv6(kHopByHop, chain));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, protocol::kUdp);
    EXPECT_FALSE(info->is_later_fragment);
    EXPECT_EQ(info->source_port, 4000);
    EXPECT_EQ(info->destination_port, 4001);
    EXPECT_EQ(info->payload_offset, 40 + 8 + 16 + 8 + 8);
}

TEST(PacketParser, WalksRoutingAndAuthenticationHeaders) {
    const Bytes chain = concat({extension_header(kAuthentication, 2),  // 24 bytes
                                authentication_header(protocol::kTcp), // 24 bytes
                                tcp(1234, 80, kSyn)});
    const auto info = parse(ipv6(kRouting, chain));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, protocol::kTcp);
    EXPECT_EQ(info->destination_port, 80);
    EXPECT_EQ(info->payload_offset, 40 + 24 + 24 + 20);
}

TEST(PacketParser, MarksIpv6LaterFragmentWithoutPorts) {
    const Bytes chain = concat({fragment_header(protocol::kUdp, 181, false), Bytes(16, 0xee)});
    const auto info = parse(ipv6(kFragment, chain));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_TRUE(info->is_later_fragment);
    EXPECT_EQ(info->protocol, protocol::kUdp);
    EXPECT_EQ(info->source_port, 0);
    EXPECT_EQ(info->destination_port, 0);
    EXPECT_EQ(info->payload_offset, 48);
}

TEST(PacketParser, StopsAtEspWithoutPorts) {
    const Bytes chain = concat({extension_header(kEsp, 0), Bytes(24, 0x5a)});
    const auto info = parse(ipv6(kHopByHop, chain));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, kEsp);
    EXPECT_FALSE(info->has_ports());
    EXPECT_EQ(info->source_port, 0);
    EXPECT_EQ(info->payload_offset, 48);
}

TEST(PacketParser, StopsAtNoNextHeader) {
    const auto info = parse(ipv6(kNoNextHeader, {}));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->protocol, kNoNextHeader);
    EXPECT_EQ(info->payload_offset, 40);
}

TEST(PacketParser, AcceptsSixteenExtensionHeaders) {
    Bytes chain;
    for (int i = 0; i < 15; ++i) {
        chain = concat({chain, extension_header(kDestinationOptions, 0)});
    }
    chain = concat({chain, extension_header(protocol::kUdp, 0), udp(1, 2)});
    const auto info = parse(ipv6(kDestinationOptions, chain));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->destination_port, 2);
}

TEST(PacketParser, RejectsMoreThanSixteenExtensionHeaders) {
    Bytes chain;
    for (int i = 0; i < 16; ++i) {
        chain = concat({chain, extension_header(kDestinationOptions, 0)});
    }
    chain = concat({chain, extension_header(protocol::kUdp, 0), udp(1, 2)});
    const auto info = parse(ipv6(kDestinationOptions, chain));
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "IPv6 extension header chain longer than 16 headers");
}

TEST(PacketParser, RejectsExtensionHeaderCutShort) {
    Bytes packet = ipv6(kHopByHop, concat({extension_header(protocol::kTcp, 1), tcp(1, 2, kSyn)}));
    packet.resize(40 + 10);
    const auto info = parse(packet);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "IPv6 extension header 0 truncated: 10 of 16 bytes");
}

TEST(PacketParser, RejectsIpv6HeaderCutShort) {
    Bytes packet = ipv6(protocol::kTcp, tcp(1, 2, kSyn));
    packet.resize(39);
    const auto info = parse(packet);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "IPv6 header truncated: 39 of 40 bytes");
}

TEST(PacketParser, IgnoresBytesPastTheIpv6PayloadLength) {
    Bytes packet = ipv6(protocol::kTcp, tcp(1, 2, kSyn));
    packet[4] = 0;
    packet[5] = 10; // payload length 10: half a TCP header, whatever follows
    const auto info = parse(packet);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().what, "TCP header truncated: 10 of 20 bytes");
}

TEST(PacketParser, ReadsPastZeroPayloadLengthOfAJumbogram) {
    Bytes packet = ipv6(protocol::kUdp, udp(1, 2));
    packet[4] = 0;
    packet[5] = 0;
    const auto info = parse(packet);
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->destination_port, 2);
}

TEST(PacketParser, FoldsV4MappedAddressesInAnIpv6HeaderToIpv4) {
    const V6 mapped_client = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10};
    const V6 mapped_server = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};
    const auto info =
        parse(ipv6(protocol::kTcp, tcp(40000, 443, kSyn), mapped_client, mapped_server));
    ASSERT_TRUE(info.has_value()) << info.error().what;
    EXPECT_EQ(info->ip_family, IpFamily::V6); // the packet is still IPv6 on the wire
    EXPECT_TRUE(info->source.is_v4());
    EXPECT_EQ(info->source, v4(kClientV4));
    EXPECT_EQ(info->destination, v4(kServerV4));
    EXPECT_EQ(info->destination.to_string(), "198.51.100.7");
}

// ---- Robustness ----

struct PrefixCase {
    const char* name;
    Bytes packet;
    std::size_t headers_length;
};

Bytes first_bytes(const Bytes& packet, std::size_t length) {
    return {packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(length)};
}

void expect_short_prefixes_fail(const PrefixCase& test_case) {
    for (std::size_t length = 0; length < test_case.headers_length; ++length) {
        EXPECT_FALSE(parse(first_bytes(test_case.packet, length)).has_value())
            << test_case.name << " cut to " << length << " bytes";
    }
}

// Cutting the payload (NFQUEUE's copy range) must not matter.
void expect_long_prefixes_parse(const PrefixCase& test_case) {
    for (std::size_t length = test_case.headers_length; length <= test_case.packet.size();
         ++length) {
        const auto info = parse(first_bytes(test_case.packet, length));
        ASSERT_TRUE(info.has_value()) << test_case.name << " cut to " << length << " bytes";
        EXPECT_EQ(info->payload_offset, test_case.headers_length) << test_case.name;
    }
}

// Every prefix that stops inside the headers must be an error, and none may crash or read out
// of bounds (run the asan preset to have that checked, too).
TEST(PacketParser, RejectsEveryPrefixShorterThanTheHeaders) {
    const std::vector<PrefixCase> cases = {
        {.name = "IPv4 TCP",
         .packet = ipv4(protocol::kTcp, tcp(1, 2, kSyn, {1, 1, 1, 1}, {9, 9, 9})),
         .headers_length = 44},
        {.name = "IPv4 options UDP",
         .packet =
             ipv4(Ipv4Fields{.protocol = protocol::kUdp, .options = {1, 1, 1, 0}}, udp(1, 2, {9})),
         .headers_length = 32},
        {.name = "IPv4 ICMP", .packet = ipv4(protocol::kIcmp, icmp(8, 0)), .headers_length = 24},
        {.name = "IPv4 SCTP", .packet = ipv4(protocol::kSctp, sctp(1, 2)), .headers_length = 32},
        {.name = "IPv6 TCP",
         .packet = ipv6(protocol::kTcp, tcp(1, 2, kSyn, {}, {9})),
         .headers_length = 60},
        {.name = "IPv6 ICMPv6",
         .packet = ipv6(protocol::kIcmpV6, icmp(128, 0)),
         .headers_length = 44},
        {.name = "IPv6 chain",
         .packet = ipv6(kHopByHop, concat({extension_header(kDestinationOptions, 1),
                                           extension_header(kFragment, 0),
                                           fragment_header(kAuthentication, 0, true),
                                           authentication_header(protocol::kUdp), udp(1, 2, {9})})),
         .headers_length = 40 + 16 + 8 + 8 + 24 + 8},
    };
    for (const PrefixCase& test_case : cases) {
        ASSERT_TRUE(parse(test_case.packet).has_value()) << test_case.name;
        expect_short_prefixes_fail(test_case);
        expect_long_prefixes_parse(test_case);
    }
}

// What a parse result promises whatever the input (the fuzzer checks the same).
void expect_consistent(const Bytes& packet, const Result<PacketInfo>& info) {
    if (!info.has_value()) {
        EXPECT_FALSE(info.error().what.empty());
        return;
    }
    EXPECT_LE(info->payload_offset, packet.size());
    if (!info->has_ports()) {
        EXPECT_EQ(info->source_port, 0);
        EXPECT_EQ(info->destination_port, 0);
    }
}

// A cheap, deterministic cousin of the fuzzer: arbitrary bytes behind a valid first nibble.
TEST(PacketParser, SurvivesArbitraryBytes) {
    std::uint32_t state = 12345;
    auto next_byte = [&state] {
        state = (state * 1103515245U) + 12345U;
        return static_cast<std::uint8_t>(state >> 16U);
    };
    for (int round = 0; round < 2000; ++round) {
        Bytes packet(static_cast<std::size_t>(next_byte()) % 128);
        for (std::uint8_t& byte : packet) {
            byte = next_byte();
        }
        if (!packet.empty()) {
            packet[0] =
                static_cast<std::uint8_t>((round % 2 == 0 ? 0x40 : 0x60) | (packet[0] & 0x0fU));
        }
        expect_consistent(packet, parse(packet));
    }
}

// parse_packet() runs for every queued packet, so a good packet must not cost an allocation.
TEST(PacketParser, DoesNotAllocateOnSuccess) {
    const std::vector<Bytes> packets = {
        ipv4(protocol::kTcp, tcp(40000, 443, kSyn, {2, 4, 5, 180})),
        ipv4(Ipv4Fields{.protocol = protocol::kUdp, .options = {1, 1, 1, 0}}, udp(1, 53)),
        ipv4(Ipv4Fields{.protocol = protocol::kUdp, .flags_fragment = 100}, {1, 2, 3, 4}),
        ipv6(kHopByHop,
             concat({extension_header(kDestinationOptions, 1), extension_header(kAuthentication, 0),
                     authentication_header(protocol::kIcmpV6), icmp(128, 0)})),
        ipv6(kFragment, concat({fragment_header(protocol::kTcp, 10, false), {1, 2}})),
    };
    const std::size_t probe_before = allocation_count;
    const std::string probe(packets.size() * 100, 'x'); // too long for the small-string buffer
    ASSERT_GT(allocation_count, probe_before) << "the counting operator new is not in effect";
    EXPECT_EQ(probe.size(), packets.size() * 100);

    const std::size_t before = allocation_count;
    for (const Bytes& packet : packets) {
        EXPECT_TRUE(parse_packet(packet).has_value());
    }
    EXPECT_EQ(allocation_count, before);
}

} // namespace
} // namespace pw::packet

// Counts allocations for DoesNotAllocateOnSuccess. Replacing the global operator new is the
// only way to see allocations made inside the parser; it applies to this test binary only.
// The analyzer does not know that these functions are the allocator, hence the NOLINTs; GCC's
// -O2 mismatched-new-delete check does not either, hence the pragma.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
    ++pw::packet::allocation_count;
    if (void* memory = std::malloc(size == 0 ? 1 : size)) {
        return memory;
    }
    throw std::bad_alloc();
}

void operator delete(void* memory) noexcept {
    std::free(memory); // NOLINT(clang-analyzer-cplusplus.NewDelete)
}

void operator delete(void* memory, std::size_t /*size*/) noexcept {
    std::free(memory); // NOLINT(clang-analyzer-cplusplus.NewDelete)
}
#pragma GCC diagnostic pop
