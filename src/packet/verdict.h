#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pw::packet {

// What should happen to a connection. The kernel learns it as NF_ACCEPT + a packet mark; the
// filter chain C17 then acts on the mark (see docs/architecture.md and the seed design).
enum class Verdict : std::uint8_t {
    Accept,
    Block, // REJECT with icmp-host-prohibited / icmp6-adm-prohibited
    Drop,
    RerouteToNameserver, // nat DNAT to 127.0.0.17:53 / [::1]:53
    RerouteToTunnel,     // nat DNAT to 127.0.0.17:1117
};

// Whether the kernel should remember the verdict for the whole connection (connmark), so that
// later packets never reach userspace, or ask again for the next packet.
enum class Persistence : std::uint8_t { Temporary, Permanent };

// The mark contract of the seed design. Do not change these numbers: they are what the
// iptables rules match on, also those left behind by an older version after a crash.
namespace mark {
inline constexpr std::uint32_t kUndecided = 0;
inline constexpr std::uint32_t kAccept = 1700;
inline constexpr std::uint32_t kBlock = 1701;
inline constexpr std::uint32_t kDrop = 1702;
inline constexpr std::uint32_t kPermanentAccept = 1710;
inline constexpr std::uint32_t kPermanentBlock = 1711;
inline constexpr std::uint32_t kPermanentDrop = 1712;
inline constexpr std::uint32_t kRerouteToTunnel = 1717;
inline constexpr std::uint32_t kRerouteToNameserver = 1799;
} // namespace mark

// The mark for a verdict. Reroutes have one mark each: they are always remembered by the kernel.
[[nodiscard]] constexpr std::uint32_t mark_for(Verdict verdict, Persistence persistence) {
    const bool permanent = persistence == Persistence::Permanent;
    switch (verdict) {
        case Verdict::Accept:
            return permanent ? mark::kPermanentAccept : mark::kAccept;
        case Verdict::Block:
            return permanent ? mark::kPermanentBlock : mark::kBlock;
        case Verdict::Drop:
            return permanent ? mark::kPermanentDrop : mark::kDrop;
        case Verdict::RerouteToNameserver:
            return mark::kRerouteToNameserver;
        case Verdict::RerouteToTunnel:
            return mark::kRerouteToTunnel;
    }
    return mark::kPermanentDrop; // unreachable with a valid enum; fail closed
}

struct MarkMeaning {
    Verdict verdict;
    Persistence persistence;
};

// The inverse of mark_for(); nullopt for marks that are not ours (0 included).
[[nodiscard]] std::optional<MarkMeaning> meaning_of_mark(std::uint32_t mark);

// "accept", "block", "drop", "reroute-nameserver", "reroute-tunnel".
[[nodiscard]] std::string_view verdict_name(Verdict verdict);

} // namespace pw::packet
