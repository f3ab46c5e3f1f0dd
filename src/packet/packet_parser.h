#pragma once

#include <cstdint>
#include <span>

#include "common/result.h"
#include "packet/packet_info.h"

namespace pw::packet {

// Parses the IP and transport headers of one packet as handed over by NFQUEUE (starting at the
// IP header). Pure and allocation-free on success: untrusted bytes are turned into a value at
// this one boundary (CONVENTIONS rule 12).
//
// `bytes` may be shorter than the packet's total length because NFQUEUE copies only the first
// bytes of each packet; every header the firewall reads must lie inside `bytes`, though.
// Errors name what is wrong ("IPv4 header truncated: 12 of 20 bytes").
//
// IPv6 extension headers (hop-by-hop, routing, fragment, destination options, AH) are walked to
// the transport header; ESP and "no next header" end the walk with that protocol and no ports.
[[nodiscard]] Result<PacketInfo> parse_packet(std::span<const std::uint8_t> bytes);

} // namespace pw::packet
