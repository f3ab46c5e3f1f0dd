#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>

#include "common/ip_address.h"
#include "common/result.h"
#include "state/socket_table.h"

namespace pw::state {

// One line of /proc/net/{tcp,tcp6,udp,udp6}, as values. IPv4-mapped addresses in tcp6/udp6
// are folded to IPv4 (IpAddress does that), so a dual-stack socket compares equal to the IPv4
// flow it carries.
struct ProcNetEntry {
    IpAddress local_address;
    std::uint16_t local_port = 0;
    IpAddress remote_address;
    std::uint16_t remote_port = 0;
    std::uint8_t state = 0; // TCP_* numbering (0x0A listen); UDP: 0x01 connected, 0x07 not
    std::uint32_t uid = 0;
    std::uint64_t inode = 0; // 0: no process owns the socket (TIME_WAIT, accept queue)

    friend bool operator==(const ProcNetEntry&, const ProcNetEntry&) = default;
};

// Parses one socket line (not the header) of a /proc/net table. `family` says which file it
// came from: V4 for tcp/udp (8 hex digits per address), V6 for tcp6/udp6 (32). The kernel
// prints each 32-bit word of an address as a host-order integer in hex (%08X), so on a
// little-endian machine 127.0.0.1 reads 0100007F and ::1 reads
// 00000000000000000000000001000000.
[[nodiscard]] Result<ProcNetEntry> parse_proc_net_line(std::string_view line, IpFamily family);

// The seed's method, kept as fallback and cross-check of SockDiagSocketTable: reads
// <proc_root>/net/{tcp,tcp6,udp,udp6} on every lookup (cost grows with the number of sockets)
// and applies the same rules: exact 4-tuple first; then, for inbound TCP, the listener on the
// local port (specific address before wildcard); then, for UDP, the unconnected socket bound
// to the local port. Socket cookies are not in /proc, so `cookie` is always 0. `proc_root` is
// "/proc" in the daemon (the caller's network namespace) and a temporary directory in tests.
class ProcNetSocketTable final : public SocketTable {
public:
    explicit ProcNetSocketTable(std::filesystem::path proc_root)
        : proc_root_(std::move(proc_root)) {}

    // state::SocketTable
    [[nodiscard]] Result<std::optional<SocketRecord>> find(const SocketQuery& query) override;

private:
    std::filesystem::path proc_root_;
};

} // namespace pw::state
