// decide() steps 2-5, 9 and 13 (decide.h): portwarden's own connections, DNS to and around our
// nameserver, the blocked-DNS answer address, domain rules and bypass prevention.
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "firewall/decide.h"
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

IpEndpoint endpoint(std::string_view text, std::uint16_t port) {
    return IpEndpoint{.address = address(text), .port = port};
}

// Settings as the daemon has them with the default `dns/listenAddress` (localhost:53), plus
// `lines` as rules.
FilterSettings settings_with(const std::vector<std::string_view>& lines = {},
                             DefaultAction default_action = DefaultAction::Permit) {
    FilterSettings settings;
    settings.default_action = default_action;
    RuleList rules;
    settings.dns.nameserver_endpoints = {endpoint("127.0.0.17", 53), endpoint("::1", 53)};
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

FilterSettings block_everything() {
    return settings_with({"- *"}, DefaultAction::Block);
}

// An outbound connection from a local address of the remote's family (loopback for loopback).
ConnectionFacts outbound(std::uint8_t proto, std::string_view remote, std::uint16_t port) {
    ConnectionFacts facts;
    facts.direction = Direction::Outbound;
    facts.remote_address = address(remote);
    facts.ip_family = facts.remote_address.family();
    facts.protocol = proto;
    if (facts.remote_address.is_loopback()) {
        facts.local_address = address(facts.remote_address.is_v4() ? "127.0.0.1" : "::1");
    } else {
        facts.local_address =
            address(facts.remote_address.is_v4() ? "192.168.1.10" : "2001:db8::10");
    }
    facts.local_port = 40000;
    facts.remote_port = port;
    return facts;
}

ConnectionFacts inbound(std::uint8_t proto, std::string_view local, std::uint16_t local_port,
                        std::string_view remote) {
    ConnectionFacts facts;
    facts.direction = Direction::Inbound;
    facts.local_address = address(local);
    facts.ip_family = facts.local_address.family();
    facts.protocol = proto;
    facts.local_port = local_port;
    facts.remote_address = address(remote);
    facts.remote_port = 40000;
    return facts;
}

ConnectionFacts by_process(ConnectionFacts facts, ProcessKind kind) {
    ProcessFacts process;
    process.kind = kind;
    facts.process = std::move(process);
    return facts;
}

ConnectionFacts with_domain(ConnectionFacts facts, std::string domain,
                            std::vector<std::string> cname_chain = {}) {
    facts.domain = DomainFacts{.domain = std::move(domain), .cname_chain = std::move(cname_chain)};
    return facts;
}

ConnectionFacts ping(std::string_view remote) {
    ConnectionFacts facts = outbound(protocol::kIcmp, remote, 0);
    facts.icmp_type = 8;
    return facts;
}

// --- Step 2: portwarden's own connections ------------------------------------------------------

TEST(DecideOwnConnection, UpstreamQueryIsAcceptedNotRedirected) {
    const Decision decision =
        decide(block_everything(),
               by_process(outbound(protocol::kUdp, "192.168.1.1", 53), ProcessKind::Portwarden));
    EXPECT_EQ(decision.verdict, Verdict::Accept);
    EXPECT_EQ(decision.persistence, Persistence::Permanent);
    EXPECT_EQ(decision.reason, "portwarden's own connection");
}

TEST(DecideOwnConnection, DnsOverTlsToAListedResolverIsAccepted) {
    // A user may pick dot://cloudflare-dns.com?ip=1.1.1.1 as upstream: bypass prevention must not
    // stop the resolver itself.
    for (const std::string_view remote : {"1.1.1.1", "2606:4700:4700::1111", "8.8.8.8"}) {
        const Decision decision =
            decide(block_everything(),
                   by_process(outbound(protocol::kTcp, remote, 853), ProcessKind::Portwarden));
        EXPECT_EQ(decision.verdict, Verdict::Accept) << remote;
        EXPECT_EQ(decision.reason, "portwarden's own connection") << remote;
    }
}

TEST(DecideOwnConnection, OtherProcessesAreNotExempt) {
    const Decision decision =
        decide(settings_with(),
               by_process(outbound(protocol::kTcp, "1.1.1.1", 853), ProcessKind::Process));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason, "prevent bypassing: DNS over TLS");
    EXPECT_EQ(decide(block_everything(), outbound(protocol::kTcp, "1.1.1.1", 853)).verdict,
              Verdict::Block);
}

