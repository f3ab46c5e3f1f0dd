#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/result.h"
#include "interception/conntrack_entry.h"
#include "interception/nfqueue.h"

namespace pw::interception {

// Reports every conntrack entry the kernel destroys: a flow that ended (closed, timed out) or
// was deleted, with its tuples, its mark and, while accounting is on
// (net.netfilter.nf_conntrack_acct), its packets and bytes per direction. Subscribed to the
// ctnetlink group NFNLGRP_CONNTRACK_DESTROY on a non-blocking socket; the daemon registers
// fd() with its event loop and calls drain() when it is readable. Runs on the event-loop
// thread only.
//
// The kernel sends these events only for entries it created while someone listened (with
// net.netfilter.nf_conntrack_events = 2, the default of recent kernels): open the listener
// before the queues. When its socket buffer overflows the kernel drops events; that is counted
// (Counters::overflows), not an error, and the listener goes on.
class ConntrackDestroyListener {
public:
    struct Counters {
        std::uint64_t events = 0;    // ended entries reported
        std::uint64_t overflows = 0; // ENOBUFS: the kernel dropped events (how many is unknown)
        std::uint64_t ignored = 0;   // messages that were not an IPv4/IPv6 destroy event
    };

    using Handler = std::function<void(const ConntrackEntry&)>;

    // What the kernel may buffer for us between two drains. Root may exceed net.core.rmem_max.
    static constexpr int kDefaultReceiveBuffer = 4 * 1024 * 1024;

    [[nodiscard]] static Result<ConntrackDestroyListener> open(
        int receive_buffer_bytes = kDefaultReceiveBuffer);

    ConntrackDestroyListener(ConntrackDestroyListener&&) noexcept = default;
    ConntrackDestroyListener& operator=(ConntrackDestroyListener&&) noexcept = default;
    ConntrackDestroyListener(const ConntrackDestroyListener&) = delete;
    ConntrackDestroyListener& operator=(const ConntrackDestroyListener&) = delete;
    ~ConntrackDestroyListener() = default;

    [[nodiscard]] int fd() const;
    [[nodiscard]] const Counters& counters() const { return counters_; }

    // Reads what is waiting on the socket, without blocking, and hands each ended entry to
    // `handler`. Stops after a bounded number of reads so that a flood of ends does not starve
    // the queues; the socket then stays readable and the event loop calls again. Returns the
    // number of entries reported; an error only when the socket itself fails.
    [[nodiscard]] Result<std::size_t> drain(const Handler& handler);

private:
    explicit ConntrackDestroyListener(MnlSocket socket);

    MnlSocket socket_;
    std::vector<char> receive_buffer_;
    Counters counters_;
};

} // namespace pw::interception
