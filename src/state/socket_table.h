#pragma once

#include <cstdint>
#include <optional>

#include "common/ip_address.h"
#include "common/result.h"
#include "packet/packet_info.h"

namespace pw::state {

// One flow as the firewall sees it, from this host's point of view: "local" is our end whatever
// the direction. IPv4-mapped IPv6 addresses are already folded to IPv4 by IpAddress.
struct SocketQuery {
    std::uint8_t protocol = packet::protocol::kTcp; // kTcp or kUdp
    IpAddress local_address;
    std::uint16_t local_port = 0;
    IpAddress remote_address;
    std::uint16_t remote_port = 0;
    packet::Direction direction = packet::Direction::Outbound; // known from the queue
};

// How the socket that owns a flow was found.
enum class SocketMatch : std::uint8_t {
    Exact,          // a socket connected to exactly this local and remote end
    Listener,       // inbound TCP whose connection socket is not (yet) owned: the listener
    UnconnectedUdp, // a UDP socket bound to the local port (specific or wildcard), no peer
};

// The socket that owns a flow: enough to find its process (inode → PID) and to recognise it
// again (cookie).
struct SocketRecord {
    std::uint64_t inode = 0;
    std::uint32_t uid = 0;
    std::uint64_t cookie = 0; // the kernel's socket cookie; 0 where the source cannot tell it
    SocketMatch match = SocketMatch::Exact;

    friend bool operator==(const SocketRecord&, const SocketRecord&) = default;
};

// Finds the socket that owns a flow. SockDiagSocketTable in the daemon (netlink sock_diag),
// ProcNetSocketTable as fallback and cross-check (/proc/net). Implementations are not
// thread-safe: each is owned by one thread, the event loop in the daemon.
class SocketTable {
public:
    virtual ~SocketTable() = default;

    // nullopt: no socket owns the flow (yet; the caller may retry, see RetryPolicy). An error:
    // the OS refused to answer (permissions, a netlink failure, an unreadable file).
    [[nodiscard]] virtual Result<std::optional<SocketRecord>> find(const SocketQuery& query) = 0;
};

} // namespace pw::state
