// pw_minimal_verdict: the floor of the NFQUEUE design, for the system benchmark.
//
// Binds the four queues of the ruleset (17040/17140 IPv4 out/in, 17060/17160 IPv6 out/in) and
// answers every packet at once with NF_ACCEPT + mark 1710 (permanent accept, which the filter
// chain saves into the connmark so that later packets of the connection skip the queue). One
// thread, poll() over the four netlink sockets and a signalfd, one sendto() per verdict: the plain
// obvious program, so that whatever portwarden costs on top of it is the price of its features.
// (It uses poll() rather than the daemon's Boost.Asio loop on purpose: it is the baseline.)
// Exits on SIGTERM or SIGINT; closing the sockets unbinds the queues.

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/core.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>

#include "common/unique_fd.h"

namespace {

constexpr std::array<std::uint16_t, 4> kQueues = {17040, 17140, 17060, 17160};
constexpr std::uint32_t kPermanentAcceptMark = 1710;
constexpr int kCopyRange = 128; // Headers are enough; the verdict does not look at them anyway.
// Room for one config or verdict message (a header and two or three small attributes).
constexpr std::size_t kRequestSize = 512;

std::string describe_errno(int error_number) {
    return std::error_code(error_number, std::system_category()).message();
}

struct MnlSocketDeleter {
    void operator()(mnl_socket* socket) const noexcept { mnl_socket_close(socket); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketDeleter>;

// One bound queue: its netlink socket and the counters printed at exit.
struct Queue {
    std::uint16_t number = 0;
    MnlSocket socket;
    unsigned int port_id = 0;
    std::uint64_t packets = 0;
    std::uint64_t send_errors = 0;
};

bool send_config(Queue& queue, const auto& fill) {
    alignas(nlmsghdr) std::array<char, kRequestSize> buffer{};
    nlmsghdr* header = nfq_nlmsg_put(buffer.data(), NFQNL_MSG_CONFIG, queue.number);
    fill(header);
    return mnl_socket_sendto(queue.socket.get(), header, header->nlmsg_len) >= 0;
}

bool open_queue(Queue& queue) {
    queue.socket.reset(mnl_socket_open(NETLINK_NETFILTER));
    if (!queue.socket || mnl_socket_bind(queue.socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        fmt::print(stderr, "pw_minimal_verdict: netlink socket: {}\n", describe_errno(errno));
        return false;
    }
    queue.port_id = mnl_socket_get_portid(queue.socket.get());
    // A full socket buffer must not turn into an error on every later recv.
    int one = 1;
    mnl_socket_setsockopt(queue.socket.get(), NETLINK_NO_ENOBUFS, &one, sizeof(one));
    const bool bound = send_config(queue,
                                   [](nlmsghdr* header) {
                                       nfq_nlmsg_cfg_put_cmd(header, AF_INET, NFQNL_CFG_CMD_BIND);
                                   }) &&
                       send_config(queue, [](nlmsghdr* header) {
                           nfq_nlmsg_cfg_put_params(header, NFQNL_COPY_PACKET, kCopyRange);
                       });
    if (!bound) {
        fmt::print(stderr, "pw_minimal_verdict: bind queue {}: {}\n", queue.number,
                   describe_errno(errno));
    }
    return bound;
}

// mnl_cb_run callback: one verdict per packet, sent immediately.
int on_packet(const nlmsghdr* header, void* data) {
    auto& queue = *static_cast<Queue*>(data);
    std::array<nlattr*, NFQA_MAX + 1> attributes{};
    if (nfq_nlmsg_parse(header, attributes.data()) < 0 || attributes[NFQA_PACKET_HDR] == nullptr) {
        return MNL_CB_OK;
    }
    nfqnl_msg_packet_hdr packet_header{};
    std::memcpy(&packet_header, mnl_attr_get_payload(attributes[NFQA_PACKET_HDR]),
                sizeof(packet_header));
    ++queue.packets;

    alignas(nlmsghdr) std::array<char, kRequestSize> buffer{};
    nlmsghdr* verdict = nfq_nlmsg_put(buffer.data(), NFQNL_MSG_VERDICT, queue.number);
    nfq_nlmsg_verdict_put(verdict, static_cast<int>(ntohl(packet_header.packet_id)), NF_ACCEPT);
    nfq_nlmsg_verdict_put_mark(verdict, kPermanentAcceptMark);
    if (mnl_socket_sendto(queue.socket.get(), verdict, verdict->nlmsg_len) < 0) {
        ++queue.send_errors;
    }
    return MNL_CB_OK;
}

void drain(Queue& queue, std::vector<char>& buffer) {
    const ssize_t length = mnl_socket_recvfrom(queue.socket.get(), buffer.data(), buffer.size());
    if (length <= 0) {
        return; // ENOBUFS or EINTR: the kernel already dropped or bypassed; carry on.
    }
    mnl_cb_run(buffer.data(), static_cast<std::size_t>(length), 0, queue.port_id, on_packet,
               &queue);
}

} // namespace

int main() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr); // NOLINT(concurrency-mt-unsafe): one thread
    const pw::UniqueFd signal_fd(signalfd(-1, &stop_signals, SFD_CLOEXEC));

    std::array<Queue, kQueues.size()> queues;
    std::vector<pollfd> poll_fds;
    for (std::size_t index = 0; index < kQueues.size(); ++index) {
        queues[index].number = kQueues[index];
        if (!open_queue(queues[index])) {
            return 1;
        }
        poll_fds.push_back(
            {.fd = mnl_socket_get_fd(queues[index].socket.get()), .events = POLLIN, .revents = 0});
    }
    poll_fds.push_back({.fd = signal_fd.get(), .events = POLLIN, .revents = 0});
    fmt::print(stderr, "pw_minimal_verdict: ready queues=17040,17140,17060,17160\n");

    // 64 KiB plus headroom: the largest netlink message the kernel sends for one packet.
    std::vector<char> buffer(0xffff + (MNL_SOCKET_BUFFER_SIZE / 2));
    for (;;) {
        if (::poll(poll_fds.data(), poll_fds.size(), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            fmt::print(stderr, "pw_minimal_verdict: poll: {}\n", describe_errno(errno));
            return 1;
        }
        if ((poll_fds.back().revents & POLLIN) != 0) {
            break;
        }
        for (std::size_t index = 0; index < queues.size(); ++index) {
            if ((poll_fds[index].revents & POLLIN) != 0) {
                drain(queues[index], buffer);
            }
        }
    }
    for (const Queue& queue : queues) {
        fmt::print(stderr, "pw_minimal_verdict: queue={} packets={} send_errors={}\n", queue.number,
                   queue.packets, queue.send_errors);
    }
    return 0;
}
