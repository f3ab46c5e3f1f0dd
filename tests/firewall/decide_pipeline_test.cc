// decide() steps 6-15 (decide.h): the deciders of the profile's settings, in Portmaster's order,
// and where each stands relative to the others.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "firewall/decide.h"
#include "packet/packet_info.h"

namespace pw::firewall {
namespace {

using packet::Direction;
using packet::Verdict;
namespace protocol = packet::protocol;

IpAddress address(std::string_view text) {
    auto parsed = IpAddress::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(IpAddress{});
}

SharedRules rules(const std::vector<std::string_view>& lines) {
    RuleList list;
    for (const std::string_view line : lines) {
        auto rule = parse_endpoint_rule(line);
        EXPECT_TRUE(rule.has_value()) << line;
        if (rule) {
            list.push_back(*rule);
        }
    }
    return std::make_shared<const RuleList>(std::move(list));
}

// The built-in defaults (blockInbound on, everything else off, default permit), for the
// profile 'curl'.
FilterSettings curl_settings() {
    FilterSettings settings;
    settings.profile = ProfileLabel{.id = "p-curl", .name = "curl"};
    return settings;
}

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
    ProcessFacts process;
    process.kind = ProcessKind::Process;
    process.pid = 4242;
    process.executable = "/usr/bin/curl";
    facts.process = process;
    return facts;
}

ConnectionFacts outbound_tcp(std::string_view remote, std::uint16_t port = 443) {
    return outbound(protocol::kTcp, remote, port);
}

// An outbound connection to `remote` that the application resolved from `domain`.
ConnectionFacts resolved(std::string_view remote, std::string domain,
                         std::vector<std::string> cnames = {}) {
    ConnectionFacts facts = outbound_tcp(remote);
    facts.domain = DomainFacts{.domain = std::move(domain), .cname_chain = std::move(cnames)};
    return facts;
}

ConnectionFacts inbound(std::uint8_t proto, std::uint16_t local_port, std::string_view remote) {
    ConnectionFacts facts = outbound(proto, remote, 51000);
    facts.direction = Direction::Inbound;
    facts.local_port = local_port;
    return facts;
}

ConnectionFacts inbound_tcp(std::uint16_t local_port, std::string_view remote = "198.51.100.7") {
    return inbound(protocol::kTcp, local_port, remote);
}

// --- Broadcast reply ------------------------------------------------------------------------

ConnectionFacts ssdp_reply(std::string_view from = "192.168.1.1") {
    ConnectionFacts facts = inbound(protocol::kUdp, 40000, from);
    facts.answers_broadcast_to = address("239.255.255.250");
    return facts;
}

TEST(DecideBroadcastReply, ReplyFromTheLanIsAcceptedDespiteBlockInbound) {
    const Decision decision = decide(curl_settings(), ssdp_reply());
    EXPECT_EQ(decision.verdict, Verdict::Accept);
    EXPECT_EQ(decision.reason, "reply to this process's broadcast to 239.255.255.250");
}

TEST(DecideBroadcastReply, WithoutTheFactItIsAnOrdinaryInboundConnection) {
    ConnectionFacts facts = ssdp_reply();
    facts.answers_broadcast_to.reset();
    EXPECT_EQ(decide(curl_settings(), facts).reason,
              "blockInbound (global, profile 'curl') "
              "(silent drop: inbound)");
}

TEST(DecideBroadcastReply, OnlyFromTheLan) {
    EXPECT_EQ(decide(curl_settings(), ssdp_reply("198.51.100.7")).verdict, Verdict::Drop);
    EXPECT_EQ(decide(curl_settings(), ssdp_reply("fe80::5")).verdict, Verdict::Accept);
    EXPECT_EQ(decide(curl_settings(), ssdp_reply("10.9.8.7")).verdict, Verdict::Accept);
}

TEST(DecideBroadcastReply, OnlyForAnIdentifiedProcess) {
    for (const ProcessKind kind : {ProcessKind::Unidentified, ProcessKind::Unsolicited}) {
        ConnectionFacts facts = ssdp_reply();
        facts.process->kind = kind;
        EXPECT_EQ(decide(curl_settings(), facts).verdict, Verdict::Drop);
    }
    ConnectionFacts unknown = ssdp_reply();
    unknown.process.reset();
    EXPECT_EQ(decide(curl_settings(), unknown).verdict, Verdict::Drop);
}

TEST(DecideBroadcastReply, NeverForOutbound) {
    ConnectionFacts facts = outbound(protocol::kUdp, "192.168.1.1", 1900);
    facts.answers_broadcast_to = address("239.255.255.250");
    FilterSettings settings = curl_settings();
    settings.default_action = DefaultAction::Block;
    EXPECT_EQ(decide(settings, facts).verdict, Verdict::Block);
}

TEST(DecideBroadcastReply, ComesBeforeTheScopeSettings) {
    FilterSettings settings = curl_settings();
    settings.block_lan = true;
    EXPECT_EQ(decide(settings, ssdp_reply()).verdict, Verdict::Accept);
}

// --- Connection type: blockP2P ----------------------------------------------------------------

FilterSettings p2p_settings() {
    FilterSettings settings = curl_settings();
    settings.block_p2p = true;
    settings.origins.set(AppSetting::BlockP2p, SettingLayer::App);
    return settings;
}

TEST(DecideBlockP2p, GlobalAddressWithoutADnsAnswerIsBlocked) {
    const Decision decision = decide(p2p_settings(), outbound_tcp("203.0.113.5"));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason, "blockP2P: no DNS answer led to 203.0.113.5 (app, profile 'curl')");
    EXPECT_EQ(decide(p2p_settings(), outbound_tcp("2001:db8::5")).verdict, Verdict::Block);
    EXPECT_EQ(decide(p2p_settings(), outbound(protocol::kIcmp, "8.8.8.8", 0)).verdict,
              Verdict::Drop);
}

