#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "firewall/settings.h"

namespace pw::config {

// The default ports of `dns/listenAddress` (RFC 1035) and `core/listenAddress` (Portmaster's
// API port, facts 8).
inline constexpr std::uint16_t kDnsPort = 53;
inline constexpr std::uint16_t kApiPort = 817;

// The endpoints of `dns/listenAddress: localhost:PORT`: 127.0.0.17:PORT and [::1]:PORT.
// 127.0.0.17 rather than 127.0.0.1 leaves 127.0.0.1:53 to a local DNS server of the user's.
[[nodiscard]] std::vector<firewall::IpEndpoint> localhost_listen_endpoints(std::uint16_t port);

// The endpoints of `core/listenAddress: localhost:PORT`: 127.0.0.1:PORT and [::1]:PORT.
[[nodiscard]] std::vector<firewall::IpEndpoint> localhost_api_endpoints(std::uint16_t port);

// Parses a `dns/listenAddress` value: "localhost:PORT" (both loopback endpoints above),
// "IPv4:PORT", "[IPv6]:PORT", or "off" (no endpoints: no nameserver, DNS is ordinary traffic). The
// port is 1-65535; the unspecified address (0.0.0.0, ::) is refused, because decide() must know the
// exact address that queries to our nameserver go to. Errors quote the value: "dns/listenAddress
// '::1:53': an IPv6 address goes in brackets, as in [::1]:53".
[[nodiscard]] Result<std::vector<firewall::IpEndpoint>> parse_listen_address(std::string_view text);

// Parses a `core/listenAddress` value, where the API listens: the same forms as
// parse_listen_address, with "localhost:PORT" meaning 127.0.0.1:PORT and [::1]:PORT, and "off"
// meaning no API. The unspecified address is refused here too: an API that answers on every
// address of the host is one that a configuration slip exposes to the LAN. Errors name
// core/listenAddress and its port 817 in their examples.
[[nodiscard]] Result<std::vector<firewall::IpEndpoint>> parse_api_listen_address(
    std::string_view text);

} // namespace pw::config
