#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "dns/ip_domain_memory.h"
#include "firewall/settings.h"
#include "network/attributor.h"
#include "network/connection_table.h"
#include "network/dns_client_directory.h"
#include "network/event_sink.h"
#include "packet/packet_info.h"
#include "state/retry_policy.h"

namespace pw::network {

// Names a queued packet whose verdict is given later: which queue it came from (the daemon's
// index) and the kernel's packet id in it.
struct PacketRef {
    std::uint32_t queue = 0;
    std::uint32_t packet_id = 0;
    friend bool operator==(const PacketRef&, const PacketRef&) = default;
};

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
        std::uint64_t deferred = 0;    // new connections held for another attribution attempt
        std::uint64_t retries = 0;     // attribution attempts after the first
        std::uint64_t retry_found = 0; // deferred connections a retry attributed
        std::uint64_t retry_gave_up = 0;
        std::uint64_t pending_full = 0; // decided at once: too many connections were waiting
    };

    // Receives the verdicts of packets that handle() deferred.
    using DeferredVerdict = std::function<void(PacketRef packet, std::uint32_t mark)>;

    // All references are borrowed and must outlive the processor. Without an attributor,
    // connections carry no process.
    PacketProcessor(const firewall::FilterSettings& settings, ConnectionTable& table,
                    EventSink& events, const Clock& clock, Attributor* attributor = nullptr,
                    state::RetryPolicy retry_policy = {})
        : settings_(settings),
          table_(table),
          events_(events),
          clock_(clock),
          attributor_(attributor),
          retry_policy_(retry_policy) {}

    // With the nameserver (issue 4): outbound connections take their domain from `memory` (the
    // process's scope, then the global one), and the processes behind DNS flows that go to our
    // nameserver (directly or redirected) are recorded in `clients` for the nameserver to find.
    void enable_dns(DnsClientDirectory& clients, const dns::IpDomainMemory& memory) {
        dns_clients_ = &clients;
        domain_memory_ = &memory;
    }

    // Returns the mark for this packet's NF_ACCEPT verdict, or nullopt when the decision waits
    // for another attribution attempt (a socket not visible yet): the verdict then goes to the
    // DeferredVerdict of run_due_retries(), together with those of the connection's later
    // packets. Malformed packets get the temporary drop mark: counted, dropped, never
    // remembered.
    [[nodiscard]] std::optional<std::uint32_t> handle(packet::Direction direction,
                                                      std::span<const std::uint8_t> bytes,
                                                      PacketRef ref = {});

    // When run_due_retries() has work next; nullopt when nothing waits.
    [[nodiscard]] std::optional<Clock::TimePoint> next_retry_at() const;

    // Looks up again every connection whose retry is due, decides those found or out of time
    // and hands their packets' verdicts to `verdict`. The daemon calls it from a timer armed at
    // next_retry_at().
    void run_due_retries(const DeferredVerdict& verdict);

    // Decides every waiting connection now with what is known (at shutdown).
    void decide_all_pending(const DeferredVerdict& verdict);

    [[nodiscard]] std::size_t pending_connections() const { return pending_.size(); }

    // Forgets connections past their lifetime; the daemon calls this from a timer.
    std::size_t expire_connections() { return table_.expire(clock_.now()); }

    [[nodiscard]] const Counters& counters() const { return counters_; }

    // Connections held at once at most; beyond it, new ones are decided without waiting.
    static constexpr std::size_t kMaxPendingConnections = 4096;

private:
    struct PendingConnection {
        std::uint64_t id = 0;
        firewall::ConnectionFacts facts;
        Attribution fallback; // the answer to use when the retries run out
        int attempts = 1;
        Clock::TimePoint first_attempt;
        Clock::TimePoint next_attempt;
        std::vector<PacketRef> packets;
    };

    std::optional<std::uint32_t> start_new_connection(const packet::PacketInfo& packet,
                                                      packet::Direction direction,
                                                      const ConnectionKey& key, PacketRef ref,
                                                      Clock::TimePoint now);
    void add_domain(firewall::ConnectionFacts& facts, Clock::TimePoint now) const;
    void remember_dns_client(const firewall::ConnectionFacts& facts,
                             const firewall::Decision& decision, Clock::TimePoint now);
    std::uint32_t decide(std::uint64_t id, firewall::ConnectionFacts& facts,
                         const ConnectionKey& key, Clock::TimePoint now);

    const firewall::FilterSettings& settings_;
    ConnectionTable& table_;
    EventSink& events_;
    const Clock& clock_;
    Attributor* attributor_;
    DnsClientDirectory* dns_clients_ = nullptr;
    const dns::IpDomainMemory* domain_memory_ = nullptr;
    state::RetryPolicy retry_policy_;
    std::unordered_map<ConnectionKey, PendingConnection, ConnectionKeyHash> pending_;
    Counters counters_;
    std::uint64_t next_connection_id_ = 1;
};

} // namespace pw::network