TEST(DecideBlockP2p, TheSameAddressAfterADnsAnswerIsPermitted) {
    const Decision decision = decide(p2p_settings(), resolved("203.0.113.5", "www.example.com"));
    EXPECT_EQ(decision.verdict, Verdict::Accept);
    EXPECT_EQ(decision.reason, "default action: permit (global, profile 'curl')");
}

TEST(DecideBlockP2p, LanLocalhostAndMulticastNeedNoDnsAnswer) {
    for (const std::string_view remote :
         {"192.168.1.20", "10.0.0.1", "fe80::1", "127.0.0.1", "::1", "224.0.0.251", "232.1.1.1"}) {
        EXPECT_EQ(decide(p2p_settings(), outbound(protocol::kUdp, remote, 5353)).verdict,
                  Verdict::Accept)
            << remote;
    }
}

TEST(DecideBlockP2p, StunAndTurnPortsAreBlockedEvenWithADomain) {
    for (const std::uint16_t port : {3478, 5349}) {
        for (const std::uint8_t proto : {protocol::kUdp, protocol::kTcp}) {
            ConnectionFacts facts = outbound(proto, "192.168.1.20", port);
            facts.domain = DomainFacts{.domain = "stun.example.com", .cname_chain = {}};
            const Decision decision = decide(p2p_settings(), facts);
            EXPECT_EQ(decision.verdict, Verdict::Block) << port;
            EXPECT_EQ(decision.reason, "blockP2P: STUN/TURN port " + std::to_string(port) +
                                           " (app, profile 'curl')");
        }
    }
}

TEST(DecideBlockP2p, InboundIsNotItsBusiness) {
    FilterSettings settings = p2p_settings();
    settings.block_inbound = false;
    EXPECT_EQ(decide(settings, inbound(protocol::kUdp, 3478, "203.0.113.5")).verdict,
              Verdict::Accept);
}

TEST(DecideBlockP2p, OffBlocksNothing) {
    EXPECT_EQ(decide(curl_settings(), outbound_tcp("203.0.113.5")).verdict, Verdict::Accept);
    EXPECT_EQ(decide(curl_settings(), outbound(protocol::kUdp, "203.0.113.5", 3478)).verdict,
              Verdict::Accept);
}

