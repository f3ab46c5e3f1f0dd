#pragma once

#include <cstdint>
#include <optional>

#include "firewall/connection_facts.h"

namespace pw::state {
class SocketTable;
} // namespace pw::state

namespace pw::process {
class InodePidIndex;
class ProcessRegistry;
} // namespace pw::process

namespace pw::network {

// Finds the process behind a connection, so that the decision and the event line can name it.
// A seam: SocketAttributor in the daemon, fakes in tests. Runs on the event-loop thread only.
class Attributor {
public:
    virtual ~Attributor() = default;
    // nullopt for protocols without sockets to look up (ICMP, ...). Otherwise the process, or
    // one of the special identities (kernel, unidentified outbound, unsolicited inbound).
    [[nodiscard]] virtual std::optional<firewall::ProcessFacts> attribute(
        const firewall::ConnectionFacts& connection) = 0;
};

// The seed's way, made fast: the socket that owns the flow (sock_diag, or /proc/net), its inode
// to a PID through an incrementally refreshed index, the PID to the process through the
// registry. Synchronous: one netlink round trip on a cache hit.
// Not wired into the daemon yet, because measured that way (2026-11-22, run_bench.py) it costs
// ~80 µs of CPU per new connection and halves the connection rate: every new socket is an
// index miss, and each miss lists /proc. TODO(portwarden): consult the eBPF socket-owner
// records first (cookie/flow -> PID in ~2 µs), keep this path for what they cannot see, and
// retry with a bounded wait for sockets not visible yet (issue 3).
class SocketAttributor final : public Attributor {
public:
    struct Counters {
        std::uint64_t lookups = 0;
        std::uint64_t attributed = 0;    // to a process
        std::uint64_t no_socket = 0;     // unidentified outbound / unsolicited inbound
        std::uint64_t no_process = 0;    // socket found, its owner not (gone, or hidden)
        std::uint64_t socket_errors = 0; // the socket table refused to answer
    };

    // All references are borrowed and must outlive the attributor.
    SocketAttributor(state::SocketTable& sockets, process::InodePidIndex& owners,
                     process::ProcessRegistry& processes)
        : sockets_(sockets), owners_(owners), processes_(processes) {}

    // network::Attributor
    [[nodiscard]] std::optional<firewall::ProcessFacts> attribute(
        const firewall::ConnectionFacts& connection) override;

    [[nodiscard]] const Counters& counters() const { return counters_; }

private:
    state::SocketTable& sockets_;
    process::InodePidIndex& owners_;
    process::ProcessRegistry& processes_;
    Counters counters_;
};

} // namespace pw::network
