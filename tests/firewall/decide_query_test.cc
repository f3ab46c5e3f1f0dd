// decide_query(): the DNS-time decision, and its consistency with decide() at connection time.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "firewall/decide.h"
#include "packet/packet_info.h"

namespace pw::firewall {
namespace {

using packet::Verdict;
namespace protocol = packet::protocol;

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

// --- Bypass prevention -------------------------------------------------------------------------

TEST(DecideQuery, FirefoxCanaryGetsNxdomain) {
    for (const std::string_view name :
         {"use-application-dns.net", "use-application-dns.net.", "Use-Application-DNS.net"}) {
        const QueryDecision decision = decide_query(FilterSettings{}, name);
        EXPECT_EQ(decision.action, QueryAction::NxDomain) << name;
        EXPECT_EQ(decision.reason, "prevent bypassing: Firefox DNS-over-HTTPS canary");
    }
}

TEST(DecideQuery, OnlyTheCanaryItselfGetsNxdomain) {
    EXPECT_EQ(decide_query(FilterSettings{}, "www.use-application-dns.net").action,
              QueryAction::Resolve);
    EXPECT_EQ(decide_query(FilterSettings{}, "use-application-dns.net.example").action,
              QueryAction::Resolve);
}

TEST(DecideQuery, CanaryComesBeforeRules) {
    EXPECT_EQ(decide_query(settings_with({"+ use-application-dns.net"}), "use-application-dns.net")
                  .action,
              QueryAction::NxDomain);
}

TEST(DecideQuery, KnownResolverNamesAreBlocked) {
    for (const std::string_view name :
         {"dns.google", "DNS.GOOGLE.", "mozilla.cloudflare-dns.com", "dns.quad9.net"}) {
        const QueryDecision decision = decide_query(settings_with({"+ .example.com"}), name);
        EXPECT_EQ(decision.action, QueryAction::Block) << name;
        EXPECT_EQ(decision.reason, "prevent bypassing: known DNS-over-HTTPS resolver") << name;
    }
    EXPECT_EQ(decide_query(FilterSettings{}, "www.google.com").action, QueryAction::Resolve);
}

TEST(DecideQuery, RulesComeBeforeTheResolverList) {
    // As in decide(): a rule that permits the resolver overrules bypass prevention.
    const QueryDecision by_name = decide_query(settings_with({"+ dns.google"}), "dns.google");
    EXPECT_EQ(by_name.action, QueryAction::Resolve);
    EXPECT_EQ(by_name.reason, "rule '+ dns.google' (global)");
    EXPECT_EQ(decide_query(settings_with({"+ *"}), "dns.google").action, QueryAction::Resolve);
    // A blocking rule that needs the connection is passed over: the list still blocks.
    const QueryDecision passed = decide_query(settings_with({"- * tcp/80"}), "dns.google");
    EXPECT_EQ(passed.action, QueryAction::Block);
    EXPECT_EQ(passed.reason, "prevent bypassing: known DNS-over-HTTPS resolver");
}

TEST(DecideQuery, PreventBypassingOffResolvesBoth) {
    FilterSettings settings;
    settings.prevent_bypassing = PreventBypassing::Off;
    EXPECT_EQ(decide_query(settings, "use-application-dns.net").action, QueryAction::Resolve);
    EXPECT_EQ(decide_query(settings, "dns.google").action, QueryAction::Resolve);
    EXPECT_EQ(
        decide_query(settings, DomainFacts{.domain = "x.example", .cname_chain = {"dns.google"}})
            .action,
        QueryAction::Resolve);
}

// --- Rules: the first rule that can be decided from the name -----------------------------------

TEST(DecideQuery, MatchingNameOnlyBlockRuleBlocks) {
    const FilterSettings settings = settings_with({"- .example.com"});
    for (const std::string_view name : {"example.com", "www.example.com", "A.Example.Com."}) {
        const QueryDecision decision = decide_query(settings, name);
        EXPECT_EQ(decision.action, QueryAction::Block) << name;
        EXPECT_EQ(decision.reason, "rule '- .example.com' (global)") << name;
    }
    EXPECT_EQ(decide_query(settings, "example.org").action, QueryAction::Resolve);
}

TEST(DecideQuery, MatchingNameOnlyPermitRuleResolves) {
    const FilterSettings settings = settings_with({"+ www.example.com", "- .example.com"});
    const QueryDecision www = decide_query(settings, "www.example.com");
    EXPECT_EQ(www.action, QueryAction::Resolve);
    EXPECT_EQ(www.reason, "rule '+ www.example.com' (global)");
    EXPECT_EQ(decide_query(settings, "mail.example.com").action, QueryAction::Block);
}

TEST(DecideQuery, RuleOrderDecides) {
    const FilterSettings settings = settings_with({"- .example.com", "+ www.example.com"});
    EXPECT_EQ(decide_query(settings, "www.example.com").action, QueryAction::Block);
}

TEST(DecideQuery, NonMatchingDomainRulesAreSkipped) {
    const FilterSettings settings =
        settings_with({"+ .other.com tcp/443", "+ other.net", "- *.ads.*", "- .example.com"});
    const QueryDecision decision = decide_query(settings, "www.example.com");
    EXPECT_EQ(decision.action, QueryAction::Block);
    EXPECT_EQ(decision.reason, "rule '- .example.com' (global)");
    EXPECT_EQ(decide_query(settings, "x.ads.example").reason, "rule '- *.ads.*' (global)");
}

TEST(DecideQuery, AnyEntityStopsAtDnsTime) {
    const FilterSettings settings = settings_with({"+ * tcp/443", "- .example.com"});
    const QueryDecision decision = decide_query(settings, "www.example.com");
    EXPECT_EQ(decision.action, QueryAction::Resolve);
    EXPECT_EQ(decision.reason, "rule '+ * tcp/443' (global) is decided per connection");
}

TEST(DecideQuery, BlockingRulesThatNeedTheConnectionArePassedOver) {
    // A connection such a rule matches is blocked anyway: a later blocking name rule still
    // means that every connection to the name is blocked.
    const QueryDecision behind_an_address = decide_query(
        settings_with({"- 10.77.0.2 tcp/9001", "- .tracker.example"}), "x.tracker.example");
    EXPECT_EQ(behind_an_address.action, QueryAction::Block);
    EXPECT_EQ(behind_an_address.reason, "rule '- .tracker.example' (global)");
    EXPECT_EQ(decide_query(settings_with({"- *", "- .example.com"}), "example.com").action,
              QueryAction::Block);
    // Alone, such a rule decides nothing at DNS time: the query is resolved, the connection
    // blocked.
    const QueryDecision alone = decide_query(settings_with({"- *"}), "example.com");
    EXPECT_EQ(alone.action, QueryAction::Resolve);
    EXPECT_EQ(alone.reason, "rule '- *' (global) is decided per connection");
    // A permitting name rule after it resolves.
    EXPECT_EQ(decide_query(settings_with({"- 10.0.0.1", "+ .example.com"}), "example.com").action,
              QueryAction::Resolve);
}

TEST(DecideQuery, AddressRuleStopsAtDnsTime) {
    const FilterSettings settings = settings_with({"+ 10.0.0.0/8", "- .example.com"});
    const QueryDecision decision = decide_query(settings, "intranet.example.com");
    EXPECT_EQ(decision.action, QueryAction::Resolve);
    EXPECT_EQ(decision.reason, "rule '+ 10.0.0.0/8' (global) is decided per connection");
}

TEST(DecideQuery, MatchingDomainRuleWithPortStopsAtDnsTime) {
    const FilterSettings settings = settings_with({"+ example.com tcp/443", "- .example.com"});
    const QueryDecision decision = decide_query(settings, "example.com");
    EXPECT_EQ(decision.action, QueryAction::Resolve);
    EXPECT_EQ(decision.reason, "rule '+ example.com tcp/443' (global) is decided per connection");
    // The exact rule does not match the subdomain, so the zone rule decides it.
    EXPECT_EQ(decide_query(settings, "www.example.com").action, QueryAction::Block);
}

TEST(DecideQuery, MatchingDomainRuleWithProtocolOnlyStopsToo) {
    const FilterSettings settings = settings_with({"+ example.com udp", "- .example.com"});
    EXPECT_EQ(decide_query(settings, "example.com").action, QueryAction::Resolve);
}

TEST(DecideQuery, DefaultActionNeverBlocksANameItself) {
    const QueryDecision decision =
        decide_query(settings_with({}, DefaultAction::Block), "www.example.com");
    EXPECT_EQ(decision.action, QueryAction::Resolve);
    EXPECT_EQ(decision.reason,
              "no rule decides the name; the default action applies to connections");
}

// --- With the answer's CNAMEs ------------------------------------------------------------------

TEST(DecideQuery, CnameOfTheAnswerMatchesDomainRules) {
    const FilterSettings settings = settings_with({"- .tracker.example"});
    const DomainFacts aliased{.domain = "shop.example",
                              .cname_chain = {"shop.cdn.example", "x.tracker.example"}};
    const QueryDecision decision = decide_query(settings, aliased);
    EXPECT_EQ(decision.action, QueryAction::Block);
    EXPECT_EQ(decision.reason, "rule '- .tracker.example' (global)");
    EXPECT_EQ(decide_query(settings, "shop.example").action, QueryAction::Resolve);
}

TEST(DecideQuery, IncludeCnamesOffMatchesTheAskedNameOnly) {
    FilterSettings settings = settings_with({"- .tracker.example", "- shop.example tcp/80"});
    settings.include_cnames = false;
    const DomainFacts aliased{.domain = "shop.example", .cname_chain = {"x.tracker.example"}};
    EXPECT_EQ(decide_query(settings, aliased).action, QueryAction::Resolve);
    EXPECT_EQ(decide_query(settings, DomainFacts{.domain = "a.tracker.example", .cname_chain = {}})
                  .action,
              QueryAction::Block);
}

TEST(DecideQuery, IncludeCnamesOffStillChecksTheResolverListThroughCnames) {
    // Bypass prevention is not a rule list: an alias of a DoH resolver is one.
    FilterSettings settings;
    settings.include_cnames = false;
    EXPECT_EQ(
        decide_query(settings, DomainFacts{.domain = "doh.example", .cname_chain = {"dns.google"}})
            .action,
        QueryAction::Block);
}

TEST(DecideQuery, CnameOfTheAnswerMatchesTheResolverList) {
    const QueryDecision decision = decide_query(
        FilterSettings{}, DomainFacts{.domain = "doh.example", .cname_chain = {"dns.google"}});
    EXPECT_EQ(decision.action, QueryAction::Block);
    EXPECT_EQ(decision.reason, "prevent bypassing: known DNS-over-HTTPS resolver");
}

TEST(DecideQuery, CanaryIsNotMatchedThroughCnames) {
    EXPECT_EQ(
        decide_query(FilterSettings{},
                     DomainFacts{.domain = "x.example", .cname_chain = {"use-application-dns.net"}})
            .action,
        QueryAction::Resolve);
}

// --- Consistency with decide() -----------------------------------------------------------------

// Connections that an application could open after resolving `domain`: TCP and UDP to several
// ports, ICMP, both families.
std::vector<ConnectionFacts> connections_to(const DomainFacts& domain) {
    std::vector<ConnectionFacts> connections;
    for (const std::string_view remote : {"203.0.113.5", "10.1.2.3", "2001:db8::5"}) {
        for (const auto& [proto, port] :
             std::vector<std::pair<std::uint8_t, std::uint16_t>>{{protocol::kTcp, 443},
                                                                 {protocol::kTcp, 80},
                                                                 {protocol::kUdp, 443},
                                                                 {protocol::kIcmp, 0}}) {
            ConnectionFacts facts;
            facts.remote_address = IpAddress::parse(remote).value_or(IpAddress{});
            facts.ip_family = facts.remote_address.family();
            facts.local_address =
                IpAddress::parse(facts.remote_address.is_v4() ? "192.168.1.10" : "2001:db8::10")
                    .value_or(IpAddress{});
            facts.protocol = proto;
            facts.local_port = 40000;
            facts.remote_port = port;
            facts.domain = domain;
            connections.push_back(facts);
        }
    }
    return connections;
}

// Checks that every connection to `name` gets what decide_query() promised, and returns how many
// connections were compared (0 when the query is decided per connection: nothing to agree on).
int expect_agreement(const FilterSettings& settings, const DomainFacts& name) {
    const QueryDecision query = decide_query(settings, name);
    EXPECT_NE(query.action, QueryAction::NxDomain);
    if (!query.reason.starts_with("rule '") || query.reason.ends_with("connection")) {
        return 0;
    }
    const Verdict expected = query.action == QueryAction::Block ? Verdict::Block : Verdict::Accept;
    int compared = 0;
    for (const ConnectionFacts& connection : connections_to(name)) {
        const Decision decision = decide(settings, connection);
        const Verdict verdict =
            decision.verdict == Verdict::Drop ? Verdict::Block : decision.verdict;
        EXPECT_EQ(verdict, expected) << name.domain << ": " << decision.reason;
        EXPECT_TRUE(decision.reason.starts_with(query.reason))
            << decision.reason << " vs " << query.reason;
        ++compared;
    }
    return compared;
}

// A name blocked at DNS time would have had every connection to it blocked by the same rule, and
// a name permitted by a name-only rule has every connection permitted by that rule.
TEST(DecideQuery, AgreesWithDecideForEveryRuleOrder) {
    const std::vector<std::vector<std::string_view>> rule_sets = {
        {"- .example.com"},
        {"+ www.example.com", "- .example.com"},
        {"- .example.com", "+ www.example.com"},
        {"+ * tcp/443", "- .example.com"},
        {"+ 10.0.0.0/8", "- .example.com", "+ *"},
        {"+ example.com tcp/443", "- .example.com"},
        {"- .tracker.example", "+ .example.com", "- *"},
        {"- *.ads.*", "+ *.example.*", "- *"},
        {"+ .other.org tcp/80", "- www.example.com", "+ *"},
    };
    const std::vector<DomainFacts> names = {
        {.domain = "example.com", .cname_chain = {}},
        {.domain = "www.example.com", .cname_chain = {}},
        {.domain = "mail.example.com", .cname_chain = {"x.tracker.example"}},
        {.domain = "x.ads.example.com", .cname_chain = {}},
        {.domain = "www.example.org", .cname_chain = {}},
    };
    int compared = 0;
    for (const auto& lines : rule_sets) {
        for (const DefaultAction default_action : {DefaultAction::Permit, DefaultAction::Block}) {
            const FilterSettings settings = settings_with(lines, default_action);
            for (const DomainFacts& name : names) {
                SCOPED_TRACE(std::string(lines.front()) + " ... / " + name.domain);
                compared += expect_agreement(settings, name);
            }
        }
    }
    // Most combinations are decided by name; the test must not pass by skipping them all.
    EXPECT_GT(compared, 300);
}

} // namespace
} // namespace pw::firewall