TEST(DecideBlockP2p, OutboundRulesCannotOverruleIt) {
    FilterSettings settings = p2p_settings();
    settings.endpoints.app = rules({"+ 203.0.113.5"});
    EXPECT_TRUE(decide(settings, outbound_tcp("203.0.113.5")).reason.starts_with("blockP2P"));
}

// --- Scope ------------------------------------------------------------------------------------

TEST(DecideScope, BlockInternetBlocksGlobalAndGlobalMulticast) {
    FilterSettings settings = curl_settings();
    settings.block_internet = true;
    settings.origins.set(AppSetting::BlockInternet, SettingLayer::App);
    const Decision decision = decide(settings, outbound_tcp("203.0.113.5"));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason, "blockInternet (app, profile 'curl')");
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "232.1.2.3", 5000)).verdict,
              Verdict::Block);
    for (const std::string_view remote : {"192.168.1.20", "127.0.0.1", "224.0.0.251"}) {
        EXPECT_EQ(decide(settings, outbound_tcp(remote)).verdict, Verdict::Accept) << remote;
    }
}

TEST(DecideScope, BlockLanBlocksPrivateLinkLocalLocalMulticastAndBroadcast) {
    FilterSettings settings = curl_settings();
    settings.block_lan = true;
    for (const std::string_view remote :
         {"192.168.1.20", "10.0.0.1", "172.16.5.5", "100.64.1.1", "169.254.3.3", "fd00::1",
          "fe80::1", "224.0.0.251", "239.255.255.250", "255.255.255.255", "ff02::fb"}) {
        const Decision decision = decide(settings, outbound(protocol::kUdp, remote, 1900));
        EXPECT_EQ(decision.verdict, Verdict::Block) << remote;
        EXPECT_EQ(decision.reason, "blockLAN (global, profile 'curl')") << remote;
    }
    EXPECT_EQ(decide(settings, outbound_tcp("203.0.113.5")).verdict, Verdict::Accept);
    EXPECT_EQ(decide(settings, outbound_tcp("127.0.0.1")).verdict, Verdict::Accept);
}

TEST(DecideScope, BlockLocalBlocksLoopback) {
    FilterSettings settings = curl_settings();
    settings.block_local = true;
    EXPECT_EQ(decide(settings, outbound_tcp("127.0.0.1", 8080)).reason,
              "blockLocal (global, profile 'curl')");
    EXPECT_EQ(decide(settings, outbound_tcp("::1", 8080)).verdict, Verdict::Block);
    EXPECT_EQ(decide(settings, outbound_tcp("192.168.1.20")).verdict, Verdict::Accept);
}

TEST(DecideScope, AppliesToInboundToo) {
    FilterSettings settings = curl_settings();
    settings.block_local = true;
    const Decision decision = decide(settings, inbound_tcp(8080, "127.0.0.1"));
    EXPECT_EQ(decision.verdict, Verdict::Drop);
    EXPECT_EQ(decision.reason, "blockLocal (global, profile 'curl') (silent drop: inbound)");
}

TEST(DecideScope, EndpointRulesCannotOverruleIt) {
    FilterSettings settings = curl_settings();
    settings.block_lan = true;
    settings.endpoints.app = rules({"+ 192.168.1.20"});
    settings.service_endpoints.app = rules({"+ * tcp/22"});
    EXPECT_EQ(decide(settings, outbound_tcp("192.168.1.20")).reason,
              "blockLAN (global, profile 'curl')");
    EXPECT_EQ(decide(settings, inbound_tcp(22, "192.168.1.20")).verdict, Verdict::Drop);
}

TEST(DecideScope, InvalidAddressesAreLeftToTheInvalidStep) {
    FilterSettings settings = curl_settings();
    settings.block_internet = true;
    settings.block_lan = true;
    settings.block_local = true;
    EXPECT_EQ(decide(settings, outbound_tcp("240.0.0.1")).reason,
              "invalid remote address 240.0.0.1");
}

// --- Endpoint lists ---------------------------------------------------------------------------

