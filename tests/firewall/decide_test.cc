#include "firewall/decide.h"

#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "packet/packet_info.h"

namespace pw::firewall {
namespace {

using packet::Direction;
using packet::Persistence;
using packet::Verdict;
namespace protocol = packet::protocol;

IpAddress address(std::string_view text) {
    auto parsed = IpAddress::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(IpAddress{});
}

FilterSettings settings_with(const std::vector<std::string_view>& lines,
                             DefaultAction default_action = DefaultAction::Permit) {
    FilterSettings settings;
    settings.default_action = default_action;
    RuleList rules;
    for (const std::string_view line : lines) {
        auto rule = parse_endpoint_rule(line);
        EXPECT_TRUE(rule.has_value()) << line;
        if (rule) {
            rules.push_back(*rule);
        }
    }
    // Until the tests are split by direction, the same rules decide both directions.
    settings.endpoints.global = std::make_shared<const RuleList>(std::move(rules));
    settings.service_endpoints.global = settings.endpoints.global;
    return settings;
}

// An outbound TCP connection from 192.168.1.10:40000 to 203.0.113.5:443.
ConnectionFacts outbound_tcp(std::string_view remote = "203.0.113.5", std::uint16_t port = 443) {
    ConnectionFacts facts;
    facts.direction = Direction::Outbound;
    facts.ip_family = address(remote).is_v4() ? IpFamily::V4 : IpFamily::V6;
    facts.protocol = protocol::kTcp;
    facts.local_address =
        address(facts.ip_family == IpFamily::V4 ? "192.168.1.10" : "2001:db8::10");
    facts.local_port = 40000;
    facts.remote_address = address(remote);
    facts.remote_port = port;
    return facts;
}

// An inbound TCP connection from 198.51.100.7:51000 to local port `local_port`.
ConnectionFacts inbound_tcp(std::uint16_t local_port) {
    ConnectionFacts facts;
    facts.direction = Direction::Inbound;
    facts.protocol = protocol::kTcp;
    facts.local_address = address("192.168.1.10");
    facts.local_port = local_port;
    facts.remote_address = address("198.51.100.7");
    facts.remote_port = 51000;
    return facts;
}

ConnectionFacts icmpv6(std::uint8_t type, Direction direction = Direction::Inbound) {
    ConnectionFacts facts;
    facts.direction = direction;
    facts.ip_family = IpFamily::V6;
    facts.protocol = protocol::kIcmpV6;
    facts.local_address = address("fe80::1");
    facts.remote_address = address("fe80::2");
    facts.icmp_type = type;
    return facts;
}

ConnectionFacts udp(Direction direction, std::uint16_t local_port, std::uint16_t remote_port) {
    ConnectionFacts facts;
    facts.direction = direction;
    facts.protocol = protocol::kUdp;
    facts.local_address = address("192.168.1.10");
    facts.local_port = local_port;
    facts.remote_address = address("192.168.1.1");
    facts.remote_port = remote_port;
    return facts;
}

FilterSettings block_everything() {
    return settings_with({"- *"}, DefaultAction::Block);
}

// --- Rules and default action ------------------------------------------------------------------

TEST(Decide, DefaultPermitAcceptsPermanently) {
    const Decision decision = decide(FilterSettings{}, outbound_tcp());
    EXPECT_EQ(decision.verdict, Verdict::Accept);
    EXPECT_EQ(decision.persistence, Persistence::Permanent);
    EXPECT_EQ(decision.reason, "default action: permit (global)");
}

TEST(Decide, DefaultBlockRejectsOutbound) {
    const Decision decision = decide(settings_with({}, DefaultAction::Block), outbound_tcp());
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.persistence, Persistence::Permanent);
    EXPECT_EQ(decision.reason, "default action: block (global)");
}

TEST(Decide, MatchingPermitRuleAcceptsAndNamesTheRule) {
    const FilterSettings settings =
        settings_with({"+ 203.0.113.0/24 tcp/443"}, DefaultAction::Block);
    const Decision decision = decide(settings, outbound_tcp());
    EXPECT_EQ(decision.verdict, Verdict::Accept);
    EXPECT_EQ(decision.reason, "rule '+ 203.0.113.0/24 tcp/443' (global)");
}

TEST(Decide, MatchingBlockRuleRejectsOutbound) {
    const Decision decision = decide(settings_with({"- 203.0.113.5"}), outbound_tcp());
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason, "rule '- 203.0.113.5' (global)");
}

