#include "firewall/endpoint_rule.h"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "packet/packet_info.h"

namespace pw::firewall {
namespace {

namespace protocol = packet::protocol;

EndpointRule parse_ok(std::string_view line) {
    auto rule = parse_endpoint_rule(line);
    EXPECT_TRUE(rule.has_value()) << "'" << line << "': " << rule.error().what;
    return rule.value_or(EndpointRule{});
}

std::string parse_error(std::string_view line) {
    auto rule = parse_endpoint_rule(line);
    EXPECT_FALSE(rule.has_value()) << "'" << line << "' parsed";
    return rule.has_value() ? std::string{} : rule.error().what;
}

IpAddress address(std::string_view text) {
    auto parsed = IpAddress::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(IpAddress{});
}

Cidr cidr(std::string_view text) {
    auto parsed = Cidr::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(Cidr{});
}

EndpointQuery query(std::string_view remote, std::uint8_t proto = protocol::kTcp,
                    std::uint16_t port = 443) {
    return EndpointQuery{
        .remote_address = address(remote), .protocol = proto, .service_port = port};
}

bool rule_matches(std::string_view line, const EndpointQuery& endpoint_query) {
    return matches(parse_ok(line), endpoint_query);
}

// --- Syntax -------------------------------------------------------------------------------

TEST(EndpointRuleParse, PlusStarPermitsEverything) {
    const EndpointRule rule = parse_ok("+ *");
    EXPECT_EQ(rule.action, RuleAction::Permit);
    EXPECT_EQ(rule.entity, Entity{AnyEntity{}});
    EXPECT_FALSE(rule.protocol.has_value());
    EXPECT_EQ(rule.port_low, 0);
    EXPECT_EQ(rule.port_high, 65535);
    EXPECT_EQ(rule.text, "+ *");
}

TEST(EndpointRuleParse, MinusBlocks) {
    EXPECT_EQ(parse_ok("- *").action, RuleAction::Block);
}

TEST(EndpointRuleParse, BareIpv4AddressIsASlash32) {
    EXPECT_EQ(parse_ok("+ 10.0.0.1").entity, Entity{cidr("10.0.0.1/32")});
}

TEST(EndpointRuleParse, BareIpv6AddressIsASlash128) {
    EXPECT_EQ(parse_ok("+ 2001:db8::1").entity, Entity{cidr("2001:db8::1/128")});
}

TEST(EndpointRuleParse, Ipv4CidrClearsHostBits) {
    EXPECT_EQ(parse_ok("- 10.1.2.3/8").entity, Entity{cidr("10.0.0.0/8")});
}

TEST(EndpointRuleParse, Ipv6CidrIsAccepted) {
    EXPECT_EQ(parse_ok("- fd00::/8").entity, Entity{cidr("fd00::/8")});
}

TEST(EndpointRuleParse, ProtocolNamesAreCaseInsensitive) {
    EXPECT_EQ(parse_ok("+ * tcp").protocol, protocol::kTcp);
    EXPECT_EQ(parse_ok("+ * TCP").protocol, protocol::kTcp);
    EXPECT_EQ(parse_ok("+ * Udp").protocol, protocol::kUdp);
    EXPECT_EQ(parse_ok("+ * icmp").protocol, protocol::kIcmp);
    EXPECT_EQ(parse_ok("+ * icmpv6").protocol, protocol::kIcmpV6);
    EXPECT_EQ(parse_ok("+ * ICMP6").protocol, protocol::kIcmpV6);
    EXPECT_EQ(parse_ok("+ * udplite").protocol, protocol::kUdpLite);
    EXPECT_EQ(parse_ok("+ * sctp").protocol, protocol::kSctp);
    EXPECT_EQ(parse_ok("+ * igmp").protocol, protocol::kIgmp);
}

TEST(EndpointRuleParse, ProtocolNumbersFromZeroTo255) {
    EXPECT_EQ(parse_ok("+ * 0").protocol, 0);
    EXPECT_EQ(parse_ok("+ * 132").protocol, 132);
    EXPECT_EQ(parse_ok("+ * 255").protocol, 255);
}

TEST(EndpointRuleParse, StarProtocolMeansAny) {
    EXPECT_FALSE(parse_ok("+ * *").protocol.has_value());
}

TEST(EndpointRuleParse, SinglePort) {
    const EndpointRule rule = parse_ok("+ 10.0.0.0/8 tcp/22");
    EXPECT_EQ(rule.protocol, protocol::kTcp);
    EXPECT_EQ(rule.port_low, 22);
    EXPECT_EQ(rule.port_high, 22);
}

TEST(EndpointRuleParse, PortRange) {
    const EndpointRule rule = parse_ok("- * udp/5000-6000");
    EXPECT_EQ(rule.port_low, 5000);
    EXPECT_EQ(rule.port_high, 6000);
}

TEST(EndpointRuleParse, PortEdgesZeroAnd65535AreAllowed) {
    EXPECT_EQ(parse_ok("+ * tcp/0").port_high, 0);
    EXPECT_EQ(parse_ok("+ * tcp/65535").port_low, 65535);
    const EndpointRule full = parse_ok("+ * sctp/0-65535");
    EXPECT_EQ(full.port_low, 0);
    EXPECT_EQ(full.port_high, 65535);
}

TEST(EndpointRuleParse, PortsAreAllowedWithEveryProtocolThatHasPorts) {
    EXPECT_EQ(parse_ok("+ * udplite/53").port_low, 53);
    EXPECT_EQ(parse_ok("+ * sctp/9899").port_low, 9899);
    EXPECT_EQ(parse_ok("+ * 6/80").port_low, 80); // tcp by number
}

TEST(EndpointRuleParse, TabsAndRepeatedSpacesSeparateTokens) {
    const EndpointRule rule = parse_ok("\t+ \t 10.0.0.1   tcp/22\t ");
    EXPECT_EQ(rule.action, RuleAction::Permit);
    EXPECT_EQ(rule.entity, Entity{cidr("10.0.0.1/32")});
    EXPECT_EQ(rule.port_low, 22);
}

TEST(EndpointRuleParse, TextIsTheTrimmedLine) {
    EXPECT_EQ(parse_ok("  - 10.0.0.0/8  tcp/22 \r\n").text, "- 10.0.0.0/8  tcp/22");
}

// --- Syntax errors ------------------------------------------------------------------------

TEST(EndpointRuleParse, EmptyLineIsAnError) {
    EXPECT_NE(parse_error("").find("empty rule"), std::string::npos);
    EXPECT_NE(parse_error(" \t ").find("empty rule"), std::string::npos);
}

TEST(EndpointRuleParse, MissingSignIsAnError) {
    EXPECT_EQ(parse_error("10.0.0.1 tcp/22"),
              "a rule starts with '+' (permit) or '-' (block) and a space, not '10.0.0.1'");
}

TEST(EndpointRuleParse, SignGluedToTheEntityIsAnError) {
    EXPECT_NE(parse_error("+10.0.0.1").find("not '+10.0.0.1'"), std::string::npos);
}

TEST(EndpointRuleParse, MissingEntityIsAnError) {
    EXPECT_NE(parse_error("+").find("missing entity"), std::string::npos);
}

TEST(EndpointRuleParse, DomainIsAnUnsupportedEntity) {
    EXPECT_EQ(parse_error("+ example.com"),
              "unsupported entity 'example.com': expected *, an IP address or a CIDR (domains and "
              "scopes come in a later version)");
}

TEST(EndpointRuleParse, ScopeIsAnUnsupportedEntity) {
    EXPECT_NE(parse_error("- LAN").find("unsupported entity 'LAN'"), std::string::npos);
}

TEST(EndpointRuleParse, BadIpv4AddressSaysSo) {
    EXPECT_EQ(parse_error("+ 10.0.0.300"), "invalid IP address '10.0.0.300'");
}

TEST(EndpointRuleParse, BadIpv6AddressSaysSo) {
    EXPECT_EQ(parse_error("+ 2001:db8:::1"), "invalid IP address '2001:db8:::1'");
}

TEST(EndpointRuleParse, PrefixLongerThanTheAddressIsAnError) {
    EXPECT_NE(parse_error("+ 10.0.0.0/33").find("invalid prefix length"), std::string::npos);
    EXPECT_NE(parse_error("+ fd00::/129").find("invalid prefix length"), std::string::npos);
    EXPECT_NE(parse_error("+ 10.0.0.0/").find("invalid prefix length"), std::string::npos);
}

TEST(EndpointRuleParse, UnknownProtocolListsTheChoices) {
    EXPECT_EQ(parse_error("+ * tpc/22"),
              "unknown protocol 'tpc' (expected tcp, udp, icmp, icmpv6, udplite, sctp, igmp, * or "
              "0-255)");
    EXPECT_NE(parse_error("+ * tcpudplite").find("unknown protocol"), std::string::npos);
}

TEST(EndpointRuleParse, ProtocolNumberAbove255IsAnError) {
    EXPECT_EQ(parse_error("+ * 256"), "protocol number 256 is out of range (0-255)");
    EXPECT_NE(parse_error("+ * 99999999999999999999").find("out of range"), std::string::npos);
}

TEST(EndpointRuleParse, PortsWithoutAPortProtocolAreAnError) {
    EXPECT_EQ(parse_error("+ * icmp/8"), "ports need tcp, udp, udplite or sctp, not 'icmp'");
    EXPECT_EQ(parse_error("+ * */80"), "ports need tcp, udp, udplite or sctp, not '*'");
    EXPECT_EQ(parse_error("+ * 47/1"), "ports need tcp, udp, udplite or sctp, not '47'");
}

TEST(EndpointRuleParse, ReversedPortRangeIsAnError) {
    EXPECT_EQ(parse_error("+ * tcp/600-500"), "port range 600-500 is reversed");
}

TEST(EndpointRuleParse, PortAbove65535IsAnError) {
    EXPECT_EQ(parse_error("+ * tcp/65536"), "port 65536 is out of range (0-65535)");
    EXPECT_NE(parse_error("+ * tcp/1-70000").find("port 70000 is out of range"), std::string::npos);
}

TEST(EndpointRuleParse, MalformedPortsAreErrors) {
    EXPECT_NE(parse_error("+ * tcp/").find("missing port number in 'tcp/'"), std::string::npos);
    EXPECT_NE(parse_error("+ * tcp/80-").find("missing port number"), std::string::npos);
    EXPECT_NE(parse_error("+ * tcp/-80").find("missing port number"), std::string::npos);
    EXPECT_NE(parse_error("+ * tcp/http").find("invalid port 'http'"), std::string::npos);
    EXPECT_NE(parse_error("+ * tcp/+80").find("invalid port"), std::string::npos);
    EXPECT_NE(parse_error("+ * tcp/1-2-3").find("invalid port '2-3'"), std::string::npos);
}

TEST(EndpointRuleParse, ExtraTokensAreAnError) {
    EXPECT_NE(parse_error("+ * tcp/22 now").find("unexpected 'now'"), std::string::npos);
}

// --- Matching -----------------------------------------------------------------------------

TEST(EndpointRuleMatch, StarMatchesBothFamilies) {
    EXPECT_TRUE(rule_matches("+ *", query("192.0.2.1")));
    EXPECT_TRUE(rule_matches("+ *", query("2001:db8::1")));
}

TEST(EndpointRuleMatch, CidrEdgesAreInclusive) {
    EXPECT_TRUE(rule_matches("- 10.0.0.0/8", query("10.0.0.0")));
    EXPECT_TRUE(rule_matches("- 10.0.0.0/8", query("10.255.255.255")));
    EXPECT_FALSE(rule_matches("- 10.0.0.0/8", query("11.0.0.0")));
    EXPECT_FALSE(rule_matches("- 10.0.0.0/8", query("9.255.255.255")));
}

TEST(EndpointRuleMatch, OddPrefixLengthsMatchBitByBit) {
    EXPECT_TRUE(rule_matches("- 192.168.0.0/23", query("192.168.1.255")));
    EXPECT_FALSE(rule_matches("- 192.168.0.0/23", query("192.168.2.0")));
    EXPECT_TRUE(rule_matches("- 2001:db8::/33", query("2001:db8:7fff::1")));
    EXPECT_FALSE(rule_matches("- 2001:db8::/33", query("2001:db8:8000::1")));
}

TEST(EndpointRuleMatch, SlashZeroMatchesOnlyItsOwnFamily) {
    EXPECT_TRUE(rule_matches("- 0.0.0.0/0", query("203.0.113.9")));
    EXPECT_FALSE(rule_matches("- 0.0.0.0/0", query("2001:db8::1")));
    EXPECT_TRUE(rule_matches("- ::/0", query("2001:db8::1")));
    EXPECT_FALSE(rule_matches("- ::/0", query("203.0.113.9")));
}

TEST(EndpointRuleMatch, Ipv4AndIpv6NeverCrossMatch) {
    // ::a00:1 carries the bytes of 10.0.0.1 in its low 32 bits; it is still not 10.0.0.1.
    EXPECT_FALSE(rule_matches("- 10.0.0.1", query("::a00:1")));
    EXPECT_FALSE(rule_matches("- ::a00:1", query("10.0.0.1")));
}

TEST(EndpointRuleMatch, Ipv4MappedAddressesMatchIpv4Rules) {
    // IpAddress folds ::ffff:a.b.c.d to IPv4, so a dual-stack socket obeys the IPv4 rule.
    EXPECT_TRUE(rule_matches("- 10.0.0.1", query("::ffff:10.0.0.1")));
}

TEST(EndpointRuleMatch, SingleAddressMatchesOnlyItself) {
    EXPECT_TRUE(rule_matches("- 2001:db8::1", query("2001:db8::1")));
    EXPECT_FALSE(rule_matches("- 2001:db8::1", query("2001:db8::2")));
}

TEST(EndpointRuleMatch, ProtocolMustBeEqual) {
    EXPECT_TRUE(rule_matches("- * udp", query("192.0.2.1", protocol::kUdp, 53)));
    EXPECT_FALSE(rule_matches("- * udp", query("192.0.2.1", protocol::kTcp, 53)));
    EXPECT_TRUE(rule_matches("- * 47", query("192.0.2.1", 47, 0)));
}

TEST(EndpointRuleMatch, AnyProtocolMatchesEveryProtocol) {
    EXPECT_TRUE(rule_matches("- * *", query("192.0.2.1", protocol::kIcmp, 0)));
    EXPECT_TRUE(rule_matches("- 192.0.2.1", query("192.0.2.1", 47, 0)));
}

TEST(EndpointRuleMatch, PortRangeBoundsAreInclusive) {
    EXPECT_FALSE(rule_matches("- * udp/5000-6000", query("192.0.2.1", protocol::kUdp, 4999)));
    EXPECT_TRUE(rule_matches("- * udp/5000-6000", query("192.0.2.1", protocol::kUdp, 5000)));
    EXPECT_TRUE(rule_matches("- * udp/5000-6000", query("192.0.2.1", protocol::kUdp, 6000)));
    EXPECT_FALSE(rule_matches("- * udp/5000-6000", query("192.0.2.1", protocol::kUdp, 6001)));
}

TEST(EndpointRuleMatch, ProtocolWithoutPortMatchesEveryPort) {
    EXPECT_TRUE(rule_matches("- * tcp", query("192.0.2.1", protocol::kTcp, 0)));
    EXPECT_TRUE(rule_matches("- * tcp", query("192.0.2.1", protocol::kTcp, 65535)));
}

TEST(EndpointRuleMatch, HandBuiltPortRangeNeverMatchesAPortlessProtocol) {
    // The parser refuses "* /80"; a rule built in code must still not match ICMP "port 0".
    EndpointRule rule;
    rule.entity = AnyEntity{};
    rule.port_low = 0;
    rule.port_high = 100;
    EXPECT_FALSE(matches(rule, query("192.0.2.1", protocol::kIcmp, 0)));
    EXPECT_TRUE(matches(rule, query("192.0.2.1", protocol::kTcp, 0)));
}

TEST(EndpointRuleMatch, FirstMatchReturnsTheEarliestMatchingRule) {
    const std::vector<EndpointRule> rules = {
        parse_ok("+ 10.0.0.1 tcp/22"),
        parse_ok("- 10.0.0.0/8"),
        parse_ok("+ *"),
    };
    EXPECT_EQ(first_match(rules, query("10.0.0.1", protocol::kTcp, 22)), &rules[0]);
    EXPECT_EQ(first_match(rules, query("10.0.0.1", protocol::kTcp, 23)), &rules[1]);
    EXPECT_EQ(first_match(rules, query("192.0.2.1", protocol::kTcp, 22)), &rules[2]);
}

TEST(EndpointRuleMatch, FirstMatchIsNullWithoutAMatch) {
    const std::vector<EndpointRule> rules = {parse_ok("- 10.0.0.0/8")};
    EXPECT_EQ(first_match(rules, query("192.0.2.1")), nullptr);
    EXPECT_EQ(first_match({}, query("192.0.2.1")), nullptr);
}

} // namespace
} // namespace pw::firewall
