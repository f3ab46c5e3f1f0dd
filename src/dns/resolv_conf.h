#pragma once

#include <string_view>
#include <vector>

#include "dns/upstream.h"

namespace pw::dns {

// The upstreams to use when `dns/nameservers` is not configured: the `nameserver` lines of
// /etc/resolv.conf as read at start (resolv.conf(5)), as dns:// upstreams in their order.
// Loopback and unspecified addresses are skipped: a local stub (systemd-resolved's 127.0.0.53,
// a dnsmasq) would send its own upstream queries back to us as astray queries, a loop. So are
// link-local addresses with a zone (fe80::1%eth0), which we cannot bind to yet. Comments (# ;)
// and other options are ignored.
[[nodiscard]] std::vector<Upstream> upstreams_from_resolv_conf(std::string_view text);

} // namespace pw::dns