TEST(Decide, FirstMatchingRuleWins) {
    const FilterSettings settings = settings_with({"- 203.0.113.5 tcp/443", "+ 203.0.113.0/24"});
    EXPECT_EQ(decide(settings, outbound_tcp("203.0.113.5", 443)).verdict, Verdict::Block);
    EXPECT_EQ(decide(settings, outbound_tcp("203.0.113.5", 80)).reason,
              "rule '+ 203.0.113.0/24' (global)");
}

TEST(Decide, UnmatchedConnectionFallsThroughToTheDefault) {
    const FilterSettings settings = settings_with({"+ 10.0.0.0/8"}, DefaultAction::Block);
    EXPECT_EQ(decide(settings, outbound_tcp()).reason, "default action: block (global)");
}

TEST(Decide, OutboundRulesMatchTheRemotePort) {
    const FilterSettings settings = settings_with({"- * tcp/443"});
    EXPECT_EQ(decide(settings, outbound_tcp("203.0.113.5", 443)).verdict, Verdict::Block);
    EXPECT_EQ(decide(settings, outbound_tcp("203.0.113.5", 40000)).verdict, Verdict::Accept);
}

TEST(Decide, InboundRulesMatchTheLocalPort) {
    const FilterSettings settings = settings_with({"+ * tcp/22"}, DefaultAction::Block);
    const Decision ssh = decide(settings, inbound_tcp(22));
    EXPECT_EQ(ssh.verdict, Verdict::Accept);
    EXPECT_EQ(ssh.reason, "rule '+ * tcp/22' (global)");
    // The remote port 51000 must not be what the rule looked at.
    EXPECT_EQ(
        decide(settings_with({"+ * tcp/51000"}, DefaultAction::Block), inbound_tcp(22)).verdict,
        Verdict::Drop);
}

TEST(Decide, Ipv6ConnectionIsNotMatchedByIpv4Rules) {
    const FilterSettings settings = settings_with({"- 0.0.0.0/0"});
    EXPECT_EQ(decide(settings, outbound_tcp("2001:db8::5")).verdict, Verdict::Accept);
    EXPECT_EQ(decide(settings, outbound_tcp("203.0.113.5")).verdict, Verdict::Block);
}

// --- Shaping ----------------------------------------------------------------------------------

TEST(Decide, InboundBlockIsASilentDrop) {
    const Decision decision = decide(block_everything(), inbound_tcp(22));
    EXPECT_EQ(decision.verdict, Verdict::Drop);
    EXPECT_EQ(decision.reason, "rule '- *' (global) (silent drop: inbound)");
}

TEST(Decide, InboundDefaultBlockIsASilentDrop) {
    FilterSettings settings = settings_with({}, DefaultAction::Block);
    settings.block_inbound = false;
    const Decision decision = decide(settings, inbound_tcp(22));
    EXPECT_EQ(decision.verdict, Verdict::Drop);
    EXPECT_EQ(decision.reason, "default action: block (global) (silent drop: inbound)");
}

TEST(Decide, OutboundIcmpBlockIsADrop) {
    ConnectionFacts ping = outbound_tcp();
    ping.protocol = protocol::kIcmp;
    ping.remote_port = 0;
    ping.icmp_type = 8;
    const Decision decision = decide(block_everything(), ping);
    EXPECT_EQ(decision.verdict, Verdict::Drop);
    EXPECT_EQ(decision.reason, "rule '- *' (global) (silent drop: ICMP)");
}

TEST(Decide, OutboundIcmpv6BlockIsADrop) {
    ConnectionFacts ping = icmpv6(128, Direction::Outbound); // echo request: not fast-tracked
    EXPECT_EQ(decide(block_everything(), ping).verdict, Verdict::Drop);
}

