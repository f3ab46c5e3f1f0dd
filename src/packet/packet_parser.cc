#include "packet/packet_parser.h"

#include <algorithm>
#include <cstddef>
#include <expected>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

namespace pw::packet {
namespace {

constexpr std::size_t kIpv4MinHeaderLength = 20;
constexpr std::size_t kIpv6HeaderLength = 40;
constexpr std::size_t kTcpMinHeaderLength = 20;
constexpr std::size_t kUdpHeaderLength = 8; // also UDP-Lite
constexpr std::size_t kSctpCommonHeaderLength = 12;
// Type, code and checksum. The next 4 bytes depend on the message type (echo id/sequence,
// unused, MTU ...), so they count as payload here.
constexpr std::size_t kIcmpHeaderLength = 4;

constexpr std::uint8_t kTcpFlagSyn = 0x02;
constexpr std::uint8_t kTcpFlagAck = 0x10;
constexpr std::uint16_t kIpv4FragmentOffsetMask = 0x1fff;

// IPv6 "next header" values that are extension headers rather than transport protocols.
namespace ipv6_header {
constexpr std::uint8_t kHopByHop = 0;
constexpr std::uint8_t kRouting = 43;
constexpr std::uint8_t kFragment = 44;
constexpr std::uint8_t kEsp = 50;
constexpr std::uint8_t kAuthentication = 51;
constexpr std::uint8_t kNoNextHeader = 59;
constexpr std::uint8_t kDestinationOptions = 60;
} // namespace ipv6_header

constexpr std::size_t kIpv6FragmentHeaderLength = 8;
// A real packet has a handful of extension headers at most; the bound stops a crafted chain from
// making us walk a 64 KiB packet in 8-byte steps.
constexpr int kMaxIpv6ExtensionHeaders = 16;

// The largest payload_offset the walk can produce: the biggest IPv6 extension header is
// (255 + 1) * 8 bytes, the biggest TCP header 60 bytes. This is why the narrowing to
// PacketInfo::payload_offset below cannot lose bits, however long the packet bytes are.
constexpr std::size_t kMaxPayloadOffset =
    kIpv6HeaderLength + (static_cast<std::size_t>(kMaxIpv6ExtensionHeaders) * 256 * 8) + 60;
static_assert(kMaxPayloadOffset <= std::numeric_limits<std::uint16_t>::max());

using Bytes = std::span<const std::uint8_t>;

// Callers have checked that offset + 1 is inside `bytes`.
std::uint16_t read_u16(Bytes bytes, std::size_t offset) {
    return static_cast<std::uint16_t>((bytes[offset] << 8U) | bytes[offset + 1]);
}

std::unexpected<Error> truncated(std::string_view what, std::size_t have, std::size_t need) {
    return fail(std::string(what) + " truncated: " + std::to_string(have) + " of " +
                std::to_string(need) + " bytes");
}

// Built only on failure: parsing a good packet does not allocate.
std::unexpected<Error> extension_truncated(std::uint8_t type, std::size_t have, std::size_t need) {
    return truncated("IPv6 extension header " + std::to_string(type), have, need);
}

// For error messages about the transport headers this parser reads.
std::string_view header_name(std::uint8_t transport) {
    switch (transport) {
        case protocol::kTcp:
            return "TCP header";
        case protocol::kUdp:
            return "UDP header";
        case protocol::kUdpLite:
            return "UDP-Lite header";
        case protocol::kSctp:
            return "SCTP header";
        case protocol::kIcmp:
            return "ICMP header";
        case protocol::kIcmpV6:
            return "ICMPv6 header";
        default:
            return "transport header";
    }
}

void set_payload_offset(PacketInfo& info, std::size_t offset) {
    info.payload_offset = static_cast<std::uint16_t>(offset);
}

// Reads the transport header that starts at `offset` (<= packet.size()) for info.protocol.
// `packet` ends where the IP packet ends, or earlier where NFQUEUE cut it.
Status parse_transport(Bytes packet, std::size_t offset, PacketInfo& info) {
    const std::size_t available = packet.size() - offset;
    switch (info.protocol) {
        case protocol::kTcp: {
            if (available < kTcpMinHeaderLength) {
                return truncated(header_name(info.protocol), available, kTcpMinHeaderLength);
            }
            const std::size_t data_offset = packet[offset + 12] >> 4U;
            const std::size_t header_length = data_offset * 4;
            if (header_length < kTcpMinHeaderLength) {
                return fail("bad TCP data offset " + std::to_string(data_offset) + " (minimum 5)");
            }
            if (available < header_length) {
                return truncated(header_name(info.protocol), available, header_length);
            }
            const std::uint8_t flags = packet[offset + 13];
            info.source_port = read_u16(packet, offset);
            info.destination_port = read_u16(packet, offset + 2);
            info.tcp_syn_only = (flags & kTcpFlagSyn) != 0 && (flags & kTcpFlagAck) == 0;
            set_payload_offset(info, offset + header_length);
            return {};
        }
        case protocol::kUdp:
        case protocol::kUdpLite:
        case protocol::kSctp: {
            const bool is_sctp = info.protocol == protocol::kSctp;
            const std::size_t header_length = is_sctp ? kSctpCommonHeaderLength : kUdpHeaderLength;
            if (available < header_length) {
                return truncated(header_name(info.protocol), available, header_length);
            }
            info.source_port = read_u16(packet, offset);
            info.destination_port = read_u16(packet, offset + 2);
            set_payload_offset(info, offset + header_length);
            return {};
        }
        case protocol::kIcmp:
        case protocol::kIcmpV6: {
            if (available < kIcmpHeaderLength) {
                return truncated(header_name(info.protocol), available, kIcmpHeaderLength);
            }
            info.icmp_type = packet[offset];
            info.icmp_code = packet[offset + 1];
            set_payload_offset(info, offset + kIcmpHeaderLength);
            return {};
        }
        default:
            // No header we need to understand: the "payload" starts at the transport header.
            set_payload_offset(info, offset);
            return {};
    }
}

Result<PacketInfo> parse_ipv4(Bytes bytes) {
    if (bytes.size() < kIpv4MinHeaderLength) {
        return truncated("IPv4 header", bytes.size(), kIpv4MinHeaderLength);
    }
    const std::size_t ihl = bytes[0] & 0x0fU;
    const std::size_t header_length = ihl * 4;
    if (header_length < kIpv4MinHeaderLength) {
        return fail("bad IPv4 header length " + std::to_string(ihl) + " (minimum 5)");
    }
    if (bytes.size() < header_length) {
        return truncated("IPv4 header with options", bytes.size(), header_length);
    }
    const std::size_t total_length = read_u16(bytes, 2);
    if (total_length < header_length) {
        return fail("IPv4 total length " + std::to_string(total_length) +
                    " shorter than its header (" + std::to_string(header_length) + " bytes)");
    }
    // Bytes past the total length are not part of this packet; fewer bytes are normal (the
    // NFQUEUE copy range cuts the payload).
    const Bytes packet = bytes.first(std::min(bytes.size(), total_length));

    PacketInfo info;
    info.ip_family = IpFamily::V4;
    info.protocol = bytes[9];
    info.source = IpAddress::from_v4_bytes(packet.subspan<12, 4>());
    info.destination = IpAddress::from_v4_bytes(packet.subspan<16, 4>());

    // Only the first fragment carries the transport header; later ones are judged by the
    // conntrack entry that the first one created.
    if ((read_u16(bytes, 6) & kIpv4FragmentOffsetMask) != 0) {
        info.is_later_fragment = true;
        set_payload_offset(info, header_length);
        return info;
    }
    if (Status transport = parse_transport(packet, header_length, info); !transport) {
        return std::unexpected(std::move(transport.error()));
    }
    return info;
}

// Walks the IPv6 extension headers after the fixed header and parses the transport header behind
// them. `next` is the Next Header value of the fixed header.
Status parse_ipv6_chain(Bytes packet, std::uint8_t next, PacketInfo& info) {
    std::size_t offset = kIpv6HeaderLength;
    for (int walked = 0;; ++walked) {
        const std::size_t available = packet.size() - offset;
        switch (next) {
            case ipv6_header::kHopByHop:
            case ipv6_header::kRouting:
            case ipv6_header::kDestinationOptions:
            case ipv6_header::kAuthentication:
            case ipv6_header::kFragment:
                break;
            case ipv6_header::kEsp:
            case ipv6_header::kNoNextHeader:
                // Encrypted, or nothing at all: there is no transport header to read.
                info.protocol = next;
                set_payload_offset(info, offset);
                return {};
            default:
                info.protocol = next;
                return parse_transport(packet, offset, info);
        }
        if (walked == kMaxIpv6ExtensionHeaders) {
            return fail("IPv6 extension header chain longer than " +
                        std::to_string(kMaxIpv6ExtensionHeaders) + " headers");
        }
        if (available < 2) {
            return extension_truncated(next, available, 2);
        }
        std::size_t length = 0;
        if (next == ipv6_header::kFragment) {
            length = kIpv6FragmentHeaderLength; // its length byte is reserved
        } else if (next == ipv6_header::kAuthentication) {
            length = (std::size_t{packet[offset + 1]} + 2) * 4; // RFC 4302: 4-byte units
        } else {
            length = (std::size_t{packet[offset + 1]} + 1) * 8; // RFC 8200: 8-byte units
        }
        if (available < length) {
            return extension_truncated(next, available, length);
        }
        const std::uint8_t following = packet[offset];
        if (next == ipv6_header::kFragment &&
            (read_u16(packet, offset + 2) >> 3U) != 0) { // offset in 8-byte units, non-zero
            info.protocol = following;
            info.is_later_fragment = true;
            set_payload_offset(info, offset + length);
            return {};
        }
        offset += length;
        next = following;
    }
}

Result<PacketInfo> parse_ipv6(Bytes bytes) {
    if (bytes.size() < kIpv6HeaderLength) {
        return truncated("IPv6 header", bytes.size(), kIpv6HeaderLength);
    }
    // Payload length 0 with more bytes is a jumbogram (RFC 2675), whose real length is in a
    // hop-by-hop option; only a non-zero length tells where the packet ends.
    const std::size_t payload_length = read_u16(bytes, 4);
    const std::size_t total_length = kIpv6HeaderLength + payload_length;
    const Bytes packet =
        payload_length == 0 ? bytes : bytes.first(std::min(bytes.size(), total_length));

    PacketInfo info;
    info.ip_family = IpFamily::V6;
    // from_v6_bytes folds ::ffff:a.b.c.d to IPv4, as everywhere else in the daemon.
    info.source = IpAddress::from_v6_bytes(packet.subspan<8, 16>());
    info.destination = IpAddress::from_v6_bytes(packet.subspan<24, 16>());
    if (Status chain = parse_ipv6_chain(packet, bytes[6], info); !chain) {
        return std::unexpected(std::move(chain.error()));
    }
    return info;
}

} // namespace

Result<PacketInfo> parse_packet(std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) {
        return fail("empty packet");
    }
    const unsigned version = bytes[0] >> 4U;
    switch (version) {
        case 4:
            return parse_ipv4(bytes);
        case 6:
            return parse_ipv6(bytes);
        default:
            return fail("unknown IP version " + std::to_string(version));
    }
}

} // namespace pw::packet
