#include "firewall/dns_bypass_list.h"

#include <set>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace pw::firewall {
namespace {

IpAddress address(std::string_view text) {
    auto parsed = IpAddress::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(IpAddress{});
}

TEST(DnsBypassList, EveryNameIsAValidLowerCaseDomain) {
    for (const std::string_view name : known_resolver_names()) {
        const auto pattern = parse_domain_pattern(name);
        ASSERT_TRUE(pattern.has_value()) << name << ": " << pattern.error().what;
        EXPECT_EQ(pattern->match, DomainMatch::Exact) << name;
        EXPECT_EQ(pattern->pattern, name) << "not normalised: " << name;
    }
}

TEST(DnsBypassList, EveryAddressParses) {
    for (const std::string_view text : known_resolver_network_texts()) {
        EXPECT_TRUE(Cidr::parse(text).has_value()) << text;
    }
    EXPECT_EQ(known_resolver_networks().size(), known_resolver_network_texts().size());
    EXPECT_EQ(known_resolver_zones().size(), known_resolver_names().size());
}

TEST(DnsBypassList, HasNoDuplicates) {
    const std::set<std::string_view> names(known_resolver_names().begin(),
                                           known_resolver_names().end());
    EXPECT_EQ(names.size(), known_resolver_names().size());
    std::set<std::string> networks;
    for (const Cidr& network : known_resolver_networks()) {
        networks.insert(network.to_string());
    }
    EXPECT_EQ(networks.size(), known_resolver_network_texts().size());
}

TEST(DnsBypassList, NamesMatchAsZones) {
    EXPECT_TRUE(is_known_resolver_name("dns.google"));
    EXPECT_TRUE(is_known_resolver_name("dns64.dns.google"));
    EXPECT_TRUE(is_known_resolver_name("cloudflare-dns.com"));
    EXPECT_TRUE(is_known_resolver_name("mozilla.cloudflare-dns.com"));
    EXPECT_TRUE(is_known_resolver_name("abc123.dns.nextdns.io"));
    EXPECT_FALSE(is_known_resolver_name("google"));
    EXPECT_FALSE(is_known_resolver_name("notdns.google"));
    EXPECT_FALSE(is_known_resolver_name("cloudflare.com"));
    EXPECT_FALSE(is_known_resolver_name("www.example.com"));
    EXPECT_FALSE(is_known_resolver_name(""));
}

TEST(DnsBypassList, NamesAreCaseInsensitiveAndMayEndInADot) {
    EXPECT_TRUE(is_known_resolver_name("DNS.Google."));
    EXPECT_TRUE(is_known_resolver_name("Dns.Quad9.Net"));
}

TEST(DnsBypassList, ContainsTheWellKnownResolverNames) {
    for (const std::string_view name :
         {"cloudflare-dns.com", "mozilla.cloudflare-dns.com", "dns.google", "dns.quad9.net",
          "dns.adguard.com", "dns.adguard-dns.com", "dns.nextdns.io", "doh.opendns.com",
          "doh.cleanbrowsing.org", "dns.sb", "doh.dns.sb", "doh.mullvad.net",
          "doh.applied-privacy.net"}) {
        EXPECT_TRUE(is_known_resolver_name(name)) << name;
    }
}

TEST(DnsBypassList, ContainsTheWellKnownResolverAddresses) {
    for (const std::string_view text :
         {"1.1.1.1", "1.0.0.1", "2606:4700:4700::1111", "2606:4700:4700::1001", "8.8.8.8",
          "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844", "9.9.9.9", "149.112.112.112",
          "2620:fe::fe", "94.140.14.14", "94.140.15.15", "208.67.222.222", "208.67.220.220",
          "45.90.28.17"}) {
        EXPECT_TRUE(is_known_resolver_address(address(text))) << text;
    }
}

TEST(DnsBypassList, Ipv4MappedAddressesMatchToo) {
    EXPECT_TRUE(is_known_resolver_address(address("::ffff:1.1.1.1")));
}

TEST(DnsBypassList, NeighboursOfListedAddressesDoNotMatch) {
    for (const std::string_view text : {"1.1.1.4", "8.8.8.9", "9.9.9.8", "2606:4700:4700::1114",
                                        "2001:4860:4860::8889", "45.90.29.1", "203.0.113.5"}) {
        EXPECT_FALSE(is_known_resolver_address(address(text))) << text;
    }
}

TEST(DnsBypassList, NoLocalOrSpecialAddressIsListed) {
    for (const std::string_view text :
         {"127.0.0.1", "127.0.0.17", "127.0.0.53", "10.0.0.1", "172.16.0.1", "192.168.1.1",
          "0.0.0.0", "0.0.0.17", "::1", "::17", "fe80::1", "fd00::1", "255.255.255.255"}) {
        EXPECT_FALSE(is_known_resolver_address(address(text))) << text;
    }
}

TEST(DnsBypassList, CnamesOfAConnectionAreChecked) {
    EXPECT_TRUE(is_known_resolver_name(
        DomainFacts{.domain = "doh.example", .cname_chain = {"x", "mozilla.cloudflare-dns.com"}}));
    EXPECT_FALSE(is_known_resolver_name(
        DomainFacts{.domain = "www.example.com", .cname_chain = {"cdn.example.net"}}));
}

} // namespace
} // namespace pw::firewall
