#include "firewall/ip_scope.h"

#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace pw::firewall {
namespace {

IpScope scope_of(std::string_view text) {
    auto parsed = IpAddress::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return ip_scope(parsed.value_or(IpAddress{}));
}

void expect_scope(IpScope expected, const std::vector<std::string_view>& addresses) {
    for (const std::string_view address : addresses) {
        EXPECT_EQ(ip_scope_name(scope_of(address)), ip_scope_name(expected)) << address;
    }
}

TEST(IpScope, Localhost) {
    expect_scope(IpScope::Localhost, {"127.0.0.1", "127.255.255.254", "127.0.0.53", "::1"});
}

TEST(IpScope, LinkLocal) {
    expect_scope(IpScope::LinkLocal, {"169.254.0.1", "169.254.255.255", "fe80::1", "febf::1"});
}

TEST(IpScope, SiteLocalIsPrivateAndCarrierGradeNat) {
    expect_scope(IpScope::SiteLocal, {"10.0.0.0", "10.255.255.255", "172.16.0.1", "172.31.255.255",
                                      "192.168.0.1", "192.168.255.255", "100.64.0.1",
                                      "100.127.255.255", "fc00::1", "fd12:3456::1", "fec0::1"});
}

TEST(IpScope, NeighboursOfPrivateBlocksAreGlobal) {
    expect_scope(IpScope::Global, {"172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0",
                                   "100.63.255.255", "100.128.0.0", "11.0.0.0", "9.255.255.255",
                                   "169.253.255.255", "fbff::1", "fe00::1"});
}

TEST(IpScope, LocalMulticastAndBroadcast) {
    expect_scope(IpScope::LocalMulticast, {"224.0.0.1", "224.0.0.251", "224.255.255.255",
                                           "239.255.255.250", "255.255.255.255", "0.0.0.0",
                                           "ff01::1", "ff02::1", "ff02::fb", "ff05::2", "ff12::1"});
}

TEST(IpScope, GlobalMulticast) {
    expect_scope(IpScope::GlobalMulticast,
                 {"225.0.0.1", "232.1.2.3", "238.255.255.255", "ff08::1", "ff0e::1", "ff1e::1"});
}

TEST(IpScope, Invalid) {
    expect_scope(IpScope::Invalid, {"0.0.0.1", "0.255.255.255", "240.0.0.1", "255.255.255.254",
                                    "::", "::2", "::10.0.0.1"});
}

TEST(IpScope, GlobalIncludesTheDocumentationBlocks) {
    expect_scope(IpScope::Global, {"8.8.8.8", "1.1.1.1", "192.0.2.1", "198.51.100.7", "203.0.113.5",
                                   "2001:db8::1", "2606:4700:4700::1111", "64:ff9b::1"});
}

TEST(IpScope, MappedAddressesTakeTheScopeOfTheirIpv4Address) {
    expect_scope(IpScope::SiteLocal, {"::ffff:10.0.0.1"});
    expect_scope(IpScope::Localhost, {"::ffff:127.0.0.1"});
}

TEST(IpScope, NetworkScopesGroupTheAddressScopes) {
    EXPECT_EQ(network_scope(IpScope::Localhost), NetworkScope::Localhost);
    EXPECT_EQ(network_scope(IpScope::LinkLocal), NetworkScope::Lan);
    EXPECT_EQ(network_scope(IpScope::SiteLocal), NetworkScope::Lan);
    EXPECT_EQ(network_scope(IpScope::LocalMulticast), NetworkScope::Lan);
    EXPECT_EQ(network_scope(IpScope::Global), NetworkScope::Internet);
    EXPECT_EQ(network_scope(IpScope::GlobalMulticast), NetworkScope::Internet);
    EXPECT_EQ(network_scope(IpScope::Invalid), std::nullopt);
    EXPECT_EQ(network_scope_name(NetworkScope::Lan), "LAN");
}

TEST(IpScope, OutOfScopeAnswers) {
    // A resolver on the Internet may not answer with addresses of the LAN or this host.
    EXPECT_TRUE(is_out_of_scope(IpScope::Global, IpScope::SiteLocal));
    EXPECT_TRUE(is_out_of_scope(IpScope::Global, IpScope::LinkLocal));
    EXPECT_TRUE(is_out_of_scope(IpScope::Global, IpScope::Localhost));
    EXPECT_FALSE(is_out_of_scope(IpScope::Global, IpScope::Global));
    // One on the LAN may answer LAN addresses, not this host's.
    EXPECT_FALSE(is_out_of_scope(IpScope::SiteLocal, IpScope::SiteLocal));
    EXPECT_FALSE(is_out_of_scope(IpScope::SiteLocal, IpScope::Global));
    EXPECT_TRUE(is_out_of_scope(IpScope::SiteLocal, IpScope::Localhost));
    EXPECT_TRUE(is_out_of_scope(IpScope::LinkLocal, IpScope::Localhost));
    // One on this host may answer anything; invalid addresses are another step's business.
    EXPECT_FALSE(is_out_of_scope(IpScope::Localhost, IpScope::Localhost));
    EXPECT_FALSE(is_out_of_scope(IpScope::Localhost, IpScope::SiteLocal));
    EXPECT_FALSE(is_out_of_scope(IpScope::Global, IpScope::Invalid));
    EXPECT_FALSE(is_out_of_scope(IpScope::Invalid, IpScope::Localhost));
}

} // namespace
} // namespace pw::firewall
