#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/ip_address.h"
#include "firewall/connection_facts.h"
#include "firewall/decide.h"
#include "profile/prompts.h"

namespace pw::network {

// A query our nameserver answered. Views into the nameserver's data: valid during the call.
struct DnsQueryEvent {
    std::string_view protocol; // "udp", "tcp"
    IpAddress client_address;
    std::uint16_t client_port = 0;
    std::string_view name;
    std::uint16_t type = 0;
    std::string_view rcode; // "NOERROR", "NXDOMAIN", "SERVFAIL", ...
    std::span<const IpAddress> answers;
    std::span<const std::string> cnames;
    // "cache", "upstream", "blocked", "canary", "refused", "error" (every upstream failed).
    std::string_view source;
    std::string_view upstream; // which upstream answered, for "cache" and "upstream"
    std::string_view reason;   // why it was blocked, or what the upstreams did
    std::string_view scope;    // where its addresses were remembered: "" is the global scope
    const firewall::ProcessFacts* process = nullptr;
    const firewall::ProfileLabel* profile = nullptr; // the asker's profile, when known
};

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
    // Our nameserver answered a query.
    virtual void dns_query(const DnsQueryEvent& query) = 0;
    // A prompt opened, was answered (`answer` set) or expired.
    virtual void prompt(profile::PromptEvent event, const profile::Prompt& prompt,
                        const profile::PromptAnswer* answer) = 0;
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
    void dns_query(const DnsQueryEvent& /*query*/) override {}
    void prompt(profile::PromptEvent /*event*/, const profile::Prompt& /*prompt*/,
                const profile::PromptAnswer* /*answer*/) override {}
    void flush() override {}
};

} // namespace pw::network