TEST(DecideEndpointLists, OutboundReadsEndpointsOnly) {
    FilterSettings settings = curl_settings();
    settings.endpoints.global = rules({"- 203.0.113.5"});
    settings.service_endpoints.global = rules({"+ 203.0.113.5"});
    const Decision decision = decide(settings, outbound_tcp("203.0.113.5"));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    ASSERT_TRUE(decision.rule.has_value());
    EXPECT_EQ(decision.rule->list, RuleListKind::Endpoints);
}

TEST(DecideEndpointLists, InboundReadsServiceEndpointsWithTheLocalPort) {
    FilterSettings settings = curl_settings();
    settings.block_inbound = false;
    settings.endpoints.global = rules({"+ *"});
    settings.service_endpoints.global = rules({"- * tcp/22", "- * tcp/51000"});
    const Decision ssh = decide(settings, inbound_tcp(22));
    EXPECT_EQ(ssh.verdict, Verdict::Drop);
    ASSERT_TRUE(ssh.rule.has_value());
    EXPECT_EQ(ssh.rule->list, RuleListKind::ServiceEndpoints);
    EXPECT_EQ(ssh.rule->index, 0U);
    // The remote port (51000) is not the service port, and the outbound "+ *" is not read.
    EXPECT_EQ(decide(settings, inbound_tcp(8080)).reason,
              "default action: permit (global, profile 'curl')");
}

TEST(DecideEndpointLists, AppRulesComeBeforeGlobalRules) {
    FilterSettings settings = curl_settings();
    settings.endpoints.app = rules({"+ 203.0.113.5"});
    settings.endpoints.global = rules({"- *"});
    const Decision decision = decide(settings, outbound_tcp("203.0.113.5"));
    EXPECT_EQ(decision.reason, "rule '+ 203.0.113.5' (app, profile 'curl')");
    ASSERT_TRUE(decision.rule.has_value());
    EXPECT_EQ(decision.rule->layer, SettingLayer::App);
    const Decision other = decide(settings, outbound_tcp("203.0.113.6"));
    EXPECT_EQ(other.reason, "rule '- *' (global, profile 'curl')");
    EXPECT_EQ(other.rule->layer, SettingLayer::Global);
}

TEST(DecideEndpointLists, ScopeRangeAndServiceNameRulesDecide) {
    FilterSettings settings = curl_settings();
    settings.default_action = DefaultAction::Block;
    settings.endpoints.app =
        rules({"+ LAN udp/mdns", "+ 10.0.0.5-10.0.0.9 tcp/ssh", "- Internet tcp/http"});
    settings.endpoints.global = rules({"+ Internet"});
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "224.0.0.251", 5353)).reason,
              "rule '+ LAN udp/mdns' (app, profile 'curl')");
    EXPECT_EQ(decide(settings, outbound_tcp("10.0.0.7", 22)).verdict, Verdict::Accept);
    EXPECT_EQ(decide(settings, outbound_tcp("10.0.0.10", 22)).reason,
              "default action: block (global, profile 'curl')");
    EXPECT_EQ(decide(settings, outbound_tcp("203.0.113.5", 80)).reason,
              "rule '- Internet tcp/http' (app, profile 'curl')");
    EXPECT_EQ(decide(settings, outbound_tcp("203.0.113.5", 443)).reason,
              "rule '+ Internet' (global, profile 'curl')");
}

TEST(DecideEndpointLists, IncludeCnamesDecidesWhetherTheChainIsMatched) {
    FilterSettings settings = curl_settings();
    settings.endpoints.global = rules({"- .tracker.example"});
    const ConnectionFacts aliased = resolved("203.0.113.5", "shop.example", {"x.tracker.example"});
    EXPECT_EQ(decide(settings, aliased).verdict, Verdict::Block);
    settings.include_cnames = false;
    EXPECT_EQ(decide(settings, aliased).verdict, Verdict::Accept);
    EXPECT_EQ(decide(settings, resolved("203.0.113.5", "a.tracker.example")).verdict,
              Verdict::Block);
}

// --- Connection type: blockInbound ------------------------------------------------------------

