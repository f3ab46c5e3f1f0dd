#pragma once

#include <string>

#include "firewall/connection_facts.h"
#include "firewall/settings.h"
#include "packet/verdict.h"

namespace pw::firewall {

// The outcome for one connection, with the reason shown to the user ("rule '- 10.0.0.0/8'",
// "default action: block", "fast-track: IPv6 neighbour discovery").
struct Decision {
    packet::Verdict verdict = packet::Verdict::Drop;
    packet::Persistence persistence = packet::Persistence::Temporary;
    std::string reason;
};

// The decision core: a pure function of the settings and the connection. It does no I/O, reads
// no clock and writes no logs (CONVENTIONS rule 3). In order:
//   1. Network infrastructure is fast-tracked: ICMPv6 neighbour/router discovery and MLD, and
//      DHCP (v4 and v6), are accepted, because blocking them breaks the network itself.
//   2. The first matching rule of `filter/endpoints` permits or blocks.
//   3. Otherwise `filter/defaultAction`.
// Then the verdict is shaped for the kernel:
//   - a block of an inbound connection, of ICMP (the chain's ICMP RETURN rules would let a
//     1701/1711 ICMP packet pass) or with `filter/outboundBlockAction: drop` becomes a Drop;
//   - the persistence follows `filter/permanentVerdicts`, except that an accepted outbound
//     connection to a loopback address stays temporary: a saved connmark would let the server
//     side of the same loopback flow skip its own (inbound) decision.
[[nodiscard]] Decision decide(const FilterSettings& settings, const ConnectionFacts& connection);

} // namespace pw::firewall
