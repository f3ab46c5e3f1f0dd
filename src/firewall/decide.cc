#include "firewall/decide.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>

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

struct RuleOutcome {
    RuleAction action;
    std::string reason;
};

RuleOutcome apply_rules(const FilterSettings& settings, const ConnectionFacts& connection) {
    const EndpointQuery query{
        .remote_address = connection.remote_address,
        .protocol = connection.protocol,
        .service_port = connection.service_port(),
    };
    if (const EndpointRule* rule = first_match(settings.endpoints, query); rule != nullptr) {
        return {.action = rule->action, .reason = "rule '" + rule->text + "'"};
    }
    if (settings.default_action == DefaultAction::Permit) {
        return {.action = RuleAction::Permit, .reason = "default action: permit"};
    }
    return {.action = RuleAction::Block, .reason = "default action: block"};
}

// Why a block must be a silent drop rather than a reject, or nullopt to reject.
std::optional<std::string_view> drop_reason(const FilterSettings& settings,
                                            const ConnectionFacts& connection) {
    if (connection.direction == Direction::Inbound) {
        // A reject would tell a scanner that the host is there.
        return " (silent drop: inbound)";
    }
    if (connection.protocol == protocol::kIcmp || connection.protocol == protocol::kIcmpV6) {
        // The filter chain RETURNs ICMP before its REJECT rules, so a Block mark would let the
        // packet through; only a drop actually stops it.
        return " (silent drop: ICMP)";
    }
    if (settings.outbound_block_action == OutboundBlockAction::Drop) {
        return " (silent drop: outboundBlockAction is drop)";
    }
    return std::nullopt;
}

} // namespace

Decision decide(const FilterSettings& settings, const ConnectionFacts& connection) {
    if (const auto reason = infrastructure_reason(connection)) {
        // Temporary: NDP and MLD are not conntracked, so a connmark would never be seen again,
        // and DHCP is a handful of packets that may as well be looked at each time.
        return Decision{.verdict = Verdict::Accept,
                        .persistence = Persistence::Temporary,
                        .reason = std::string(*reason)};
    }

    auto [action, reason] = apply_rules(settings, connection);
    Verdict verdict = Verdict::Accept;
    if (action == RuleAction::Block) {
        verdict = Verdict::Block;
        if (const auto drop = drop_reason(settings, connection)) {
            verdict = Verdict::Drop;
            reason += *drop;
        }
    }

    Persistence persistence = settings.permanent_verdicts == PermanentVerdicts::On
                                  ? Persistence::Permanent
                                  : Persistence::Temporary;
    // Both ends of a loopback flow share one conntrack entry: a permanent accept saved by the
    // client side would let the server side's inbound packets skip their own decision.
    if (verdict == Verdict::Accept && connection.direction == Direction::Outbound &&
        connection.remote_address.is_loopback()) {
        persistence = Persistence::Temporary;
    }
    return Decision{.verdict = verdict, .persistence = persistence, .reason = std::move(reason)};
}

} // namespace pw::firewall
