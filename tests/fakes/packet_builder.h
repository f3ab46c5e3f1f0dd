#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/ip_address.h"

namespace pw::testing {

// Builds minimal, well-formed IPv4/IPv6 packets with a TCP, UDP or ICMP header, as NFQUEUE
// would hand them over. Checksums are left zero: the parser does not verify them.
class PacketBuilder {
public:
    PacketBuilder(std::string_view source, std::string_view destination)
        : source_(*IpAddress::parse(source)), destination_(*IpAddress::parse(destination)) {}

    [[nodiscard]] std::vector<std::uint8_t> tcp(std::uint16_t source_port,
                                                std::uint16_t destination_port,
                                                std::uint8_t flags = 0x02 /* SYN */) const {
        std::vector<std::uint8_t> transport(20, 0);
        put16(transport, 0, source_port);
        put16(transport, 2, destination_port);
        transport[12] = 5 << 4;
        transport[13] = flags;
        return wrap(6, transport);
    }

    [[nodiscard]] std::vector<std::uint8_t> udp(std::uint16_t source_port,
                                                std::uint16_t destination_port) const {
        std::vector<std::uint8_t> transport(8, 0);
        put16(transport, 0, source_port);
        put16(transport, 2, destination_port);
        put16(transport, 4, 8);
        return wrap(17, transport);
    }

    // An echo request: ICMP for IPv4, ICMPv6 for IPv6.
    [[nodiscard]] std::vector<std::uint8_t> echo_request() const {
        std::vector<std::uint8_t> transport(8, 0);
        transport[0] = source_.is_v4() ? 8 : 128;
        return wrap(source_.is_v4() ? 1 : 58, transport);
    }

    [[nodiscard]] std::vector<std::uint8_t> icmpv6(std::uint8_t type) const {
        std::vector<std::uint8_t> transport(8, 0);
        transport[0] = type;
        return wrap(58, transport);
    }

private:
    static void put16(std::vector<std::uint8_t>& bytes, std::size_t offset, std::uint16_t value) {
        bytes[offset] = static_cast<std::uint8_t>(value >> 8U);
        bytes[offset + 1] = static_cast<std::uint8_t>(value & 0xFFU);
    }

    [[nodiscard]] std::vector<std::uint8_t> wrap(std::uint8_t protocol,
                                                 const std::vector<std::uint8_t>& transport) const {
        std::vector<std::uint8_t> packet;
        if (source_.is_v4()) {
            packet.assign(20, 0);
            packet[0] = 0x45;
            put16(packet, 2, static_cast<std::uint16_t>(20 + transport.size()));
            packet[8] = 64;
            packet[9] = protocol;
            std::copy(source_.bytes().begin(), source_.bytes().end(), packet.begin() + 12);
            std::copy(destination_.bytes().begin(), destination_.bytes().end(),
                      packet.begin() + 16);
        } else {
            packet.assign(8, 0);
            packet[0] = 0x60;
            put16(packet, 4, static_cast<std::uint16_t>(transport.size()));
            packet[6] = protocol;
            packet[7] = 64;
            const auto source = source_.bytes();
            const auto destination = destination_.bytes();
            packet.insert(packet.end(), source.begin(), source.end());
            packet.insert(packet.end(), destination.begin(), destination.end());
        }
        packet.insert(packet.end(), transport.begin(), transport.end());
        return packet;
    }

    IpAddress source_;
    IpAddress destination_;
};

} // namespace pw::testing
