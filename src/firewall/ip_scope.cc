#include "firewall/ip_scope.h"

#include <algorithm>
#include <span>

namespace pw::firewall {
namespace {

// IANA IPv4 Special-Purpose Address Registry (RFC 6890) and RFC 5771 for multicast. The
// documentation blocks (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are deliberately Global:
// test networks, ours included, use them as stand-ins for Internet hosts, and calling them
// invalid would block every such test before it reaches the step it is about.
IpScope ipv4_scope(std::span<const std::uint8_t> bytes) {
    const std::uint8_t first = bytes[0];
    const std::uint8_t second = bytes[1];
    if (first == 0) {
        // 0.0.0.0 is the source of a host that has no address yet (DHCP discovery).
        return std::ranges::all_of(bytes, [](std::uint8_t byte) { return byte == 0; })
                   ? IpScope::LocalMulticast
                   : IpScope::Invalid;
    }
    if (first == 127) {
        return IpScope::Localhost;
    }
    if (first == 10 || (first == 172 && (second & 0xf0U) == 16) ||
        (first == 192 && second == 168) || (first == 100 && (second & 0xc0U) == 64)) {
        return IpScope::SiteLocal; // RFC 1918 and the carrier-grade NAT block (RFC 6598)
    }
    if (first == 169 && second == 254) {
        return IpScope::LinkLocal; // RFC 3927
    }
    if (first == 224 || first == 239) {
        return IpScope::LocalMulticast; // local network control block, administratively scoped
    }
    if (first >= 225 && first <= 238) {
        return IpScope::GlobalMulticast;
    }
    if (first >= 240) {
        return std::ranges::all_of(bytes, [](std::uint8_t byte) { return byte == 255; })
                   ? IpScope::LocalMulticast // the limited broadcast address
                   : IpScope::Invalid;       // reserved (240.0.0.0/4)
    }
    return IpScope::Global;
}

// IANA IPv6 Special-Purpose Address Registry and RFC 4291.
IpScope ipv6_scope(std::span<const std::uint8_t> bytes) {
    const bool first_twelve_zero =
        std::ranges::all_of(bytes.first(12), [](std::uint8_t byte) { return byte == 0; });
    if (first_twelve_zero) {
        const auto last = bytes.last(4);
        if (last[0] == 0 && last[1] == 0 && last[2] == 0 && last[3] == 1) {
            return IpScope::Localhost; // ::1
        }
        // :: and the deprecated IPv4-compatible addresses (RFC 4291 section 2.5.5.1).
        return IpScope::Invalid;
    }
    if (bytes[0] == 0xfe && (bytes[1] & 0xc0U) == 0x80) {
        return IpScope::LinkLocal; // fe80::/10
    }
    if ((bytes[0] & 0xfeU) == 0xfc || (bytes[0] == 0xfe && (bytes[1] & 0xc0U) == 0xc0)) {
        return IpScope::SiteLocal; // unique local fc00::/7, deprecated site-local fec0::/10
    }
    if (bytes[0] == 0xff) {
        // The low nibble of the second byte is the multicast scope (RFC 7346): up to 5 (site)
        // the packets stay on the local network; 8 (organisation) and 14 (global) leave it.
        constexpr unsigned kSiteLocalMulticastScope = 5;
        return (bytes[1] & 0x0fU) <= kSiteLocalMulticastScope ? IpScope::LocalMulticast
                                                              : IpScope::GlobalMulticast;
    }
    return IpScope::Global;
}

} // namespace

IpScope ip_scope(const IpAddress& address) {
    return address.is_v4() ? ipv4_scope(address.bytes()) : ipv6_scope(address.bytes());
}

std::string_view ip_scope_name(IpScope scope) {
    switch (scope) {
        case IpScope::Invalid:
            return "invalid";
        case IpScope::Localhost:
            return "localhost";
        case IpScope::LinkLocal:
            return "link-local";
        case IpScope::SiteLocal:
            return "site-local";
        case IpScope::LocalMulticast:
            return "local multicast";
        case IpScope::Global:
            return "global";
        case IpScope::GlobalMulticast:
            return "global multicast";
    }
    return "invalid";
}

std::optional<NetworkScope> network_scope(IpScope scope) {
    switch (scope) {
        case IpScope::Localhost:
            return NetworkScope::Localhost;
        case IpScope::LinkLocal:
        case IpScope::SiteLocal:
        case IpScope::LocalMulticast:
            return NetworkScope::Lan;
        case IpScope::Global:
        case IpScope::GlobalMulticast:
            return NetworkScope::Internet;
        case IpScope::Invalid:
            break;
    }
    return std::nullopt;
}

std::string_view network_scope_name(NetworkScope scope) {
    switch (scope) {
        case NetworkScope::Localhost:
            return "Localhost";
        case NetworkScope::Lan:
            return "LAN";
        case NetworkScope::Internet:
            return "Internet";
    }
    return "Internet";
}

bool is_out_of_scope(IpScope resolver, IpScope answer) {
    const auto resolver_scope = network_scope(resolver);
    const auto answer_scope = network_scope(answer);
    if (!resolver_scope || !answer_scope) {
        return false;
    }
    switch (*resolver_scope) {
        case NetworkScope::Internet:
            return *answer_scope != NetworkScope::Internet;
        case NetworkScope::Lan:
            return *answer_scope == NetworkScope::Localhost;
        case NetworkScope::Localhost:
            break;
    }
    return false;
}

std::string out_of_scope_text(IpScope resolver, IpScope answer) {
    return "a " + std::string(ip_scope_name(resolver)) + " resolver answered with a " +
           std::string(ip_scope_name(answer)) + " address";
}

} // namespace pw::firewall
