#include "state/sock_diag_socket_table.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <span>
#include <string>

namespace pw::state {
namespace {

// One answer is an inet_diag_msg plus the few attributes the kernel always adds; a lookup never
// returns more than one socket. Generous, so that a truncated reply cannot happen.
constexpr std::size_t kReceiveBufferSize = 8192;
// "Any cookie": the kernel checks the cookie of the socket it found only when we pass one.
constexpr std::uint32_t kNoCookie = INET_DIAG_NOCOOKIE;

constexpr std::size_t netlink_align(std::size_t length) {
    return (length + NLMSG_ALIGNTO - 1) & ~std::size_t{NLMSG_ALIGNTO - 1};
}

// The 16 bytes of an inet_diag_sockid address field, network byte order. AF_INET uses the
// first 4.
std::array<std::uint8_t, 16> encode(const IpAddress& address, bool map_v4_to_v6) {
    std::array<std::uint8_t, 16> bytes{};
    const auto source = address.bytes();
    if (address.is_v4() && map_v4_to_v6) {
        bytes[10] = 0xff;
        bytes[11] = 0xff;
        std::memcpy(bytes.data() + 12, source.data(), 4);
    } else {
        std::memcpy(bytes.data(), source.data(), source.size());
    }
    return bytes;
}

constexpr std::array<std::uint8_t, 16> kZeroV6{};

// An NLMSG_ERROR answer. ENOENT is the normal "no such socket" and comes back as success.
Status check_error(std::span<const std::uint8_t> payload) {
    nlmsgerr error{};
    if (payload.size() < sizeof(error)) {
        return fail("malformed sock_diag error reply");
    }
    std::memcpy(&error, payload.data(), sizeof(error));
    if (error.error == 0 || error.error == -ENOENT) {
        return {};
    }
    return fail_errno("sock_diag lookup refused", -error.error);
}

Result<inet_diag_msg> read_diag_message(std::span<const std::uint8_t> payload) {
    inet_diag_msg message{};
    if (payload.size() < sizeof(message)) {
        return fail("short sock_diag reply");
    }
    std::memcpy(&message, payload.data(), sizeof(message));
    return message;
}

struct Request {
    nlmsghdr header;
    inet_diag_req_v2 body;
};

} // namespace

Result<std::unique_ptr<SockDiagSocketTable>> SockDiagSocketTable::open(
    std::chrono::milliseconds timeout) {
    UniqueFd socket(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!socket.valid()) {
        return fail_errno("open sock_diag netlink socket", errno);
    }
    // Blocking with a timeout: the kernel answers synchronously inside sendmsg(), so the reply
    // is normally waiting before recv() is called; the timeout only guards against the
    // unexpected (a kernel without inet_diag that never answers).
    const auto microseconds = std::chrono::duration_cast<std::chrono::microseconds>(timeout);
    const timeval receive_timeout{
        .tv_sec = static_cast<time_t>(microseconds.count() / 1'000'000),
        .tv_usec = static_cast<suseconds_t>(microseconds.count() % 1'000'000)};
    if (::setsockopt(socket.get(), SOL_SOCKET, SO_RCVTIMEO, &receive_timeout,
                     sizeof(receive_timeout)) != 0) {
        return fail_errno("set sock_diag receive timeout", errno);
    }
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK; // nl_pid 0: the kernel assigns our port id
    if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
        return fail_errno("bind sock_diag netlink socket", errno);
    }
    // The constructor is private; make_unique cannot reach it.
    return std::unique_ptr<SockDiagSocketTable>(new SockDiagSocketTable(std::move(socket)));
}

Result<std::optional<SocketRecord>> SockDiagSocketTable::find(const SocketQuery& query) {
    if (query.local_address.family() != query.remote_address.family()) {
        return fail("sock_diag lookup: local and remote address families differ");
    }
    if (query.protocol == packet::protocol::kTcp) {
        return find_tcp(query);
    }
    if (query.protocol == packet::protocol::kUdp) {
        return find_udp(query);
    }
    return fail("sock_diag lookup: no socket table for protocol " + std::to_string(query.protocol));
}

