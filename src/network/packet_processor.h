#pragma once

#include <cstdint>
#include <span>

#include "common/clock.h"
#include "firewall/settings.h"
#include "network/attributor.h"
#include "network/connection_table.h"
#include "network/event_sink.h"
#include "packet/packet_info.h"

namespace pw::network {

// The life of a packet in userspace, minus the kernel I/O: parse, find or create the connection,
// decide, and answer with a mark. The daemon calls handle() for every queued packet; tests feed
// it packets they built. Runs on the event-loop thread only.
class PacketProcessor {
public:
    struct Counters {
        std::uint64_t packets = 0;     // every packet handed to handle()
        std::uint64_t malformed = 0;   // could not be parsed: dropped, never remembered
        std::uint64_t connections = 0; // new connections decided
        std::uint64_t known = 0;       // packets of connections already decided
        std::uint64_t table_full = 0;  // decided but not remembered
    };

    // All references are borrowed and must outlive the processor. Without an attributor,
    // connections carry no process.
    PacketProcessor(const firewall::FilterSettings& settings, ConnectionTable& table,
                    EventSink& events, const Clock& clock, Attributor* attributor = nullptr)
        : settings_(settings),
          table_(table),
          events_(events),
          clock_(clock),
          attributor_(attributor) {}

    // Returns the mark for this packet's NF_ACCEPT verdict. Malformed packets get the
    // temporary drop mark: they are counted and dropped, never remembered.
    [[nodiscard]] std::uint32_t handle(packet::Direction direction,
                                       std::span<const std::uint8_t> bytes);

    // Forgets connections past their lifetime; the daemon calls this from a timer.
    std::size_t expire_connections() { return table_.expire(clock_.now()); }

    [[nodiscard]] const Counters& counters() const { return counters_; }

private:
    std::uint32_t decide_new_connection(const packet::PacketInfo& packet,
                                        packet::Direction direction, const ConnectionKey& key,
                                        Clock::TimePoint now);

    const firewall::FilterSettings& settings_;
    ConnectionTable& table_;
    EventSink& events_;
    const Clock& clock_;
    Attributor* attributor_;
    Counters counters_;
    std::uint64_t next_connection_id_ = 1;
};

} // namespace pw::network
