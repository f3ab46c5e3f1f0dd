// libFuzzer target: parse_endpoint_rule() on arbitrary bytes, then matches() and decide_query()
// with what parses; the same bytes are also used as a DNS name for the domain matchers and
// decide_query(). A rule line comes from a user's config file and a name from the network, so
// any byte sequence must give a rule or an error, never a crash, a hang or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "firewall/decide.h"
#include "firewall/endpoint_rule.h"
#include "packet/packet_info.h"

namespace {

using pw::firewall::DomainFacts;
using pw::firewall::EndpointQuery;
using pw::firewall::EndpointRule;
using pw::firewall::FilterSettings;

// A few queries that between them reach every branch of matches(): both families, a protocol
// with ports and one without, and ports at both ends of the range.
std::vector<EndpointQuery> make_queries() {
    std::vector<EndpointQuery> queries;
    const auto add = [&queries](std::string_view address, std::uint8_t protocol,
                                std::uint16_t port) {
        if (auto parsed = pw::IpAddress::parse(address)) {
            queries.push_back(EndpointQuery{
                .remote_address = *parsed, .protocol = protocol, .service_port = port});
        }
    };
    add("10.1.2.3", pw::packet::protocol::kTcp, 22);
    add("192.0.2.255", pw::packet::protocol::kUdp, 65535);
    add("2001:db8::1", pw::packet::protocol::kIcmpV6, 0);
    add("::1", pw::packet::protocol::kSctp, 0);
    add("127.0.0.1", pw::packet::protocol::kUdp, 53);
    add("0.0.0.1", pw::packet::protocol::kTcp, 443); // an invalid address: in no scope
    return queries;
}

// Names for domain rules to match: plain, deep with a CNAME chain, upper case with a dot.
std::vector<DomainFacts> make_domains() {
    return {
        {.domain = "example.com", .cname_chain = {}},
        {.domain = "a.b.ads.example.net", .cname_chain = {"x.tracker.example", "cdn.example"}},
        {.domain = "WWW.Example.COM.", .cname_chain = {}},
    };
}

// Fixed rules for fuzz_name(): every kind of domain entity, and rules that stop at DNS time.
std::vector<EndpointRule> make_name_rules() {
    std::vector<EndpointRule> rules;
    for (const std::string_view line :
         {"+ example.com tcp/443", "- .example.com", "- *a*b*c*", "- *.ads.*", "+ * udp"}) {
        if (auto rule = pw::firewall::parse_endpoint_rule(line)) {
            rules.push_back(*rule);
        }
    }
    return rules;
}

void fuzz_rule(std::string_view line) {
    static const std::vector<EndpointQuery> kQueries = make_queries();
    static const std::vector<DomainFacts> kDomains = make_domains();
    const auto rule = pw::firewall::parse_endpoint_rule(line);
    if (!rule) {
        return;
    }
    // Invariants the parser promises; a violation aborts so that libFuzzer reports it.
    if (rule->port_low > rule->port_high || rule->text.empty() || rule->text.size() > line.size()) {
        __builtin_trap();
    }
    if (const auto* range = std::get_if<pw::firewall::IpRange>(&rule->entity);
        range != nullptr &&
        (range->first.family() != range->last.family() || range->last < range->first)) {
        __builtin_trap();
    }
    for (EndpointQuery query : kQueries) {
        (void)pw::firewall::matches(*rule, query);
        for (const DomainFacts& domain : kDomains) {
            query.domain = &domain;
            (void)pw::firewall::matches(*rule, query);
        }
    }
    const std::vector<EndpointRule> rules = {*rule};
    (void)pw::firewall::first_match(rules, kQueries.front());

    FilterSettings settings;
    settings.prevent_bypassing = pw::firewall::PreventBypassing::Off;
    settings.endpoints.global = std::make_shared<const pw::firewall::RuleList>(rules);
    for (const DomainFacts& domain : kDomains) {
        const auto decision = pw::firewall::decide_query(settings, domain);
        EndpointQuery query = kQueries.front();
        query.domain = &domain;
        // A name-only rule that matches the names decides the query, with its text as reason.
        if (rule->is_name_only() && pw::firewall::matches(*rule, query) &&
            decision.reason != "rule '" + rule->text + "' (global)") {
            __builtin_trap();
        }
        (void)pw::firewall::decide_query(settings, domain.domain);
    }
}

void fuzz_name(std::string_view name) {
    static const std::vector<EndpointRule> kRules = make_name_rules();
    FilterSettings settings;
    settings.endpoints.global = std::make_shared<const pw::firewall::RuleList>(kRules);
    if (pw::firewall::decide_query(settings, name).reason.empty()) {
        __builtin_trap();
    }
    const DomainFacts facts{.domain = std::string(name), .cname_chain = {std::string(name)}};
    (void)pw::firewall::decide_query(settings, facts);
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): libFuzzer hands out bytes.
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    fuzz_rule(text);
    fuzz_name(text);
    return 0;
}
