#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "firewall/ip_scope.h"
#include "firewall/settings.h"

namespace pw::firewall {

// Who the answer is for.
enum class AnswerAudience : std::uint8_t {
    Asker,    // the application that asked, and only it
    Everyone, // a resolver that asks for other processes (the system DNS client): its answers
              // reach applications whose settings we do not know, so only removeOutOfScopeDNS
              // (a property of the resolver, not of an application) applies; each application's
              // own blocks are applied to its connections.
};

// An upstream answer as the answer filter sees it. Views: valid for the call only.
struct AnswerFacts {
    std::string_view name;                    // the name the application asked for
    std::span<const std::string> cname_chain; // the aliases followed to the addresses
    std::span<const IpAddress> addresses;     // the A/AAAA records reached, in answer order
    // ip_scope() of the resolver that answered; nullopt when unknown (removeOutOfScopeDNS then
    // removes nothing).
    std::optional<IpScope> resolver_scope;
    AnswerAudience audience = AnswerAudience::Asker;
};

// One address the filter took out, and why.
struct RemovedAddress {
    IpAddress address;
    std::string reason; // "removeBlockedDNS: blockLAN (global, profile 'curl')"
};

struct AnswerFilterResult {
    // The addresses to leave out of the answer, in answer order. Empty in the common case (and
    // then nothing was allocated).
    std::vector<RemovedAddress> removed;
    // Every address of a non-empty answer was removed: the query is to be answered as blocked
    // (0.0.0.17 / ::17), with the first removal's reason.
    bool nothing_left = false;
};

// Which A/AAAA records of an upstream answer the asking application must not see (facts 6.4,
// "DNS path"): pure, like decide(). An address is removed when
//   1. `filter/removeOutOfScopeDNS` is on, the resolver's scope is known and is_out_of_scope():
//      a resolver on the Internet answering with a LAN or localhost address, or one on the LAN
//      answering with a localhost address (DNS rebinding); or
//   2. `filter/removeBlockedDNS` is on, the answer is for the asker alone (AnswerAudience), and
//      every connection the application could open to it
//      would be blocked, by the same steps of decide() in the same order:
//        a. its scope is blocked (blockInternet, blockLAN, blockLocal);
//        b. the first rule of `filter/endpoints` (the profile's own, then the global ones) that
//           could match a connection to the address and the name blocks, for every protocol and
//           port. A rule matches when its entity does (an IP, CIDR, range or scope containing
//           the address, `*`, or a domain rule matching the name or, with
//           `filter/includeCNAMEs`, its CNAMEs); a blocking rule limited to some protocol or
//           ports is passed over (the connections it matches are blocked anyway, the others are
//           left to the rules after it), and a permitting one, limited or not, keeps the
//           address.
// Nothing else removes an address: blockP2P cannot apply (the answer is the DNS lookup it asks
// for), and the default action applies to connections, never to answers. Reasons name the
// setting, and the rule or scope setting that blocks, with its layer.
[[nodiscard]] AnswerFilterResult filter_answer(const FilterSettings& settings,
                                               const AnswerFacts& answer);

} // namespace pw::firewall