TEST(DecideOwnConnection, OwnLoopbackConnectionStaysTemporary) {
    const Decision decision =
        decide(settings_with(),
               by_process(outbound(protocol::kTcp, "127.0.0.1", 8080), ProcessKind::Portwarden));
    EXPECT_EQ(decision.verdict, Verdict::Accept);
    EXPECT_EQ(decision.persistence, Persistence::Temporary);
}

TEST(DecideOwnConnection, InboundFromThisHostIsAccepted) {
    const Decision loopback = decide(
        block_everything(), by_process(inbound(protocol::kTcp, "127.0.0.1", 817, "127.0.0.1"),
                                       ProcessKind::Portwarden));
    EXPECT_EQ(loopback.verdict, Verdict::Accept);
    EXPECT_EQ(loopback.reason, "portwarden's own connection");
    const Decision own_address = decide(
        block_everything(), by_process(inbound(protocol::kTcp, "192.168.1.10", 817, "192.168.1.10"),
                                       ProcessKind::Portwarden));
    EXPECT_EQ(own_address.verdict, Verdict::Accept);
}

TEST(DecideOwnConnection, InboundFromAnotherHostIsAnOrdinaryConnection) {
    const Decision decision = decide(
        block_everything(), by_process(inbound(protocol::kTcp, "192.168.1.10", 817, "192.168.1.20"),
                                       ProcessKind::Portwarden));
    EXPECT_EQ(decision.verdict, Verdict::Drop);
    EXPECT_EQ(decision.reason, "rule '- *' (global) (silent drop: inbound)");
}

// --- Step 3: DNS to our nameserver -------------------------------------------------------------

TEST(DecideNameserver, QueryIsAcceptedPermanentlyEvenOnLoopback) {
    for (const auto& [proto, remote] :
         std::vector<std::pair<std::uint8_t, std::string_view>>{{protocol::kUdp, "127.0.0.17"},
                                                                {protocol::kTcp, "127.0.0.17"},
                                                                {protocol::kUdp, "::1"},
                                                                {protocol::kTcp, "::1"}}) {
        const Decision decision = decide(block_everything(), outbound(proto, remote, 53));
        EXPECT_EQ(decision.verdict, Verdict::Accept) << remote;
        EXPECT_EQ(decision.persistence, Persistence::Permanent) << remote;
        EXPECT_EQ(decision.reason, "query to portwarden's nameserver") << remote;
    }
}

TEST(DecideNameserver, PermanentVerdictsOffMakesTheQueryTemporary) {
    FilterSettings settings = settings_with();
    settings.permanent_verdicts = PermanentVerdicts::Off;
    const Decision decision = decide(settings, outbound(protocol::kUdp, "127.0.0.17", 53));
    EXPECT_EQ(decision.verdict, Verdict::Accept);
    EXPECT_EQ(decision.persistence, Persistence::Temporary);
}

TEST(DecideNameserver, ServerSideIsAccepted) {
    const Decision v4 =
        decide(block_everything(), inbound(protocol::kUdp, "127.0.0.17", 53, "127.0.0.1"));
    EXPECT_EQ(v4.verdict, Verdict::Accept);
    EXPECT_EQ(v4.persistence, Persistence::Permanent);
    EXPECT_EQ(v4.reason, "query to portwarden's nameserver");
    EXPECT_EQ(decide(block_everything(), inbound(protocol::kTcp, "::1", 53, "::1")).verdict,
              Verdict::Accept);
}

TEST(DecideNameserver, OtherPortOfTheSameAddressIsNotTheNameserver) {
    const Decision decision =
        decide(block_everything(), outbound(protocol::kTcp, "127.0.0.17", 1117));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason, "rule '- *' (global)");
    EXPECT_EQ(
        decide(block_everything(), inbound(protocol::kUdp, "127.0.0.1", 53, "127.0.0.1")).verdict,
        Verdict::Drop);
}

