#include "interception/conntrack.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "common/log.h"

namespace pw::interception {
namespace {

struct NfctHandleDeleter {
    void operator()(nfct_handle* handle) const noexcept { nfct_close(handle); }
};
using NfctHandle = std::unique_ptr<nfct_handle, NfctHandleDeleter>;

struct ConntrackDeleter {
    void operator()(nf_conntrack* entry) const noexcept { nfct_destroy(entry); }
};
using Conntrack = std::unique_ptr<nf_conntrack, ConntrackDeleter>;

Result<NfctHandle> open_conntrack() {
    NfctHandle handle(nfct_open(CONNTRACK, 0));
    if (!handle) {
        return fail_errno("open conntrack netlink socket", errno);
    }
    return handle;
}

// What the dump callback collects: copies of the entries to delete. The entries the library
// passes to the callback live only during the call.
struct DumpState {
    std::span<const std::uint32_t> marks;
    std::vector<Conntrack> matches;
};

// Called by libnetfilter_conntrack for every entry of the dump. noexcept: an exception must not
// unwind through C frames, and bad_alloc ends the process anyway (CONVENTIONS rule 11).
int collect_marked(nf_conntrack_msg_type /*type*/, nf_conntrack* entry, void* data) noexcept {
    auto& state = *static_cast<DumpState*>(data);
    const std::uint32_t mark = nfct_get_attr_u32(entry, ATTR_MARK);
    if (std::ranges::find(state.marks, mark) != state.marks.end()) {
        if (Conntrack copy(nfct_clone(entry)); copy) {
            state.matches.push_back(std::move(copy));
        }
    }
    return NFCT_CB_CONTINUE;
}

std::string_view family_name(std::uint32_t family) {
    return family == AF_INET ? "IPv4" : "IPv6";
}

Result<std::vector<Conntrack>> dump_marked(std::span<const std::uint32_t> marks,
                                           std::uint32_t family) {
    auto handle = open_conntrack();
    if (!handle) {
        return std::unexpected(handle.error());
    }
    DumpState state{.marks = marks, .matches = {}};
    if (nfct_callback_register(handle->get(), NFCT_T_ALL, collect_marked, &state) != 0) {
        return fail_errno("register conntrack dump callback", errno);
    }
    if (nfct_query(handle->get(), NFCT_Q_DUMP, &family) != 0) {
        return fail_errno("dump " + std::string(family_name(family)) + " conntrack table", errno);
    }
    return std::move(state.matches);
}

// Deletes the entries on a second handle: the dump's handle is busy until the dump ends, and
// deleting afterwards keeps the dump consistent.
Result<std::size_t> destroy_all(const std::vector<Conntrack>& entries) {
    if (entries.empty()) {
        return std::size_t{0};
    }
    auto handle = open_conntrack();
    if (!handle) {
        return std::unexpected(handle.error());
    }
    std::size_t deleted = 0;
    for (const auto& entry : entries) {
        if (nfct_query(handle->get(), NFCT_Q_DESTROY, entry.get()) == 0) {
            ++deleted;
        } else if (errno != ENOENT) { // ENOENT: the entry expired since the dump
            return fail_errno("delete conntrack entry", errno);
        }
    }
    return deleted;
}

// Room for one request: a header, two IPv6 addresses, ports and a mark are ~150 bytes.
constexpr std::size_t kRequestBufferSize = 1024;
// Room for one datagram of a dump: the kernel fills at most what our earlier reads offered,
// and never more than 32 KiB.
constexpr std::size_t kReceiveBufferSize = std::size_t{64} * 1024;
// The kernel answers a request before sendto() returns; a missing answer is a bug, and the
// event loop must not hang on it.
constexpr timeval kAnswerTimeout{.tv_sec = 1, .tv_usec = 0};

std::uint8_t family_of(const IpAddress& address) {
    return address.is_v4() ? AF_INET : AF_INET6;
}

// "tcp 10.0.0.1:40000 -> 192.0.2.7:443" for error messages.
std::string flow_text(const FlowTuple& flow) {
    std::string text = flow.protocol == IPPROTO_TCP   ? "tcp"
                       : flow.protocol == IPPROTO_UDP ? "udp"
                                                      : "protocol " + std::to_string(flow.protocol);
    const auto end = [&](const IpAddress& address, std::uint16_t port) {
        const std::string host =
            address.is_v4() ? address.to_string() : "[" + address.to_string() + "]";
        return carries_ports(flow.protocol) ? host + ":" + std::to_string(port) : host;
    };
    return text + " " + end(flow.local_address, flow.local_port) + " -> " +
           end(flow.remote_address, flow.remote_port);
}

// The object that names the flow's entry by its tuple from local to remote (see the class
// comment for why that finds outbound and inbound connections alike).
Result<NfConntrack> target_for(const FlowTuple& flow) {
    NfConntrack target = new_nf_conntrack();
    if (!target) {
        return fail("allocate a conntrack object",
                    std::make_error_code(std::errc::not_enough_memory));
    }
    nfct_set_attr_u8(target.get(), ATTR_L3PROTO, family_of(flow.local_address));
    if (flow.local_address.is_v4()) {
        nfct_set_attr(target.get(), ATTR_IPV4_SRC, flow.local_address.bytes().data());
        nfct_set_attr(target.get(), ATTR_IPV4_DST, flow.remote_address.bytes().data());
    } else {
        nfct_set_attr(target.get(), ATTR_IPV6_SRC, flow.local_address.bytes().data());
        nfct_set_attr(target.get(), ATTR_IPV6_DST, flow.remote_address.bytes().data());
    }
    nfct_set_attr_u8(target.get(), ATTR_L4PROTO, flow.protocol);
    nfct_set_attr_u16(target.get(), ATTR_PORT_SRC, htons(flow.local_port));
    nfct_set_attr_u16(target.get(), ATTR_PORT_DST, htons(flow.remote_port));
    return target;
}

// Whether a dumped entry belongs to the flow of a protocol without ports: the same protocol
// between the same two addresses, opened from either side.
bool belongs_to(const ConntrackEntry& entry, const FlowTuple& flow) {
    if (entry.protocol != flow.protocol) {
        return false;
    }
    const auto from_local = [&](const ConntrackTuple& tuple) {
        return tuple.source == flow.local_address && tuple.destination == flow.remote_address;
    };
    return from_local(entry.original) || from_local(entry.reply);
}

// Starts a ctnetlink message in `buffer`.
nlmsghdr* start_message(std::vector<char>& buffer, std::uint8_t type, std::uint16_t flags,
                        std::uint8_t family, std::uint32_t sequence) {
    nlmsghdr* message = mnl_nlmsg_put_header(buffer.data());
    message->nlmsg_type = static_cast<std::uint16_t>((NFNL_SUBSYS_CTNETLINK << 8U) | type);
    message->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
    message->nlmsg_seq = sequence;
    auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(message, sizeof(nfgenmsg)));
    header->nfgen_family = family;
    header->version = NFNETLINK_V0;
    header->res_id = 0;
    return message;
}

// A fresh object that names a dumped entry by its original tuple (ICMP identifier, type and
// code included) and zone: the dumped object also carries status, timeout and counters, which
// an update would write back.
Result<NfConntrack> target_from_dumped(const nf_conntrack& dumped) {
    NfConntrack target = new_nf_conntrack();
    if (!target) {
        return fail("allocate a conntrack object",
                    std::make_error_code(std::errc::not_enough_memory));
    }
    nfct_copy(target.get(), &dumped, NFCT_CP_ORIG);
    if (nfct_attr_is_set(&dumped, ATTR_ZONE) > 0) {
        nfct_set_attr_u16(target.get(), ATTR_ZONE, nfct_get_attr_u16(&dumped, ATTR_ZONE));
    }
    return target;
}

// Reads one datagram of answers to the request with `sequence`.
struct Answers {
    std::uint32_t sequence = 0;
    std::uint32_t port_id = 0;

