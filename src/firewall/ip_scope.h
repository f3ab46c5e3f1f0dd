#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ip_address.h"

namespace pw::firewall {

// How far an address reaches, as Portmaster classifies it (facts 6.4, netutils.GetIPScope). The
// one place that knows the address blocks: rules (`- LAN`), the scope settings (blockInternet,
// blockLAN, blockLocal), blockP2P, the invalid-address step and the DNS answer filter all go
// through ip_scope().
enum class IpScope : std::uint8_t {
    Invalid,         // cannot be a peer: 0.0.0.0/8 (but 0.0.0.0 itself), 240.0.0.0/4 (but the
                     // broadcast address), ::, the deprecated IPv4-compatible ::/96
    Localhost,       // this host: 127.0.0.0/8, ::1
    LinkLocal,       // 169.254.0.0/16, fe80::/10
    SiteLocal,       // private networks: 10/8, 172.16/12, 192.168/16, the carrier-grade NAT
                     // 100.64.0.0/10, unique local fc00::/7, the deprecated site-local fec0::/10
    LocalMulticast,  // multicast that stays on the local network (224.0.0.0/8, 239.0.0.0/8,
                     // ff0X:: with scope 1-5) and broadcast (255.255.255.255, and 0.0.0.0, the
                     // source of DHCP discovery before a host has an address)
    Global,          // everything else, the documentation blocks included (see ip_scope.cc)
    GlobalMulticast, // 225.0.0.0-238.255.255.255, ff0X:: with scope 6-15
};

// The scope of `address`. IPv4-mapped IPv6 addresses are IPv4 already (IpAddress folds them).
[[nodiscard]] IpScope ip_scope(const IpAddress& address);

// "invalid", "localhost", "link-local", "site-local", "local multicast", "global",
// "global multicast": for reasons and events.
[[nodiscard]] std::string_view ip_scope_name(IpScope scope);

// The three network scopes that rules and settings speak of: the rule entities `Localhost`,
// `LAN` and `Internet`, and the settings blockLocal, blockLAN and blockInternet.
enum class NetworkScope : std::uint8_t {
    Localhost, // IpScope::Localhost
    Lan,       // LinkLocal, SiteLocal, LocalMulticast
    Internet,  // Global, GlobalMulticast
};

// The network scope an address scope belongs to; nullopt for Invalid (no rule scope matches it).
[[nodiscard]] std::optional<NetworkScope> network_scope(IpScope scope);

// "Localhost", "LAN", "Internet": as rules write them.
[[nodiscard]] std::string_view network_scope_name(NetworkScope scope);

// `filter/removeOutOfScopeDNS`: whether a resolver of `resolver` scope may not tell us about an
// address of `answer` scope. A resolver on the Internet answering with a LAN or localhost
// address, or one on the LAN answering with a localhost address, is rebinding names into the
// network it cannot see (DNS rebinding attacks). A resolver on this host may answer anything.
[[nodiscard]] bool is_out_of_scope(IpScope resolver, IpScope answer);

// "a global resolver answered with a site-local address": why is_out_of_scope() said so.
[[nodiscard]] std::string out_of_scope_text(IpScope resolver, IpScope answer);

} // namespace pw::firewall
