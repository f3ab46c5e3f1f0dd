#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "firewall/connection_facts.h"
#include "firewall/endpoint_rule.h"

namespace pw::firewall {

// The shipped list of well-known public DNS-over-HTTPS and DNS-over-TLS resolvers. With
// `filter/preventBypassing` on (the default), and only then, decide() blocks connections to these
// addresses and names and decide_query() refuses to resolve the names: an application that talks
// to one of them directly resolves around portwarden's nameserver, so its connections would carry
// no domain and domain rules could not hold. Portwarden's own resolver is not affected when a
// user picks one of these as upstream in `dns/nameservers`: its connections are the daemon's own
// and are accepted before bypass prevention is looked at (decide() step 2).
//
// The list is deliberately short and conservative: only hosts that serve DNS and nothing else,
// so that blocking them cannot break an unrelated site. Names match as zones (the name and every
// name below it: "dns.google" covers "dns64.dns.google"); addresses as single addresses or
// networks that the operator uses for DNS only. A resolver that is missing here is still caught
// when it is reached by DNS over TLS (port 853) or plain DNS (port 53, redirected).
// The list itself is in dns_bypass_list.cc.

// Firefox turns its automatic DNS over HTTPS off when this name does not resolve
// (https://support.mozilla.org/kb/canary-domain-use-application-dnsnet).
inline constexpr std::string_view kFirefoxDohCanary = "use-application-dns.net";

// True for a name in or below a listed resolver name (case-insensitive, trailing dot ignored).
[[nodiscard]] bool is_known_resolver_name(std::string_view name);

// True for the domain of a connection or any name of its CNAME chain.
[[nodiscard]] bool is_known_resolver_name(const DomainFacts& domain);

[[nodiscard]] bool is_known_resolver_address(const IpAddress& address);

// The list as written (lower-case names; addresses and networks as text), for tests and for
// showing the user what is blocked.
[[nodiscard]] std::span<const std::string_view> known_resolver_names();
[[nodiscard]] std::span<const std::string_view> known_resolver_network_texts();

// The list parsed, once, on first use: names as zones, addresses as networks.
[[nodiscard]] const std::vector<DomainPattern>& known_resolver_zones();
[[nodiscard]] const std::vector<Cidr>& known_resolver_networks();

} // namespace pw::firewall