    // The kernel's final answer as an errno value (0: acknowledged, or the end of a dump), or
    // nullopt when more datagrams follow. Other messages of the request go to `on_message`.
    std::optional<int> read(std::span<const char> datagram,
                            const std::function<void(const nlmsghdr*)>& on_message) const {
        int remaining = static_cast<int>(datagram.size());
        for (const auto* part = reinterpret_cast<const nlmsghdr*>( // NOLINT: netlink framing
                 datagram.data());
             mnl_nlmsg_ok(part, remaining); part = mnl_nlmsg_next(part, &remaining)) {
            if (part->nlmsg_seq != sequence ||
                (part->nlmsg_pid != 0 && part->nlmsg_pid != port_id)) {
                continue; // a late answer to an earlier request that timed out
            }
            if (part->nlmsg_type == NLMSG_ERROR) {
                if (part->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
                    return EBADMSG;
                }
                return -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(part))->error;
            }
            if (part->nlmsg_type == NLMSG_DONE) {
                return 0;
            }
            on_message(part);
        }
        return std::nullopt;
    }
};

} // namespace

Result<std::size_t> delete_conntrack_entries_with_marks(std::span<const std::uint32_t> marks) {
    if (marks.empty()) {
        return std::size_t{0};
    }
    std::size_t deleted = 0;
    for (const std::uint32_t family : {std::uint32_t{AF_INET}, std::uint32_t{AF_INET6}}) {
        auto matches = dump_marked(marks, family);
        if (!matches) {
            return std::unexpected(matches.error());
        }
        auto count = destroy_all(*matches);
        if (!count) {
            return std::unexpected(count.error());
        }
        deleted += *count;
    }
    log::get("conntrack")->debug("conntrack_deleted entries={}", deleted);
    return deleted;
}

