#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "firewall/ip_scope.h"
#include "packet/packet_info.h"

namespace pw::firewall {

// Who a connection belongs to: an ordinary process, or one of the special identities. A closed
// set: the decision core branches on it, and a misspelt string would compile and silently
// change verdicts.
enum class ProcessKind : std::uint8_t {
    Process,      // an ordinary process, found through its socket
    Kernel,       // kernel-owned sockets (inode 0) and kernel threads
    Unidentified, // outbound, but no process holds the socket (any more, or yet)
    Unsolicited,  // inbound to no listening socket
    Portwarden,   // the firewall itself (its resolver, its API)
};

// "process", "kernel", "unidentified", "unsolicited", "portwarden": the names of the event stream.
[[nodiscard]] constexpr std::string_view process_kind_name(ProcessKind kind) {
    switch (kind) {
        case ProcessKind::Process:
            return "process";
        case ProcessKind::Kernel:
            return "kernel";
        case ProcessKind::Unidentified:
            return "unidentified";
        case ProcessKind::Unsolicited:
            return "unsolicited";
        case ProcessKind::Portwarden:
            return "portwarden";
    }
    return "unidentified";
}

// Who opened the connection. Filled by process attribution (issue 3); empty until then.
struct ProcessFacts {
    ProcessKind kind = ProcessKind::Process;
    std::int64_t pid = -1;        // -1 for the special identities
    std::uint64_t start_time = 0; // clock ticks after boot (/proc/<pid>/stat field 22): with
                                  // pid, names the process across PID reuse; 0 when unknown
    std::int64_t parent_pid = -1; // -1 when unknown
    std::string executable;
    std::string identity; // what rules will match: the script for interpreters, else executable
    std::uint32_t uid = 0;
    std::string user;
    std::vector<std::string> tags;
    // How it was found: "ebpf" (kernel records), "exec-record" (kernel records of a process
    // that was gone before /proc could be read), "socket-table" (sock_diag or /proc/net and
    // the inode index), "none" (nothing found).
    std::string source = "none";

    // Every field: the live-connection registry shares one copy between equal facts.
    friend bool operator==(const ProcessFacts&, const ProcessFacts&) = default;
};

// Which name the remote address was resolved from, by this process. Filled by the nameserver
// (issue 4); empty until then.
struct DomainFacts {
    std::string domain;
    std::vector<std::string> cname_chain;
    // The scope of the resolver that gave the answer (ip_scope() of the upstream's address), for
    // `filter/removeOutOfScopeDNS` at connection time (decide() step "resolver scope"): the
    // nameserver removes out-of-scope addresses from the answers it gives (answer_filter.h), but
    // the setting may have been turned on since, or the answer went to the system DNS client
    // for everyone. nullopt when unknown (names seen through systemd-resolved's monitor).
    std::optional<IpScope> resolver_scope{}; // NOLINT(readability-redundant-member-init): GCC
                                             // -Wmissing-field-initializers

    // Every field: the live-connection registry shares one copy between equal facts.
    friend bool operator==(const DomainFacts&, const DomainFacts&) = default;
};

// The profile a decision is made for: named in reasons, carried by events.
struct ProfileLabel {
    std::string id; // empty: no profile (the global settings alone)
    std::string name;

    friend bool operator==(const ProfileLabel&, const ProfileLabel&) = default;
};

// Everything the decision core may look at for one connection. Plain data: no sockets, no
// syscalls. The daemon fills it from the first packet and enrichers (process, domain).
struct ConnectionFacts {
    packet::Direction direction = packet::Direction::Outbound;
    IpFamily ip_family = IpFamily::V4;
    std::uint8_t protocol = 0;
    IpAddress local_address;
    std::uint16_t local_port = 0;
    IpAddress remote_address;
    std::uint16_t remote_port = 0;
    std::uint8_t icmp_type = 0; // of the first packet, for ICMP and ICMPv6
    std::optional<ProcessFacts>
        process{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-initializers
    std::optional<DomainFacts>
        domain{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-initializers
    // The application's profile, once the packet path has found it (events name it; decide()
    // reads the profile of its settings instead).
    ProfileLabel profile{}; // NOLINT(readability-redundant-member-init): GCC
                            // -Wmissing-field-initializers
    // Inbound only: this connection answers an earlier outbound broadcast or multicast of the
    // same process, sent from the same local address and port; the value is where that went
    // (255.255.255.255, 239.255.255.250, ff02::fb ...). Discovery protocols (SSDP, mDNS,
    // NetBIOS, WS-Discovery) get their answers from each device's own address, which conntrack
    // does not see as a reply, so without this a blockInbound would drop them. The packet path
    // fills it from the permitted outbound broadcasts and multicasts it remembers
    // (network/broadcast_replies.h); nullopt means "not a reply" (decide() step "broadcast
    // reply").
    std::optional<IpAddress> answers_broadcast_to{}; // NOLINT(readability-redundant-member-init):
                                                     // GCC -Wmissing-field-initializers

    friend bool operator==(const ConnectionFacts&, const ConnectionFacts&) = default;

    // The port that names the service: remote for outbound, local for inbound.
    [[nodiscard]] std::uint16_t service_port() const {
        return direction == packet::Direction::Outbound ? remote_port : local_port;
    }
};

} // namespace pw::firewall
