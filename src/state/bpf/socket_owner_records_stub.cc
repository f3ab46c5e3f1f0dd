// SocketOwnerRecords when the build had no clang for BPF, no bpftool or no libbpf: load()
// always fails, and the daemon falls back to the socket tables.
#include <utility>

#include "state/bpf/socket_owner_records.h"

namespace pw::state::bpf {

// Never handed a non-null pointer: nothing in this build creates one.
void BpfLinkDeleter::operator()(bpf_link* /*link*/) const noexcept {}
void BpfObjectDeleter::operator()(bpf_object* /*object*/) const noexcept {}

SocketOwnerRecords::SocketOwnerRecords(BpfObject object, std::vector<BpfLink> links, MapFds maps)
    : object_(std::move(object)),
      links_(std::move(links)),
      owner_by_cookie_fd_(maps.owner_by_cookie),
      owner_by_flow_fd_(maps.owner_by_flow),
      exec_by_tgid_fd_(maps.exec_by_tgid) {}

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

} // namespace pw::state::bpf