// ---------------------------------------------------------------------------------------------
// ConntrackTable

Result<ConntrackTable> ConntrackTable::open() {
    MnlSocket socket(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
    if (!socket) {
        return fail_errno("open conntrack netlink socket", errno);
    }
    if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        return fail_errno("bind conntrack netlink socket", errno);
    }
    if (::setsockopt(mnl_socket_get_fd(socket.get()), SOL_SOCKET, SO_RCVTIMEO, &kAnswerTimeout,
                     sizeof(kAnswerTimeout)) != 0) {
        return fail_errno("set the conntrack socket's answer timeout", errno);
    }
    const std::uint32_t port_id = mnl_socket_get_portid(socket.get());
    return ConntrackTable(std::move(socket), port_id);
}

std::string_view ConntrackTable::action_text(Request request) {
    switch (request) {
        case Request::Get:
            return "find conntrack entry of ";
        case Request::UpdateMark:
            return "update conntrack mark of ";
        case Request::Delete:
            return "delete conntrack entry of ";
    }
    return "change conntrack entry of ";
}

ConntrackTable::ConntrackTable(MnlSocket socket, std::uint32_t port_id)
    : socket_(std::move(socket)),
      port_id_(port_id),
      request_buffer_(kRequestBufferSize),
      receive_buffer_(kReceiveBufferSize) {}

Result<std::size_t> ConntrackTable::update_mark(const FlowTuple& flow, std::uint32_t mark) {
    return apply(Request::UpdateMark, flow, mark, nullptr);
}

Result<std::size_t> ConntrackTable::delete_entry(const FlowTuple& flow) {
    return apply(Request::Delete, flow, 0, nullptr);
}

Result<std::vector<ConntrackEntry>> ConntrackTable::find(const FlowTuple& flow) {
    std::vector<ConntrackEntry> found;
    if (auto applied = apply(Request::Get, flow, 0, &found); !applied) {
        return std::unexpected(applied.error());
    }
    return found;
}

Result<std::size_t> ConntrackTable::apply(Request kind, const FlowTuple& flow, std::uint32_t mark,
                                          std::vector<ConntrackEntry>* found) {
    if (flow.local_address.family() != flow.remote_address.family()) {
        return fail(std::string(action_text(kind)) + flow_text(flow) +
                    ": addresses of two IP families");
    }
    if (carries_ports(flow.protocol)) {
        auto target = target_for(flow);
        if (!target) {
            return std::unexpected(target.error());
        }
        return request(kind, **target, mark, flow, found);
    }
    auto matches = dump_matching(flow);
    if (!matches) {
        return std::unexpected(matches.error());
    }
    std::size_t hit = 0;
    for (const NfConntrack& match : *matches) {
        if (kind == Request::Get) {
            if (auto entry = entry_from(*match); entry && found != nullptr) {
                found->push_back(*entry);
                ++hit;
            }
            continue;
        }
        auto target = target_from_dumped(*match);
        if (!target) {
            return std::unexpected(target.error());
        }
        const auto changed = request(kind, **target, mark, flow, nullptr);
        if (!changed) {
            return std::unexpected(changed.error());
        }
        hit += *changed; // 0 when it ended since the dump
    }
    return hit;
}

