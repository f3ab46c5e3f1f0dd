#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "interception/conntrack_entry.h"
#include "interception/conntrack_netlink.h"
#include "interception/nfqueue.h"

namespace pw::interception {

// Deletes the conntrack entries (IPv4 and IPv6) whose mark is one of `marks`, so that every
// such flow is queued and decided afresh. Used at start (verdicts of a previous run must not
// outlive it) and at stop. Returns how many entries were deleted. Blocking; start/stop only.
[[nodiscard]] Result<std::size_t> delete_conntrack_entries_with_marks(
    std::span<const std::uint32_t> marks);

// The kernel's conntrack table (IPv4 and IPv6) through one ctnetlink socket that the daemon
// opens once: re-evaluation changes the mark of a decided connection's entry, or deletes it.
// Each call is a blocking request and acknowledgement (microseconds; they are rare: a prompt's
// answer, a settings change). Runs on the event-loop thread only.
//
// A connection is named as the packet processor keys it, from local to remote, and no
// direction is needed: the kernel finds an entry by either of its two tuples, and the tuple
// from local to remote is the original tuple of an outbound connection and the reply tuple of
// an inbound one. For inbound connections that is also the tuple that still holds when a local
// DNAT or REDIRECT rewrote the destination before the INPUT queue saw the packet (the original
// tuple, remote to local, keeps the destination from before NAT and would miss them).
//
// Protocols without ports (ICMP, ...): the connection is every entry of that protocol between
// the two addresses (whatever the ICMP identifier), found by a dump of that family's table.
class ConntrackTable {
public:
    [[nodiscard]] static Result<ConntrackTable> open();

    ConntrackTable(ConntrackTable&&) noexcept = default;
    ConntrackTable& operator=(ConntrackTable&&) noexcept = default;
    ConntrackTable(const ConntrackTable&) = delete;
    ConntrackTable& operator=(const ConntrackTable&) = delete;
    ~ConntrackTable() = default;

    // Sets the mark of the connection's entry; the next packet of either direction restores it
    // (mangle C170/C171) and the filter chain C17 acts on it. Returns how many entries changed:
    // 0 when the connection has no entry, which is a normal answer (it ended; or it was never
    // confirmed: a packet that its first verdict blocked creates no entry).
    [[nodiscard]] Result<std::size_t> update_mark(const FlowTuple& flow, std::uint32_t mark);

    // Deletes the connection's entry: its next packet creates a new one (mark 0) and is queued.
    // Returns how many entries were deleted; 0 when there was none.
    [[nodiscard]] Result<std::size_t> delete_entry(const FlowTuple& flow);

    // The connection's entries as the kernel has them now (none, one, or for protocols without
    // ports any number).
    [[nodiscard]] Result<std::vector<ConntrackEntry>> find(const FlowTuple& flow);

private:
    enum class Request : std::uint8_t { Get, UpdateMark, Delete };
    using MessageHandler = std::function<void(const nlmsghdr*)>;

    ConntrackTable(MnlSocket socket, std::uint32_t port_id);

    // "update conntrack mark of " ...: how error messages begin.
    [[nodiscard]] static std::string_view action_text(Request request);

    // Runs `request` on every entry that belongs to the flow; returns how many it hit.
    [[nodiscard]] Result<std::size_t> apply(Request request, const FlowTuple& flow,
                                            std::uint32_t mark, std::vector<ConntrackEntry>* found);
    // One request for the entry `target` names (its tuple attributes; `mark` for UpdateMark).
    // Returns 1, or 0 when there is no such entry; entries the kernel sends back go to `found`.
    // `flow` names the connection in error messages.
    [[nodiscard]] Result<std::size_t> request(Request request, nf_conntrack& target,
                                              std::uint32_t mark, const FlowTuple& flow,
                                              std::vector<ConntrackEntry>* found);
    // Every entry of the flow's protocol between its two addresses (a dump of that family).
    [[nodiscard]] Result<std::vector<NfConntrack>> dump_matching(const FlowTuple& flow);
    // Sends the message in request_buffer_ and reads until the kernel's acknowledgement (or the
    // end of a dump), handing the other messages of this request to `on_message`. Returns the
    // errno value the kernel answered with (0: done).
    [[nodiscard]] Result<int> round_trip(const MessageHandler& on_message);

    MnlSocket socket_;
    std::uint32_t port_id_ = 0;
    std::uint32_t sequence_ = 0;
    std::vector<char> request_buffer_;
    std::vector<char> receive_buffer_;
};

} // namespace pw::interception