TEST(DecideNameserver, OtherProtocolsToTheEndpointAreOrdinary) {
    const Decision decision =
        decide(block_everything(), outbound(protocol::kSctp, "127.0.0.17", 53));
    EXPECT_EQ(decision.reason, "rule '- *' (global)");
}

TEST(DecideNameserver, ConfiguredEndpointIsUsed) {
    FilterSettings settings = block_everything();
    settings.dns.nameserver_endpoints = {endpoint("192.168.1.10", 5300)};
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "192.168.1.10", 5300)).reason,
              "query to portwarden's nameserver");
    EXPECT_EQ(
        decide(settings, inbound(protocol::kUdp, "192.168.1.10", 5300, "192.168.1.20")).verdict,
        Verdict::Accept);
    // 127.0.0.17:53 is just another nameserver now: astray, and redirected.
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "127.0.0.17", 53)).verdict,
              Verdict::RerouteToNameserver);
}

// --- Step 4: astray DNS ------------------------------------------------------------------------

TEST(DecideAstrayDns, QueryToAnotherNameserverIsRedirected) {
    for (const auto& [proto, remote] :
         std::vector<std::pair<std::uint8_t, std::string_view>>{{protocol::kUdp, "192.168.1.1"},
                                                                {protocol::kTcp, "192.168.1.1"},
                                                                {protocol::kUdp, "127.0.0.53"},
                                                                {protocol::kUdp, "2001:db8::53"},
                                                                {protocol::kTcp, "2001:db8::53"}}) {
        const Decision decision = decide(settings_with(), outbound(proto, remote, 53));
        EXPECT_EQ(decision.verdict, Verdict::RerouteToNameserver) << remote;
        EXPECT_EQ(decision.reason, "astray DNS query redirected to portwarden's nameserver")
            << remote;
    }
}

TEST(DecideAstrayDns, RedirectComesBeforeRulesAndBypassPrevention) {
    EXPECT_EQ(decide(settings_with({"+ *"}), outbound(protocol::kUdp, "8.8.8.8", 53)).verdict,
              Verdict::RerouteToNameserver);
    EXPECT_EQ(decide(block_everything(), outbound(protocol::kUdp, "1.1.1.1", 53)).verdict,
              Verdict::RerouteToNameserver);
}

TEST(DecideAstrayDns, WithoutANameserverOfTheSameFamilyTheQueryIsBlocked) {
    FilterSettings settings = settings_with({"+ *"});
    settings.dns.nameserver_endpoints = {endpoint("127.0.0.17", 53)};
    const Decision v6 = decide(settings, outbound(protocol::kUdp, "2001:db8::53", 53));
    EXPECT_EQ(v6.verdict, Verdict::Block);
    EXPECT_EQ(v6.persistence, Persistence::Permanent);
    EXPECT_EQ(v6.reason,
              "DNS query to another nameserver (no portwarden nameserver for this IP version)");
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "192.168.1.1", 53)).verdict,
              Verdict::RerouteToNameserver);

    settings.dns.nameserver_endpoints = {endpoint("::1", 53)};
    EXPECT_EQ(decide(settings, outbound(protocol::kTcp, "192.168.1.1", 53)).verdict,
              Verdict::Block);
    EXPECT_EQ(decide(settings, outbound(protocol::kTcp, "2001:db8::53", 53)).verdict,
              Verdict::RerouteToNameserver);
}

TEST(DecideAstrayDns, BlockedQueryFollowsOutboundBlockAction) {
    FilterSettings settings = settings_with();
    settings.dns.nameserver_endpoints = {endpoint("127.0.0.17", 53)};
    settings.outbound_block_action = OutboundBlockAction::Drop;
    const Decision decision = decide(settings, outbound(protocol::kUdp, "2001:db8::53", 53));
    EXPECT_EQ(decision.verdict, Verdict::Drop);
    EXPECT_EQ(decision.reason,
              "DNS query to another nameserver (no portwarden nameserver for this IP version) "
              "(silent drop: outboundBlockAction is drop)");
}

TEST(DecideAstrayDns, AstrayBlockModeBlocksEveryAstrayQuery) {
    FilterSettings settings = settings_with({"+ *"});
    settings.dns.astray = AstrayDns::Block;
    const Decision decision = decide(settings, outbound(protocol::kUdp, "192.168.1.1", 53));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason, "DNS query to another nameserver (redirecting is off)");
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "127.0.0.17", 53)).verdict,
              Verdict::Accept);
}

