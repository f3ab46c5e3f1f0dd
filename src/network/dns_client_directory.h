#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "common/clock.h"
#include "common/ip_address.h"
#include "firewall/connection_facts.h"

namespace pw::network {

// Which process sent the DNS flows the firewall let through to our nameserver (straight to it,
// or redirected there with mark 1799), by the client's transport protocol, address and port.
// The packet processor records the process when it decides the flow's first packet; the
// nameserver finds it here when the query arrives. This is both cheaper than a socket lookup
// per query and the only way to name the sender of a redirected query: its socket's remote end
// is the nameserver it meant to ask, which our side never sees. Bounded; an entry lives for
// kIdleLifetime after its last use, like the kernel's conntrack entry for an answered UDP flow.
// Runs on the event-loop thread only.
class DnsClientDirectory {
public:
    static constexpr std::chrono::seconds kIdleLifetime{120};
    static constexpr std::size_t kMaxEntries = 16384;

    void record(std::uint8_t protocol, const IpAddress& address, std::uint16_t port,
                std::shared_ptr<const firewall::ProcessFacts> process, Clock::TimePoint now);

    // The process of the flow, or nullptr; a hit keeps the entry alive.
    [[nodiscard]] std::shared_ptr<const firewall::ProcessFacts> find(std::uint8_t protocol,
                                                                     const IpAddress& address,
                                                                     std::uint16_t port,
                                                                     Clock::TimePoint now);

    std::size_t expire(Clock::TimePoint now);
    [[nodiscard]] std::size_t size() const { return entries_.size(); }

private:
    struct Key {
        std::uint8_t protocol = 0;
        IpAddress address;
        std::uint16_t port = 0;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& key) const noexcept {
            return key.address.hash() ^ (std::size_t{key.port} << 8U) ^ key.protocol;
        }
    };
    struct Entry {
        std::shared_ptr<const firewall::ProcessFacts> process;
        Clock::TimePoint last_used;
    };
    std::unordered_map<Key, Entry, KeyHash> entries_;
};

} // namespace pw::network
