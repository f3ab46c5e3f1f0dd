#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"
#include "firewall/connection_facts.h"
#include "firewall/ip_scope.h"

namespace pw::firewall {

// The rule's sign: "+" permits, "-" blocks.
enum class RuleAction : std::uint8_t { Permit, Block };

// ENTITY "*": every remote endpoint.
struct AnyEntity {
    friend bool operator==(const AnyEntity&, const AnyEntity&) = default;
};

// ENTITY "Localhost", "LAN" or "Internet" (any case): every remote address of that network
// scope (ip_scope.h). Invalid addresses are in none of them.
struct ScopeEntity {
    NetworkScope scope = NetworkScope::Internet;
    friend bool operator==(const ScopeEntity&, const ScopeEntity&) = default;
};

// ENTITY "10.0.0.5-10.0.0.9" or "2001:db8::1-2001:db8::ff": every address from `first` to
// `last`, both included. Both of one family, `first` <= `last`.
struct IpRange {
    IpAddress first;
    IpAddress last;

    // Checks the text "FIRST-LAST". Errors quote the token and say what is wrong: an address
    // that is not one, a network where an address belongs, two families, a reversed range.
    [[nodiscard]] static Result<IpRange> parse(std::string_view text);
    [[nodiscard]] bool contains(const IpAddress& address) const;

    friend bool operator==(const IpRange&, const IpRange&) = default;
};

// `filter/includeCNAMEs`: whether a domain rule also matches the names of the CNAME chain that
// led to the address ("- .tracker.example" catching shop.example when it is an alias of
// x.tracker.example), or only the name the application asked for.
enum class IncludeCnames : std::uint8_t { No, Yes };

// How a domain entity compares names.
enum class DomainMatch : std::uint8_t {
    Exact, // "example.com": exactly that name
    Zone,  // ".example.com": the name and every name below it (www.example.com, a.b.example.com)
    Glob,  // "*.ads.*", "tracker*.example.com": '*' is any run of characters, dots included
};

// A domain entity, normalised: lower case, no trailing dot, and for a zone without its leading
// dot ("example.com" for ".example.com"). Note that the glob "*.example.com" does not match
// "example.com" itself, while the zone ".example.com" does.
struct DomainPattern {
    DomainMatch match = DomainMatch::Exact;
    std::string pattern;

    // `name` as it comes from DNS: compared case-insensitively, one trailing dot ignored. An
    // empty name matches nothing.
    [[nodiscard]] bool matches(std::string_view name) const;
    // The connection's domain or, with IncludeCnames::Yes, any name of its CNAME chain.
    [[nodiscard]] bool matches(const DomainFacts& domain,
                               IncludeCnames cnames = IncludeCnames::Yes) const;

    friend bool operator==(const DomainPattern&, const DomainPattern&) = default;
};

// Checks and normalises a domain entity token (see DomainPattern). Names are case-insensitive
// and may end in a dot; labels are 1-63 characters of a-z, 0-9, '-' and '_' ('*' too in a
// glob), the whole name at most 253. The scope keywords (localhost, lan, internet) are refused
// without their trailing dot, so that "lan." is the domain and "LAN" the scope. Errors quote
// the token.
[[nodiscard]] Result<DomainPattern> parse_domain_pattern(std::string_view token);

// What a rule matches the remote side of a connection against. Tokens are read in this order:
// "*"; a scope keyword (Localhost, LAN, Internet, any case); FIRST-LAST where FIRST looks like
// an address (has a ':', or digits and dots with at least one dot) is an IP range; an IP
// address (as a /32 or /128 Cidr) or a CIDR; anything else is a domain. Filter lists come with
// a later issue.
using Entity = std::variant<AnyEntity, Cidr, IpRange, ScopeEntity, DomainPattern>;

// One line of `filter/endpoints`:  `+|- ENTITY [PROTO[/PORT[-PORT]]]`, e.g.
//   "+ 10.0.0.0/8 tcp/22"   "- * udp/5000-6000"   "- 2001:db8::1 icmpv6"   "+ * 132"
//   "- .tracker.example"    "+ example.com tcp/443"   "- *.ads.*"   "- Internet"
//   "+ LAN udp/mdns"        "- 10.0.0.5-10.0.0.9 tcp/ssh"   "+ * tcp/http-https"
// PROTO is a name (tcp, udp, icmp, icmpv6 or icmp6, udplite, sctp, igmp), a number 0-255, or *.
// A port is a number or a service name (service_names.h), compared case-insensitively; a
// range's ends may be either. A port range needs a protocol with ports (tcp, udp, udplite,
// sctp).
struct EndpointRule {
    RuleAction action = RuleAction::Block;
    Entity entity;
    std::optional<std::uint8_t> protocol; // nullopt: any protocol
    std::uint16_t port_low = 0;           // 0..65535 together mean "any port"
    std::uint16_t port_high = 65535;
    std::string text; // the line as written, trimmed; shown as the decision's reason

    // True when the rule looks at nothing but the remote side's name: a domain entity with any
    // protocol and any port. Only such rules can decide a DNS query (see decide_query()).
    [[nodiscard]] bool is_name_only() const;

    friend bool operator==(const EndpointRule&, const EndpointRule&) = default;
};

// Parses one rule line. Errors quote the offending token and say what was expected:
// "unknown protocol 'tpc' (expected tcp, udp, icmp, icmpv6, udplite, sctp, igmp, * or 0-255)".
[[nodiscard]] Result<EndpointRule> parse_endpoint_rule(std::string_view line);

// What rule matching looks at: the remote address, the transport protocol and the service port
// (the remote port of an outbound connection, the local port of an inbound one: "+ * tcp/22"
// permits inbound SSH), and the name the remote address was resolved from. Ports are 0 for
// protocols without ports. A domain rule never matches a query without a domain.
struct EndpointQuery {
    IpAddress remote_address;
    std::uint8_t protocol = 0;
    std::uint16_t service_port = 0;
    const DomainFacts* domain = nullptr;       // not owned; nullptr when no name is known
    IncludeCnames cnames = IncludeCnames::Yes; // `filter/includeCNAMEs`
};

// Whether the rule's entity alone (not its protocol and ports) matches.
[[nodiscard]] bool entity_matches(const Entity& entity, const EndpointQuery& query);

[[nodiscard]] bool matches(const EndpointRule& rule, const EndpointQuery& query);

// The first rule that matches, or nullptr.
[[nodiscard]] const EndpointRule* first_match(const std::vector<EndpointRule>& rules,
                                              const EndpointQuery& query);

} // namespace pw::firewall
