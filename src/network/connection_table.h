#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "common/clock.h"
#include "network/connection_key.h"
#include "packet/verdict.h"

namespace pw::network {

// What the daemon remembers about a decided connection: enough to answer its later packets
// without deciding again.
struct ConnectionEntry {
    std::uint64_t id = 0;
    std::uint32_t mark = 0;
    packet::Persistence persistence = packet::Persistence::Temporary;
    Clock::TimePoint
        last_seen{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-initializers
    std::uint64_t packets = 0;
};

// The connections the daemon knows, keyed by ConnectionKey. Bounded: a connection with a
// permanent verdict is handled by the kernel from its second packet on, so it is forgotten after
// a short linger (long enough for packets that were queued before the connmark was saved);
// connections with temporary verdicts send every packet to us and live until they are idle.
// When the table is full, new connections are still decided, just not remembered.
// Runs on the event-loop thread only.
class ConnectionTable {
public:
    struct Limits {
        std::size_t max_entries = 65536;
        std::chrono::seconds permanent_linger{1};
        std::chrono::seconds tcp_idle{600};
        std::chrono::seconds udp_idle{120};
        std::chrono::seconds other_idle{60};
    };

    ConnectionTable() : ConnectionTable(Limits{}) {}
    explicit ConnectionTable(const Limits& limits) : limits_(limits) {}

    // The entry for `key`, or nullptr. The pointer is valid until the next insert or expire.
    [[nodiscard]] ConnectionEntry* find(const ConnectionKey& key);
    // Remembers a new connection; returns false (and remembers nothing) when full.
    bool insert(const ConnectionKey& key, const ConnectionEntry& entry);
    // Forgets the connection now (its next packet is a new connection); false when unknown.
    bool erase(const ConnectionKey& key) { return entries_.erase(key) > 0; }
    // Forgets connections past their linger or idle time; returns how many. After a burst it
    // also gives the memory back, so that the daemon's footprint follows its load.
    std::size_t expire(Clock::TimePoint now);

    [[nodiscard]] std::size_t size() const { return entries_.size(); }

private:
    [[nodiscard]] std::chrono::seconds lifetime(const ConnectionKey& key,
                                                const ConnectionEntry& entry) const;

    Limits limits_;
    std::unordered_map<ConnectionKey, ConnectionEntry, ConnectionKeyHash> entries_;
};

} // namespace pw::network