TEST(DecideAstrayDns, WithoutAnyNameserverDnsIsOrdinaryTraffic) {
    FilterSettings settings = settings_with();
    settings.dns.nameserver_endpoints.clear();
    const Decision decision = decide(settings, outbound(protocol::kUdp, "192.168.1.1", 53));
    EXPECT_EQ(decision.verdict, Verdict::Accept);
    EXPECT_EQ(decision.reason, "default action: permit (global)");
}

TEST(DecideAstrayDns, InboundQueriesAndOtherPortsAreOrdinary) {
    const FilterSettings settings = settings_with({"- * udp/53", "- * tcp/53"});
    // A DNS server on this host that answers the LAN: its own rules decide.
    EXPECT_EQ(decide(settings, inbound(protocol::kUdp, "192.168.1.10", 53, "192.168.1.20")).reason,
              "rule '- * udp/53' (global) (silent drop: inbound)");
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "192.168.1.1", 5353)).verdict,
              Verdict::Accept);
    // Not UDP or TCP: not DNS.
    EXPECT_EQ(decide(settings, outbound(protocol::kSctp, "192.168.1.1", 53)).verdict,
              Verdict::Accept);
}

// --- Step 5: the blocked-DNS answer ------------------------------------------------------------

TEST(DecideBlockedAnswer, ConnectionToTheBlockedAnswerIsBlockedPermanently) {
    FilterSettings settings = settings_with({"+ *"});
    settings.permanent_verdicts = PermanentVerdicts::Off;
    for (const std::string_view remote : {"0.0.0.17", "::17"}) {
        const Decision decision = decide(settings, outbound(protocol::kTcp, remote, 443));
        EXPECT_EQ(decision.verdict, Verdict::Block) << remote;
        EXPECT_EQ(decision.persistence, Persistence::Permanent) << remote;
        EXPECT_EQ(decision.reason, "blocked by DNS answer") << remote;
    }
}

TEST(DecideBlockedAnswer, OnlyTheExactAddressesAreBlocked) {
    const FilterSettings settings = settings_with({"+ *"});
    for (const std::string_view remote :
         {"0.0.0.18", "0.0.1.17", "::18", "::11", "::1:17", "17.0.0.0"}) {
        EXPECT_EQ(decide(settings, outbound(protocol::kTcp, remote, 443)).verdict, Verdict::Accept)
            << remote;
    }
}

TEST(DecideBlockedAnswer, ShapedLikeOtherBlocks) {
    FilterSettings settings = settings_with();
    settings.outbound_block_action = OutboundBlockAction::Drop;
    EXPECT_EQ(decide(settings, outbound(protocol::kTcp, "0.0.0.17", 80)).verdict, Verdict::Drop);
    EXPECT_EQ(decide(settings_with(), ping("0.0.0.17")).verdict, Verdict::Drop);
}

// --- Step 13: bypass prevention -----------------------------------------------------------------

TEST(DecideBypass, DnsOverTlsIsBlockedToAnyAddress) {
    const FilterSettings settings = settings_with({"+ 10.0.0.0/8"});
    for (const auto& [proto, remote] :
         std::vector<std::pair<std::uint8_t, std::string_view>>{{protocol::kTcp, "203.0.113.5"},
                                                                {protocol::kUdp, "203.0.113.5"},
                                                                {protocol::kTcp, "2001:db8::5"}}) {
        const Decision decision = decide(settings, outbound(proto, remote, 853));
        EXPECT_EQ(decision.verdict, Verdict::Block) << remote;
        EXPECT_EQ(decision.persistence, Persistence::Permanent) << remote;
        EXPECT_EQ(decision.reason, "prevent bypassing: DNS over TLS") << remote;
    }
}

