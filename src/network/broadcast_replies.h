#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/ip_address.h"
#include "firewall/connection_facts.h"
#include "network/connection_key.h"

namespace pw::network {

// The discovery broadcasts and multicasts that processes sent (SSDP to 239.255.255.250, mDNS,
// NetBIOS and DHCP-style broadcasts to 255.255.255.255, WS-Discovery ...), remembered so that
// the devices' answers are recognised: each device answers from its own unicast address, which
// conntrack does not see as a reply to the multicast flow, so the answer arrives as a new
// inbound connection that `filter/blockInbound` would drop. The packet path fills
// ConnectionFacts::answers_broadcast_to from here (decide() step "broadcast reply").
//
// An answer counts as one when it reaches the same local address and port, over the same
// protocol, as a permitted outbound broadcast or multicast of the same process (PID and start
// time: a port reused by another program is not an answer to it). A sent flow is remembered
// while conntrack keeps it (its later sends never reach the queue) and `kAnswerWindow` after it
// ended. Bounded: past `capacity` flows the oldest one is forgotten (counted). Pure: time is
// passed in. Runs on the event-loop thread only.
class BroadcastReplies {
public:
    struct Counters {
        std::uint64_t remembered = 0; // outbound broadcast and multicast flows
        std::uint64_t answers = 0;    // inbound connections recognised as answers
        std::uint64_t evicted = 0;    // flows forgotten to make room
    };

    // How long after its flow ended answers to a broadcast are still recognised: SSDP answers
    // within its MX delay (1-5 s), mDNS within a second; a slow device gets a generous margin.
    static constexpr std::chrono::seconds kAnswerWindow{30};
    static constexpr std::size_t kDefaultCapacity = 1024;

    explicit BroadcastReplies(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

    // An outbound connection was permitted: remembered when it is a UDP flow of an ordinary
    // process to a broadcast or multicast address (everything else is ignored).
    void sent(const ConnectionKey& key, const firewall::ConnectionFacts& outbound,
              Clock::TimePoint now);

    // The flow under `key` ended (conntrack destroy event); its answers are recognised for
    // kAnswerWindow more.
    void ended(const ConnectionKey& key, Clock::TimePoint now);

    // For an inbound connection: where the broadcast or multicast it answers went, or nullopt.
    // When several match, the most recently sent one.
    [[nodiscard]] std::optional<IpAddress> answered(const firewall::ConnectionFacts& inbound,
                                                    Clock::TimePoint now);

    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] const Counters& counters() const { return counters_; }

private:
    struct Flow {
        ConnectionKey key; // the outbound flow: local end, and where it went (remote)
        std::int64_t pid = -1;
        std::uint64_t start_time = 0;
        Clock::TimePoint sent_at;
        std::optional<Clock::TimePoint> forget_at; // set when the flow ended
    };
    // Flows by their local end's protocol and port: an inbound connection looks at the flows of
    // its own port only. Few flows share a port (mDNS's 5353 among several programs).
    using Bucket = std::vector<Flow>;

    [[nodiscard]] static std::uint32_t bucket_of(std::uint8_t protocol, std::uint16_t port) {
        return (std::uint32_t{protocol} << 16U) | port;
    }
    // Drops the flows past their window; when none was, the oldest flow of all.
    void make_room(Clock::TimePoint now);

    std::size_t capacity_;
    std::size_t size_ = 0;
    std::unordered_map<std::uint32_t, Bucket> buckets_;
    Counters counters_;
};

} // namespace pw::network