Result<std::optional<SocketRecord>> SockDiagSocketTable::find_tcp(const SocketQuery& query) {
    const bool inbound = query.direction == packet::Direction::Inbound;
    auto exact = exact_with_dual_stack(query);
    if (!exact) {
        return std::unexpected(exact.error());
    }
    // Inode 0: a socket no process owns (a request socket, one still in the accept queue, an
    // orphan in FIN_WAIT or TIME_WAIT). Not an answer; for inbound flows the listener is.
    if (const std::optional<DiagSocket> found = *exact; found && found->inode != 0) {
        if (found->state != TCP_LISTEN) {
            return to_record(*found, SocketMatch::Exact);
        }
        // The kernel fell back to a listener on our local port: it owns inbound flows only.
        return inbound ? std::optional(to_record(*found, SocketMatch::Listener)) : std::nullopt;
    }
    if (!inbound) {
        return std::nullopt;
    }
    // No established socket can have remote port 0, so the kernel's lookup ends at the listener.
    SocketQuery listener_query = query;
    listener_query.remote_address =
        query.remote_address.is_v4() ? IpAddress{} : IpAddress::from_v6_bytes(kZeroV6);
    listener_query.remote_port = 0;
    auto listener = request(listener_query,
                            query.local_address.is_v4() ? AddressFamily::V4 : AddressFamily::V6);
    if (!listener) {
        return std::unexpected(listener.error());
    }
    const std::optional<DiagSocket> found = *listener;
    if (!found || found->state != TCP_LISTEN || found->inode == 0) {
        return std::nullopt;
    }
    return to_record(*found, SocketMatch::Listener);
}

Result<std::optional<SocketRecord>> SockDiagSocketTable::find_udp(const SocketQuery& query) {
    auto exact = exact_with_dual_stack(query);
    if (!exact) {
        return std::unexpected(exact.error());
    }
    const std::optional<DiagSocket> found = *exact;
    if (!found || found->inode == 0) {
        return std::nullopt;
    }
    // The kernel's UDP lookup (__udp4_lib_lookup / __udp6_lib_lookup) scores a socket connected
    // to this remote end above one that is only bound; which one it returned shows in the
    // remote port of the answer.
    return to_record(*found,
                     found->remote_port == 0 ? SocketMatch::UnconnectedUdp : SocketMatch::Exact);
}

SockDiagSocketTable::Lookup SockDiagSocketTable::exact_with_dual_stack(const SocketQuery& query) {
    if (!query.local_address.is_v4()) {
        return request(query, AddressFamily::V6);
    }
    auto found = request(query, AddressFamily::V4);
    if (!found || *found) {
        return found;
    }
    // On the kernels we tested (6.x) the AF_INET lookup already finds dual-stack IPv6 sockets;
    // the v4-mapped AF_INET6 request is the documented way and costs one round trip on a miss.
    return request(query, AddressFamily::V6Mapped);
}

SockDiagSocketTable::Lookup SockDiagSocketTable::request(const SocketQuery& query,
                                                         AddressFamily family) {
    const bool mapped = family == AddressFamily::V6Mapped;
    Request message{};
    message.header.nlmsg_len = sizeof(Request);
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST; // no NLM_F_DUMP: one socket by its id
    message.header.nlmsg_seq = ++sequence_;
    message.body.sdiag_family = family == AddressFamily::V4 ? AF_INET : AF_INET6;
    message.body.sdiag_protocol = query.protocol;
    message.body.idiag_states = ~0U;
    message.body.id.idiag_cookie[0] = kNoCookie;
    message.body.id.idiag_cookie[1] = kNoCookie;

    const auto local = encode(query.local_address, mapped);
    const auto remote = encode(query.remote_address, mapped);
    // The id's direction differs per protocol. TCP (inet_diag_find_one_icsk) reads src as the
    // socket's own end. UDP (udp_dump_one) passes src to __udp4_lib_lookup as the packet's
    // source, i.e. the remote end ("src and dst are swapped for historical reasons"). Getting
    // it wrong on loopback silently returns the peer's socket.
    const bool remote_first = query.protocol == packet::protocol::kUdp;
    const auto& source = remote_first ? remote : local;
    const auto& destination = remote_first ? local : remote;
    std::memcpy(&message.body.id.idiag_src, source.data(), source.size());
    std::memcpy(&message.body.id.idiag_dst, destination.data(), destination.size());
    message.body.id.idiag_sport = htons(remote_first ? query.remote_port : query.local_port);
    message.body.id.idiag_dport = htons(remote_first ? query.local_port : query.remote_port);

    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ++counters_.requests;
    const ssize_t sent = ::sendto(socket_.get(), &message, sizeof(message), 0,
                                  reinterpret_cast<const sockaddr*>(&kernel), sizeof(kernel));
    if (sent < 0) {
        return fail_errno("send sock_diag request", errno);
    }
    return receive_reply();
}

