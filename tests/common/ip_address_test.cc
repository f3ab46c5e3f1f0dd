#include "common/ip_address.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

namespace pw {
namespace {

using namespace std::string_literals;

// For values the test knows to be valid; a bad one fails the test with the parser's message.
IpAddress address(std::string_view text) {
    auto parsed = IpAddress::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text << ": " << parsed.error().what;
    return parsed.value_or(IpAddress{});
}

Cidr cidr(std::string_view text) {
    auto parsed = Cidr::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text << ": " << parsed.error().what;
    return parsed.value_or(Cidr{});
}

// ---- IpAddress ----

TEST(IpAddress, DefaultsToUnspecifiedIpv4) {
    const IpAddress any;
    EXPECT_TRUE(any.is_v4());
    EXPECT_TRUE(any.is_unspecified());
    EXPECT_EQ(any.to_string(), "0.0.0.0");
}

TEST(IpAddress, ParsesDottedIpv4) {
    const IpAddress parsed = address("192.0.2.200");
    EXPECT_EQ(parsed.family(), IpFamily::V4);
    const std::vector<std::uint8_t> expected = {192, 0, 2, 200};
    EXPECT_EQ(std::vector<std::uint8_t>(parsed.bytes().begin(), parsed.bytes().end()), expected);
    EXPECT_EQ(parsed.to_string(), "192.0.2.200");
}

TEST(IpAddress, ParsesIpv6InEveryRfc4291Form) {
    const IpAddress canonical = address("2001:db8::1");
    EXPECT_EQ(canonical.family(), IpFamily::V6);
    EXPECT_EQ(canonical.bytes().size(), 16U);
    EXPECT_EQ(address("2001:0db8:0000:0000:0000:0000:0000:0001"), canonical);
    EXPECT_EQ(address("2001:DB8:0:0:0:0:0:1"), canonical);
    EXPECT_EQ(address("::"), IpAddress::from_v6_bytes(std::array<std::uint8_t, 16>{}));
    EXPECT_EQ(address("::1.2.3.4").family(), IpFamily::V6); // IPv4-compatible, not mapped
}

TEST(IpAddress, FormatsIpv6Canonically) {
    EXPECT_EQ(address("2001:0DB8:0000:0000:0000:0000:0000:0001").to_string(), "2001:db8::1");
    EXPECT_EQ(address("fe80:0:0:0:1:0:0:1").to_string(), "fe80::1:0:0:1");
    EXPECT_EQ(address("::").to_string(), "::");
    EXPECT_EQ(address("::1").to_string(), "::1");
}

TEST(IpAddress, FormatsTheLongestAddressIntoTheFixedBuffer) {
    const IpAddress longest = address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    std::array<char, IpAddress::kMaxTextLength> buffer{};
    EXPECT_EQ(longest.format(buffer), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    EXPECT_EQ(address("255.255.255.255").format(buffer), "255.255.255.255");
}

TEST(IpAddress, RejectsMalformedText) {
    for (const std::string_view text :
         {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.-4", "1.2.3.4/8", " 1.2.3.4", "1.2.3.4 ",
          "[::1]", "fe80::1%eth0", "2001:db8:::1", "2001:db8::g", "1:2:3:4:5:6:7:8:9", "localhost",
          "0x7f.0.0.1", "::ffff:1.2.3.4.5"}) {
        const auto parsed = IpAddress::parse(text);
        EXPECT_FALSE(parsed.has_value()) << "'" << text << "' parsed as " << parsed->to_string();
        if (!parsed.has_value()) {
            EXPECT_EQ(parsed.error().what, "invalid IP address '" + std::string(text) + "'");
        }
    }
}

TEST(IpAddress, RejectsTextLongerThanAnyAddress) {
    EXPECT_FALSE(IpAddress::parse(std::string(IpAddress::kMaxTextLength, '1')).has_value());
    EXPECT_FALSE(IpAddress::parse("0000:0000:0000:0000:0000:ffff:255.255.255.2555").has_value());
}

// 45 characters: INET6_ADDRSTRLEN without the NUL, so the buffer is exactly big enough.
TEST(IpAddress, AcceptsTheLongestIpv6Text) {
    EXPECT_EQ(address("0000:0000:0000:0000:0000:ffff:255.255.255.255"), address("255.255.255.255"));
    EXPECT_EQ(address("1111:2222:3333:4444:5555:6666:255.255.255.255").to_string(),
              "1111:2222:3333:4444:5555:6666:ffff:ffff");
}

// inet_pton stops at a NUL, so without a check "1.2.3.4\0junk" from a JSON "\u0000" escape would
// pass as 1.2.3.4.
TEST(IpAddress, RejectsEmbeddedNul) {
    EXPECT_FALSE(IpAddress::parse("1.2.3.4\0junk"s).has_value());
    EXPECT_FALSE(IpAddress::parse("::1\0"s).has_value());
}

TEST(IpAddress, FoldsV4MappedIpv6ToIpv4) {
    const IpAddress mapped = address("::ffff:192.0.2.1");
    EXPECT_TRUE(mapped.is_v4());
    EXPECT_EQ(mapped, address("192.0.2.1"));
    EXPECT_EQ(mapped.to_string(), "192.0.2.1");
    EXPECT_EQ(mapped.bytes().size(), 4U);
    EXPECT_EQ(address("::FFFF:c000:0201"), address("192.0.2.1"));

    const std::array<std::uint8_t, 16> wire = {0, 0, 0,    0,    0,  0, 0, 0,
                                               0, 0, 0xff, 0xff, 10, 1, 2, 3};
    const std::array<std::uint8_t, 4> v4 = {10, 1, 2, 3};
    EXPECT_EQ(IpAddress::from_v6_bytes(wire), IpAddress::from_v4_bytes(v4));
}

TEST(IpAddress, DoesNotFoldOtherIpv6Prefixes) {
    EXPECT_FALSE(address("::fffe:192.0.2.1").is_v4());
    EXPECT_FALSE(address("64:ff9b::192.0.2.1").is_v4()); // NAT64 is a different address
    EXPECT_FALSE(address("1::ffff:192.0.2.1").is_v4());
}

TEST(IpAddress, KnowsLoopbackAddresses) {
    EXPECT_TRUE(address("127.0.0.1").is_loopback());
    EXPECT_TRUE(address("127.255.255.254").is_loopback());
    EXPECT_TRUE(address("127.0.0.17").is_loopback());
    EXPECT_TRUE(address("::1").is_loopback());
    EXPECT_TRUE(address("::ffff:127.0.0.1").is_loopback());
    EXPECT_FALSE(address("128.0.0.1").is_loopback());
    EXPECT_FALSE(address("126.255.255.255").is_loopback());
    EXPECT_FALSE(address("0.0.0.0").is_loopback());
    EXPECT_FALSE(address("::").is_loopback());
    EXPECT_FALSE(address("::2").is_loopback());
    EXPECT_FALSE(address("1::1").is_loopback());
}

TEST(IpAddress, KnowsUnspecifiedAddresses) {
    EXPECT_TRUE(address("0.0.0.0").is_unspecified());
    EXPECT_TRUE(address("::").is_unspecified());
    EXPECT_FALSE(address("0.0.0.1").is_unspecified());
    EXPECT_FALSE(address("::1").is_unspecified());
}

TEST(IpAddress, OrdersIpv4BeforeIpv6AndBytesNumerically) {
    const std::vector<IpAddress> sorted = {
        address("0.0.0.0"),  address("9.255.255.255"), address("10.0.0.1"),
        address("10.0.0.2"), address("192.168.0.1"),   address("255.255.255.255"),
        address("::"),       address("::1"),           address("2001:db8::1"),
        address("fe80::1"),
    };
    for (std::size_t i = 1; i < sorted.size(); ++i) {
        EXPECT_LT(sorted[i - 1], sorted[i])
            << sorted[i - 1].to_string() << " vs " << sorted[i].to_string();
        EXPECT_NE(sorted[i - 1], sorted[i]);
    }
    const std::set<IpAddress> as_set(sorted.rbegin(), sorted.rend());
    EXPECT_TRUE(std::ranges::equal(as_set, sorted));
}

TEST(IpAddress, HashesEqualAddressesEqually) {
    EXPECT_EQ(address("192.0.2.1").hash(), address("::ffff:192.0.2.1").hash());
    EXPECT_EQ(std::hash<IpAddress>{}(address("2001:db8::1")),
              std::hash<IpAddress>{}(address("2001:DB8:0::1")));
    // Not required, but the families use different seeds so that 0.0.0.0 and :: do not collide.
    EXPECT_NE(address("0.0.0.0").hash(), address("::").hash());

    std::unordered_set<IpAddress> seen = {address("10.0.0.1"), address("::ffff:10.0.0.1"),
                                          address("10.0.0.2"), address("::1")};
    EXPECT_EQ(seen.size(), 3U);
    EXPECT_TRUE(seen.contains(address("::1")));
    EXPECT_FALSE(seen.contains(address("::2")));
}

// ---- Cidr ----

TEST(Cidr, ParsesIpv4Block) {
    const Cidr block = cidr("10.0.0.0/8");
    EXPECT_EQ(block.network, address("10.0.0.0"));
    EXPECT_EQ(block.prefix_length, 8);
    EXPECT_EQ(block.to_string(), "10.0.0.0/8");
}

TEST(Cidr, ParsesIpv6Block) {
    const Cidr block = cidr("2001:db8::/32");
    EXPECT_EQ(block.network, address("2001:db8::"));
    EXPECT_EQ(block.prefix_length, 32);
    EXPECT_EQ(block.to_string(), "2001:db8::/32");
}

TEST(Cidr, ClearsHostBits) {
    EXPECT_EQ(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
    EXPECT_EQ(cidr("192.168.1.255/25").network, address("192.168.1.128"));
    EXPECT_EQ(cidr("192.168.1.127/25").network, address("192.168.1.0"));
    EXPECT_EQ(cidr("255.255.255.255/0").network, address("0.0.0.0"));
    EXPECT_EQ(cidr("2001:db8:abcd:12::1/32"), cidr("2001:db8::/32"));
    EXPECT_EQ(cidr("2001:db8::ff/121").network, address("2001:db8::80"));
    EXPECT_EQ(cidr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/0").network, address("::"));
}

TEST(Cidr, TreatsBareAddressAsHost) {
    EXPECT_EQ(cidr("10.0.0.1"), (Cidr{.network = address("10.0.0.1"), .prefix_length = 32}));
    EXPECT_EQ(cidr("::1"), (Cidr{.network = address("::1"), .prefix_length = 128}));
}

TEST(Cidr, RejectsBadPrefixLengths) {
    for (const std::string_view text :
         {"10.0.0.0/33", "10.0.0.0/128", "::/129", "::/1000", "10.0.0.0/", "10.0.0.0/-1",
          "10.0.0.0/+8", "10.0.0.0/8x", "10.0.0.0/ 8", "10.0.0.0/8 ", "10.0.0.0/0x8",
          "10.0.0.0/99999999999999999999", "10.0.0.0/8/8", "10.0.0.0//8"}) {
        const auto parsed = Cidr::parse(text);
        EXPECT_FALSE(parsed.has_value()) << "'" << text << "' parsed as " << parsed->to_string();
        if (!parsed.has_value()) {
            EXPECT_NE(parsed.error().what.find("prefix length"), std::string::npos)
                << parsed.error().what;
        }
    }
    EXPECT_EQ(Cidr::parse("10.0.0.0/33").error().what,
              "invalid prefix length in '10.0.0.0/33' (0-32)");
    EXPECT_EQ(Cidr::parse("::/129").error().what, "invalid prefix length in '::/129' (0-128)");
}

TEST(Cidr, RejectsBadAddresses) {
    for (const std::string_view text : {"", "/8", "10.0.0/8", "10.0.0.256/8", "host/8", "*"}) {
        const auto parsed = Cidr::parse(text);
        EXPECT_FALSE(parsed.has_value()) << "'" << text << "'";
        if (!parsed.has_value()) {
            EXPECT_NE(parsed.error().what.find("invalid IP address"), std::string::npos)
                << parsed.error().what;
        }
    }
}

// Flips one bit, counted from the most significant bit of the first byte.
IpAddress with_bit_flipped(const IpAddress& original, unsigned bit) {
    std::array<std::uint8_t, 16> bytes{};
    const auto source = original.bytes();
    std::ranges::copy(source, bytes.begin());
    bytes[bit / 8] ^= static_cast<std::uint8_t>(0x80U >> (bit % 8));
    return original.is_v4()
               ? IpAddress::from_v4_bytes(std::span<const std::uint8_t, 4>(bytes.data(), 4))
               : IpAddress::from_v6_bytes(bytes);
}

// The block of one prefix length around `host`: the host is inside, and the last network bit
// decides while the host bits do not.
void check_containment(const IpAddress& host, const Cidr& block, unsigned max_length) {
    const unsigned length = block.prefix_length;
    if (length > 0) {
        EXPECT_FALSE(block.contains(with_bit_flipped(host, length - 1)));
    }
    if (length < max_length) {
        EXPECT_TRUE(block.contains(with_bit_flipped(host, length)));
        EXPECT_TRUE(block.contains(with_bit_flipped(host, max_length - 1)));
    }
}

// Host bits are cleared: any host of the block gives the same network.
void check_network(const IpAddress& host, const Cidr& block, unsigned max_length) {
    const std::string suffix = "/" + std::to_string(block.prefix_length);
    EXPECT_EQ(block.network.family(), host.family());
    if (block.prefix_length == max_length) {
        EXPECT_EQ(block.network, host);
    } else {
        EXPECT_EQ(cidr(with_bit_flipped(host, max_length - 1).to_string() + suffix), block);
    }
}

void check_every_prefix_length(std::string_view host_text, unsigned max_length) {
    const IpAddress host = address(host_text);
    for (unsigned length = 0; length <= max_length; ++length) {
        const std::string text = std::string(host_text) + "/" + std::to_string(length);
        SCOPED_TRACE(text);
        const auto block = Cidr::parse(text);
        ASSERT_TRUE(block.has_value()) << block.error().what;
        EXPECT_EQ(block->prefix_length, length);
        EXPECT_TRUE(block->contains(host));
        EXPECT_TRUE(block->contains(block->network));
        check_containment(host, *block, max_length);
        check_network(host, *block, max_length);
    }
}

TEST(Cidr, AcceptsEveryIpv4PrefixLength) {
    check_every_prefix_length("203.0.113.77", 32);
}

TEST(Cidr, AcceptsEveryIpv6PrefixLength) {
    check_every_prefix_length("2001:db8:1234:5678:9abc:def0:1357:2468", 128);
}

TEST(Cidr, ContainsOnlyItsOwnFamily) {
    EXPECT_TRUE(cidr("0.0.0.0/0").contains(address("203.0.113.1")));
    EXPECT_FALSE(cidr("0.0.0.0/0").contains(address("2001:db8::1")));
    EXPECT_TRUE(cidr("::/0").contains(address("2001:db8::1")));
    EXPECT_FALSE(cidr("::/0").contains(address("203.0.113.1")));
}

TEST(Cidr, MatchesV4MappedAddressesAsIpv4) {
    EXPECT_TRUE(cidr("10.0.0.0/8").contains(address("::ffff:10.1.2.3")));
    EXPECT_FALSE(cidr("::/0").contains(address("::ffff:10.1.2.3")));
}

// The block is written in IPv6 notation but folds to IPv4 like its addresses do, so the prefix
// length is counted from bit 96.
TEST(Cidr, FoldsV4MappedBlocksToIpv4) {
    EXPECT_EQ(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
    EXPECT_EQ(cidr("::ffff:0:0/96"), cidr("0.0.0.0/0"));
    EXPECT_EQ(cidr("::ffff:192.0.2.1"), cidr("192.0.2.1/32"));
    EXPECT_EQ(cidr("::ffff:192.0.2.1/128"), cidr("192.0.2.1/32"));
    EXPECT_FALSE(Cidr::parse("::ffff:10.0.0.0/95").has_value());
    EXPECT_FALSE(Cidr::parse("::ffff:10.0.0.0/129").has_value());
}

TEST(Cidr, ContainsExamples) {
    const Cidr private_10 = cidr("10.0.0.0/8");
    EXPECT_TRUE(private_10.contains(address("10.255.255.255")));
    EXPECT_FALSE(private_10.contains(address("11.0.0.0")));
    const Cidr slash_25 = cidr("192.168.1.128/25");
    EXPECT_TRUE(slash_25.contains(address("192.168.1.200")));
    EXPECT_FALSE(slash_25.contains(address("192.168.1.127")));
    const Cidr documentation = cidr("2001:db8::/32");
    EXPECT_TRUE(documentation.contains(address("2001:db8:ffff::1")));
    EXPECT_FALSE(documentation.contains(address("2001:db9::1")));
    EXPECT_TRUE(cidr("10.0.0.1").contains(address("10.0.0.1")));
    EXPECT_FALSE(cidr("10.0.0.1").contains(address("10.0.0.2")));
}

} // namespace
} // namespace pw
