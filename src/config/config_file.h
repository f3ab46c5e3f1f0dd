#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "dns/upstream.h"
#include "firewall/settings.h"

namespace pw::config {

// `dns/...` settings that only the resolver reads. Where the nameserver listens
// (`dns/listenAddress`) is kept in FilterSettings::dns.nameserver_endpoints instead: decide()
// needs it too, and with a single copy the firewall and the nameserver cannot disagree.
struct DnsSettings {
    // `dns/nameservers`, in order of preference. Empty when the key is not given (the daemon
    // then picks its own upstreams); an empty list in the file is an error, so empty always
    // means "not set".
    std::vector<dns::Upstream> nameservers;
};

// The endpoints of `dns/listenAddress: localhost:PORT`: 127.0.0.17:PORT and [::1]:PORT.
// 127.0.0.17 rather than 127.0.0.1 leaves 127.0.0.1:53 to a local DNS server of the user's.
[[nodiscard]] std::vector<firewall::IpEndpoint> localhost_listen_endpoints(std::uint16_t port);

// Parses a `dns/listenAddress` value: "localhost:PORT" (both loopback endpoints above),
// "IPv4:PORT", "[IPv6]:PORT", or "off" (no endpoints: no nameserver, DNS is ordinary traffic). The
// port is 1-65535; the unspecified address (0.0.0.0, ::) is refused, because decide() must know the
// exact address that queries to our nameserver go to. Errors quote the value: "dns/listenAddress
// '::1:53': an IPv6 address goes in brackets, as in
// [::1]:53".
[[nodiscard]] Result<std::vector<firewall::IpEndpoint>> parse_listen_address(std::string_view text);

// FilterSettings as the daemon starts with them: the defaults of FilterSettings, and the
// nameserver on the default `dns/listenAddress` (localhost:53).
[[nodiscard]] firewall::FilterSettings default_filter_settings();

// The daemon's configuration as loaded from its JSON config file. Grows with later issues
// (core/...); every key is validated, unknown keys are errors (a typo must not silently leave a
// default in force). A default-constructed Config is what an empty file ("{}") gives.
struct Config {
    firewall::FilterSettings filter = default_filter_settings();
    DnsSettings dns;
};

// Parses the text of a config file. Keys may be nested objects or slash paths, equivalently:
//   {"filter": {"defaultAction": "block", "endpoints": ["+ 10.0.0.1 tcp/22"]}}
//   {"filter/defaultAction": "block", "filter/endpoints": ["+ 10.0.0.1 tcp/22"]}
// Known keys: filter/defaultAction (permit|block), filter/endpoints (list of rule lines),
// filter/permanentVerdicts (bool, default true), filter/outboundBlockAction (reject|drop),
// filter/preventBypassing (bool, default true), dns/nameservers (list of upstream URLs, see
// dns::parse_upstream_url), dns/listenAddress (see parse_listen_address; default localhost:53).
// An error names the source, the line and the reason:
//   "config.json:7: filter/endpoints[2] '+ 10.0.0.300': invalid IP address '10.0.0.300'".
// Nothing is half-applied: either the whole Config or an error.
[[nodiscard]] Result<Config> parse_config(std::string_view text, std::string_view source_name);

// Reads and parses a file; a missing or unreadable file is an error naming the path.
[[nodiscard]] Result<Config> load_config_file(const std::filesystem::path& path);

} // namespace pw::config