Result<std::size_t> ConntrackTable::request(Request kind, nf_conntrack& target, std::uint32_t mark,
                                            const FlowTuple& flow,
                                            std::vector<ConntrackEntry>* found) {
    std::uint8_t type = IPCTNL_MSG_CT_GET;
    if (kind == Request::UpdateMark) {
        // IPCTNL_MSG_CT_NEW without NLM_F_CREATE changes an existing entry, or answers ENOENT.
        type = IPCTNL_MSG_CT_NEW;
        nfct_set_attr_u32(&target, ATTR_MARK, mark);
    } else if (kind == Request::Delete) {
        type = IPCTNL_MSG_CT_DELETE;
    }
    nlmsghdr* message = start_message(request_buffer_, type, NLM_F_ACK,
                                      nfct_get_attr_u8(&target, ATTR_L3PROTO), ++sequence_);
    if (nfct_nlmsg_build(message, &target) < 0) {
        return fail_errno("build conntrack request", errno);
    }
    const auto answer = round_trip([found](const nlmsghdr* part) {
        if (found == nullptr) {
            return;
        }
        if (auto entry = parse_conntrack_message(part)) {
            found->push_back(*entry);
        }
    });
    if (!answer) {
        return std::unexpected(answer.error());
    }
    if (*answer == ENOENT) {
        return std::size_t{0};
    }
    if (*answer != 0) {
        return fail(std::string(action_text(kind)) + flow_text(flow),
                    std::error_code(*answer, std::system_category()));
    }
    return std::size_t{1};
}

Result<std::vector<NfConntrack>> ConntrackTable::dump_matching(const FlowTuple& flow) {
    start_message(request_buffer_, IPCTNL_MSG_CT_GET, NLM_F_DUMP, family_of(flow.local_address),
                  ++sequence_);
    std::vector<NfConntrack> matches;
    const auto answer = round_trip([&](const nlmsghdr* part) {
        NfConntrack object = new_nf_conntrack();
        if (!object || nfct_nlmsg_parse(part, object.get()) < 0) {
            return;
        }
        if (const auto entry = entry_from(*object); entry && belongs_to(*entry, flow)) {
            matches.push_back(std::move(object));
        }
    });
    if (!answer) {
        return std::unexpected(answer.error());
    }
    if (*answer != 0) {
        return fail("dump conntrack table for " + flow_text(flow),
                    std::error_code(*answer, std::system_category()));
    }
    return matches;
}

Result<int> ConntrackTable::round_trip(const MessageHandler& on_message) {
    const auto* message = reinterpret_cast<const nlmsghdr*>( // NOLINT: netlink framing
        request_buffer_.data());
    const std::uint32_t sequence = message->nlmsg_seq;
    if (mnl_socket_sendto(socket_.get(), message, message->nlmsg_len) < 0) {
        return fail_errno("send conntrack request", errno);
    }
    while (true) {
        const ssize_t length =
            mnl_socket_recvfrom(socket_.get(), receive_buffer_.data(), receive_buffer_.size());
        if (length < 0) {
            const int saved = errno;
            if (saved == EINTR) {
                continue;
            }
            if (saved == EAGAIN || saved == EWOULDBLOCK) {
                return fail("no answer from the kernel's conntrack table",
                            std::make_error_code(std::errc::timed_out));
            }
            return fail_errno("receive conntrack answer", saved);
        }
        const Answers answers{.sequence = sequence, .port_id = port_id_};
        if (const auto final_answer = answers.read(
                {receive_buffer_.data(), static_cast<std::size_t>(length)}, on_message)) {
            return *final_answer;
        }
    }
}

} // namespace pw::interception
