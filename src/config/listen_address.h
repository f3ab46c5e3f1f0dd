#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
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

// Whether this host can listen on the IPv6 loopback address ::1. It cannot with IPv6 disabled:
// `net.ipv6.conf.lo.disable_ipv6=1` (or `all.`) removes ::1 from lo, and `ipv6.disable=1` on the
// kernel command line leaves no IPv6 sockets at all (issue 10).
enum class Ipv6Loopback : std::uint8_t { Available, Missing };

// Asks the kernel once (a UDP socket bound to [::1]:0, closed at once). Any other failure than
// "no such address" or "no IPv6" counts as Available: the real bind then reports it.
[[nodiscard]] Ipv6Loopback probe_ipv6_loopback();

// What to listen on of a listen address, on this host.
struct HostListenEndpoints {
    std::vector<firewall::IpEndpoint> bind;     // the endpoints to bind
    std::vector<firewall::IpEndpoint> left_out; // ::1 of "localhost" on a host without IPv6
};

// "localhost" (the default of dns/listenAddress and core/listenAddress) is a wish for the
// loopback of each IP version the host has, so on a host without ::1 it falls back to its IPv4
// endpoint and says so in `left_out`, as the IPv6 rules fall back to IPv4 alone. An address
// the user wrote out (even "[::1]:53") is bound as given, and a missing one is an error.
[[nodiscard]] HostListenEndpoints fit_listen_endpoints_to_host(
    std::span<const firewall::IpEndpoint> endpoints, Ipv6Loopback ipv6_loopback);

// Why binding a listen address failed with `reason`, in words an operator can act on, naming
// the setting `key` ("dns/listenAddress"); the error it goes with names the endpoint.
// EADDRINUSE is another server listening there, EADDRNOTAVAIL an address this host does not
// have (::1 with IPv6 disabled), EAFNOSUPPORT IPv6 disabled at boot, EACCES/EPERM a missing
// privilege. Empty for other reasons, whose system message says enough.
[[nodiscard]] std::string listen_failure_hint(const std::error_code& reason, std::string_view key);

} // namespace pw::config
