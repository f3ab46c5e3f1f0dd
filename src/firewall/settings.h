#pragma once

#include <cstdint>
#include <vector>

#include "common/ip_address.h"
#include "firewall/endpoint_rule.h"

namespace pw::firewall {

// `filter/defaultAction`: what happens to a connection that no rule matches.
enum class DefaultAction : std::uint8_t { Permit, Block };

// `filter/permanentVerdicts`: let the kernel remember verdicts for the whole connection.
enum class PermanentVerdicts : std::uint8_t { Off, On };

// `filter/outboundBlockAction`: how a blocked outbound connection ends for the application.
// Reject answers at once (ICMP host/admin prohibited: "No route to host"); Drop is silent and the
// application times out. Inbound blocks are always silent drops, so scanners learn nothing.
enum class OutboundBlockAction : std::uint8_t { Reject, Drop };

// `filter/preventBypassing`: stop applications from resolving names around portwarden's
// nameserver (DNS over TLS, known DNS-over-HTTPS resolvers, Firefox's DoH canary).
enum class PreventBypassing : std::uint8_t { Off, On };

// What happens to a DNS query sent to a nameserver other than portwarden's own.
//   Redirect: rerouted to portwarden's nameserver (mark 1799) when it listens on an address of
//             the query's IP family, else blocked (there is nowhere to send it).
//   Block:    always blocked.
// There is no "let it pass": a query that leaves unseen would give a connection no domain and
// bypass every domain rule.
enum class AstrayDns : std::uint8_t { Redirect, Block };

// An IP address and a port, such as 127.0.0.17:53.
struct IpEndpoint {
    IpAddress address;
    std::uint16_t port = 0;

    friend bool operator==(const IpEndpoint&, const IpEndpoint&) = default;
};

// What decide() must know about portwarden's own nameserver (`dns/listenAddress`).
struct DnsInterception {
    // Where the nameserver listens. Empty means that no nameserver runs: DNS is then ordinary
    // traffic, neither redirected nor blocked as astray (the daemon without issue 4's server).
    std::vector<IpEndpoint> nameserver_endpoints;
    AstrayDns astray = AstrayDns::Redirect;

    friend bool operator==(const DnsInterception&, const DnsInterception&) = default;
};

// The filter settings that decide() and decide_query() read. Plain data, validated when loaded.
struct FilterSettings {
    DefaultAction default_action = DefaultAction::Permit;
    std::vector<EndpointRule> endpoints;
    PermanentVerdicts permanent_verdicts = PermanentVerdicts::On;
    OutboundBlockAction outbound_block_action = OutboundBlockAction::Reject;
    PreventBypassing prevent_bypassing = PreventBypassing::On;
    DnsInterception dns;
};

} // namespace pw::firewall
