#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace pw::firewall {

// A well-known service and its port, as rules may name it ("+ * tcp/https").
struct ServiceName {
    std::string_view name; // lower case
    std::uint16_t port = 0;
};

// The port of a well-known service name, compared case-insensitively ("HTTPS" is 443); nullopt
// for a name that is not in the table. The table is built in (service_names.cc), not read from
// /etc/services: a rule must mean the same on every host, and decisions read no files. A name
// stands for one port whatever the protocol ("udp/https" is QUIC on 443).
[[nodiscard]] std::optional<std::uint16_t> service_port(std::string_view name);

// Every name, in the table's order: for error messages, documentation and tests.
[[nodiscard]] std::span<const ServiceName> service_names();

} // namespace pw::firewall