TEST(DecideBlockInbound, DropsInboundFromOtherHostsByDefault) {
    const Decision decision = decide(curl_settings(), inbound_tcp(22));
    EXPECT_EQ(decision.verdict, Verdict::Drop);
    EXPECT_EQ(decision.reason, "blockInbound (global, profile 'curl') (silent drop: inbound)");
    EXPECT_EQ(decide(curl_settings(), inbound_tcp(22, "192.168.1.20")).verdict, Verdict::Drop);
    EXPECT_EQ(decide(curl_settings(), inbound(protocol::kIcmp, 0, "198.51.100.7")).verdict,
              Verdict::Drop);
}

TEST(DecideBlockInbound, AServiceEndpointsPermitOpensThePort) {
    // `filter/blockInbound: true` with `filter/serviceEndpoints: ["+ * tcp/8080"]`.
    FilterSettings settings = curl_settings();
    ASSERT_TRUE(settings.block_inbound);
    settings.service_endpoints.global = rules({"+ * tcp/8080"});
    const Decision open = decide(settings, inbound_tcp(8080));
    EXPECT_EQ(open.verdict, Verdict::Accept);
    EXPECT_EQ(open.reason, "rule '+ * tcp/8080' (global, profile 'curl')");
    ASSERT_TRUE(open.rule.has_value());
    EXPECT_EQ(open.rule->list, RuleListKind::ServiceEndpoints);
    EXPECT_EQ(open.rule->index, 0U);
    EXPECT_EQ(decide(settings, inbound_tcp(8080, "2001:db8::7")).verdict, Verdict::Accept);
    // Every other port stays closed.
    EXPECT_EQ(decide(settings, inbound_tcp(8081)).reason,
              "blockInbound (global, profile 'curl') (silent drop: inbound)");
    EXPECT_EQ(decide(settings, inbound(protocol::kUdp, 8080, "198.51.100.7")).verdict,
              Verdict::Drop);
}

TEST(DecideBlockInbound, AServiceEndpointsBlockNamesItsRule) {
    FilterSettings settings = curl_settings();
    settings.service_endpoints.app = rules({"- 198.51.100.0/24"});
    const Decision decision = decide(settings, inbound_tcp(22));
    EXPECT_EQ(decision.reason,
              "rule '- 198.51.100.0/24' (app, profile 'curl') (silent drop: "
              "inbound)");
    EXPECT_TRUE(decision.rule.has_value());
}

TEST(DecideBlockInbound, InboundFromThisHostIsNotBlocked) {
    for (const std::string_view remote : {"127.0.0.1", "127.0.0.53", "::1"}) {
        const Decision decision = decide(curl_settings(), inbound_tcp(8080, remote));
        EXPECT_EQ(decision.verdict, Verdict::Accept) << remote;
        EXPECT_EQ(decision.reason, "default action: permit (global, profile 'curl')");
    }
    ConnectionFacts own_address = inbound_tcp(8080, "192.168.1.10");
    own_address.local_address = address("192.168.1.10");
    EXPECT_EQ(decide(curl_settings(), own_address).verdict, Verdict::Accept);
}

TEST(DecideBlockInbound, OffLeavesItToTheDefaultAction) {
    FilterSettings settings = curl_settings();
    settings.block_inbound = false;
    EXPECT_EQ(decide(settings, inbound_tcp(22)).verdict, Verdict::Accept);
    settings.default_action = DefaultAction::Block;
    settings.origins.set(AppSetting::DefaultAction, SettingLayer::App);
    EXPECT_EQ(decide(settings, inbound_tcp(22)).reason,
              "default action: block (app, profile 'curl') (silent drop: inbound)");
}

TEST(DecideBlockInbound, NamesTheLayerOfTheSetting) {
    FilterSettings settings = curl_settings();
    settings.origins.set(AppSetting::BlockInbound, SettingLayer::App);
    EXPECT_EQ(decide(settings, inbound_tcp(22)).reason,
              "blockInbound (app, profile 'curl') (silent drop: inbound)");
    FilterSettings no_profile;
    EXPECT_EQ(decide(no_profile, inbound_tcp(22)).reason,
              "blockInbound (global) (silent drop: inbound)");
}

