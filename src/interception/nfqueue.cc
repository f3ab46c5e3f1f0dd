#include "interception/nfqueue.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

namespace pw::interception {
namespace {

// Room for one datagram from the kernel: one packet's message, i.e. the copy range plus the
// netlink header and nfqueue attributes (packet header, mark, interfaces, timestamp, hardware
// address: a few hundred bytes). Generous, because a truncated message cannot be answered.
constexpr std::size_t kReceiveSlotOverhead = 3840;
// Datagrams fetched by one recvmmsg(). Fewer than this means the socket is empty: no extra
// syscall to learn that it would block.
constexpr std::size_t kReceiveSlots = 32;
// Upper bound of one verdict message (nlmsghdr + nfgenmsg + verdict header + mark, aligned).
constexpr std::size_t kVerdictMessageSize = 64;
// Config messages and their acknowledgements are small; MNL_SOCKET_BUFFER_SIZE is not constexpr.
constexpr std::size_t kConfigBufferSize = 8192;
// Verdicts sent in one sendto(); also how many packets one drain() reads before it yields to
// the other queues and timers of the event loop.
constexpr std::size_t kMaxBatch = 128;
// The kernel buffers this much for us before it drops (fail-closed); a burst of new connections
// must fit, since we answer each batch before reading the next.
constexpr int kSocketReceiveBuffer = 4 * 1024 * 1024;

// Carries what the libmnl callback needs; libmnl passes it through as void*.
struct DrainContext {
    const NfQueue::Handler* handler = nullptr;
    NfQueue* queue = nullptr;
    std::size_t packets = 0;
};

int on_packet_message(const nlmsghdr* message, void* data) {
    auto& context = *static_cast<DrainContext*>(data);
    nlattr* attributes[NFQA_MAX + 1] = {}; // NOLINT(modernize-avoid-c-arrays): libnfq API
    if (nfq_nlmsg_parse(message, attributes) < 0 || attributes[NFQA_PACKET_HDR] == nullptr) {
        // Not a packet (or a malformed message from the kernel): nothing to answer.
        return MNL_CB_OK;
    }
    nfqnl_msg_packet_hdr header{};
    std::memcpy(&header, mnl_attr_get_payload(attributes[NFQA_PACKET_HDR]), sizeof(header));
    QueuedPacket packet;
    packet.packet_id = ntohl(header.packet_id);
    if (attributes[NFQA_PAYLOAD] != nullptr) {
        packet.bytes = {
            static_cast<const std::uint8_t*>(mnl_attr_get_payload(attributes[NFQA_PAYLOAD])),
            mnl_attr_get_payload_len(attributes[NFQA_PAYLOAD])};
    }
    packet.original_length = attributes[NFQA_CAP_LEN] != nullptr
                                 ? ntohl(mnl_attr_get_u32(attributes[NFQA_CAP_LEN]))
                                 : static_cast<std::uint32_t>(packet.bytes.size());
    ++context.packets;
    if (const auto mark = (*context.handler)(packet)) {
        context.queue->queue_verdict(packet.packet_id, *mark);
    }
    return MNL_CB_OK;
}

} // namespace

void MnlSocketDeleter::operator()(mnl_socket* socket) const noexcept {
    mnl_socket_close(socket);
}

Result<std::unique_ptr<NfQueue>> NfQueue::open(const Options& options) {
    MnlSocket socket(mnl_socket_open(NETLINK_NETFILTER));
    if (!socket) {
        return fail_errno("open netfilter netlink socket", errno);
    }
    if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        return fail_errno("bind netfilter netlink socket", errno);
    }
    // The constructor is private; make_unique cannot reach it.
    std::unique_ptr<NfQueue> queue(new NfQueue(std::move(socket), options));
    if (auto configured = queue->configure(); !configured) {
        return std::unexpected(configured.error());
    }
    return queue;
}

NfQueue::NfQueue(MnlSocket socket, const Options& options)
    : socket_(std::move(socket)),
      options_(options),
      port_id_(mnl_socket_get_portid(socket_.get())),
      receive_slot_size_(options.copy_range + kReceiveSlotOverhead),
      receive_buffer_(kReceiveSlots * receive_slot_size_),
      verdict_batch_(kMaxBatch * kVerdictMessageSize) {}