TEST(DecideBypass, KnownResolverAddressIsBlocked) {
    const FilterSettings settings = settings_with();
    for (const std::string_view remote : {"1.1.1.1", "8.8.4.4", "9.9.9.9", "2606:4700:4700::1111",
                                          "2001:4860:4860::8888", "45.90.30.1"}) {
        const Decision decision = decide(settings, outbound(protocol::kTcp, remote, 443));
        EXPECT_EQ(decision.verdict, Verdict::Block) << remote;
        EXPECT_EQ(decision.reason, "prevent bypassing: known DNS-over-HTTPS resolver") << remote;
    }
}

TEST(DecideBypass, KnownResolverNameOrCnameIsBlocked) {
    const FilterSettings settings = settings_with({"+ .example.org"});
    const Decision by_name =
        decide(settings, with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "dns.google"));
    EXPECT_EQ(by_name.verdict, Verdict::Block);
    EXPECT_EQ(by_name.reason, "prevent bypassing: known DNS-over-HTTPS resolver");
    const Decision by_cname =
        decide(settings, with_domain(outbound(protocol::kTcp, "2001:db8::5", 443), "doh.example",
                                     {"mozilla.cloudflare-dns.com"}));
    EXPECT_EQ(by_cname.verdict, Verdict::Block);
    EXPECT_EQ(decide(settings,
                     with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "www.example.com"))
                  .verdict,
              Verdict::Accept);
}

TEST(DecideBypass, NotForInboundOrIcmp) {
    FilterSettings settings = settings_with();
    settings.block_inbound = false;
    EXPECT_EQ(decide(settings, inbound(protocol::kTcp, "192.168.1.10", 853, "1.1.1.1")).verdict,
              Verdict::Accept);
    const Decision icmp = decide(settings, ping("1.1.1.1"));
    EXPECT_EQ(icmp.verdict, Verdict::Accept);
    EXPECT_EQ(icmp.reason, "default action: permit (global)");
}

TEST(DecideBypass, OffLetsTheRulesDecide) {
    FilterSettings settings = settings_with();
    settings.prevent_bypassing = PreventBypassing::Off;
    EXPECT_EQ(decide(settings, outbound(protocol::kTcp, "1.1.1.1", 853)).verdict, Verdict::Accept);
    EXPECT_EQ(decide(settings, outbound(protocol::kTcp, "8.8.8.8", 443)).verdict, Verdict::Accept);
    EXPECT_EQ(
        decide(settings, with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "dns.google"))
            .verdict,
        Verdict::Accept);
}

TEST(DecideBypass, ComesAfterTheBlockedAnswerAndTheRules) {
    // An explicit rule overrules bypass prevention, as in Portmaster: the user asked for it.
    const FilterSettings settings = settings_with({"+ 1.1.1.1", "+ dns.google tcp/443"});
    const Decision by_address = decide(settings, outbound(protocol::kTcp, "1.1.1.1", 443));
    EXPECT_EQ(by_address.verdict, Verdict::Accept);
    EXPECT_EQ(by_address.reason, "rule '+ 1.1.1.1' (global)");
    EXPECT_EQ(
        decide(settings, with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "dns.google"))
            .reason,
        "rule '+ dns.google tcp/443' (global)");
    // A rule that does not match leaves it to bypass prevention.
    EXPECT_EQ(
        decide(settings, with_domain(outbound(protocol::kTcp, "203.0.113.5", 853), "dns.google"))
            .reason,
        "prevent bypassing: DNS over TLS");
    EXPECT_EQ(decide(settings, outbound(protocol::kTcp, "0.0.0.17", 853)).reason,
              "blocked by DNS answer");
    // A blocking rule decides before it, and names itself.
    EXPECT_EQ(decide(settings_with({"- *"}), outbound(protocol::kTcp, "1.1.1.1", 853)).reason,
              "rule '- *' (global)");
}

// --- Step 9: domain rules ----------------------------------------------------------------------

TEST(DecideDomainRules, ZoneRuleBlocksAConnectionResolvedFromTheZone) {
    const FilterSettings settings = settings_with({"- .example.com"});
    const Decision decision = decide(
        settings, with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "www.example.com"));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason, "rule '- .example.com' (global)");
    EXPECT_EQ(decide(settings, outbound(protocol::kTcp, "203.0.113.5", 443)).reason,
              "default action: permit (global)");
}

