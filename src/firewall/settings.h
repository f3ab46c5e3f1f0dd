#pragma once

#include <cstdint>
#include <vector>

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

// The filter settings that decide() reads. Plain data, validated when loaded.
struct FilterSettings {
    DefaultAction default_action = DefaultAction::Permit;
    std::vector<EndpointRule> endpoints;
    PermanentVerdicts permanent_verdicts = PermanentVerdicts::On;
    OutboundBlockAction outbound_block_action = OutboundBlockAction::Reject;
};

} // namespace pw::firewall
