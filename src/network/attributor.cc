#include "network/attributor.h"

#include <memory>
#include <string>

#include "packet/packet_info.h"
#include "process/inode_pid_index.h"
#include "process/process_info.h"
#include "process/process_registry.h"
#include "state/socket_table.h"

namespace pw::network {
namespace {

std::string kind_name(process::IdentityKind kind) {
    switch (kind) {
        case process::IdentityKind::Process:
            return "process";
        case process::IdentityKind::Kernel:
            return "kernel";
        case process::IdentityKind::UnidentifiedOutbound:
            return "unidentified";
        case process::IdentityKind::UnsolicitedInbound:
            return "unsolicited";
        case process::IdentityKind::Portwarden:
            return "portwarden";
    }
    return "unidentified";
}

firewall::ProcessFacts facts_from(const process::ProcessInfo& info) {
    firewall::ProcessFacts facts;
    facts.kind = kind_name(info.kind);
    facts.pid = info.kind == process::IdentityKind::Process ||
                        info.kind == process::IdentityKind::Portwarden
                    ? info.pid
                    : -1;
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
                          : *process::unidentified_outbound_identity());
}

} // namespace

std::optional<firewall::ProcessFacts> SocketAttributor::attribute(
    const firewall::ConnectionFacts& connection) {
    if (connection.protocol != packet::protocol::kTcp &&
        connection.protocol != packet::protocol::kUdp) {
        return std::nullopt;
    }
    ++counters_.lookups;
    const state::SocketQuery query{.protocol = connection.protocol,
                                   .local_address = connection.local_address,
                                   .local_port = connection.local_port,
                                   .remote_address = connection.remote_address,
                                   .remote_port = connection.remote_port,
                                   .direction = connection.direction};
    const auto looked_up = sockets_.find(query);
    if (!looked_up) {
        ++counters_.socket_errors;
        return nobody(connection.direction);
    }
    const std::optional<state::SocketRecord>& found = *looked_up;
    if (!found) {
        ++counters_.no_socket;
        return nobody(connection.direction);
    }
    const state::SocketRecord& record = *found;
    if (record.inode == 0) {
        // Sockets the kernel itself owns (in-kernel tunnels, for example) have no inode.
        ++counters_.attributed;
        return facts_from(*process::kernel_identity());
    }
    const auto owner = owners_.find(record.inode, record.uid);
    if (!owner) {
        ++counters_.no_process;
        return nobody(connection.direction);
    }
    const auto info = processes_.lookup(owner->pid);
    if (!info) {
        ++counters_.no_process;
        return nobody(connection.direction);
    }
    ++counters_.attributed;
    return facts_from(**info);
}

} // namespace pw::network