TEST(DecideDomainRules, CnameMatchesAsTheDomainDoes) {
    const FilterSettings settings = settings_with({"- .tracker.example"});
    const Decision decision =
        decide(settings, with_domain(outbound(protocol::kTcp, "2001:db8::5", 443), "shop.example",
                                     {"shop.cdn.example", "x.tracker.example"}));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason, "rule '- .tracker.example' (global)");
}

TEST(DecideDomainRules, DomainRuleWithPortAndFirstMatchWins) {
    const FilterSettings settings =
        settings_with({"+ example.com tcp/443", "- example.com", "+ *"}, DefaultAction::Block);
    const ConnectionFacts https =
        with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "example.com");
    const ConnectionFacts http =
        with_domain(outbound(protocol::kTcp, "203.0.113.5", 80), "example.com");
    EXPECT_EQ(decide(settings, https).reason, "rule '+ example.com tcp/443' (global)");
    EXPECT_EQ(decide(settings, http).reason, "rule '- example.com' (global)");
    EXPECT_EQ(decide(settings, outbound(protocol::kTcp, "203.0.113.5", 80)).reason,
              "rule '+ *' (global)");
}

TEST(DecideDomainRules, GlobRuleMatches) {
    const FilterSettings settings = settings_with({"- *.ads.*"});
    EXPECT_EQ(
        decide(settings, with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "x.ads.example"))
            .verdict,
        Verdict::Block);
    EXPECT_EQ(
        decide(settings, with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "ads.example"))
            .verdict,
        Verdict::Accept);
}

TEST(DecideDomainRules, InboundDomainBlockIsADrop) {
    const FilterSettings settings = settings_with({"- .example.com"});
    const Decision decision =
        decide(settings, with_domain(inbound(protocol::kTcp, "192.168.1.10", 22, "203.0.113.5"),
                                     "host.example.com"));
    EXPECT_EQ(decision.verdict, Verdict::Drop);
}

// --- The order of the steps --------------------------------------------------------------------

TEST(DecideOrder, InfrastructureComesFirst) {
    // DHCP from our own process, to a listed address port: still the fast-track.
    ConnectionFacts dhcp =
        by_process(outbound(protocol::kUdp, "192.168.1.1", 67), ProcessKind::Portwarden);
    dhcp.local_port = 68;
    EXPECT_EQ(decide(block_everything(), dhcp).reason, "fast-track: DHCP");
}

TEST(DecideOrder, OwnConnectionBeatsEveryLaterStep) {
    const FilterSettings settings = block_everything();
    for (const auto& [proto, remote, port] :
         std::vector<std::tuple<std::uint8_t, std::string_view, std::uint16_t>>{
             {protocol::kUdp, "2001:db8::53", 53},
             {protocol::kTcp, "0.0.0.17", 443},
             {protocol::kTcp, "9.9.9.9", 853},
             {protocol::kTcp, "203.0.113.5", 443}}) {
        EXPECT_EQ(
            decide(settings, by_process(outbound(proto, remote, port), ProcessKind::Portwarden))
                .reason,
            "portwarden's own connection")
            << remote;
    }
}

TEST(DecideOrder, NameserverQueryIsNeverAstray) {
    FilterSettings settings = settings_with();
    settings.dns.astray = AstrayDns::Block;
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "::1", 53)).verdict, Verdict::Accept);
}

TEST(DecideOrder, AstrayDnsComesBeforeTheBlockedAnswer) {
    // A query to 0.0.0.17:53 is DNS first; our nameserver answers it.
    EXPECT_EQ(decide(settings_with(), outbound(protocol::kUdp, "0.0.0.17", 53)).verdict,
              Verdict::RerouteToNameserver);
}

TEST(DecideOrder, SameInputGivesTheSameDecision) {
    const FilterSettings settings = settings_with({"- .example.com", "+ *"});
    const ConnectionFacts facts =
        with_domain(outbound(protocol::kTcp, "203.0.113.5", 443), "a.example.com");
    const Decision first = decide(settings, facts);
    const Decision second = decide(settings, facts);
    EXPECT_EQ(first.verdict, second.verdict);
    EXPECT_EQ(first.persistence, second.persistence);
    EXPECT_EQ(first.reason, second.reason);
}

} // namespace
} // namespace pw::firewall
