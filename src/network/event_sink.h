#pragma once

#include <cstdint>
#include <string_view>

#include "firewall/connection_facts.h"
#include "firewall/decide.h"

namespace pw::network {

// Where connection events go: the `--events` JSON-lines stream now, the API's subscribers and
// the history store later. Runs on the event-loop thread only.
class EventSink {
public:
    virtual ~EventSink() = default;
    // A connection was seen for the first time.
    virtual void connection_new(std::uint64_t id, const firewall::ConnectionFacts& connection) = 0;
    // A connection was decided; `mark` is what the kernel was told.
    virtual void connection_decided(std::uint64_t id, const firewall::ConnectionFacts& connection,
                                    const firewall::Decision& decision, std::uint32_t mark) = 0;
    // The end of a batch of packets: a good moment to write buffered events out.
    virtual void flush() = 0;
};

// For when nobody listens: costs one virtual call per event.
class NullEventSink final : public EventSink {
public:
    // network::EventSink
    void connection_new(std::uint64_t /*id*/,
                        const firewall::ConnectionFacts& /*connection*/) override {}
    void connection_decided(std::uint64_t /*id*/, const firewall::ConnectionFacts& /*connection*/,
                            const firewall::Decision& /*decision*/,
                            std::uint32_t /*mark*/) override {}
    void flush() override {}
};

} // namespace pw::network