SockDiagSocketTable::Lookup SockDiagSocketTable::receive_reply() {
    std::array<std::uint8_t, kReceiveBufferSize> buffer{};
    for (;;) {
        sockaddr_nl sender{};
        socklen_t sender_length = sizeof(sender);
        const ssize_t received = ::recvfrom(socket_.get(), buffer.data(), buffer.size(), MSG_TRUNC,
                                            reinterpret_cast<sockaddr*>(&sender), &sender_length);
        if (received < 0) {
            const int saved = errno;
            if (saved == EINTR) {
                continue;
            }
            if (saved == EAGAIN || saved == EWOULDBLOCK) {
                ++counters_.timeouts;
                return fail_errno("sock_diag lookup timed out", saved);
            }
            return fail_errno("receive sock_diag reply", saved);
        }
        if (sender.nl_pid != 0) {
            continue; // not from the kernel
        }
        if (static_cast<std::size_t>(received) > buffer.size()) {
            return fail("sock_diag reply truncated (" + std::to_string(received) + " bytes)");
        }
        if (auto answer = scan_datagram({buffer.data(), static_cast<std::size_t>(received)})) {
            return *std::move(answer);
        }
    }
}

std::optional<SockDiagSocketTable::Lookup> SockDiagSocketTable::scan_datagram(
    std::span<const std::uint8_t> datagram) {
    std::size_t offset = 0;
    while (offset + sizeof(nlmsghdr) <= datagram.size()) {
        nlmsghdr header{};
        std::memcpy(&header, datagram.data() + offset, sizeof(header));
        if (header.nlmsg_len < NLMSG_HDRLEN || header.nlmsg_len > datagram.size() - offset) {
            return fail("malformed sock_diag reply");
        }
        const auto payload =
            datagram.subspan(offset + NLMSG_HDRLEN, header.nlmsg_len - NLMSG_HDRLEN);
        offset += netlink_align(header.nlmsg_len);
        if (header.nlmsg_seq != sequence_) {
            ++counters_.stale_replies; // the answer to a request that timed out earlier
            continue;
        }
        if (header.nlmsg_type == NLMSG_ERROR) {
            if (auto status = check_error(payload); !status) {
                return Lookup(std::unexpected(status.error()));
            }
            return Lookup(std::nullopt);
        }
        if (header.nlmsg_type == NLMSG_DONE) {
            return Lookup(std::nullopt);
        }
        if (header.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            auto message = read_diag_message(payload);
            if (!message) {
                return Lookup(std::unexpected(message.error()));
            }
            const std::uint64_t cookie =
                message->id.idiag_cookie[0] | (std::uint64_t{message->id.idiag_cookie[1]} << 32U);
            return Lookup(DiagSocket{.state = message->idiag_state,
                                     .remote_port = ntohs(message->id.idiag_dport),
                                     .uid = message->idiag_uid,
                                     .inode = message->idiag_inode,
                                     .cookie = cookie});
        }
    }
    return std::nullopt;
}

SocketRecord SockDiagSocketTable::to_record(const DiagSocket& socket, SocketMatch match) {
    return SocketRecord{
        .inode = socket.inode, .uid = socket.uid, .cookie = socket.cookie, .match = match};
}

} // namespace pw::state
