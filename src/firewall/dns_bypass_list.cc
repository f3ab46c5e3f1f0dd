#include "firewall/dns_bypass_list.h"

#include <algorithm>
#include <array>
#include <utility>

namespace pw::firewall {
namespace {

// Names, each with the operator that runs it. They match as zones.
constexpr auto kKnownResolverNames = std::to_array<std::string_view>({
    "cloudflare-dns.com",           // Cloudflare 1.1.1.1 (also mozilla., security., family.)
    "one.one.one.one",              // Cloudflare
    "dns.google",                   // Google Public DNS
    "dns.google.com",               // Google Public DNS (older name)
    "dns.quad9.net",                // Quad9
    "dns9.quad9.net",               // Quad9
    "dns10.quad9.net",              // Quad9 (unfiltered)
    "dns11.quad9.net",              // Quad9 (with ECS)
    "dns.adguard.com",              // AdGuard DNS (older names)
    "dns-family.adguard.com",       // AdGuard DNS
    "dns-unfiltered.adguard.com",   // AdGuard DNS
    "dns.adguard-dns.com",          // AdGuard DNS
    "family.adguard-dns.com",       // AdGuard DNS
    "unfiltered.adguard-dns.com",   // AdGuard DNS
    "dns.nextdns.io",               // NextDNS (per-profile names are below it)
    "doh.opendns.com",              // OpenDNS (Cisco)
    "doh.familyshield.opendns.com", // OpenDNS FamilyShield (Cisco)
    "doh.cleanbrowsing.org",        // CleanBrowsing
    "dns.sb",                       // DNS.SB (doh.dns.sb)
    "dot.sb",                       // DNS.SB, DNS over TLS
    "dns.mullvad.net",              // Mullvad DNS (adblock., base., ... are below it)
    "doh.mullvad.net",              // Mullvad DNS (older name)
    "doh.applied-privacy.net",      // Applied Privacy
    "dot1.applied-privacy.net",     // Applied Privacy, DNS over TLS
    "dns.controld.com",             // Control D
    "freedns.controld.com",         // Control D (free resolvers)
    "dns0.eu",                      // dns0.eu
    "dns.alidns.com",               // Alibaba Cloud AliDNS
    "doh.pub",                      // DNSPod (Tencent)
    "dot.pub",                      // DNSPod (Tencent), DNS over TLS
    "dns.digitale-gesellschaft.ch", // Digitale Gesellschaft (Switzerland)
    "canadianshield.cira.ca",       // CIRA Canadian Shield (private., protected., family.)
    "dns.twnic.tw",                 // Quad101 (TWNIC)
});

// Addresses and networks, grouped by operator.
constexpr auto kKnownResolverNetworks = std::to_array<std::string_view>({
    // Cloudflare: 1.1.1.1, malware (...2) and family (...3) filtering.
    "1.1.1.1",
    "1.0.0.1",
    "1.1.1.2",
    "1.0.0.2",
    "1.1.1.3",
    "1.0.0.3",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2606:4700:4700::1112",
    "2606:4700:4700::1002",
    "2606:4700:4700::1113",
    "2606:4700:4700::1003",
    // Google Public DNS, also its DNS64 addresses.
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2001:4860:4860::64",
    "2001:4860:4860::6464",
    // Quad9: filtered, unfiltered (...10) and with ECS (...11).
    "9.9.9.9",
    "149.112.112.112",
    "9.9.9.10",
    "149.112.112.10",
    "9.9.9.11",
    "149.112.112.11",
    "2620:fe::fe",
    "2620:fe::9",
    "2620:fe::10",
    "2620:fe::fe:10",
    "2620:fe::11",
    "2620:fe::fe:11",
    // AdGuard DNS: default, unfiltered, family.
    "94.140.14.14",
    "94.140.15.15",
    "94.140.14.140",
    "94.140.14.141",
    "94.140.14.15",
    "94.140.15.16",
    "2a10:50c0::ad1:ff",
    "2a10:50c0::ad2:ff",
    // NextDNS anycast networks.
    "45.90.28.0/24",
    "45.90.30.0/24",
    // OpenDNS (Cisco): standard and FamilyShield.
    "208.67.222.222",
    "208.67.220.220",
    "208.67.222.123",
    "208.67.220.123",
    "2620:119:35::35",
    "2620:119:53::53",
    // CleanBrowsing: security, adult and family filters.
    "185.228.168.9",
    "185.228.169.9",
    "185.228.168.10",
    "185.228.169.11",
    "185.228.168.168",
    "185.228.169.168",
    // DNS.SB.
    "185.222.222.222",
    "45.11.45.11",
    // Mullvad DNS.
    "194.242.2.2",
    "194.242.2.3",
    "194.242.2.4",
    "2a07:e340::2",
    "2a07:e340::3",
    "2a07:e340::4",
    // Applied Privacy.
    "146.255.56.98",
    // Control D (free resolvers).
    "76.76.2.0",
    "76.76.10.0",
    "2606:1a40::",
    "2606:1a40:1::",
    // dns0.eu.
    "193.110.81.0",
    "185.253.5.0",
    "2a0f:fc80::",
    "2a0f:fc81::",
    // Alibaba Cloud AliDNS.
    "223.5.5.5",
    "223.6.6.6",
    "2400:3200::1",
    "2400:3200:baba::1",
    // DNSPod (Tencent).
    "1.12.12.12",
    "120.53.53.53",
    // Digitale Gesellschaft (Switzerland).
    "185.95.218.42",
    "185.95.218.43",
    // CIRA Canadian Shield: private, protected, family.
    "149.112.121.10",
    "149.112.122.10",
    "149.112.121.20",
    "149.112.122.20",
    "149.112.121.30",
    "149.112.122.30",
    // Quad101 (TWNIC).
    "101.101.101.101",
    "101.102.103.104",
});

} // namespace

std::span<const std::string_view> known_resolver_names() {
    return kKnownResolverNames;
}

std::span<const std::string_view> known_resolver_network_texts() {
    return kKnownResolverNetworks;
}

// The texts are constants, and the tests check that every one of them parses (an entry that did
// not would be missing here, not crash the daemon). Function-local statics: built once, read-only
// afterwards, and thread-safe to initialise.
const std::vector<DomainPattern>& known_resolver_zones() {
    static const std::vector<DomainPattern> kZones = [] {
        std::vector<DomainPattern> zones;
        zones.reserve(kKnownResolverNames.size());
        for (const std::string_view name : kKnownResolverNames) {
            if (auto zone = parse_domain_pattern(name)) {
                zone->match = DomainMatch::Zone;
                zones.push_back(std::move(*zone));
            }
        }
        return zones;
    }();
    return kZones;
}

const std::vector<Cidr>& known_resolver_networks() {
    static const std::vector<Cidr> kNetworks = [] {
        std::vector<Cidr> networks;
        networks.reserve(kKnownResolverNetworks.size());
        for (const std::string_view text : kKnownResolverNetworks) {
            if (auto network = Cidr::parse(text)) {
                networks.push_back(*network);
            }
        }
        return networks;
    }();
    return kNetworks;
}

bool is_known_resolver_name(std::string_view name) {
    return std::ranges::any_of(known_resolver_zones(),
                               [name](const DomainPattern& zone) { return zone.matches(name); });
}

bool is_known_resolver_name(const DomainFacts& domain) {
    return std::ranges::any_of(known_resolver_zones(), [&domain](const DomainPattern& zone) {
        return zone.matches(domain);
    });
}

bool is_known_resolver_address(const IpAddress& address) {
    return std::ranges::any_of(known_resolver_networks(), [&address](const Cidr& network) {
        return network.contains(address);
    });
}

} // namespace pw::firewall
