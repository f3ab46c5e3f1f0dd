// SocketOwnerRecords when the build had no clang for BPF, no bpftool or no libbpf: load()
// always fails, and the daemon falls back to the socket tables.
#include <utility>

#include "state/bpf/socket_owner_records.h"

namespace pw::state::bpf {

// Never handed a non-null pointer: nothing in this build creates one.
void BpfLinkDeleter::operator()(bpf_link* /*link*/) const noexcept {}
void BpfObjectDeleter::operator()(bpf_object* /*object*/) const noexcept {}
void RingBufferDeleter::operator()(ring_buffer* /*ring*/) const noexcept {}

SocketOwnerRecords::SocketOwnerRecords(BpfObject object, std::vector<BpfLink> links, MapFds maps)
    : object_(std::move(object)),
      links_(std::move(links)),
      owner_by_cookie_fd_(maps.owner_by_cookie),
      owner_by_flow_fd_(maps.owner_by_flow),
      exec_by_tgid_fd_(maps.exec_by_tgid),
      udp_sender_lost_fd_(maps.udp_sender_lost) {}

SocketOwnerRecords::~SocketOwnerRecords() = default;

Result<std::unique_ptr<SocketOwnerRecords>> SocketOwnerRecords::load(
    const std::filesystem::path& /*cgroup*/) {
    return fail("eBPF socket-owner records: portwarden was built without eBPF support");
}

std::optional<Owner> SocketOwnerRecords::find_by_cookie(std::uint64_t /*cookie*/) const {
    return std::nullopt;
}

std::optional<Owner> SocketOwnerRecords::find_by_flow(const Flow& /*flow*/) const {
    return std::nullopt;
}

std::optional<Owner> SocketOwnerRecords::find_by_remote(const Flow& /*flow*/) const {
    return std::nullopt;
}

std::optional<ExecRecord> SocketOwnerRecords::find_exec(std::uint32_t /*tgid*/) const {
    return std::nullopt;
}

int SocketOwnerRecords::udp_sender_fd() const {
    return -1;
}

int SocketOwnerRecords::on_udp_sender(void* /*context*/, void* /*data*/, std::size_t /*size*/) {
    return 0;
}

Result<std::size_t> SocketOwnerRecords::drain_udp_senders(const UdpSenderHandler& /*on_sender*/) {
    return std::size_t{0};
}

std::uint64_t SocketOwnerRecords::udp_senders_lost() const {
    return 0;
}

} // namespace pw::state::bpf
