#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "firewall/connection_facts.h"
#include "firewall/settings.h"
#include "packet/verdict.h"

namespace pw::firewall {

// Which rule decided: its list, its layer (the profile's own rules or the global ones) and its
// position in that layer's list, so that the caller can count the rule's matches.
enum class RuleListKind : std::uint8_t { Endpoints, ServiceEndpoints };
struct RuleMatch {
    RuleListKind list = RuleListKind::Endpoints;
    SettingLayer layer = SettingLayer::Global;
    std::size_t index = 0;

    friend bool operator==(const RuleMatch&, const RuleMatch&) = default;
};

// Whether the decision is final, or waits for a person (`filter/defaultAction: ask`).
enum class Outcome : std::uint8_t {
    Decided, // `verdict` and `persistence` are what the kernel is told
    Ask,     // hold the connection and open a prompt; `verdict` (a block, shaped for the
             // connection) is what applies when nobody answers in time
};

// Which step of decide() (the list below) decided, or what decided instead of it: the class of
// a reason, for metrics and filters (the reason text says the rest).
enum class DecisionStep : std::uint8_t {
    FastTrack,      // 1
    Own,            // 2
    Api,            // 2b
    Nameserver,     // 3, 4: DNS to our nameserver, astray DNS rerouted
    BlockedAnswer,  // 5
    BroadcastReply, // 6
    PeerToPeer,     // 7
    Scope,          // 8
    Rule,           // 9
    Inbound,        // 10
    InvalidAddress, // 11
    ResolverScope,  // 12
    Bypass,         // 13
    FilterList,     // 14
    Default,        // 15
    Prompt,         // a prompt: its answer (decide_as()), no answer, too many open prompts
    Pause,          // filtering paused (network::FilterPause)
};
inline constexpr std::size_t kDecisionSteps = 17;

// "fastTrack", "own", "api", "nameserver", "blockedAnswer", "broadcastReply", "p2p", "scope",
// "rule", "inbound", "invalidAddress", "resolverScope", "bypass", "filterList", "default",
// "prompt", "pause".
[[nodiscard]] std::string_view decision_step_name(DecisionStep step);

// The outcome for one connection, with the reason shown to the user. A reason that rests on a
// setting or a rule names the layer and the profile: "rule '- .example.com' (app, profile
// 'curl')", "blockInternet (global, profile 'curl')", "default action: block (global, profile
// 'curl')"; the steps before the settings name themselves ("fast-track: IPv6 neighbour
// discovery", "portwarden's own connection").
struct Decision {
    packet::Verdict verdict = packet::Verdict::Drop;
    packet::Persistence persistence = packet::Persistence::Temporary;
    std::string reason;
    Outcome outcome = Outcome::Decided;
    // Set when a rule of endpoints/serviceEndpoints decided.
    std::optional<RuleMatch>
        rule{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-initializers
    DecisionStep step = DecisionStep::Default;
};

// The decision core: a pure function of the settings and the connection. It does no I/O, reads
// no clock and writes no logs (CONVENTIONS rule 3). The steps, in order; the first that has an
// answer decides. "Scope" is ip_scope() of the remote address (ip_scope.h).
//
// Before the profile's settings, what portwarden itself must let through or stop:
//   1. Fast-track: ICMPv6 neighbour/router discovery and MLD, and DHCP (v4 and v6) client
//      traffic, are accepted (temporarily), because blocking them breaks the network itself.
//   2. Own connection: portwarden's own connections are accepted: its resolver's upstream
//      queries (also DNS over TLS to a resolver on the bypass list) must never be redirected to
//      itself or blocked. Inbound, only from this host.
//   2b. API: TCP between a local process and portwarden's API (`api_endpoints`) is accepted, so
//      that the CLI and the web UI work under any default action.
//   3. Nameserver: DNS (UDP or TCP) to one of `dns.nameserver_endpoints` is accepted, and so is
//      the server side of it (inbound to that endpoint).
//   4. Astray DNS: other outbound DNS (UDP or TCP to remote port 53) is rerouted to our
//      nameserver (RerouteToNameserver, mark 1799) when one listens on an address of the same
//      IP family, else blocked. Without any nameserver endpoint, steps 3 and 4 do not apply.
//   5. Blocked DNS answer: a remote address of 0.0.0.17 or ::17, the answer our nameserver gives
//      for a blocked name, is blocked.
// Then Portmaster's deciders (facts 6.4), with the profile's settings:
//   6. Broadcast reply: an inbound connection from the LAN scope that answers an earlier
//      outbound broadcast or multicast of the same (identified) process is accepted
//      (ConnectionFacts::answers_broadcast_to).
//   7. Connection type, outbound (`filter/blockP2P`): blocked when the remote port is 3478 or
//      5349 (STUN/TURN; TCP and UDP), or the remote address is of Global scope and no DNS answer
//      of this application led to it (no DomainFacts).
//   8. Scope: `filter/blockInternet` (Global, GlobalMulticast), `filter/blockLAN` (LinkLocal,
//      SiteLocal, LocalMulticast), `filter/blockLocal` (Localhost) block, in both directions.
//   9. Endpoint lists: the first matching rule of `filter/endpoints` (outbound) or
//      `filter/serviceEndpoints` (inbound, the service port being the local port) permits or
//      blocks; the profile's own rules are read before the global ones. Domain rules match the
//      connection's domain, and its CNAME chain when `filter/includeCNAMEs` is on; without a
//      domain they match nothing. Decision::rule names the rule.
//  10. Connection type, inbound (`filter/blockInbound`): an inbound connection not from this host
//      (loopback, or from the local address itself) is dropped. It comes after the endpoint
//      lists, unlike in Portmaster, so that a serviceEndpoints permit such as "+ * tcp/8080"
//      opens that port while the default blockInbound closes every other one. Outbound rules,
//      as in Portmaster, cannot overrule steps 7 and 8, nor inbound rules step 8.
//  11. Invalid address: a remote address of Invalid scope is blocked.
//  12. Resolver scope (`filter/removeOutOfScopeDNS`): blocked when the domain's resolver is
//      known (DomainFacts::resolver_scope) and is_out_of_scope(resolver, remote). The main
//      enforcement is at DNS time, where filter_answer() removes such addresses.
//  13. Bypass prevention: with `filter/preventBypassing` on, outbound connections (not ICMP) are
//      blocked when they go to port 853 (DNS over TLS), to an address on the shipped resolver
//      list, or to a domain (or CNAME) on that list (dns_bypass_list.h). After the endpoint
//      lists, as in Portmaster: an explicit rule ("+ 9.9.9.9 tcp/443") overrules it.
//  14. Filter lists: the seam for issue 14 (`filter/lists`); decides nothing yet.
//  15. Default action: `filter/defaultAction` (permit, block, or ask: Outcome::Ask).
// Every reason from step 6 on that rests on a setting or a rule names it, its layer and the
// profile: "blockInternet (app, profile 'curl')", "blockP2P: STUN/TURN port 3478 (global)",
// "rule '+ * tcp/8080' (global)", "default action: block (global, profile 'curl')".
//
// Then the verdict is shaped for the kernel:
//   - a block of an inbound connection, of ICMP (the chain's ICMP RETURN rules would let a
//     1701/1711 ICMP packet pass) or with `filter/outboundBlockAction: drop` becomes a Drop;
//   - the persistence follows `filter/permanentVerdicts`, except that an accepted outbound
//     connection to a loopback address stays temporary: a saved connmark would let the server
//     side of the same loopback flow skip its own (inbound) decision. A query to our own
//     nameserver is the exception to the exception: the server side is portwarden itself, which
//     step 3 accepts anyway. A block of 0.0.0.17 / ::17 is always permanent (the address can
//     never become reachable), and reroutes are always remembered by the kernel.
[[nodiscard]] Decision decide(const FilterSettings& settings, const ConnectionFacts& connection);

// A verdict reached outside the steps above (a person's answer to a prompt), shaped for the
// kernel exactly as decide() shapes its own: a block becomes a drop where decide() would drop,
// and the persistence follows filter/permanentVerdicts.
[[nodiscard]] Decision decide_as(const FilterSettings& settings, const ConnectionFacts& connection,
                                 packet::Verdict verdict, std::string reason);

// The rule that `match` names in `settings` (the settings the decision was made with).
[[nodiscard]] const EndpointRule& rule_at(const FilterSettings& settings, const RuleMatch& match);

// Whether `address`:`port` is one of portwarden's nameserver endpoints (`dns/listenAddress`).
[[nodiscard]] bool is_nameserver_endpoint(const FilterSettings& settings, const IpAddress& address,
                                          std::uint16_t port);

// What the nameserver does with a query.
enum class QueryAction : std::uint8_t {
    Resolve,  // ask upstream and answer
    Block,    // answer 0.0.0.17 / ::17 for A / AAAA (NOERROR without records for other types),
              // which decide() blocks if the application connects anyway
    NxDomain, // answer NXDOMAIN
};

struct QueryDecision {
    QueryAction action = QueryAction::Resolve;
    std::string reason;
};

// The DNS-time decision for a name: pure, like decide(). In order:
//   1. With `filter/preventBypassing` on, `use-application-dns.net` (Firefox's DoH canary) gets
//      NXDOMAIN, whatever the rules say.
//   2. The rules of `filter/endpoints` are read in order, and the first rule that can be decided
//      from the name alone decides:
//        - a domain rule without protocol and port that matches: Block for '-', Resolve for '+';
//        - a domain rule that does not match: skipped (it cannot match a connection to this name);
//        - any other rule (`*`, an IP or CIDR, a matching domain rule with a protocol or port)
//          may match a connection to this name, depending on things only the connection has:
//          if it permits, the query is resolved and decide() judges the connection; if it
//          blocks, it is passed over (a connection it matches is blocked anyway).
//   3. With `filter/preventBypassing` on, names on the shipped resolver list (dns_bypass_list.h)
//      are blocked: after the rules, as decide() checks bypass prevention after the endpoint
//      lists.
//   4. Otherwise the name is resolved: `filter/defaultAction` is applied to connections, never
//      to names; the scope settings are applied to the addresses of the answer (filter_answer()
//      in answer_filter.h), not to the name.
// This keeps DNS-time blocking exactly consistent with first-match-wins at connection time: a
// name is only blocked when every connection to it would be blocked (by that rule, or by a
// blocking rule before it).
//
// Names are compared case-insensitively, a trailing dot is ignored.
[[nodiscard]] QueryDecision decide_query(const FilterSettings& settings, std::string_view name);

// The same after resolving, with the answer's CNAME chain: domain rules (when
// `filter/includeCNAMEs` is on) and the resolver list (always) then also match the CNAMEs, as
// decide() does for the connection (the canary is checked against `domain.domain` only). The
// nameserver calls this when an answer contains CNAMEs, so that
// "- .tracker.example" blocks "shop.example" when it is an alias of "x.tracker.example".
[[nodiscard]] QueryDecision decide_query(const FilterSettings& settings, const DomainFacts& domain);

} // namespace pw::firewall
