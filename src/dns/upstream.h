#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/ip_address.h"
#include "common/result.h"

namespace pw::dns {

// How we talk to an upstream nameserver.
enum class UpstreamProtocol : std::uint8_t {
    Udp, // dns://  plain DNS over UDP, asked again over TCP when the answer is truncated
    Tcp, // tcp://  plain DNS over TCP (RFC 7766)
    Tls, // dot://  DNS over TLS (RFC 7858), certificate checked against tls_name
};

// One entry of `dns/nameservers`.
struct Upstream {
    UpstreamProtocol protocol = UpstreamProtocol::Udp;
    IpAddress address;
    std::uint16_t port = 53; // 53 for dns:// and tcp://, 853 for dot:// unless given
    // dot:// only: the name the server's certificate must carry (the URL's host).
    std::string tls_name;
    // dot:// only: `verify=FILE`, a PEM file of CA certificates to trust instead of the system's
    // (for a private resolver with its own CA).
    std::optional<std::filesystem::path> ca_file;
    std::string url; // as written, for logs and events
    friend bool operator==(const Upstream&, const Upstream&) = default;
};

// Parses an upstream URL:
//   dns://IP[:PORT]            dns://10.0.0.1   dns://[2001:db8::1]:5353
//   tcp://IP[:PORT]
//   dot://NAME?ip=IP[&port=PORT][&verify=CAFILE]     dot://dns.example?ip=10.0.0.1
//   dot://NAME:PORT?ip=IP ...   (the port may also follow the name)
// dns:// and tcp:// take an IP literal, not a name (resolving our own resolver would need a
// resolver). dot:// needs ip= for the same reason, and NAME is what the certificate is checked
// against. Unknown schemes and parameters, empty values and ports outside 1-65535 are errors
// that quote the offending part: "dns/nameservers: unknown parameter 'vrfy' in 'dot://...'
// (expected ip, port, verify)". The CA file is not opened here (that is the resolver's job, and
// a missing file is reported when the resolver starts).
[[nodiscard]] Result<Upstream> parse_upstream_url(std::string_view url);

} // namespace pw::dns