TEST(DecideBlockInbound, ComesBeforeTheInvalidAddressAndTheDefaultAction) {
    FilterSettings settings = curl_settings();
    settings.default_action = DefaultAction::Ask;
    EXPECT_EQ(decide(settings, inbound_tcp(22)).outcome, Outcome::Decided);
    EXPECT_TRUE(decide(settings, inbound_tcp(22, "240.0.0.1")).reason.starts_with("blockInbound"));
}

// --- Invalid address --------------------------------------------------------------------------

TEST(DecideInvalidAddress, IsBlocked) {
    for (const std::string_view remote : {"0.1.2.3", "240.0.0.1", "::"}) {
        const Decision decision = decide(curl_settings(), outbound_tcp(remote));
        EXPECT_EQ(decision.verdict, Verdict::Block) << remote;
        EXPECT_EQ(decision.reason, "invalid remote address " + std::string(remote));
    }
}

TEST(DecideInvalidAddress, ComesAfterTheEndpointLists) {
    FilterSettings settings = curl_settings();
    settings.endpoints.global = rules({"+ 240.0.0.0/4"});
    EXPECT_EQ(decide(settings, outbound_tcp("240.0.0.1")).verdict, Verdict::Accept);
}

// --- Resolver scope ---------------------------------------------------------------------------

ConnectionFacts answered_by(std::string_view remote, IpScope resolver) {
    ConnectionFacts facts = resolved(remote, "intranet.example.com");
    facts.domain->resolver_scope = resolver;
    return facts;
}

TEST(DecideResolverScope, GlobalResolverAnsweringPrivateAddressesIsBlocked) {
    const Decision decision = decide(curl_settings(), answered_by("192.168.1.20", IpScope::Global));
    EXPECT_EQ(decision.verdict, Verdict::Block);
    EXPECT_EQ(decision.reason,
              "removeOutOfScopeDNS: a global resolver answered with a site-local address "
              "(global, profile 'curl')");
    EXPECT_EQ(decide(curl_settings(), answered_by("127.0.0.1", IpScope::SiteLocal)).verdict,
              Verdict::Block);
}

TEST(DecideResolverScope, InScopeAnswersAndUnknownResolversPass) {
    EXPECT_EQ(decide(curl_settings(), answered_by("192.168.1.20", IpScope::SiteLocal)).verdict,
              Verdict::Accept);
    EXPECT_EQ(decide(curl_settings(), answered_by("203.0.113.5", IpScope::Global)).verdict,
              Verdict::Accept);
    EXPECT_EQ(decide(curl_settings(), answered_by("192.168.1.20", IpScope::Localhost)).verdict,
              Verdict::Accept);
    EXPECT_EQ(decide(curl_settings(), resolved("192.168.1.20", "intranet.example.com")).verdict,
              Verdict::Accept);
}

TEST(DecideResolverScope, OffPasses) {
    FilterSettings settings = curl_settings();
    settings.remove_out_of_scope_dns = false;
    EXPECT_EQ(decide(settings, answered_by("192.168.1.20", IpScope::Global)).verdict,
              Verdict::Accept);
}

TEST(DecideResolverScope, AnEndpointRuleDecidesFirst) {
    FilterSettings settings = curl_settings();
    settings.endpoints.app = rules({"+ .example.com"});
    EXPECT_EQ(decide(settings, answered_by("192.168.1.20", IpScope::Global)).verdict,
              Verdict::Accept);
}

// --- Filter lists and default action ----------------------------------------------------------

TEST(DecideFilterLists, TheSeamDecidesNothingYet) {
    FilterSettings settings = curl_settings();
    settings.lists = {"TRAC", "MAL"};
    EXPECT_EQ(decide(settings, resolved("203.0.113.5", "tracker.example")).reason,
              "default action: permit (global, profile 'curl')");
}

TEST(DecideDefaultAction, AskAndBlockNameTheirLayer) {
    FilterSettings settings = curl_settings();
    settings.default_action = DefaultAction::Ask;
    settings.origins.set(AppSetting::DefaultAction, SettingLayer::App);
    const Decision ask = decide(settings, outbound_tcp("203.0.113.5"));
    EXPECT_EQ(ask.outcome, Outcome::Ask);
    EXPECT_EQ(ask.reason, "default action: ask (app, profile 'curl')");
    EXPECT_FALSE(ask.rule.has_value());
}

