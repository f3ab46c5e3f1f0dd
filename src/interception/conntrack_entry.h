#pragma once

#include <cstdint>
#include <optional>

#include "common/ip_address.h"
#include "packet/packet_info.h"

namespace pw::interception {

// One connection named from this host's point of view, the way the packet processor keys it
// (network::ConnectionKey has the same fields; interception does not depend on network).
// Protocols without ports (ICMP, ...) have both ports 0: the connection is then every entry of
// that protocol between the two addresses, as in the packet processor.
struct FlowTuple {
    std::uint8_t protocol = 0;
    IpAddress local_address;
    std::uint16_t local_port = 0;
    IpAddress remote_address;
    std::uint16_t remote_port = 0;

    friend bool operator==(const FlowTuple&, const FlowTuple&) = default;
};

// One direction of a conntrack entry as the kernel records it: the addresses and ports of the
// packets that travel that way (ports 0 for protocols without ports).
struct ConntrackTuple {
    IpAddress source;
    std::uint16_t source_port = 0;
    IpAddress destination;
    std::uint16_t destination_port = 0;

    friend bool operator==(const ConntrackTuple&, const ConntrackTuple&) = default;
};

// Packets and bytes of one direction of an entry.
struct ConntrackCounters {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;

    friend bool operator==(const ConntrackCounters&, const ConntrackCounters&) = default;
};

// A conntrack entry, read from the table or reported when it ended.
struct ConntrackEntry {
    std::uint8_t protocol = 0;
    ConntrackTuple original; // as the entry's first packet travelled, before NAT
    ConntrackTuple reply;    // as answers travel, after NAT
    std::uint32_t mark = 0;
    std::uint32_t id = 0; // the kernel's id: tells a reused tuple from the entry that ended
    // Only while accounting is on (net.netfilter.nf_conntrack_acct = 1, per network namespace)
    // and only for entries created since.
    std::optional<ConntrackCounters>
        original_counters{};                           // NOLINT(readability-redundant-member-init):
                                                       // GCC -Wmissing-field-initializers
    std::optional<ConntrackCounters> reply_counters{}; // NOLINT(readability-redundant-member-init):
                                                       // GCC -Wmissing-field-initializers

    // The connection as this host names it when this host opened it: local is the original
    // source (the packet processor sees outbound packets before any NAT of OUTPUT).
    [[nodiscard]] FlowTuple as_outbound() const {
        return FlowTuple{.protocol = protocol,
                         .local_address = original.source,
                         .local_port = original.source_port,
                         .remote_address = original.destination,
                         .remote_port = original.destination_port};
    }

    // The connection as this host names it when the remote side opened it: local is the reply
    // source, i.e. the original destination after a local DNAT or REDIRECT, which is what the
    // INPUT queue saw.
    [[nodiscard]] FlowTuple as_inbound() const {
        return FlowTuple{.protocol = protocol,
                         .local_address = reply.source,
                         .local_port = reply.source_port,
                         .remote_address = reply.destination,
                         .remote_port = reply.destination_port};
    }
};

// Whether connections of `protocol` are told apart by ports: TCP, UDP, UDP-Lite and SCTP, the
// protocols whose ports the packet parser reads (packet::PacketInfo::has_ports).
[[nodiscard]] constexpr bool carries_ports(std::uint8_t protocol) {
    return protocol == packet::protocol::kTcp || protocol == packet::protocol::kUdp ||
           protocol == packet::protocol::kUdpLite || protocol == packet::protocol::kSctp;
}

} // namespace pw::interception
