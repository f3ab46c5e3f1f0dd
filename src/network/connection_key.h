#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "common/ip_address.h"
#include "packet/packet_info.h"

namespace pw::network {

// Identifies a connection from this host's point of view: both directions of a flow map to the
// same key because "local" is the source of an outbound packet and the destination of an
// inbound one. IPv4-mapped IPv6 addresses are already folded to IPv4 by IpAddress. Protocols
// without ports (ICMP, ...) key on the addresses alone, so that all ICMP between two hosts is
// one connection, as in the original.
struct ConnectionKey {
    std::uint8_t protocol = 0;
    IpAddress local_address;
    std::uint16_t local_port = 0;
    IpAddress remote_address;
    std::uint16_t remote_port = 0;

    [[nodiscard]] static ConnectionKey from_packet(const packet::PacketInfo& packet,
                                                   packet::Direction direction) {
        const bool outbound = direction == packet::Direction::Outbound;
        return ConnectionKey{
            .protocol = packet.protocol,
            .local_address = outbound ? packet.source : packet.destination,
            .local_port = outbound ? packet.source_port : packet.destination_port,
            .remote_address = outbound ? packet.destination : packet.source,
            .remote_port = outbound ? packet.destination_port : packet.source_port,
        };
    }

    friend bool operator==(const ConnectionKey&, const ConnectionKey&) = default;
};

struct ConnectionKeyHash {
    std::size_t operator()(const ConnectionKey& key) const noexcept {
        std::size_t hash = key.local_address.hash();
        hash = hash * 31 + key.remote_address.hash();
        hash = hash * 31 + (std::size_t{key.local_port} << 24U |
                            std::size_t{key.remote_port} << 8U | key.protocol);
        return hash;
    }
};

} // namespace pw::network