// --- Order ------------------------------------------------------------------------------------

TEST(DecideOrder, P2pComesBeforeScope) {
    FilterSettings settings = p2p_settings();
    settings.block_internet = true;
    EXPECT_TRUE(decide(settings, outbound_tcp("203.0.113.5")).reason.starts_with("blockP2P"));
    EXPECT_TRUE(decide(settings, resolved("203.0.113.5", "www.example.com"))
                    .reason.starts_with("blockInternet"));
}

TEST(DecideOrder, OwnConnectionsAndTheNameserverComeBeforeTheSettings) {
    FilterSettings settings = p2p_settings();
    settings.block_internet = true;
    settings.block_lan = true;
    settings.block_local = true;
    settings.dns.nameserver_endpoints = {IpEndpoint{.address = address("127.0.0.17"), .port = 53}};
    ConnectionFacts own = outbound(protocol::kUdp, "203.0.113.53", 53);
    own.process->kind = ProcessKind::Portwarden;
    EXPECT_EQ(decide(settings, own).reason, "portwarden's own connection");
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "127.0.0.17", 53)).reason,
              "query to portwarden's nameserver");
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "203.0.113.53", 53)).verdict,
              Verdict::RerouteToNameserver);
    EXPECT_EQ(decide(settings, outbound_tcp("0.0.0.17")).reason, "blocked by DNS answer");
}

TEST(DecideOrder, BypassPreventionComesAfterTheScopeSettings) {
    FilterSettings settings = curl_settings();
    settings.block_internet = true;
    EXPECT_EQ(decide(settings, outbound_tcp("1.1.1.1")).reason,
              "blockInternet (global, profile 'curl')");
}

} // namespace
} // namespace pw::firewall

// --- portwarden's API -------------------------------------------------------------------------

namespace pw::firewall {
namespace {

FilterSettings api_settings(DefaultAction action) {
    FilterSettings settings = curl_settings();
    settings.default_action = action;
    settings.block_local = true;
    settings.api_endpoints = {IpEndpoint{.address = address("127.0.0.1"), .port = 817},
                              IpEndpoint{.address = address("::1"), .port = 817}};
    return settings;
}

TEST(DecideApi, LocalClientsReachTheApiUnderAnyDefaultActionAndScope) {
    for (const DefaultAction action :
         {DefaultAction::Permit, DefaultAction::Block, DefaultAction::Ask}) {
        const FilterSettings settings = api_settings(action);
        for (const std::string_view remote : {"127.0.0.1", "::1"}) {
            const Decision outbound = decide(settings, outbound_tcp(remote, 817));
            EXPECT_EQ(outbound.verdict, packet::Verdict::Accept) << remote;
            EXPECT_EQ(outbound.outcome, Outcome::Decided) << remote;
            EXPECT_EQ(outbound.reason, "connection to portwarden's API");
            ConnectionFacts server_side = inbound_tcp(817, remote);
            server_side.local_address = address(remote);
            EXPECT_EQ(decide(settings, server_side).verdict, packet::Verdict::Accept) << remote;
        }
    }
}

TEST(DecideApi, OtherPortsProtocolsAndRemoteCallersAreOrdinaryConnections) {
    const FilterSettings settings = api_settings(DefaultAction::Block);
    EXPECT_EQ(decide(settings, outbound_tcp("127.0.0.1", 818)).verdict, packet::Verdict::Block);
    EXPECT_EQ(decide(settings, outbound(protocol::kUdp, "127.0.0.1", 817)).verdict,
              packet::Verdict::Block);
    ConnectionFacts from_the_lan = inbound_tcp(817, "192.168.1.20");
    from_the_lan.local_address = address("127.0.0.1");
    EXPECT_NE(decide(settings, from_the_lan).verdict, packet::Verdict::Accept);
}

} // namespace
} // namespace pw::firewall