TEST(Decide, OutboundBlockActionDropTurnsRejectIntoDrop) {
    FilterSettings settings = block_everything();
    settings.outbound_block_action = OutboundBlockAction::Drop;
    const Decision decision = decide(settings, outbound_tcp());
    EXPECT_EQ(decision.verdict, Verdict::Drop);
    EXPECT_EQ(decision.reason, "rule '- *' (global) (silent drop: outboundBlockAction is drop)");
}

TEST(Decide, OutboundBlockActionRejectKeepsBlock) {
    FilterSettings settings = block_everything();
    settings.outbound_block_action = OutboundBlockAction::Reject;
    EXPECT_EQ(decide(settings, outbound_tcp()).verdict, Verdict::Block);
}

TEST(Decide, OutboundBlockActionDoesNotTouchAccepts) {
    FilterSettings settings;
    settings.outbound_block_action = OutboundBlockAction::Drop;
    EXPECT_EQ(decide(settings, outbound_tcp()).verdict, Verdict::Accept);
}

TEST(Decide, PermanentVerdictsOffMakesEverythingTemporary) {
    FilterSettings settings = settings_with({"- 198.51.100.0/24"});
    settings.permanent_verdicts = PermanentVerdicts::Off;
    EXPECT_EQ(decide(settings, outbound_tcp()).persistence, Persistence::Temporary);
    EXPECT_EQ(decide(settings, inbound_tcp(22)).persistence, Persistence::Temporary);
}

TEST(Decide, PermanentVerdictsOnMakesBlocksAndDropsPermanent) {
    EXPECT_EQ(decide(block_everything(), outbound_tcp()).persistence, Persistence::Permanent);
    EXPECT_EQ(decide(block_everything(), inbound_tcp(22)).persistence, Persistence::Permanent);
}

TEST(Decide, AcceptedOutboundLoopbackStaysTemporary) {
    const Decision v4 = decide(FilterSettings{}, outbound_tcp("127.0.0.1", 8080));
    EXPECT_EQ(v4.verdict, Verdict::Accept);
    EXPECT_EQ(v4.persistence, Persistence::Temporary);
    EXPECT_EQ(decide(FilterSettings{}, outbound_tcp("127.53.0.1", 53)).persistence,
              Persistence::Temporary);
    EXPECT_EQ(decide(FilterSettings{}, outbound_tcp("::1", 8080)).persistence,
              Persistence::Temporary);
}

TEST(Decide, BlockedOutboundLoopbackStaysPermanent) {
    EXPECT_EQ(decide(block_everything(), outbound_tcp("127.0.0.1", 8080)).persistence,
              Persistence::Permanent);
}

TEST(Decide, AcceptedInboundLoopbackFollowsTheSetting) {
    ConnectionFacts facts = inbound_tcp(8080);
    facts.remote_address = address("127.0.0.1");
    facts.local_address = address("127.0.0.1");
    EXPECT_EQ(decide(FilterSettings{}, facts).persistence, Persistence::Permanent);
}

// --- Fast-tracks ------------------------------------------------------------------------------

TEST(Decide, NeighbourDiscoveryIsFastTrackedDespiteBlockRules) {
    for (std::uint8_t type = 133; type <= 137; ++type) {
        const Decision decision = decide(block_everything(), icmpv6(type));
        EXPECT_EQ(decision.verdict, Verdict::Accept) << int{type};
        EXPECT_EQ(decision.persistence, Persistence::Temporary) << int{type};
        EXPECT_EQ(decision.reason, "fast-track: IPv6 neighbour discovery") << int{type};
    }
}

TEST(Decide, MulticastListenerDiscoveryIsFastTracked) {
    for (const std::uint8_t type : {130, 131, 132, 143}) {
        const Decision decision = decide(block_everything(), icmpv6(type, Direction::Outbound));
        EXPECT_EQ(decision.verdict, Verdict::Accept) << int{type};
        EXPECT_EQ(decision.reason, "fast-track: IPv6 multicast listener discovery") << int{type};
    }
}

