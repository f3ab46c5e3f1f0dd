#include "firewall/decide.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "firewall/dns_bypass_list.h"
#include "firewall/ip_scope.h"

namespace pw::firewall {
namespace {

using packet::Direction;
using packet::Persistence;
using packet::Verdict;
namespace protocol = packet::protocol;

// ICMPv6 message types (IANA "ICMPv6 Parameters").
constexpr std::uint8_t kMldQuery = 130;
constexpr std::uint8_t kMldReport = 131;
constexpr std::uint8_t kMldDone = 132;
constexpr std::uint8_t kRouterSolicitation = 133;
constexpr std::uint8_t kRedirect = 137; // 133-137: RFC 4861 neighbour discovery
constexpr std::uint8_t kMldV2Report = 143;

// DHCP client/server ports (RFC 2131, RFC 8415). Only the client side is fast-tracked: this
// host asking for its own address; a DHCP server on this host is an ordinary service.
constexpr std::uint16_t kDhcpV4Client = 68;
constexpr std::uint16_t kDhcpV4Server = 67;
constexpr std::uint16_t kDhcpV6Client = 546;
constexpr std::uint16_t kDhcpV6Server = 547;

// Why a connection is network infrastructure, or nullopt if it is not.
std::optional<std::string_view> infrastructure_reason(const ConnectionFacts& connection) {
    if (connection.protocol == protocol::kIcmpV6) {
        const std::uint8_t type = connection.icmp_type;
        if (type >= kRouterSolicitation && type <= kRedirect) {
            return "fast-track: IPv6 neighbour discovery";
        }
        if (type == kMldQuery || type == kMldReport || type == kMldDone || type == kMldV2Report) {
            return "fast-track: IPv6 multicast listener discovery";
        }
        return std::nullopt;
    }
    if (connection.protocol != protocol::kUdp) {
        return std::nullopt;
    }
    // Requests go out from the client port and replies come back to it, so in both directions
    // the local port is the client's and the remote port the server's.
    if (connection.local_port == kDhcpV4Client && connection.remote_port == kDhcpV4Server) {
        return "fast-track: DHCP";
    }
    if (connection.local_port == kDhcpV6Client && connection.remote_port == kDhcpV6Server) {
        return "fast-track: DHCPv6";
    }
    return std::nullopt;
}

// DNS (RFC 1035) and DNS over TLS (RFC 7858) ports.
constexpr std::uint16_t kDnsPort = 53;
constexpr std::uint16_t kDnsOverTlsPort = 853;

// STUN/TURN (RFC 8489, RFC 8656): how peer-to-peer applications find their way through NAT.
constexpr std::uint16_t kStunPort = 3478;
constexpr std::uint16_t kStunOverTlsPort = 5349;

// How long the kernel may remember an outcome (see the shaping notes in decide.h).
enum class Remember : std::uint8_t {
    PerSetting,             // filter/permanentVerdicts, but never an accept to loopback
    PerSettingEvenLoopback, // filter/permanentVerdicts, also to loopback
    Always,                 // permanent whatever the setting
};

// What one step of decide() concluded, before it is shaped for the kernel.
struct StepResult {
    Verdict verdict = Verdict::Block;
    std::string reason;
    Remember remember = Remember::PerSetting;
    Outcome outcome = Outcome::Decided;
    std::optional<RuleMatch>
        rule{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-initializers
    DecisionStep step = DecisionStep::Default;
};

// A step's result, labelled with the step.
StepResult from(DecisionStep step, StepResult result) {
    result.step = step;
    return result;
}

bool is_udp_or_tcp(const ConnectionFacts& connection) {
    return connection.protocol == protocol::kUdp || connection.protocol == protocol::kTcp;
}

bool is_icmp(const ConnectionFacts& connection) {
    return connection.protocol == protocol::kIcmp || connection.protocol == protocol::kIcmpV6;
}

// Step "own connection": the daemon's own sockets. Inbound only from this host: a remote machine
// reaching a portwarden socket is an ordinary inbound connection (and a nameserver query is step
// 3).
std::optional<StepResult> own_connection(const ConnectionFacts& connection) {
    if (!connection.process || connection.process->kind != ProcessKind::Portwarden) {
        return std::nullopt;
    }
    if (connection.direction == Direction::Inbound && !connection.remote_address.is_loopback() &&
        connection.remote_address != connection.local_address) {
        return std::nullopt;
    }
    return StepResult{.verdict = Verdict::Accept,
                      .reason = "portwarden's own connection",
                      .remember = Remember::PerSetting};
}

// Step "API": TCP between a local process and portwarden's own API (both sides of the loopback
// connection).
std::optional<StepResult> api_connection(const FilterSettings& settings,
                                         const ConnectionFacts& connection) {
    if (connection.protocol != packet::protocol::kTcp) {
        return std::nullopt;
    }
    const bool outbound = connection.direction == Direction::Outbound;
    const IpAddress& address = outbound ? connection.remote_address : connection.local_address;
    const std::uint16_t port = outbound ? connection.remote_port : connection.local_port;
    const bool is_api =
        std::ranges::any_of(settings.api_endpoints, [&](const IpEndpoint& endpoint) {
            return endpoint.address == address && endpoint.port == port;
        });
    // Inbound only from this host: the API listens on loopback, but a listen address may be
    // any of the host's.
    if (!is_api || (!outbound && !connection.remote_address.is_loopback() &&
                    connection.remote_address != connection.local_address)) {
        return std::nullopt;
    }
    return StepResult{.verdict = Verdict::Accept,
                      .reason = "connection to portwarden's API",
                      .remember = Remember::PerSettingEvenLoopback};
}

// Steps "nameserver" and "astray DNS": DNS to our nameserver and DNS that went astray.
std::optional<StepResult> dns_interception(const FilterSettings& settings,
                                           const ConnectionFacts& connection) {
    const auto& endpoints = settings.dns.nameserver_endpoints;
    if (endpoints.empty() || !is_udp_or_tcp(connection)) {
        return std::nullopt;
    }
    if (connection.direction == Direction::Inbound) {
        if (is_nameserver_endpoint(settings, connection.local_address, connection.local_port)) {
            return StepResult{.verdict = Verdict::Accept,
                              .reason = "query to portwarden's nameserver",
                              .remember = Remember::PerSetting};
        }
        return std::nullopt;
    }
    if (is_nameserver_endpoint(settings, connection.remote_address, connection.remote_port)) {
        return StepResult{.verdict = Verdict::Accept,
                          .reason = "query to portwarden's nameserver",
                          .remember = Remember::PerSettingEvenLoopback};
    }
    if (connection.remote_port != kDnsPort) {
        return std::nullopt;
    }
    if (settings.dns.astray == AstrayDns::Block) {
        return StepResult{.verdict = Verdict::Block,
                          .reason = "DNS query to another nameserver (redirecting is off)",
                          .remember = Remember::PerSetting};
    }
    const IpFamily family = connection.remote_address.family();
    const bool same_family = std::ranges::any_of(endpoints, [family](const IpEndpoint& endpoint) {
        return endpoint.address.family() == family;
    });
    if (!same_family) {
        return StepResult{
            .verdict = Verdict::Block,
            .reason =
                "DNS query to another nameserver (no portwarden nameserver for this IP "
                "version)",
            .remember = Remember::PerSetting};
    }
    return StepResult{.verdict = Verdict::RerouteToNameserver,
                      .reason = "astray DNS query redirected to portwarden's nameserver",
                      .remember = Remember::Always};
}

// Step "blocked DNS answer": 0.0.0.17 and ::17 are what our nameserver answers for a blocked
// name.
std::optional<StepResult> blocked_dns_answer(const ConnectionFacts& connection) {
    static constexpr std::array<std::uint8_t, 4> kBlockedV4 = {0, 0, 0, 17};
    // "::17" is hexadecimal: the last byte is 0x17.
    static constexpr std::array<std::uint8_t, 16> kBlockedV6 = {0, 0, 0, 0, 0, 0, 0, 0,
                                                                0, 0, 0, 0, 0, 0, 0, 0x17};
    const auto bytes = connection.remote_address.bytes();
    const bool blocked = connection.remote_address.is_v4() ? std::ranges::equal(bytes, kBlockedV4)
                                                           : std::ranges::equal(bytes, kBlockedV6);
    if (!blocked) {
        return std::nullopt;
    }
    return StepResult{
        .verdict = Verdict::Block, .reason = "blocked by DNS answer", .remember = Remember::Always};
}

// Step "bypass prevention": `filter/preventBypassing`.
std::optional<StepResult> bypass_attempt(const FilterSettings& settings,
                                         const ConnectionFacts& connection) {
    if (settings.prevent_bypassing == PreventBypassing::Off ||
        connection.direction != Direction::Outbound || is_icmp(connection)) {
        return std::nullopt;
    }
    if (is_udp_or_tcp(connection) && connection.remote_port == kDnsOverTlsPort) {
        return StepResult{.verdict = Verdict::Block,
                          .reason = "prevent bypassing: DNS over TLS",
                          .remember = Remember::PerSetting};
    }
    if (is_known_resolver_address(connection.remote_address) ||
        (connection.domain && is_known_resolver_name(*connection.domain))) {
        return StepResult{.verdict = Verdict::Block,
                          .reason = "prevent bypassing: known DNS-over-HTTPS resolver",
                          .remember = Remember::PerSetting};
    }
    return std::nullopt;
}

// What decide() computes once per connection and several steps read.
struct Remote {
    IpScope scope = IpScope::Invalid;
    // Loopback, or this host's own address (the kernel routes both over lo).
    bool is_this_host = false;
};

Remote classify_remote(const ConnectionFacts& connection) {
    const IpScope scope = ip_scope(connection.remote_address);
    return Remote{.scope = scope,
                  .is_this_host = scope == IpScope::Localhost ||
                                  connection.remote_address == connection.local_address};
}

// Step "broadcast reply": an answer to a discovery broadcast or multicast that this very
// process sent (connection_facts.h, answers_broadcast_to), from a device on the local network.
std::optional<StepResult> broadcast_reply(const ConnectionFacts& connection, const Remote& remote) {
    if (connection.direction != Direction::Inbound || !connection.answers_broadcast_to ||
        !connection.process || connection.process->kind != ProcessKind::Process ||
        network_scope(remote.scope) != NetworkScope::Lan) {
        return std::nullopt;
    }
    return StepResult{.verdict = Verdict::Accept,
                      .reason = "reply to this process's broadcast to " +
                                connection.answers_broadcast_to->to_string(),
                      .remember = Remember::PerSetting};
}

// Step "connection type", outbound half: `filter/blockP2P`. A peer-to-peer application finds
// its peers by address (from a tracker, a DHT, a STUN exchange), not by name: a global address
// that no DNS answer of this process led to, or a STUN/TURN server, gives it away. (The inbound
// half, blockInbound, comes after the endpoint lists: see inbound_block().)
std::optional<StepResult> peer_to_peer(const FilterSettings& settings,
                                       const ConnectionFacts& connection, const Remote& remote) {
    if (!settings.block_p2p || connection.direction != Direction::Outbound) {
        return std::nullopt;
    }
    if (is_udp_or_tcp(connection) &&
        (connection.remote_port == kStunPort || connection.remote_port == kStunOverTlsPort)) {
        return StepResult{.verdict = Verdict::Block,
                          .reason = "blockP2P: STUN/TURN port " +
                                    std::to_string(connection.remote_port) +
                                    setting_note(settings, AppSetting::BlockP2p),
                          .remember = Remember::PerSetting};
    }
    if (remote.scope == IpScope::Global && !connection.domain) {
        return StepResult{.verdict = Verdict::Block,
                          .reason = "blockP2P: no DNS answer led to " +
                                    connection.remote_address.to_string() +
                                    setting_note(settings, AppSetting::BlockP2p),
                          .remember = Remember::PerSetting};
    }
    return std::nullopt;
}

// Step "scope": blockInternet, blockLAN, blockLocal, for both directions. Invalid addresses are
// in no scope and are left to the "invalid address" step.
std::optional<StepResult> scope_block(const FilterSettings& settings, const Remote& remote) {
    const auto setting = blocking_scope_setting(settings, remote.scope);
    if (!setting) {
        return std::nullopt;
    }
    return StepResult{
        .verdict = Verdict::Block,
        .reason = std::string(app_setting_name(*setting)) + setting_note(settings, *setting),
        .remember = Remember::PerSetting};
}

// Step "connection type", inbound half: `filter/blockInbound` drops inbound connections from
// other hosts. Unlike Portmaster (facts 6.4, where it comes before the endpoint lists and no
// rule can overrule it), it comes right after them: with the default blockInbound on, a
// serviceEndpoints permit ("+ * tcp/8080") is the way to open a port to the network, and a
// serviceEndpoints block names its own rule (and counts its match).
std::optional<StepResult> inbound_block(const FilterSettings& settings,
                                        const ConnectionFacts& connection, const Remote& remote) {
    if (!settings.block_inbound || connection.direction != Direction::Inbound ||
        remote.is_this_host) {
        return std::nullopt;
    }
    return StepResult{.verdict = Verdict::Block,
                      .reason = "blockInbound" + setting_note(settings, AppSetting::BlockInbound),
                      .remember = Remember::PerSetting};
}

// Step "invalid address": an address that cannot be a peer (ip_scope.h, IpScope::Invalid).
std::optional<StepResult> invalid_address(const ConnectionFacts& connection, const Remote& remote) {
    if (remote.scope != IpScope::Invalid) {
        return std::nullopt;
    }
    return StepResult{.verdict = Verdict::Block,
                      .reason = "invalid remote address " + connection.remote_address.to_string(),
                      .remember = Remember::PerSetting};
}

// Step "resolver scope": `filter/removeOutOfScopeDNS` at connection time, for a name whose
// resolver is known (DomainFacts::resolver_scope). The nameserver's own answers never get here
// with such an address: filter_answer() removed it before the application saw it.
std::optional<StepResult> resolver_scope(const FilterSettings& settings,
                                         const ConnectionFacts& connection, const Remote& remote) {
    if (!settings.remove_out_of_scope_dns || !connection.domain ||
        !connection.domain->resolver_scope ||
        !is_out_of_scope(*connection.domain->resolver_scope, remote.scope)) {
        return std::nullopt;
    }
    return StepResult{
        .verdict = Verdict::Block,
        .reason = "removeOutOfScopeDNS: " +
                  out_of_scope_text(*connection.domain->resolver_scope, remote.scope) +
                  setting_note(settings, AppSetting::RemoveOutOfScopeDns),
        .remember = Remember::PerSetting};
}

// Step "filter lists": the seam for issue 14. `settings.lists` names the lists this application
// uses; no list is loaded yet, so nothing is ever on one and the step never decides. Issue 14
// looks the remote address and domain (with its CNAMEs when includeCNAMEs is on, and the parent
// names when includeSubdomains is on) up in the lists here and blocks what it finds.
std::optional<StepResult> filter_lists(const FilterSettings& settings,
                                       const ConnectionFacts& /*connection*/) {
    static_cast<void>(settings.lists); // what issue 14 looks in
    return std::nullopt;
}

// The first rule of `layers` (the profile's own, then the global ones) that `matches`.
template <typename Matches>
std::optional<RuleMatch> first_match_in(const RuleLayers& layers, RuleListKind list,
                                        const Matches& matches) {
    for (const auto& [rules, layer] : {std::pair{layers.app.get(), SettingLayer::App},
                                       std::pair{layers.global.get(), SettingLayer::Global}}) {
        if (rules == nullptr) {
            continue;
        }
        for (std::size_t index = 0; index < rules->size(); ++index) {
            if (matches((*rules)[index])) {
                return RuleMatch{.list = list, .layer = layer, .index = index};
            }
        }
    }
    return std::nullopt;
}

} // namespace

const EndpointRule& rule_at(const FilterSettings& settings, const RuleMatch& match) {
    const RuleLayers& layers =
        match.list == RuleListKind::Endpoints ? settings.endpoints : settings.service_endpoints;
    const SharedRules& rules = match.layer == SettingLayer::App ? layers.app : layers.global;
    return (*rules)[match.index];
}

namespace {

IncludeCnames include_cnames(const FilterSettings& settings) {
    return settings.include_cnames ? IncludeCnames::Yes : IncludeCnames::No;
}

// Step "endpoint lists": the first matching rule of the connection's direction.
std::optional<StepResult> endpoint_rules(const FilterSettings& settings,
                                         const ConnectionFacts& connection) {
    const EndpointQuery query{
        .remote_address = connection.remote_address,
        .protocol = connection.protocol,
        .service_port = connection.service_port(),
        .domain = connection.domain ? &*connection.domain : nullptr,
        .cnames = include_cnames(settings),
    };
    const bool inbound = connection.direction == Direction::Inbound;
    const RuleListKind list = inbound ? RuleListKind::ServiceEndpoints : RuleListKind::Endpoints;
    const auto match =
        first_match_in(inbound ? settings.service_endpoints : settings.endpoints, list,
                       [&query](const EndpointRule& rule) { return matches(rule, query); });
    if (!match) {
        return std::nullopt;
    }
    const EndpointRule& rule = rule_at(settings, *match);
    return StepResult{
        .verdict = rule.action == RuleAction::Permit ? Verdict::Accept : Verdict::Block,
        .reason = "rule '" + rule.text + "'" + layer_note(settings, match->layer),
        .remember = Remember::PerSetting,
        .outcome = Outcome::Decided,
        .rule = match};
}

// Step "default action": `filter/defaultAction`, when no step before decided.
StepResult default_action(const FilterSettings& settings) {
    const std::string note = setting_note(settings, AppSetting::DefaultAction);
    switch (settings.default_action) {
        case DefaultAction::Permit:
            return {.verdict = Verdict::Accept,
                    .reason = "default action: permit" + note,
                    .remember = Remember::PerSetting};
        case DefaultAction::Ask:
            return {.verdict = Verdict::Block,
                    .reason = "default action: ask" + note,
                    .remember = Remember::PerSetting,
                    .outcome = Outcome::Ask};
        case DefaultAction::Block:
            break;
    }
    return {.verdict = Verdict::Block,
            .reason = "default action: block" + note,
            .remember = Remember::PerSetting};
}

// The steps after the fast-track (decide.h), the first that has an answer.
StepResult decide_steps(const FilterSettings& settings, const ConnectionFacts& connection) {
    // Before the profile's settings: what portwarden itself must let through or stop.
    if (auto outcome = own_connection(connection)) {
        return from(DecisionStep::Own, std::move(*outcome));
    }
    if (auto outcome = api_connection(settings, connection)) {
        return from(DecisionStep::Api, std::move(*outcome));
    }
    if (auto outcome = dns_interception(settings, connection)) {
        return from(DecisionStep::Nameserver, std::move(*outcome));
    }
    if (auto outcome = blocked_dns_answer(connection)) {
        return from(DecisionStep::BlockedAnswer, std::move(*outcome));
    }
    // The deciders, in Portmaster's order (facts 6.4) but for blockInbound.
    const Remote remote = classify_remote(connection);
    if (auto outcome = broadcast_reply(connection, remote)) {
        return from(DecisionStep::BroadcastReply, std::move(*outcome));
    }
    if (auto outcome = peer_to_peer(settings, connection, remote)) {
        return from(DecisionStep::PeerToPeer, std::move(*outcome));
    }
    if (auto outcome = scope_block(settings, remote)) {
        return from(DecisionStep::Scope, std::move(*outcome));
    }
    if (auto outcome = endpoint_rules(settings, connection)) {
        return from(DecisionStep::Rule, std::move(*outcome));
    }
    if (auto outcome = inbound_block(settings, connection, remote)) {
        return from(DecisionStep::Inbound, std::move(*outcome));
    }
    if (auto outcome = invalid_address(connection, remote)) {
        return from(DecisionStep::InvalidAddress, std::move(*outcome));
    }
    if (auto outcome = resolver_scope(settings, connection, remote)) {
        return from(DecisionStep::ResolverScope, std::move(*outcome));
    }
    if (auto outcome = bypass_attempt(settings, connection)) {
        return from(DecisionStep::Bypass, std::move(*outcome));
    }
    if (auto outcome = filter_lists(settings, connection)) {
        return from(DecisionStep::FilterList, std::move(*outcome));
    }
    return from(DecisionStep::Default, default_action(settings));
}

// Why a block must be a silent drop rather than a reject, or nullopt to reject.
std::optional<std::string_view> drop_reason(const FilterSettings& settings,
                                            const ConnectionFacts& connection) {
    if (connection.direction == Direction::Inbound) {
        // A reject would tell a scanner that the host is there.
        return " (silent drop: inbound)";
    }
    if (is_icmp(connection)) {
        // The filter chain RETURNs ICMP before its REJECT rules, so a Block mark would let the
        // packet through; only a drop actually stops it.
        return " (silent drop: ICMP)";
    }
    if (settings.outbound_block_action == OutboundBlockAction::Drop) {
        return " (silent drop: outboundBlockAction is drop)";
    }
    return std::nullopt;
}

Persistence persistence_for(const FilterSettings& settings, const ConnectionFacts& connection,
                            const StepResult& outcome) {
    if (outcome.remember == Remember::Always) {
        return Persistence::Permanent;
    }
    if (settings.permanent_verdicts == PermanentVerdicts::Off) {
        return Persistence::Temporary;
    }
    // Both ends of a loopback flow share one conntrack entry: a permanent accept saved by the
    // client side would let the server side's inbound packets skip their own decision.
    if (outcome.remember == Remember::PerSetting && outcome.verdict == Verdict::Accept &&
        connection.direction == Direction::Outbound && connection.remote_address.is_loopback()) {
        return Persistence::Temporary;
    }
    return Persistence::Permanent;
}

// Decides a query from the name (and CNAMEs) through `matches`, which tells whether a domain
// pattern matches; `listed` says whether a name is on the resolver list.
template <typename Matches>
QueryDecision decide_names(const FilterSettings& settings, std::string_view name, bool listed,
                           const Matches& matches) {
    if (settings.prevent_bypassing == PreventBypassing::On) {
        // Static: this runs for every query, and the pattern never changes.
        static const DomainPattern kCanary{.match = DomainMatch::Exact,
                                           .pattern = std::string(kFirefoxDohCanary)};
        if (kCanary.matches(name)) {
            return {.action = QueryAction::NxDomain,
                    .reason = "prevent bypassing: Firefox DNS-over-HTTPS canary"};
        }
    }
    // A rule that needs the connection (an address, `*`, a port) and blocks can be passed over:
    // a connection it matches is blocked anyway, so a later blocking name rule still means
    // that every connection to the name is blocked. One that permits cannot.
    const EndpointRule* per_connection_block = nullptr;
    SettingLayer per_connection_layer = SettingLayer::Global;
    for (const auto& [rules, layer] :
         {std::pair{settings.endpoints.app.get(), SettingLayer::App},
          std::pair{settings.endpoints.global.get(), SettingLayer::Global}}) {
        if (rules == nullptr) {
            continue;
        }
        for (const EndpointRule& rule : *rules) {
            const auto* domain = std::get_if<DomainPattern>(&rule.entity);
            if (domain != nullptr && !matches(*domain)) {
                continue; // cannot match any connection to this name
            }
            if (!rule.is_name_only()) {
                if (rule.action == RuleAction::Block) {
                    if (per_connection_block == nullptr) {
                        per_connection_block = &rule;
                        per_connection_layer = layer;
                    }
                    continue;
                }
                return {.action = QueryAction::Resolve,
                        .reason = "rule '" + rule.text + "'" + layer_note(settings, layer) +
                                  " is decided per connection"};
            }
            return {.action = rule.action == RuleAction::Block ? QueryAction::Block
                                                               : QueryAction::Resolve,
                    .reason = "rule '" + rule.text + "'" + layer_note(settings, layer)};
        }
    }
    // After the rules, as bypass prevention comes after the endpoint lists in decide(): a rule
    // that permits the resolver's name has decided above. `listed` is only true with
    // preventBypassing on.
    if (listed) {
        return {.action = QueryAction::Block,
                .reason = "prevent bypassing: known DNS-over-HTTPS resolver"};
    }
    if (per_connection_block != nullptr) {
        return {.action = QueryAction::Resolve,
                .reason = "rule '" + per_connection_block->text + "'" +
                          layer_note(settings, per_connection_layer) +
                          " is decided per connection"};
    }
    return {.action = QueryAction::Resolve,
            .reason = "no rule decides the name; the default action applies to connections"};
}

// A step's conclusion made into what the kernel is told (see the shaping notes in decide.h).
Decision shape(const FilterSettings& settings, const ConnectionFacts& connection,
               StepResult outcome) {
    if (outcome.verdict == Verdict::Block) {
        if (const auto drop = drop_reason(settings, connection)) {
            outcome.verdict = Verdict::Drop;
            outcome.reason += *drop;
        }
    }
    const Persistence persistence = persistence_for(settings, connection, outcome);
    return Decision{.verdict = outcome.verdict,
                    .persistence = persistence,
                    .reason = std::move(outcome.reason),
                    .outcome = outcome.outcome,
                    .rule = outcome.rule,
                    .step = outcome.step};
}

} // namespace

std::string_view decision_step_name(DecisionStep step) {
    switch (step) {
        case DecisionStep::FastTrack:
            return "fastTrack";
        case DecisionStep::Own:
            return "own";
        case DecisionStep::Api:
            return "api";
        case DecisionStep::Nameserver:
            return "nameserver";
        case DecisionStep::BlockedAnswer:
            return "blockedAnswer";
        case DecisionStep::BroadcastReply:
            return "broadcastReply";
        case DecisionStep::PeerToPeer:
            return "p2p";
        case DecisionStep::Scope:
            return "scope";
        case DecisionStep::Rule:
            return "rule";
        case DecisionStep::Inbound:
            return "inbound";
        case DecisionStep::InvalidAddress:
            return "invalidAddress";
        case DecisionStep::ResolverScope:
            return "resolverScope";
        case DecisionStep::Bypass:
            return "bypass";
        case DecisionStep::FilterList:
            return "filterList";
        case DecisionStep::Default:
            return "default";
        case DecisionStep::Prompt:
            return "prompt";
        case DecisionStep::Pause:
            return "pause";
    }
    return "default";
}

bool is_nameserver_endpoint(const FilterSettings& settings, const IpAddress& address,
                            std::uint16_t port) {
    return std::ranges::any_of(settings.dns.nameserver_endpoints,
                               [&address, port](const IpEndpoint& endpoint) {
                                   return endpoint.port == port && endpoint.address == address;
                               });
}

Decision decide(const FilterSettings& settings, const ConnectionFacts& connection) {
    if (const auto reason = infrastructure_reason(connection)) {
        // Temporary: NDP and MLD are not conntracked, so a connmark would never be seen again,
        // and DHCP is a handful of packets that may as well be looked at each time.
        return Decision{.verdict = Verdict::Accept,
                        .persistence = Persistence::Temporary,
                        .reason = std::string(*reason),
                        .outcome = Outcome::Decided,
                        .rule = std::nullopt,
                        .step = DecisionStep::FastTrack};
    }

    return shape(settings, connection, decide_steps(settings, connection));
}

Decision decide_as(const FilterSettings& settings, const ConnectionFacts& connection,
                   Verdict verdict, std::string reason) {
    return shape(settings, connection,
                 StepResult{.verdict = verdict,
                            .reason = std::move(reason),
                            .remember = Remember::PerSetting,
                            .outcome = Outcome::Decided,
                            .rule = std::nullopt,
                            .step = DecisionStep::Prompt});
}

QueryDecision decide_query(const FilterSettings& settings, std::string_view name) {
    const bool listed =
        settings.prevent_bypassing == PreventBypassing::On && is_known_resolver_name(name);
    return decide_names(settings, name, listed,
                        [name](const DomainPattern& pattern) { return pattern.matches(name); });
}

QueryDecision decide_query(const FilterSettings& settings, const DomainFacts& domain) {
    const bool listed =
        settings.prevent_bypassing == PreventBypassing::On && is_known_resolver_name(domain);
    const IncludeCnames cnames = include_cnames(settings);
    return decide_names(settings, domain.domain, listed,
                        [&domain, cnames](const DomainPattern& pattern) {
                            return pattern.matches(domain, cnames);
                        });
}

} // namespace pw::firewall
