#pragma once

#include <cstdint>

#include "common/ip_address.h"

namespace pw::packet {

// IANA protocol numbers that the firewall treats specially.
namespace protocol {
inline constexpr std::uint8_t kIcmp = 1;
inline constexpr std::uint8_t kIgmp = 2;
inline constexpr std::uint8_t kTcp = 6;
inline constexpr std::uint8_t kUdp = 17;
inline constexpr std::uint8_t kIcmpV6 = 58;
inline constexpr std::uint8_t kSctp = 132;
inline constexpr std::uint8_t kUdpLite = 136;
} // namespace protocol

// Which way a packet travels relative to this host; known from the queue it arrived on.
enum class Direction : std::uint8_t { Outbound, Inbound };

// What the firewall needs from one IP packet's headers. Plain value; the payload is not copied.
struct PacketInfo {
    IpFamily ip_family = IpFamily::V4;
    std::uint8_t protocol = 0; // transport protocol after IPv6 extension headers
    IpAddress source;
    IpAddress destination;
    // TCP, UDP, UDP-Lite and SCTP carry ports; for all other protocols both are 0.
    std::uint16_t source_port = 0;
    std::uint16_t destination_port = 0;
    // ICMP and ICMPv6 only.
    std::uint8_t icmp_type = 0;
    std::uint8_t icmp_code = 0;
    // TCP only: the SYN flag without ACK, i.e. the first packet of a new connection.
    bool tcp_syn_only = false;
    // Offset of the transport payload in the packet bytes (after the L4 header); for DNS later.
    std::uint16_t payload_offset = 0;
    // True for IPv4 fragments other than the first one: they carry no transport header.
    bool is_later_fragment = false;

    [[nodiscard]] bool has_ports() const {
        return protocol == protocol::kTcp || protocol == protocol::kUdp ||
               protocol == protocol::kUdpLite || protocol == protocol::kSctp;
    }
    [[nodiscard]] bool is_icmp() const {
        return protocol == protocol::kIcmp || protocol == protocol::kIcmpV6;
    }
};

} // namespace pw::packet
