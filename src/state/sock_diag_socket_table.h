#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "common/result.h"
#include "common/unique_fd.h"
#include "state/socket_table.h"

namespace pw::state {

// Socket lookups through netlink sock_diag (NETLINK_SOCK_DIAG, linux/inet_diag.h): one exact
// request per lookup (the kernel's own 5-tuple hash lookup, not a dump), so its cost does not
// grow with the number of sockets on the host. Needs no privileges. One netlink socket, opened
// in the caller's network namespace and reused. Runs on one thread (the event loop); a lookup
// blocks for microseconds normally and never longer than the receive timeout.
class SockDiagSocketTable final : public SocketTable {
public:
    struct Counters {
        std::uint64_t requests = 0;      // netlink round trips
        std::uint64_t timeouts = 0;      // no answer within the receive timeout
        std::uint64_t stale_replies = 0; // answers to earlier, timed-out requests, dropped
    };

    static constexpr std::chrono::milliseconds kDefaultTimeout{100};

    [[nodiscard]] static Result<std::unique_ptr<SockDiagSocketTable>> open(
        std::chrono::milliseconds timeout = kDefaultTimeout);

    // state::SocketTable
    // 1. The exact lookup. For TCP the kernel falls back to the listener by itself; that
    //    answer counts for inbound flows only. For UDP it already prefers a connected socket
    //    and otherwise returns the one bound to the local port (address or wildcard).
    // 2. IPv4 that missed: again as AF_INET6 with v4-mapped addresses (dual-stack sockets).
    // 3. Inbound TCP whose connection has no owner yet (a request socket, the accept queue):
    //    the listener, looked up with an all-zero remote end.
    [[nodiscard]] Result<std::optional<SocketRecord>> find(const SocketQuery& query) override;

    [[nodiscard]] const Counters& counters() const { return counters_; }

private:
    // What one sock_diag answer says about a socket, from the socket's side ("local" = its
    // bound end), whatever order the request had to use.
    struct DiagSocket {
        std::uint8_t state = 0; // TCP_* numbering; UDP uses TCP_ESTABLISHED / TCP_CLOSE
        std::uint16_t remote_port = 0;
        std::uint32_t uid = 0;
        std::uint64_t inode = 0;
        std::uint64_t cookie = 0;
    };
    enum class AddressFamily : std::uint8_t { V4, V6, V6Mapped };
    // One lookup's outcome: the socket, nullopt for "no such socket", or why the kernel failed.
    using Lookup = Result<std::optional<DiagSocket>>;

    explicit SockDiagSocketTable(UniqueFd socket) : socket_(std::move(socket)) {}

    [[nodiscard]] static SocketRecord to_record(const DiagSocket& socket, SocketMatch match);
    [[nodiscard]] Lookup request(const SocketQuery& query, AddressFamily family);
    [[nodiscard]] Lookup receive_reply();
    // The answer to the current request if this datagram holds it; nullopt to read on.
    [[nodiscard]] std::optional<Lookup> scan_datagram(std::span<const std::uint8_t> datagram);
    [[nodiscard]] Result<std::optional<SocketRecord>> find_tcp(const SocketQuery& query);
    [[nodiscard]] Result<std::optional<SocketRecord>> find_udp(const SocketQuery& query);
    [[nodiscard]] Lookup exact_with_dual_stack(const SocketQuery& query);

    UniqueFd socket_;
    std::uint32_t sequence_ = 0;
    Counters counters_;
};

} // namespace pw::state
