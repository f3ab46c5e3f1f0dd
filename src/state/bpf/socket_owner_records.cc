// The libbpf side of SocketOwnerRecords: the skeleton header generated from socket_owner.bpf.c
// (which embeds the compiled object) is included here only.
#include "state/bpf/socket_owner_records.h"

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/unique_fd.h"
#include "state/bpf/flow_key.h"
#include "state/bpf/socket_owner.skel.h"
#include "state/bpf/socket_owner_abi.h"

namespace pw::state::bpf {

namespace {

Owner to_owner(const SocketOwnerValue& value, FlowMatch match) {
    return Owner{.tgid = value.tgid,
                 .pid = value.pid,
                 .uid = value.uid,
                 .cookie = value.cookie,
                 .recorded_at = std::chrono::nanoseconds(value.time_ns),
                 .process_start = std::chrono::nanoseconds(value.start_time_ns),
                 .match = match};
}

// Explains the errno of a failed load: the reader should learn whether to grant capabilities,
// upgrade the kernel or report a bug.
std::string load_hint(int error) {
    switch (error) {
        case EPERM:
            return "load eBPF socket-owner programs: not permitted (needs root, or CAP_BPF and "
                   "CAP_NET_ADMIN)";
        case EACCES:
        case EINVAL:
            return "load eBPF socket-owner programs: rejected by the kernel (verifier log above)";
        case ENOSYS:
        case EOPNOTSUPP:
            return "load eBPF socket-owner programs: this kernel has no eBPF cgroup support";
        default:
            return "load eBPF socket-owner programs";
    }
}

// A NUL-terminated string from a fixed kernel buffer (NUL-terminated by the kernel helper, but
// trust nothing: stop at the buffer's end).
template <std::size_t N>
std::string text_of(const char (&buffer)[N]) { // NOLINT(modernize-avoid-c-arrays): ABI struct
    return {buffer, strnlen(buffer, N)};
}

// The socket programs: one per hook, attached to the cgroup. sockops completes TCP records
// with the kernel-chosen local port.
constexpr std::array<const char*, 7> kSocketPrograms{
    "pw_post_bind4", "pw_post_bind6", "pw_connect4", "pw_connect6",
    "pw_sendmsg4",   "pw_sendmsg6",   "pw_sockops"};
// The exec records: raw tracepoints, host-wide, optional.
constexpr std::array<const char*, 2> kExecPrograms{"pw_exec", "pw_fork"};

// Opens the object embedded in the skeleton header and loads it, with or without the exec
// programs.
Result<BpfObject> open_and_load(bool with_exec_programs) {
    // We open the embedded object with the plain libbpf object API rather than the skeleton's
    // open/destroy helpers: their allocation failure path trips clang-analyzer's leak check
    // inside generated code, where no NOLINT can go, and the object API gives the same handles.
    std::size_t size = 0;
    const void* elf = socket_owner_bpf__elf_bytes(&size);
    bpf_object_open_opts options{};
    options.sz = sizeof(options);
    options.object_name = "socket_owner";
    BpfObject object(bpf_object__open_mem(elf, size, &options));
    if (!object) {
        return fail_errno("open eBPF socket-owner object", errno);
    }
    if (!with_exec_programs) {
        for (const char* name : kExecPrograms) {
            if (bpf_program* program = bpf_object__find_program_by_name(object.get(), name)) {
                bpf_program__set_autoload(program, false);
            }
        }
    }
    if (const int result = bpf_object__load(object.get()); result != 0) {
        return fail_errno(load_hint(-result), -result);
    }
    return object;
}

} // namespace

void BpfLinkDeleter::operator()(bpf_link* link) const noexcept {
    bpf_link__destroy(link);
}

void BpfObjectDeleter::operator()(bpf_object* object) const noexcept {
    bpf_object__close(object);
}

void RingBufferDeleter::operator()(ring_buffer* ring) const noexcept {
    ring_buffer__free(ring);
}

SocketOwnerRecords::SocketOwnerRecords(BpfObject object, std::vector<BpfLink> links, MapFds maps)
    : object_(std::move(object)),
      links_(std::move(links)),
      owner_by_cookie_fd_(maps.owner_by_cookie),
      owner_by_flow_fd_(maps.owner_by_flow),
      exec_by_tgid_fd_(maps.exec_by_tgid),
      udp_sender_lost_fd_(maps.udp_sender_lost) {
    // Without the ring, reused UDP flows are not noticed, but attribution works as before.
    if (maps.udp_senders >= 0) {
        udp_senders_.reset(ring_buffer__new(maps.udp_senders, &on_udp_sender, this, nullptr));
    }
}

SocketOwnerRecords::~SocketOwnerRecords() {
    // Detach first (while the programs still exist), then unload. The member order does the
    // same; spelling it out keeps a reordering of members from changing it.
    udp_senders_.reset();
    links_.clear();
    object_.reset();
}

Result<std::unique_ptr<SocketOwnerRecords>> SocketOwnerRecords::load(
    const std::filesystem::path& cgroup) {
    if (!is_cgroup2_directory(cgroup)) {
        return fail("attach eBPF socket-owner programs: " + cgroup.string() +
                    " is not a cgroup v2 directory");
    }
    const UniqueFd cgroup_fd(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cgroup_fd.valid()) {
        return fail_errno("open cgroup " + cgroup.string(), errno);
    }

    // The exec programs need the kernel's BTF for the fields they read; when the kernel refuses
    // them, the socket records alone are still worth having.
    auto object = open_and_load(/*with_exec_programs=*/true);
    bool with_exec = object.has_value();
    if (!with_exec) {
        object = open_and_load(/*with_exec_programs=*/false);
        if (!object) {
            return std::unexpected(object.error());
        }
    }
    bpf_map* owner_by_cookie = bpf_object__find_map_by_name(object->get(), "owner_by_cookie");
    bpf_map* owner_by_flow = bpf_object__find_map_by_name(object->get(), "owner_by_flow");
    bpf_map* exec_by_tgid = bpf_object__find_map_by_name(object->get(), "exec_by_tgid");
    bpf_map* udp_senders = bpf_object__find_map_by_name(object->get(), "udp_senders");
    bpf_map* udp_sender_lost = bpf_object__find_map_by_name(object->get(), "udp_sender_lost");
    if (owner_by_cookie == nullptr || owner_by_flow == nullptr || exec_by_tgid == nullptr ||
        udp_senders == nullptr || udp_sender_lost == nullptr) {
        return fail("eBPF socket-owner object lacks its maps (build mismatch)");
    }

    std::vector<BpfLink> links;
    links.reserve(kSocketPrograms.size() + kExecPrograms.size());
    for (const char* name : kSocketPrograms) {
        bpf_program* program = bpf_object__find_program_by_name(object->get(), name);
        if (program == nullptr) {
            return fail(std::string("eBPF socket-owner object lacks program ") + name);
        }
        BpfLink link(bpf_program__attach_cgroup(program, cgroup_fd.get()));
        if (!link) {
            const int saved_errno = errno;
            // `links` detaches what was already attached when it goes out of scope.
            return fail_errno(std::string("attach eBPF program ") + name + " to " + cgroup.string(),
                              saved_errno);
        }
        links.push_back(std::move(link));
    }
    const std::size_t socket_links = links.size();
    for (const char* name : kExecPrograms) {
        if (!with_exec) {
            break;
        }
        bpf_program* program = bpf_object__find_program_by_name(object->get(), name);
        BpfLink link(program != nullptr ? bpf_program__attach(program) : nullptr);
        if (!link) {
            // Without both, a forked child could be named by a stale record: drop them both.
            links.resize(socket_links);
            with_exec = false;
        } else {
            links.push_back(std::move(link));
        }
    }
    // The links hold their own reference to the cgroup; cgroup_fd closes here.
    const MapFds maps{.owner_by_cookie = bpf_map__fd(owner_by_cookie),
                      .owner_by_flow = bpf_map__fd(owner_by_flow),
                      .exec_by_tgid = with_exec ? bpf_map__fd(exec_by_tgid) : -1,
                      .udp_senders = bpf_map__fd(udp_senders),
                      .udp_sender_lost = bpf_map__fd(udp_sender_lost)};
    return std::unique_ptr<SocketOwnerRecords>(
        new SocketOwnerRecords(std::move(*object), std::move(links), maps));
}

std::optional<Owner> SocketOwnerRecords::find_by_cookie(std::uint64_t cookie) const {
    SocketOwnerValue value{};
    if (bpf_map_lookup_elem(owner_by_cookie_fd_, &cookie, &value) != 0) {
        return std::nullopt; // ENOENT: no record
    }
    return to_owner(value, FlowMatch::Exact);
}

std::optional<Owner> SocketOwnerRecords::find_by_flow(const Flow& flow) const {
    if (flow.local_address.family() != flow.remote_address.family()) {
        return std::nullopt;
    }
    for (const FlowMatch match :
         {FlowMatch::Exact, FlowMatch::AnyLocalAddress, FlowMatch::RemoteOnly}) {
        const SocketOwnerFlowKey key = make_flow_key(flow, match);
        SocketOwnerValue value{};
        if (bpf_map_lookup_elem(owner_by_flow_fd_, &key, &value) == 0) {
            return to_owner(value, match);
        }
    }
    return std::nullopt;
}

std::optional<Owner> SocketOwnerRecords::find_by_remote(const Flow& flow) const {
    const SocketOwnerFlowKey key = make_flow_key(flow, FlowMatch::RemoteOnly);
    SocketOwnerValue value{};
    if (bpf_map_lookup_elem(owner_by_flow_fd_, &key, &value) != 0) {
        return std::nullopt;
    }
    return to_owner(value, FlowMatch::RemoteOnly);
}

std::optional<ExecRecord> SocketOwnerRecords::find_exec(std::uint32_t tgid) const {
    if (exec_by_tgid_fd_ < 0) {
        return std::nullopt;
    }
    ::ExecRecord value{};
    if (bpf_map_lookup_elem(exec_by_tgid_fd_, &tgid, &value) != 0) {
        return std::nullopt;
    }
    return ExecRecord{.tgid = value.tgid,
                      .parent_tgid = value.parent_tgid,
                      .uid = value.uid,
                      .process_start = std::chrono::nanoseconds(value.start_time_ns),
                      .path = text_of(value.path),
                      .interpreter = text_of(value.interpreter),
                      .inherited = (value.flags & PW_EXEC_INHERITED) != 0,
                      .path_cut = (value.flags & PW_EXEC_PATH_CUT) != 0};
}

int SocketOwnerRecords::udp_sender_fd() const {
    return udp_senders_ ? ring_buffer__epoll_fd(udp_senders_.get()) : -1;
}

int SocketOwnerRecords::on_udp_sender(void* context, void* data, std::size_t size) {
    const auto* self = static_cast<const SocketOwnerRecords*>(context);
    if (size < sizeof(UdpSenderEvent) || self->udp_sender_handler_ == nullptr) {
        return 0; // a build mismatch, or a report outside drain_udp_senders(): skip it
    }
    UdpSenderEvent event{};
    std::memcpy(&event, data, sizeof(event));
    const bool any_local =
        std::ranges::all_of(event.key.local_address, [](std::uint8_t byte) { return byte == 0; });
    (*self->udp_sender_handler_)(UdpSender{
        .flow = flow_of_key(event.key),
        .owner = to_owner(event.owner, any_local ? FlowMatch::AnyLocalAddress : FlowMatch::Exact),
        .previous_cookie = event.previous_cookie});
    return 0;
}

Result<std::size_t> SocketOwnerRecords::drain_udp_senders(const UdpSenderHandler& on_sender) {
    if (!udp_senders_) {
        return std::size_t{0};
    }
    udp_sender_handler_ = &on_sender;
    const int consumed = ring_buffer__consume(udp_senders_.get());
    udp_sender_handler_ = nullptr;
    if (consumed < 0) {
        return fail_errno("read eBPF UDP sender reports", -consumed);
    }
    return static_cast<std::size_t>(consumed);
}

std::uint64_t SocketOwnerRecords::udp_senders_lost() const {
    if (udp_sender_lost_fd_ < 0) {
        return 0;
    }
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) {
        return 0;
    }
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
    const std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(udp_sender_lost_fd_, &zero, per_cpu.data()) != 0) {
        return 0;
    }
    std::uint64_t lost = 0;
    for (const std::uint64_t count : per_cpu) {
        lost += count;
    }
    return lost;
}

} // namespace pw::state::bpf
