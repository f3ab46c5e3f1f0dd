#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"

namespace pw::firewall {

// The rule's sign: "+" permits, "-" blocks.
enum class RuleAction : std::uint8_t { Permit, Block };

// ENTITY "*": every remote endpoint.
struct AnyEntity {
    friend bool operator==(const AnyEntity&, const AnyEntity&) = default;
};

// What a rule matches the remote side of a connection against. A bare IP parses as a /32 or
// /128 Cidr. Domains, scopes (Localhost/LAN/Internet) and lists come with later issues.
using Entity = std::variant<AnyEntity, Cidr>;

// One line of `filter/endpoints`:  `+|- ENTITY [PROTO[/PORT[-PORT]]]`, e.g.
//   "+ 10.0.0.0/8 tcp/22"   "- * udp/5000-6000"   "- 2001:db8::1 icmpv6"   "+ * 132"
// PROTO is a name (tcp, udp, icmp, icmpv6 or icmp6, udplite, sctp, igmp), a number 0-255, or *.
// A port range needs a protocol with ports (tcp, udp, udplite, sctp).
struct EndpointRule {
    RuleAction action = RuleAction::Block;
    Entity entity;
    std::optional<std::uint8_t> protocol; // nullopt: any protocol
    std::uint16_t port_low = 0;           // 0..65535 together mean "any port"
    std::uint16_t port_high = 65535;
    std::string text; // the line as written, trimmed; shown as the decision's reason

    friend bool operator==(const EndpointRule&, const EndpointRule&) = default;
};

// Parses one rule line. Errors quote the offending token and say what was expected:
// "unknown protocol 'tpc' (expected tcp, udp, icmp, icmpv6, udplite, sctp, igmp, * or 0-255)".
[[nodiscard]] Result<EndpointRule> parse_endpoint_rule(std::string_view line);

// What rule matching looks at: the remote address, the transport protocol and the service port
// (the remote port of an outbound connection, the local port of an inbound one: "+ * tcp/22"
// permits inbound SSH). Ports are 0 for protocols without ports.
struct EndpointQuery {
    IpAddress remote_address;
    std::uint8_t protocol = 0;
    std::uint16_t service_port = 0;
};

[[nodiscard]] bool matches(const EndpointRule& rule, const EndpointQuery& query);

// The first rule that matches, or nullptr.
[[nodiscard]] const EndpointRule* first_match(const std::vector<EndpointRule>& rules,
                                              const EndpointQuery& query);

} // namespace pw::firewall