NfQueue::~NfQueue() {
    // Unbinding lets the kernel drop (not accept) what is still queued for us: fail-closed.
    std::array<char, kConfigBufferSize> buffer{};
    nlmsghdr* message = nfq_nlmsg_put(buffer.data(), NFQNL_MSG_CONFIG, options_.queue_number);
    nfq_nlmsg_cfg_put_cmd(message, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
    mnl_socket_sendto(socket_.get(), message, message->nlmsg_len);
}

int NfQueue::fd() const {
    return mnl_socket_get_fd(socket_.get());
}

Status NfQueue::send_config_message(std::span<char> buffer) {
    auto* message = reinterpret_cast<nlmsghdr*>(buffer.data()); // NOLINT: netlink framing
    message->nlmsg_flags |= NLM_F_ACK;
    message->nlmsg_seq = ++config_sequence_;
    if (mnl_socket_sendto(socket_.get(), message, message->nlmsg_len) < 0) {
        return fail_errno("send nfqueue config", errno);
    }
    std::array<char, kConfigBufferSize> reply{};
    const auto length = mnl_socket_recvfrom(socket_.get(), reply.data(), reply.size());
    if (length < 0) {
        return fail_errno("receive nfqueue config reply", errno);
    }
    if (mnl_cb_run(reply.data(), static_cast<std::size_t>(length), config_sequence_, port_id_,
                   nullptr, nullptr) < 0) {
        return fail_errno("kernel refused the request", errno);
    }
    return {};
}

Status NfQueue::configure() {
    const std::string queue_name = "nfqueue " + std::to_string(options_.queue_number);
    std::array<char, kConfigBufferSize> buffer{};

    nlmsghdr* bind = nfq_nlmsg_put(buffer.data(), NFQNL_MSG_CONFIG, options_.queue_number);
    nfq_nlmsg_cfg_put_cmd(bind, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
    if (auto sent = send_config_message(buffer); !sent) {
        const int code = sent.error().reason.value();
        std::string hint;
        if (code == EBUSY) {
            hint = " (another program, perhaps a second portwarden, holds this queue)";
        } else if (code == EPERM) {
            hint = " (needs root or CAP_NET_ADMIN)";
        } else if (code == EOPNOTSUPP || code == ENOENT) {
            hint = " (is the nfnetlink_queue kernel module available?)";
        }
        return fail("bind " + queue_name + hint, sent.error().reason);
    }

    buffer.fill(0);
    nlmsghdr* params = nfq_nlmsg_put(buffer.data(), NFQNL_MSG_CONFIG, options_.queue_number);
    nfq_nlmsg_cfg_put_params(params, NFQNL_COPY_PACKET, static_cast<int>(options_.copy_range));
    nfq_nlmsg_cfg_put_qmaxlen(params, options_.max_queue_length);
    // GSO: take large segments as they are instead of making the kernel segment them for us;
    // we only read headers and never change the payload.
    mnl_attr_put_u32(params, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
    mnl_attr_put_u32(params, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
    if (auto sent = send_config_message(buffer); !sent) {
        return fail("configure " + queue_name, sent.error().reason);
    }

    const int size = kSocketReceiveBuffer;
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN, which we have; fall back to the capped variant.
    if (setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0) {
        setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    const int flags = fcntl(fd(), F_GETFL);
    if (flags < 0 || fcntl(fd(), F_SETFL, flags | O_NONBLOCK) < 0) {
        return fail_errno("make " + queue_name + " non-blocking", errno);
    }
    return {};
}

Result<std::size_t> NfQueue::drain(const Handler& handler) {
    DrainContext context{.handler = &handler, .queue = this};
    std::array<iovec, kReceiveSlots> vectors{};
    std::array<mmsghdr, kReceiveSlots> messages{};
    for (std::size_t slot = 0; slot < kReceiveSlots; ++slot) {
        vectors[slot] = {.iov_base = receive_buffer_.data() + slot * receive_slot_size_,
                         .iov_len = receive_slot_size_};
        messages[slot].msg_hdr.msg_iov = &vectors[slot];
        messages[slot].msg_hdr.msg_iovlen = 1;
    }
    while (context.packets < kMaxBatch) {
        const int received =
            ::recvmmsg(fd(), messages.data(), kReceiveSlots, MSG_DONTWAIT, nullptr);
        if (received < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            if (errno == ENOBUFS) {
                // The kernel could not hand us packets and dropped them; keep going.
                ++counters_.receive_errors;
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            const int saved = errno;
            if (!flush_verdicts()) {
                ++counters_.send_errors;
            }
            return fail_errno("receive from nfqueue " + std::to_string(options_.queue_number),
                              saved);
        }
        for (int index = 0; index < received; ++index) {
            const mmsghdr& message = messages[static_cast<std::size_t>(index)];
            if ((message.msg_hdr.msg_flags & MSG_TRUNC) != 0) {
                // Cannot happen with our copy range; if it does, the packet waits in the kernel
                // queue without a verdict, so make it loud.
                ++counters_.truncated_messages;
                continue;
            }
            mnl_cb_run(vectors[static_cast<std::size_t>(index)].iov_base, message.msg_len, 0,
                       port_id_, on_packet_message, &context);
        }
        if (static_cast<std::size_t>(received) < kReceiveSlots) {
            break; // the socket is empty
        }
    }
    counters_.packets += context.packets;
    if (auto flushed = flush_verdicts(); !flushed) {
        return std::unexpected(flushed.error());
    }
    return context.packets;
}

void NfQueue::queue_verdict(std::uint32_t packet_id, std::uint32_t mark) {
    if (verdict_batch_used_ + kVerdictMessageSize > verdict_batch_.size()) {
        // A full batch (only possible with deferred verdicts) goes out now.
        if (!flush_verdicts()) {
            ++counters_.send_errors;
        }
    }
    char* slot = verdict_batch_.data() + verdict_batch_used_;
    nlmsghdr* message = nfq_nlmsg_put(slot, NFQNL_MSG_VERDICT, options_.queue_number);
    nfq_nlmsg_verdict_put(message, static_cast<int>(packet_id), NF_ACCEPT);
    nfq_nlmsg_verdict_put_mark(message, mark);
    verdict_batch_used_ += message->nlmsg_len;
    ++counters_.verdicts;
}

Status NfQueue::flush_verdicts() {
    if (verdict_batch_used_ == 0) {
        return {};
    }
    // Several verdict messages in one datagram: the kernel processes each of them in turn.
    const auto count = verdict_batch_used_;
    verdict_batch_used_ = 0;
    while (true) {
        if (mnl_socket_sendto(socket_.get(), verdict_batch_.data(), count) >= 0) {
            return {};
        }
        if (errno != EINTR) {
            return fail_errno("send verdicts to nfqueue " + std::to_string(options_.queue_number),
                              errno);
        }
    }
}

} // namespace pw::interception
