#include "firewall/endpoint_rule.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "firewall/service_names.h"
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

Entity range(std::string_view first, std::string_view last) {
    return IpRange{.first = address(first), .last = address(last)};
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

DomainPattern domain(DomainMatch match, std::string pattern) {
    return DomainPattern{.match = match, .pattern = std::move(pattern)};
}

DomainFacts facts(std::string name, std::vector<std::string> cname_chain = {}) {
    return DomainFacts{.domain = std::move(name), .cname_chain = std::move(cname_chain)};
}

// An outbound query to 203.0.113.5 tcp/443 resolved from `domain_facts`.
EndpointQuery named_query(const DomainFacts& domain_facts, std::uint8_t proto = protocol::kTcp,
                          std::uint16_t port = 443) {
    EndpointQuery named = query("203.0.113.5", proto, port);
    named.domain = &domain_facts;
    return named;
}

bool name_matches(std::string_view entity, std::string_view name) {
    const auto parsed = parse_domain_pattern(entity);
    EXPECT_TRUE(parsed.has_value()) << entity;
    return parsed.has_value() && parsed->matches(name);
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

// --- Scopes and ranges ------------------------------------------------------------------------

TEST(EndpointRuleParse, ScopeKeywordsAreScopesInAnyCase) {
    EXPECT_EQ(parse_ok("- LAN").entity, Entity{ScopeEntity{.scope = NetworkScope::Lan}});
    EXPECT_EQ(parse_ok("- lan").entity, Entity{ScopeEntity{.scope = NetworkScope::Lan}});
    EXPECT_EQ(parse_ok("+ Localhost").entity,
              Entity{ScopeEntity{.scope = NetworkScope::Localhost}});
    EXPECT_EQ(parse_ok("+ LOCALHOST tcp/8080").entity,
              Entity{ScopeEntity{.scope = NetworkScope::Localhost}});
    EXPECT_EQ(parse_ok("- internet udp").entity,
              Entity{ScopeEntity{.scope = NetworkScope::Internet}});
}

TEST(EndpointRuleParse, ScopeKeywordIsNotADomainPattern) {
    EXPECT_EQ(parse_domain_pattern("LAN").error().what,
              "'LAN' is a scope (Localhost, LAN, Internet), not a domain; for the domain of that "
              "name write 'lan.'");
    // Only the bare keyword: a zone or a longer name is a domain.
    EXPECT_TRUE(parse_domain_pattern("lan.example").has_value());
    EXPECT_EQ(parse_ok("- .lan").entity, Entity{domain(DomainMatch::Zone, "lan")});
    EXPECT_EQ(parse_ok("- Internets").entity, Entity{domain(DomainMatch::Exact, "internets")});
}

TEST(EndpointRuleParse, Ipv4RangeIsARange) {
    const EndpointRule rule = parse_ok("- 10.0.0.5-10.0.0.9 tcp/22");
    EXPECT_EQ(rule.entity, range("10.0.0.5", "10.0.0.9"));
    EXPECT_EQ(rule.port_low, 22);
}

TEST(EndpointRuleParse, Ipv6RangeIsARange) {
    EXPECT_EQ(parse_ok("+ 2001:db8::1-2001:db8::1:0").entity,
              range("2001:db8::1", "2001:db8::1:0"));
}

TEST(EndpointRuleParse, SingleAddressRangeIsAllowed) {
    EXPECT_EQ(parse_ok("+ 10.0.0.5-10.0.0.5").entity, range("10.0.0.5", "10.0.0.5"));
}

TEST(EndpointRuleParse, ReversedIpRangeIsAnError) {
    EXPECT_EQ(parse_error("- 10.0.0.9-10.0.0.5"),
              "IP range '10.0.0.9-10.0.0.5' is reversed (10.0.0.9 is above 10.0.0.5)");
    EXPECT_NE(parse_error("- 2001:db8::2-2001:db8::1").find("is reversed"), std::string::npos);
    // Compared as numbers, not as text: 10.0.0.10 is above 10.0.0.9.
    EXPECT_TRUE(parse_endpoint_rule("- 10.0.0.9-10.0.0.10").has_value());
}

TEST(EndpointRuleParse, MixedFamilyRangeIsAnError) {
    EXPECT_EQ(parse_error("- 10.0.0.1-2001:db8::1"),
              "IP range '10.0.0.1-2001:db8::1' mixes IPv4 and IPv6");
}

TEST(EndpointRuleParse, MalformedRangesAreErrors) {
    EXPECT_EQ(parse_error("- 10.0.0.1-10.0.0"),
              "IP range '10.0.0.1-10.0.0': '10.0.0' is not an IP address");
    EXPECT_EQ(parse_error("- 10.0.0.1-"), "IP range '10.0.0.1-': '' is not an IP address");
    EXPECT_EQ(parse_error("- 10.0.0.300-10.0.0.301"),
              "IP range '10.0.0.300-10.0.0.301': '10.0.0.300' is not an IP address");
    EXPECT_NE(parse_error("- 10.0.0.1-10.0.0.5-10.0.0.9").find("'10.0.0.5-10.0.0.9' is not"),
              std::string::npos);
    EXPECT_NE(parse_error("- 10.0.0.0/24-10.0.1.0").find("takes two addresses, not networks"),
              std::string::npos);
    EXPECT_NE(parse_error("- 10.0.0.0-10.0.1.0/24").find("takes two addresses, not networks"),
              std::string::npos);
}

TEST(EndpointRuleParse, DashedNamesStartingWithANumberAreDomains) {
    EXPECT_EQ(parse_ok("- 123-reg.co.uk").entity,
              Entity{domain(DomainMatch::Exact, "123-reg.co.uk")});
    EXPECT_EQ(parse_ok("- a-10.0.0.1.example").entity,
              Entity{domain(DomainMatch::Exact, "a-10.0.0.1.example")});
}

TEST(EndpointRuleParse, ScopeNameWithTrailingDotIsADomain) {
    EXPECT_EQ(parse_ok("- lan.").entity, Entity{domain(DomainMatch::Exact, "lan")});
    EXPECT_EQ(parse_ok("- .localhost.").entity, Entity{domain(DomainMatch::Zone, "localhost")});
}

// --- Domain entities ------------------------------------------------------------------------

TEST(EndpointRuleParse, PlainNameIsAnExactDomain) {
    const EndpointRule rule = parse_ok("- example.com");
    EXPECT_EQ(rule.entity, Entity{domain(DomainMatch::Exact, "example.com")});
    EXPECT_EQ(rule.text, "- example.com");
    EXPECT_TRUE(rule.is_name_only());
}

TEST(EndpointRuleParse, LeadingDotIsAZone) {
    EXPECT_EQ(parse_ok("- .example.com").entity, Entity{domain(DomainMatch::Zone, "example.com")});
}

TEST(EndpointRuleParse, StarInANameIsAGlob) {
    EXPECT_EQ(parse_ok("- *.ads.*").entity, Entity{domain(DomainMatch::Glob, "*.ads.*")});
    EXPECT_EQ(parse_ok("- tracker*.example.com").entity,
              Entity{domain(DomainMatch::Glob, "tracker*.example.com")});
    EXPECT_EQ(parse_ok("- *example*").entity, Entity{domain(DomainMatch::Glob, "*example*")});
}

TEST(EndpointRuleParse, LoneStarStaysTheAnyEntity) {
    EXPECT_EQ(parse_ok("- *").entity, Entity{AnyEntity{}});
    EXPECT_FALSE(parse_ok("- *").is_name_only());
}

TEST(EndpointRuleParse, DomainsAreFoldedToLowerCase) {
    EXPECT_EQ(parse_ok("+ WWW.Example.COM").entity,
              Entity{domain(DomainMatch::Exact, "www.example.com")});
    EXPECT_EQ(parse_ok("+ .Example.Com").entity, Entity{domain(DomainMatch::Zone, "example.com")});
    // The rule text stays as written: it is what the user sees as the reason.
    EXPECT_EQ(parse_ok("+ WWW.Example.COM").text, "+ WWW.Example.COM");
}

TEST(EndpointRuleParse, TrailingDotIsIgnored) {
    EXPECT_EQ(parse_ok("- example.com.").entity, parse_ok("- example.com").entity);
    EXPECT_EQ(parse_ok("- .example.com.").entity, parse_ok("- .example.com").entity);
    EXPECT_EQ(parse_ok("- *.ads.*.").entity, parse_ok("- *.ads.*").entity);
}

TEST(EndpointRuleParse, DigitsHyphensAndUnderscoresAreAllowed) {
    EXPECT_EQ(parse_ok("- _dmarc.x-1.example.com").entity,
              Entity{domain(DomainMatch::Exact, "_dmarc.x-1.example.com")});
    EXPECT_EQ(parse_ok("- 123.com").entity, Entity{domain(DomainMatch::Exact, "123.com")});
}

TEST(EndpointRuleParse, DomainRuleTakesProtocolAndPorts) {
    const EndpointRule rule = parse_ok("+ .example.com tcp/443");
    EXPECT_EQ(rule.entity, Entity{domain(DomainMatch::Zone, "example.com")});
    EXPECT_EQ(rule.protocol, protocol::kTcp);
    EXPECT_EQ(rule.port_low, 443);
    EXPECT_FALSE(rule.is_name_only());
    EXPECT_FALSE(parse_ok("+ example.com udp").is_name_only());
    EXPECT_TRUE(parse_ok("+ example.com *").is_name_only());
    EXPECT_FALSE(parse_ok("+ 10.0.0.1").is_name_only());
}

TEST(EndpointRuleParse, LabelsOf63AndNamesOf253CharactersAreAllowed) {
    const std::string label63(63, 'a');
    EXPECT_EQ(parse_ok("- " + label63 + ".com").entity,
              Entity{domain(DomainMatch::Exact, label63 + ".com")});
    // 4 labels of 63 and a dot between each: 255; cut to 253 with a last label of 61.
    const std::string name253 =
        label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    ASSERT_EQ(name253.size(), 253U);
    EXPECT_EQ(parse_ok("- " + name253 + ".").entity, Entity{domain(DomainMatch::Exact, name253)});
    EXPECT_EQ(parse_ok("- ." + name253).entity, Entity{domain(DomainMatch::Zone, name253)});
}

TEST(EndpointRuleParse, LabelLongerThan63IsAnError) {
    const std::string label64(64, 'a');
    EXPECT_EQ(
        parse_error("- " + label64 + ".com"),
        "label '" + label64 + "' of domain '" + label64 + ".com' is longer than 63 characters");
}

TEST(EndpointRuleParse, NameLongerThan253IsAnError) {
    const std::string label63(63, 'a');
    const std::string name254 =
        label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b');
    ASSERT_EQ(name254.size(), 254U);
    EXPECT_EQ(parse_error("- " + name254),
              "domain '" + name254 + "' is longer than 253 characters");
    EXPECT_NE(parse_error("- ." + name254).find("longer than 253"), std::string::npos);
}

TEST(EndpointRuleParse, EmptyLabelsAreErrors) {
    EXPECT_EQ(parse_error("- example..com"),
              "empty label in domain 'example..com' (two dots in a row, or a dot where a name "
              "should start)");
    EXPECT_NE(parse_error("- ..example.com").find("empty label in domain '..example.com'"),
              std::string::npos);
    EXPECT_NE(parse_error("- example.com..").find("empty label"), std::string::npos);
    EXPECT_NE(parse_error("- *..ads").find("empty label"), std::string::npos);
}

TEST(EndpointRuleParse, DotsAloneAreNotADomain) {
    EXPECT_EQ(parse_error("- ."),
              "'.' is not a domain (expected a name such as example.com, .example.com for the "
              "zone, or a glob such as *.example.com)");
    EXPECT_NE(parse_error("- ..").find("'..' is not a domain"), std::string::npos);
}

TEST(EndpointRuleParse, InvalidCharactersAreErrors) {
    EXPECT_EQ(parse_error("- exa$mple.com"),
              "invalid character '$' in domain 'exa$mple.com' (expected letters, digits, '-', "
              "'_', dots, and '*' in a glob)");
    EXPECT_NE(parse_error("- exam ple.com").find("unknown protocol 'ple.com'"), std::string::npos);
    EXPECT_NE(parse_error("- b\xc3\xbc"
                          "cher.de")
                  .find("invalid character"),
              std::string::npos);
    EXPECT_NE(parse_error("- a/b.com").find("invalid character '/'"), std::string::npos);
    EXPECT_NE(parse_error("- example.com?").find("invalid character '?'"), std::string::npos);
}

TEST(EndpointRuleParse, StarInAZoneIsAnError) {
    EXPECT_EQ(parse_error("- .*.example.com"),
              "zone '.*.example.com' cannot contain '*' (a zone already covers every name below "
              "it; for a glob leave out the leading dot)");
}

TEST(EndpointRuleParse, AllDigitNamesStayAddresses) {
    EXPECT_EQ(parse_error("- 1.2.3"), "invalid IP address '1.2.3'");
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
    EXPECT_EQ(parse_error("+ * tcp/600-500"), "port range 600-500 is reversed (600 is above 500)");
    EXPECT_EQ(parse_error("+ * tcp/https-http"),
              "port range https-http is reversed (443 is above 80)");
}

TEST(EndpointRuleParse, PortAbove65535IsAnError) {
    EXPECT_EQ(parse_error("+ * tcp/65536"), "port 65536 is out of range (0-65535)");
    EXPECT_NE(parse_error("+ * tcp/1-70000").find("port 70000 is out of range"), std::string::npos);
}

TEST(EndpointRuleParse, MalformedPortsAreErrors) {
    EXPECT_NE(parse_error("+ * tcp/").find("missing port in 'tcp/'"), std::string::npos);
    EXPECT_NE(parse_error("+ * tcp/80-").find("missing port"), std::string::npos);
    EXPECT_NE(parse_error("+ * tcp/-80").find("missing port"), std::string::npos);
    EXPECT_EQ(parse_error("+ * tcp/htps"),
              "invalid port 'htps' (expected a number 0-65535 or a service name such as http, "
              "https, ssh, domain, ntp; see docs/rules.md for the list)");
    EXPECT_NE(parse_error("+ * tcp/+80").find("invalid port"), std::string::npos);
    EXPECT_NE(parse_error("+ * tcp/1-2-3").find("invalid port '2-3'"), std::string::npos);
}

// --- Service names ----------------------------------------------------------------------------

TEST(EndpointRuleParse, ServiceNamesArePorts) {
    const EndpointRule https = parse_ok("+ * tcp/https");
    EXPECT_EQ(https.port_low, 443);
    EXPECT_EQ(https.port_high, 443);
    EXPECT_EQ(parse_ok("+ * udp/domain").port_low, 53);
    EXPECT_EQ(parse_ok("+ * udp/DNS").port_low, 53);
    EXPECT_EQ(parse_ok("+ * TCP/SSH").port_low, 22);
    EXPECT_EQ(parse_ok("+ * udp/ntp").port_low, 123);
    EXPECT_EQ(parse_ok("+ * udp/https").port_low, 443); // QUIC: one name, every protocol
}

TEST(EndpointRuleParse, ServiceNamesWithADashAreOnePort) {
    const EndpointRule ftp_data = parse_ok("+ * tcp/ftp-data");
    EXPECT_EQ(ftp_data.port_low, 20);
    EXPECT_EQ(ftp_data.port_high, 20);
    EXPECT_EQ(parse_ok("+ * tcp/http-alt").port_low, 8080);
}

TEST(EndpointRuleParse, RangeEndsMayBeServiceNames) {
    const EndpointRule web = parse_ok("+ * tcp/http-https");
    EXPECT_EQ(web.port_low, 80);
    EXPECT_EQ(web.port_high, 443);
    const EndpointRule mixed = parse_ok("+ * tcp/1024-http-alt");
    EXPECT_EQ(mixed.port_low, 1024);
    EXPECT_EQ(mixed.port_high, 8080);
}

TEST(EndpointRuleParse, ServiceNameNeedsAProtocolWithPorts) {
    EXPECT_NE(parse_error("+ * icmp/https").find("ports need tcp, udp"), std::string::npos);
}

TEST(ServiceNames, TableHasTheCommonNamesWithIanaPorts) {
    const std::vector<std::pair<std::string_view, std::uint16_t>> expected = {
        {"http", 80},    {"https", 443},       {"ssh", 22},       {"domain", 53},  {"dns", 53},
        {"ntp", 123},    {"smtp", 25},         {"imap", 143},     {"imaps", 993},  {"pop3", 110},
        {"pop3s", 995},  {"submission", 587},  {"ftp", 21},       {"telnet", 23},  {"ldap", 389},
        {"ldaps", 636},  {"mdns", 5353},       {"stun", 3478},    {"rdp", 3389},   {"vnc", 5900},
        {"mysql", 3306}, {"postgresql", 5432}, {"domain-s", 853}, {"stuns", 5349},
    };
    for (const auto& [name, port] : expected) {
        EXPECT_EQ(service_port(name), port) << name;
    }
    EXPECT_EQ(service_port(""), std::nullopt);
    EXPECT_EQ(service_port("no-such-service"), std::nullopt);
}

TEST(ServiceNames, NamesAreUniqueLowerCaseAndNeverNumbers) {
    std::vector<std::string_view> names;
    for (const ServiceName& service : service_names()) {
        names.push_back(service.name);
        EXPECT_FALSE(service.name.empty());
        EXPECT_TRUE(std::ranges::none_of(service.name, [](char c) { return c >= 'A' && c <= 'Z'; }))
            << service.name;
        // A name made of digits would shadow a port number.
        EXPECT_FALSE(std::ranges::all_of(service.name, [](char c) { return c >= '0' && c <= '9'; }))
            << service.name;
        EXPECT_NE(service.port, 0) << service.name;
    }
    std::ranges::sort(names);
    EXPECT_EQ(std::ranges::adjacent_find(names), names.end());
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

TEST(EndpointRuleMatch, ExactDomainMatchesOnlyThatName) {
    EXPECT_TRUE(name_matches("example.com", "example.com"));
    EXPECT_FALSE(name_matches("example.com", "www.example.com"));
    EXPECT_FALSE(name_matches("example.com", "example.co"));
    EXPECT_FALSE(name_matches("example.com", "xexample.com"));
    EXPECT_FALSE(name_matches("example.com", "example.com.au"));
}

TEST(EndpointRuleMatch, ZoneMatchesTheNameAndEverySubdomain) {
    EXPECT_TRUE(name_matches(".example.com", "example.com"));
    EXPECT_TRUE(name_matches(".example.com", "www.example.com"));
    EXPECT_TRUE(name_matches(".example.com", "a.b.c.example.com"));
    EXPECT_FALSE(name_matches(".example.com", "notexample.com"));
    EXPECT_FALSE(name_matches(".example.com", "example.com.evil"));
    EXPECT_FALSE(name_matches(".example.com", "com"));
}

TEST(EndpointRuleMatch, GlobStarMatchesAnyRunIncludingDots) {
    EXPECT_TRUE(name_matches("*.ads.*", "x.ads.example.com"));
    EXPECT_TRUE(name_matches("*.ads.*", "a.b.ads.c.d"));
    EXPECT_FALSE(name_matches("*.ads.*", "ads.example.com"));
    EXPECT_FALSE(name_matches("*.ads.*", "x.myads.com"));
    EXPECT_TRUE(name_matches("tracker*.example.com", "tracker.example.com"));
    EXPECT_TRUE(name_matches("tracker*.example.com", "tracker42.example.com"));
    EXPECT_TRUE(name_matches("tracker*.example.com", "tracker.eu.example.com"));
    EXPECT_FALSE(name_matches("tracker*.example.com", "www.tracker.example.com"));
    EXPECT_FALSE(name_matches("tracker*.example.com", "tracker.example.com.evil"));
    EXPECT_TRUE(name_matches("*example*", "www.example.org"));
    EXPECT_FALSE(name_matches("*example*", "www.exampl.org"));
    EXPECT_FALSE(name_matches("*.example.com", "example.com"));
}

TEST(EndpointRuleMatch, GlobBacktracksPastEarlyPartialMatches) {
    EXPECT_TRUE(name_matches("*ab*abc", "abxabyabc"));
    EXPECT_FALSE(name_matches("*ab*abc", "abxabyab"));
    EXPECT_TRUE(name_matches("a**b", "ab"));
    EXPECT_TRUE(name_matches("*", "anything.at.all"));
}

TEST(EndpointRuleMatch, NamesAreComparedCaseInsensitivelyWithoutTheTrailingDot) {
    EXPECT_TRUE(name_matches("example.com", "EXAMPLE.com."));
    EXPECT_TRUE(name_matches(".example.com", "WWW.Example.Com."));
    EXPECT_TRUE(name_matches("*.ADS.*", "X.Ads.Example."));
    EXPECT_FALSE(name_matches("example.com", "example.com.."));
}

TEST(EndpointRuleMatch, EmptyNameMatchesNothing) {
    EXPECT_FALSE(name_matches("*.*", ""));
    EXPECT_FALSE(name_matches("*", "."));
    EXPECT_FALSE(name_matches(".example.com", ""));
}

TEST(EndpointRuleMatch, DomainRuleNeedsADomain) {
    EXPECT_FALSE(rule_matches("- example.com", query("203.0.113.5")));
    EXPECT_FALSE(rule_matches("- *.*", query("203.0.113.5")));
}

TEST(EndpointRuleMatch, DomainRuleMatchesTheConnectionsDomain) {
    const DomainFacts resolved = facts("www.example.com");
    EXPECT_TRUE(rule_matches("- .example.com", named_query(resolved)));
    EXPECT_TRUE(rule_matches("- www.example.com", named_query(resolved)));
    EXPECT_FALSE(rule_matches("- example.com", named_query(resolved)));
}

TEST(EndpointRuleMatch, DomainRuleMatchesAnyNameOfTheCnameChain) {
    const DomainFacts resolved = facts("shop.example", {"shop.cdn.example", "x.tracker.example"});
    EXPECT_TRUE(rule_matches("- .tracker.example", named_query(resolved)));
    EXPECT_TRUE(rule_matches("- shop.cdn.example", named_query(resolved)));
    EXPECT_TRUE(rule_matches("- shop.example", named_query(resolved)));
    EXPECT_FALSE(rule_matches("- .other.example", named_query(resolved)));
}

TEST(EndpointRuleMatch, DomainRuleAlsoChecksProtocolAndPort) {
    const DomainFacts resolved = facts("example.com");
    EXPECT_TRUE(rule_matches("+ example.com tcp/443", named_query(resolved)));
    EXPECT_FALSE(rule_matches("+ example.com tcp/80", named_query(resolved)));
    EXPECT_FALSE(rule_matches("+ example.com udp", named_query(resolved)));
    EXPECT_TRUE(rule_matches("+ example.com udp/443", named_query(resolved, protocol::kUdp)));
}

TEST(EndpointRuleMatch, DomainRuleIgnoresTheAddress) {
    const DomainFacts resolved = facts("example.com");
    EndpointQuery v6 = query("2001:db8::1");
    v6.domain = &resolved;
    EXPECT_TRUE(rule_matches("- example.com", v6));
}

TEST(EndpointRuleMatch, FirstMatchSkipsDomainRulesThatDoNotMatch) {
    const std::vector<EndpointRule> rules = {
        parse_ok("- .tracker.example"),
        parse_ok("+ example.com tcp/443"),
        parse_ok("- *"),
    };
    const DomainFacts plain = facts("example.com");
    const DomainFacts tracked = facts("example.com", {"a.tracker.example"});
    EXPECT_EQ(first_match(rules, named_query(plain)), &rules[1]);
    EXPECT_EQ(first_match(rules, named_query(tracked)), &rules[0]);
    EXPECT_EQ(first_match(rules, query("203.0.113.5")), &rules[2]);
}

TEST(EndpointRuleMatch, DomainRuleIgnoresTheCnameChainWithoutIncludeCnames) {
    const DomainFacts aliased = facts("shop.example", {"x.tracker.example"});
    EndpointQuery endpoint_query = named_query(aliased);
    EXPECT_TRUE(rule_matches("- .tracker.example", endpoint_query));
    endpoint_query.cnames = IncludeCnames::No;
    EXPECT_FALSE(rule_matches("- .tracker.example", endpoint_query));
    EXPECT_TRUE(rule_matches("- shop.example", endpoint_query)); // the asked name still matches
}

TEST(EndpointRuleMatch, ScopeRulesMatchTheirScopes) {
    EXPECT_TRUE(rule_matches("- Localhost", query("127.0.0.1")));
    EXPECT_TRUE(rule_matches("- Localhost", query("::1")));
    EXPECT_FALSE(rule_matches("- Localhost", query("192.168.1.1")));
    for (const std::string_view lan :
         {"10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1", "fd00::1",
          "fe80::1", "224.0.0.251", "239.255.255.250", "255.255.255.255", "ff02::fb"}) {
        EXPECT_TRUE(rule_matches("- LAN", query(lan))) << lan;
        EXPECT_FALSE(rule_matches("- Internet", query(lan))) << lan;
        EXPECT_FALSE(rule_matches("- Localhost", query(lan))) << lan;
    }
    for (const std::string_view internet :
         {"8.8.8.8", "203.0.113.5", "2001:db8::1", "2606:4700::1", "232.1.1.1", "ff0e::1"}) {
        EXPECT_TRUE(rule_matches("- Internet", query(internet))) << internet;
        EXPECT_FALSE(rule_matches("- LAN", query(internet))) << internet;
    }
}

TEST(EndpointRuleMatch, InvalidAddressesMatchNoScope) {
    for (const std::string_view invalid : {"0.1.2.3", "240.0.0.1", "::"}) {
        for (const std::string_view rule : {"- Localhost", "- LAN", "- Internet"}) {
            EXPECT_FALSE(rule_matches(rule, query(invalid))) << rule << " " << invalid;
        }
        EXPECT_TRUE(rule_matches("- *", query(invalid))) << invalid;
    }
}

TEST(EndpointRuleMatch, ScopeRuleWithPortChecksThePort) {
    EXPECT_TRUE(rule_matches("+ LAN tcp/https", query("192.168.1.1", protocol::kTcp, 443)));
    EXPECT_FALSE(rule_matches("+ LAN tcp/https", query("192.168.1.1", protocol::kTcp, 80)));
    EXPECT_FALSE(rule_matches("+ LAN tcp/https", query("192.168.1.1", protocol::kUdp, 443)));
}

TEST(EndpointRuleMatch, RangeBoundsAreInclusive) {
    const EndpointRule rule = parse_ok("- 10.0.0.5-10.0.0.9");
    EXPECT_FALSE(matches(rule, query("10.0.0.4")));
    EXPECT_TRUE(matches(rule, query("10.0.0.5")));
    EXPECT_TRUE(matches(rule, query("10.0.0.7")));
    EXPECT_TRUE(matches(rule, query("10.0.0.9")));
    EXPECT_FALSE(matches(rule, query("10.0.0.10")));
    EXPECT_FALSE(matches(rule, query("10.0.1.6"))); // numerically above, not by text
}

TEST(EndpointRuleMatch, RangeSpansOctetBoundaries) {
    const EndpointRule rule = parse_ok("- 10.0.0.250-10.0.1.5");
    EXPECT_TRUE(matches(rule, query("10.0.0.255")));
    EXPECT_TRUE(matches(rule, query("10.0.1.0")));
    EXPECT_FALSE(matches(rule, query("10.0.1.6")));
}

TEST(EndpointRuleMatch, Ipv6RangeMatchesOnlyItsFamily) {
    const EndpointRule rule = parse_ok("- ::1-::ffff:ffff");
    EXPECT_TRUE(matches(rule, query("::1")));
    EXPECT_TRUE(matches(rule, query("::fffe:1")));
    // ::ffff:a.b.c.d is folded to IPv4 and so outside an IPv6 range; IPv4 never matches.
    EXPECT_FALSE(matches(rule, query("10.0.0.1")));
    const EndpointRule v4 = parse_ok("- 0.0.0.1-255.255.255.255");
    EXPECT_FALSE(matches(v4, query("2001:db8::1")));
    EXPECT_TRUE(matches(v4, query("::ffff:10.0.0.1")));
}

TEST(EndpointRuleMatch, FirstMatchIsNullWithoutAMatch) {
    const std::vector<EndpointRule> rules = {parse_ok("- 10.0.0.0/8")};
    EXPECT_EQ(first_match(rules, query("192.0.2.1")), nullptr);
    EXPECT_EQ(first_match({}, query("192.0.2.1")), nullptr);
}

} // namespace
} // namespace pw::firewall
