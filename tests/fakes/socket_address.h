#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "common/ip_address.h"

namespace pw::testing {

// An address and port as the firewall sees them (IPv4-mapped folded to IPv4 by IpAddress).
struct SocketAddress {
    IpAddress address;
    std::uint16_t port = 0;
};

// What getsockname(), getpeername(), accept() or recvfrom() returned, as a SocketAddress.
inline SocketAddress socket_address_from(const sockaddr_storage& storage) {
    if (storage.ss_family == AF_INET) {
        sockaddr_in v4{};
        std::memcpy(&v4, &storage, sizeof(v4));
        std::array<std::uint8_t, 4> bytes{};
        std::memcpy(bytes.data(), &v4.sin_addr, bytes.size());
        return {.address = IpAddress::from_v4_bytes(bytes), .port = ntohs(v4.sin_port)};
    }
    sockaddr_in6 v6{};
    std::memcpy(&v6, &storage, sizeof(v6));
    std::array<std::uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), &v6.sin6_addr, bytes.size());
    return {.address = IpAddress::from_v6_bytes(bytes), .port = ntohs(v6.sin6_port)};
}

} // namespace pw::testing