TEST(Decide, OtherIcmpv6TypesAreNotFastTracked) {
    for (const std::uint8_t type : {1, 128, 129, 138, 142, 144}) {
        EXPECT_EQ(decide(block_everything(), icmpv6(type)).verdict, Verdict::Drop) << int{type};
    }
}

TEST(Decide, Icmpv4WithNeighbourDiscoveryTypeNumbersIsNotFastTracked) {
    ConnectionFacts facts = icmpv6(135);
    facts.protocol = protocol::kIcmp;
    EXPECT_EQ(decide(block_everything(), facts).verdict, Verdict::Drop);
}

TEST(Decide, DhcpRequestAndReplyAreFastTracked) {
    const Decision request = decide(block_everything(), udp(Direction::Outbound, 68, 67));
    EXPECT_EQ(request.verdict, Verdict::Accept);
    EXPECT_EQ(request.reason, "fast-track: DHCP");
    EXPECT_EQ(request.persistence, Persistence::Temporary);
    EXPECT_EQ(decide(block_everything(), udp(Direction::Inbound, 68, 67)).verdict, Verdict::Accept);
}

TEST(Decide, Dhcpv6IsFastTracked) {
    const Decision request = decide(block_everything(), udp(Direction::Outbound, 546, 547));
    EXPECT_EQ(request.verdict, Verdict::Accept);
    EXPECT_EQ(request.reason, "fast-track: DHCPv6");
    EXPECT_EQ(decide(block_everything(), udp(Direction::Inbound, 546, 547)).verdict,
              Verdict::Accept);
}

TEST(Decide, DhcpServerSidePortsAreNotFastTracked) {
    EXPECT_EQ(decide(block_everything(), udp(Direction::Inbound, 67, 68)).verdict, Verdict::Drop);
    EXPECT_EQ(decide(block_everything(), udp(Direction::Inbound, 547, 546)).verdict, Verdict::Drop);
    EXPECT_EQ(decide(block_everything(), udp(Direction::Outbound, 40000, 67)).verdict,
              Verdict::Block);
}

// The fast-track bypasses every rule, so both ports must match: a program that binds the DHCP
// client port (68 or 546) gets no free pass to any other server port.
TEST(Decide, DhcpClientPortAloneIsNotFastTracked) {
    for (const std::uint16_t remote : {53, 68, 443, 546, 547}) {
        EXPECT_EQ(decide(block_everything(), udp(Direction::Outbound, 68, remote)).verdict,
                  Verdict::Block)
            << "68 -> " << remote;
        EXPECT_EQ(decide(block_everything(), udp(Direction::Inbound, 68, remote)).verdict,
                  Verdict::Drop)
            << "68 <- " << remote;
    }
    for (const std::uint16_t remote : {53, 67, 443, 546}) {
        EXPECT_EQ(decide(block_everything(), udp(Direction::Outbound, 546, remote)).verdict,
                  Verdict::Block)
            << "546 -> " << remote;
        EXPECT_EQ(decide(block_everything(), udp(Direction::Inbound, 546, remote)).verdict,
                  Verdict::Drop)
            << "546 <- " << remote;
    }
}

TEST(Decide, DhcpPortsOverTcpAreNotFastTracked) {
    ConnectionFacts facts = udp(Direction::Outbound, 68, 67);
    facts.protocol = protocol::kTcp;
    EXPECT_EQ(decide(block_everything(), facts).verdict, Verdict::Block);
}

TEST(Decide, SameInputGivesTheSameDecision) {
    const FilterSettings settings = settings_with({"+ 10.0.0.0/8 tcp/22", "- *"});
    const ConnectionFacts facts = outbound_tcp("10.1.2.3", 22);
    const Decision first = decide(settings, facts);
    const Decision second = decide(settings, facts);
    EXPECT_EQ(first.verdict, second.verdict);
    EXPECT_EQ(first.persistence, second.persistence);
    EXPECT_EQ(first.reason, second.reason);
}

} // namespace
} // namespace pw::firewall
