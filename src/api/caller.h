#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/ip_address.h"

namespace pw::api {

// Both ends of an accepted API connection, as the server's socket sees them. The peer is a
// local process (the API listens on loopback), so its socket is in the host's socket tables.
struct ConnectionEndpoints {
    IpAddress local_address;
    std::uint16_t local_port = 0;
    IpAddress peer_address;
    std::uint16_t peer_port = 0;
};

// The process behind a connection: whom the access policy judges.
struct Caller {
    std::uint32_t uid = 0;
    std::optional<int> pid; // unknown when only the socket's owner uid could be found
    std::string executable; // empty when unknown
};

// Finds the process that owns the client end of an API connection, the way portwarden finds any
// connection's process (the daemon implements it over its socket tables and process registry;
// tests with a fake). Called on the event-loop thread once per accepted connection, so it must
// not block: single netlink/eBPF lookups, no /proc scan. nullopt: nobody could be named, and the
// connection is refused.
class CallerLookup {
public:
    virtual ~CallerLookup();
    [[nodiscard]] virtual std::optional<Caller> find_caller(
        const ConnectionEndpoints& endpoints) = 0;
};

} // namespace pw::api
