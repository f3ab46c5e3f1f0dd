#include "network/attributor.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <string>
#include <utility>

#include "packet/packet_info.h"
#include "process/inode_pid_index.h"
#include "process/process_info.h"
#include "process/process_registry.h"
#include "state/bpf/socket_owner_records.h"
#include "state/socket_table.h"

namespace pw::network {
namespace {

firewall::ProcessKind kind_of(process::IdentityKind kind) {
    switch (kind) {
        case process::IdentityKind::Process:
            return firewall::ProcessKind::Process;
        case process::IdentityKind::Kernel:
            return firewall::ProcessKind::Kernel;
        case process::IdentityKind::UnidentifiedOutbound:
            return firewall::ProcessKind::Unidentified;
        case process::IdentityKind::UnsolicitedInbound:
            return firewall::ProcessKind::Unsolicited;
        case process::IdentityKind::Portwarden:
            return firewall::ProcessKind::Portwarden;
    }
    return firewall::ProcessKind::Unidentified;
}

firewall::ProcessFacts facts_from(const process::ProcessInfo& info, std::string source) {
    firewall::ProcessFacts facts;
    facts.source = std::move(source);
    facts.kind = kind_of(info.kind);
    facts.pid = info.kind == process::IdentityKind::Process ||
                        info.kind == process::IdentityKind::Portwarden
                    ? info.pid
                    : -1;
    facts.parent_pid = facts.pid > 0 ? info.parent_pid : -1;
    facts.start_time = facts.pid > 0 ? info.start_time : 0;
    facts.executable = info.executable;
    facts.identity = info.identity_path;
    facts.uid = info.uid;
    facts.user = info.user;
    for (const std::string_view tag : info.tags.names()) {
        facts.tags.emplace_back(tag);
    }
    return facts;
}

// Neither a socket nor its owner could be found: who the connection belongs to then depends
// on its direction.
firewall::ProcessFacts nobody(packet::Direction direction) {
    return facts_from(direction == packet::Direction::Inbound
                          ? *process::unsolicited_inbound_identity()
                          : *process::unidentified_outbound_identity(),
                      "none");
}

// The cookie of the socket a lookup found; 0 for none (or a table that cannot tell).
std::uint64_t cookie_of(const Result<std::optional<state::SocketRecord>>& looked_up) {
    if (!looked_up.has_value()) {
        return 0;
    }
    const std::optional<state::SocketRecord>& found = looked_up.value();
    return found.has_value() ? found->cookie : 0;
}

std::chrono::nanoseconds boot_time_now() {
    timespec now{};
    ::clock_gettime(CLOCK_BOOTTIME, &now);
    return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

// A process the kernel's exec record describes, for when /proc no longer can.
std::shared_ptr<process::ProcessInfo> info_from_exec_record(const state::bpf::ExecRecord& exec,
                                                            std::uint64_t start_time,
                                                            std::uint32_t uid) {
    auto info = std::make_shared<process::ProcessInfo>();
    info->pid = static_cast<int>(exec.tgid);
    info->start_time = start_time;
    info->parent_pid = static_cast<int>(exec.parent_tgid);
    info->uid = uid;
    if (exec.interpreter.empty()) {
        info->executable = exec.path;
        info->identity_path = exec.path;
    } else {
        // The kernel ran a #! script: the script is the identity, as ProcessRegistry does it.
        info->executable = exec.interpreter;
        info->identity_path = exec.path;
        info->tags.interpreter = exec.interpreter;
    }
    return info;
}

} // namespace

ProcessAttributor::ProcessAttributor(AttributionSources sources)
    : sources_(sources),
      nanoseconds_per_tick_(1'000'000'000 / std::max(1L, ::sysconf(_SC_CLK_TCK))) {}

Attribution ProcessAttributor::attribute(const firewall::ConnectionFacts& connection) {
    if (connection.protocol != packet::protocol::kTcp &&
        connection.protocol != packet::protocol::kUdp) {
        return {};
    }
    ++counters_.lookups;
    const bool outbound = connection.direction == packet::Direction::Outbound;

    // 1. The sender's own record: written in its context before the packet existed.
    std::optional<state::bpf::Owner> remote_only_hint;
    if (outbound && sources_.kernel_records != nullptr) {
        const state::bpf::Flow flow{.protocol = connection.protocol,
                                    .local_address = connection.local_address,
                                    .local_port = connection.local_port,
                                    .remote_address = connection.remote_address,
                                    .remote_port = connection.remote_port};
        const auto owner = sources_.kernel_records->find_by_flow(flow);
        if (owner && owner->match != state::bpf::FlowMatch::RemoteOnly) {
            if (connection.protocol == packet::protocol::kUdp && sources_.sockets != nullptr) {
                if (auto facts = from_udp_record(connection, flow, *owner)) {
                    return {.process = std::move(facts)};
                }
            } else {
                // TCP records are rewritten by every connect(): never stale.
                return {.process = from_kernel_record(*owner, GoneOwner::Describe)};
            }
        } else {
            remote_only_hint = owner;
        }
    }

    // 2. The socket that owns the flow now.
    bool socket_found = false;
    if (sources_.sockets != nullptr) {
        if (auto facts = from_current_socket(connection, remote_only_hint, socket_found)) {
            return {.process = std::move(facts)};
        }
    }

    // 3. A connected UDP socket recorded before it had a local port, whose socket is gone.
    if (remote_only_hint && boot_time_now() - remote_only_hint->recorded_at <= kRemoteOnlyTrust) {
        ++counters_.remote_only_hints;
        return {.process = from_kernel_record(*remote_only_hint, GoneOwner::Describe)};
    }
    if (socket_found) {
        // The socket exists but its holder was not found (yet): the inode index scans a
        // bounded number of processes per lookup, so another look continues the search.
        ++counters_.no_process;
        return {.process = nobody(connection.direction), .worth_retrying = outbound};
    }
    ++counters_.no_socket;
    // Inbound to nothing is not a race worth waiting for: nobody listens.
    return {.process = nobody(connection.direction), .worth_retrying = outbound};
}

std::optional<firewall::ProcessFacts> ProcessAttributor::from_kernel_record(
    const state::bpf::Owner& owner, GoneOwner gone) {
    const auto pid = static_cast<int>(owner.tgid);
    const auto start_time = static_cast<std::uint64_t>(owner.process_start.count()) /
                            static_cast<std::uint64_t>(nanoseconds_per_tick_);
    process::ProcessRegistry& processes = *sources_.processes;
    const auto info = owner.process_start.count() > 0 ? processes.lookup_started(pid, start_time)
                                                      : processes.lookup(pid);
    // A zombie still has its stat but no executable any more: its exec record knows better.
    if (info && !(*info)->executable.empty()) {
        ++counters_.by_kernel_record;
        return facts_from(**info, "ebpf");
    }
    if (gone == GoneOwner::Skip) {
        return std::nullopt;
    }
    if (sources_.kernel_records != nullptr && owner.process_start.count() > 0) {
        const auto exec = sources_.kernel_records->find_exec(owner.tgid);
        if (exec && exec->process_start == owner.process_start) {
            auto described = info_from_exec_record(*exec, start_time, owner.uid);
            described->user = processes.user_name(owner.uid);
            if (info) {
                described->command_line = (*info)->command_line;
                described->tags.flatpak_id = (*info)->tags.flatpak_id;
                described->tags.snap_name = (*info)->tags.snap_name;
                described->tags.appimage = (*info)->tags.appimage;
            }
            processes.adopt(described);
            ++counters_.by_exec_record;
            return facts_from(*described, "exec-record");
        }
    }
    if (info) {
        ++counters_.by_kernel_record;
        return facts_from(**info, "ebpf");
    }
    // Gone without a trace but the kernel's word for PID and UID: still worth naming.
    ++counters_.pid_only;
    firewall::ProcessFacts facts;
    facts.pid = pid;
    facts.start_time = start_time;
    facts.uid = owner.uid;
    facts.user = processes.user_name(owner.uid);
    facts.source = "ebpf";
    return facts;
}

std::optional<firewall::ProcessFacts> ProcessAttributor::from_udp_record(
    const firewall::ConnectionFacts& connection, const state::bpf::Flow& flow,
    const state::bpf::Owner& owner) {
    // A UDP record outlives its socket (that is how a fire-and-forget sender is still named),
    // so its port may since belong to another socket. Sockets that send with an address
    // overwrite the record; a connected one is recorded by remote end only, so a connect() to
    // this remote after the record was written is the one case to check with the socket table.
    const auto connected = sources_.kernel_records->find_by_remote(flow);
    if (!connected || connected->recorded_at < owner.recorded_at) {
        return from_kernel_record(owner, GoneOwner::Describe);
    }
    auto current = find_socket(connection);
    const std::uint64_t cookie = cookie_of(current);
    if (cookie == 0 || cookie == owner.cookie) {
        return from_kernel_record(owner, GoneOwner::Describe);
    }
    ++counters_.stale_udp_records;
    if (cookie == connected->cookie) {
        if (auto facts = from_kernel_record(*connected, GoneOwner::Describe)) {
            return facts;
        }
    }
    bool socket_found = false;
    return from_socket_table(std::move(current), socket_found);
}

std::optional<firewall::ProcessFacts> ProcessAttributor::from_current_socket(
    const firewall::ConnectionFacts& connection,
    const std::optional<state::bpf::Owner>& remote_only_hint, bool& socket_found) {
    auto current = find_socket(connection);
    // A connected UDP socket is recorded at connect(), before it has a local port: its record
    // holds only the remote end, and the socket's cookie confirms it is this one.
    if (remote_only_hint) {
        const std::uint64_t cookie = cookie_of(current);
        if (cookie != 0 && cookie == remote_only_hint->cookie) {
            if (auto facts = from_kernel_record(*remote_only_hint, GoneOwner::Describe)) {
                return facts;
            }
        }
    }
    return from_socket_table(std::move(current), socket_found);
}

Result<std::optional<state::SocketRecord>> ProcessAttributor::find_socket(
    const firewall::ConnectionFacts& connection) {
    const state::SocketQuery query{.protocol = connection.protocol,
                                   .local_address = connection.local_address,
                                   .local_port = connection.local_port,
                                   .remote_address = connection.remote_address,
                                   .remote_port = connection.remote_port,
                                   .direction = connection.direction};
    auto found = sources_.sockets->find(query);
    if (!found) {
        ++counters_.socket_errors;
    }
    return found;
}

std::optional<firewall::ProcessFacts> ProcessAttributor::from_socket_table(
    Result<std::optional<state::SocketRecord>> looked_up, bool& socket_found) {
    if (!looked_up) {
        return std::nullopt;
    }
    const std::optional<state::SocketRecord>& found = *looked_up;
    if (!found) {
        return std::nullopt;
    }
    socket_found = true;
    const state::SocketRecord& record = *found;
    if (record.inode == 0) {
        // Sockets the kernel itself owns (in-kernel tunnels, for example) have no inode.
        ++counters_.kernel_sockets;
        return facts_from(*process::kernel_identity(), "socket-table");
    }
    // The socket's creator, if the kernel recorded it and it still runs; a creator that is
    // gone handed the socket on (a daemon that forked): the inode index finds the holder.
    if (sources_.kernel_records != nullptr && record.cookie != 0) {
        if (const auto creator = sources_.kernel_records->find_by_cookie(record.cookie)) {
            if (auto facts = from_kernel_record(*creator, GoneOwner::Skip)) {
                return facts;
            }
        }
    }
    if (sources_.inode_owners == nullptr) {
        return std::nullopt;
    }
    const auto owner = sources_.inode_owners->find(record.inode, record.uid);
    if (!owner) {
        return std::nullopt;
    }
    const auto info = sources_.processes->lookup(owner->pid);
    // A zombie keeps its fds in /proc no more, but one caught mid-exit shows the socket and
    // no executable: a program with no name is no answer.
    if (!info || ((*info)->kind == process::IdentityKind::Process && (*info)->executable.empty())) {
        return std::nullopt;
    }
    ++counters_.by_socket_table;
    return facts_from(**info, "socket-table");
}

} // namespace pw::network
