#include "interception/conntrack_destroy_listener.h"

#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "interception/conntrack_netlink.h"

namespace pw::interception {
namespace {

// One read takes a datagram; the kernel sends one event per datagram (~200 bytes), so this is
// generous. A datagram larger than the buffer would be cut and lost.
constexpr std::size_t kReceiveBufferSize = std::size_t{16} * 1024;
// Reads per drain(): bounds the time one drain() keeps the event loop.
constexpr std::size_t kMaxReadsPerDrain = 256;

bool is_destroy_event(const nlmsghdr* message) {
    return NFNL_SUBSYS_ID(message->nlmsg_type) == NFNL_SUBSYS_CTNETLINK &&
           NFNL_MSG_TYPE(message->nlmsg_type) == IPCTNL_MSG_CT_DELETE;
}

} // namespace

Result<ConntrackDestroyListener> ConntrackDestroyListener::open(int receive_buffer_bytes) {
    MnlSocket socket(mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!socket) {
        return fail_errno("open conntrack event socket", errno);
    }
    if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        return fail_errno("bind conntrack event socket", errno);
    }
    int group = NFNLGRP_CONNTRACK_DESTROY; // not const: libmnl takes void*
    if (mnl_socket_setsockopt(socket.get(), NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0) {
        return fail_errno("subscribe to conntrack destroy events", errno);
    }
    const int fd = mnl_socket_get_fd(socket.get());
    // SO_RCVBUFFORCE passes net.core.rmem_max (we run as root); SO_RCVBUF is the fallback,
    // capped by it. A small buffer only means more counted overflows.
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer_bytes,
                     sizeof(receive_buffer_bytes)) != 0 &&
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes,
                     sizeof(receive_buffer_bytes)) != 0) {
        return fail_errno("set the conntrack event socket's buffer", errno);
    }
    return ConntrackDestroyListener(std::move(socket));
}

ConntrackDestroyListener::ConntrackDestroyListener(MnlSocket socket)
    : socket_(std::move(socket)), receive_buffer_(kReceiveBufferSize) {}

int ConntrackDestroyListener::fd() const {
    return mnl_socket_get_fd(socket_.get());
}

Result<std::size_t> ConntrackDestroyListener::drain(const Handler& handler) {
    std::size_t reported = 0;
    for (std::size_t reads = 0; reads < kMaxReadsPerDrain; ++reads) {
        const ssize_t length =
            mnl_socket_recvfrom(socket_.get(), receive_buffer_.data(), receive_buffer_.size());
        if (length < 0) {
            const int saved = errno;
            if (saved == EAGAIN || saved == EWOULDBLOCK) {
                break;
            }
            if (saved == EINTR) {
                continue;
            }
            if (saved == ENOBUFS) {
                // The kernel dropped events for us; the socket itself is fine.
                ++counters_.overflows;
                continue;
            }
            return fail_errno("receive conntrack events", saved);
        }
        int remaining = static_cast<int>(length);
        for (const auto* message = reinterpret_cast<const nlmsghdr*>( // NOLINT: netlink framing
                 receive_buffer_.data());
             mnl_nlmsg_ok(message, remaining); message = mnl_nlmsg_next(message, &remaining)) {
            if (!is_destroy_event(message)) {
                ++counters_.ignored;
                continue;
            }
            const auto entry = parse_conntrack_message(message);
            if (!entry) {
                ++counters_.ignored;
                continue;
            }
            ++counters_.events;
            ++reported;
            handler(*entry);
        }
    }
    return reported;
}

} // namespace pw::interception
