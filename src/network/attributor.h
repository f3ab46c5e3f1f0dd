#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "common/result.h"
#include "firewall/connection_facts.h"
#include "state/socket_table.h"

namespace pw::state::bpf {
class OwnerRecords;
struct Owner;
struct Flow;
} // namespace pw::state::bpf

namespace pw::process {
class InodePidIndex;
class ProcessRegistry;
} // namespace pw::process

namespace pw::network {

// What attribution found for one connection.
struct Attribution {
    // nullopt for protocols without sockets to look up (ICMP, ...). Otherwise the process, or
    // one of the special identities (kernel, unidentified outbound, unsolicited inbound).
    std::optional<firewall::ProcessFacts> process;
    // Nothing owned the flow yet, and asking again shortly may find it (a socket racing with
    // its first packet). `process` then holds the answer to use when the caller gives up.
    bool worth_retrying = false;
};

// Finds the process behind a connection, so that the decision and the event line can name it.
// A seam: ProcessAttributor in the daemon, fakes in tests. Runs on the event-loop thread only.
class Attributor {
public:
    virtual ~Attributor() = default;
    [[nodiscard]] virtual Attribution attribute(const firewall::ConnectionFacts& connection) = 0;
};

// Where ProcessAttributor looks. Every pointer is borrowed and may be null (that source is not
// available); `processes` is required.
struct AttributionSources {
    const state::bpf::OwnerRecords* kernel_records = nullptr; // eBPF socket-owner records
    state::SocketTable* sockets = nullptr;                    // sock_diag or /proc/net
    process::InodePidIndex* inode_owners = nullptr;           // socket inode -> PID
    process::ProcessRegistry* processes = nullptr;
};

// Issue 3's attribution, cheapest source first:
//  1. outbound: the eBPF flow record written by connect()/sendmsg() in the sender's own
//     context (~1 µs, and still there after a fire-and-forget sender exited);
//  2. the socket tables (sock_diag, ~5 µs): the owning socket, then its creator by cookie from
//     the eBPF records or else its inode through the /proc index (the seed's way);
//  3. a process that is gone by the time /proc is read is named from the kernel's exec
//     records, matched by PID and start time so a reused PID is never taken for it.
// Processes come from the registry, keyed by PID + start time: a cache hit costs no syscall.
class ProcessAttributor final : public Attributor {
public:
    struct Counters {
        std::uint64_t lookups = 0;
        std::uint64_t by_kernel_record = 0;  // eBPF flow or cookie record, process alive
        std::uint64_t by_exec_record = 0;    // eBPF record of a process already gone
        std::uint64_t by_socket_table = 0;   // socket table + inode index
        std::uint64_t pid_only = 0;          // PID and UID known, executable not
        std::uint64_t kernel_sockets = 0;    // inode 0: owned by the kernel
        std::uint64_t no_socket = 0;         // unidentified outbound / unsolicited inbound
        std::uint64_t no_process = 0;        // socket found, its owner not (gone, or hidden)
        std::uint64_t socket_errors = 0;     // the socket table refused to answer
        std::uint64_t remote_only_hints = 0; // used a flow record that knew only the remote end
        std::uint64_t stale_udp_records = 0; // UDP records overruled by the socket owning the flow
    };

    explicit ProcessAttributor(AttributionSources sources);

    // network::Attributor
    [[nodiscard]] Attribution attribute(const firewall::ConnectionFacts& connection) override;

    [[nodiscard]] const Counters& counters() const { return counters_; }

    // How long a flow record that knew only the remote end (connected UDP on an unbound
    // socket) is trusted without a socket to confirm it.
    static constexpr std::chrono::seconds kRemoteOnlyTrust{2};

private:
    // What to do when the recorded process is gone: describe it from its exec record (the
    // sender of this very packet), or skip it (a socket's creator, who may have handed it on).
    enum class GoneOwner : std::uint8_t { Describe, Skip };
    [[nodiscard]] std::optional<firewall::ProcessFacts> from_kernel_record(
        const state::bpf::Owner& owner, GoneOwner gone);
    // An exact or wildcard-local UDP flow record, unless a socket connected to the same remote
    // since owns the flow now (nullopt: the caller goes on with the socket table).
    [[nodiscard]] std::optional<firewall::ProcessFacts> from_udp_record(
        const firewall::ConnectionFacts& connection, const state::bpf::Flow& flow,
        const state::bpf::Owner& owner);
    // The socket that owns the flow now: its connect() record when the cookies match, else
    // its creator or holder (from_socket_table()).
    [[nodiscard]] std::optional<firewall::ProcessFacts> from_current_socket(
        const firewall::ConnectionFacts& connection,
        const std::optional<state::bpf::Owner>& remote_only_hint, bool& socket_found);
    // The socket that owns the flow now, from the socket table; counts refusals.
    [[nodiscard]] Result<std::optional<state::SocketRecord>> find_socket(
        const firewall::ConnectionFacts& connection);
    [[nodiscard]] std::optional<firewall::ProcessFacts> from_socket_table(
        Result<std::optional<state::SocketRecord>> looked_up, bool& socket_found);

    AttributionSources sources_;
    long nanoseconds_per_tick_; // /proc start times are in clock ticks (USER_HZ)
    Counters counters_;
};

} // namespace pw::network
