// libFuzzer target: parse_config() on arbitrary bytes, then decide() and decide_query() with
// what it accepted.
// The config file is written by hand; any text must give a Config or an error message, never a
// crash, an escaped exception or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config_file.h"
#include "firewall/connection_facts.h"
#include "firewall/decide.h"
#include "packet/packet_info.h"

namespace {

pw::firewall::ConnectionFacts sample_connection() {
    pw::firewall::ConnectionFacts facts;
    facts.direction = pw::packet::Direction::Outbound;
    facts.protocol = pw::packet::protocol::kTcp;
    if (auto local = pw::IpAddress::parse("192.168.1.10")) {
        facts.local_address = *local;
    }
    facts.local_port = 40000;
    if (auto remote = pw::IpAddress::parse("10.1.2.3")) {
        facts.remote_address = *remote;
    }
    facts.remote_port = 22;
    return facts;
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const pw::firewall::ConnectionFacts kOutbound = sample_connection();
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): libFuzzer hands out bytes.
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto config = pw::config::parse_config(text, "fuzz.json");
    if (!config) {
        // Every error names the source, so that a user knows which file to fix.
        if (!config.error().what.starts_with("fuzz.json")) {
            __builtin_trap();
        }
        return 0;
    }
    const pw::firewall::Decision outbound = pw::firewall::decide(config->filter, kOutbound);
    pw::firewall::ConnectionFacts inbound = kOutbound;
    inbound.direction = pw::packet::Direction::Inbound;
    const pw::firewall::Decision inbound_decision = pw::firewall::decide(config->filter, inbound);
    // decide() must always explain itself, and never reject an inbound connection loudly.
    if (outbound.reason.empty() || inbound_decision.verdict == pw::packet::Verdict::Block) {
        __builtin_trap();
    }
    // The same settings at DNS time, and for a query to and around the configured nameserver.
    if (pw::firewall::decide_query(config->filter, "www.example.com").reason.empty()) {
        __builtin_trap();
    }
    pw::firewall::ConnectionFacts query = kOutbound;
    query.protocol = pw::packet::protocol::kUdp;
    query.remote_port = 53;
    const pw::firewall::Decision astray = pw::firewall::decide(config->filter, query);
    for (const pw::firewall::IpEndpoint& endpoint : config->filter.dns.nameserver_endpoints) {
        query.remote_address = endpoint.address;
        query.remote_port = endpoint.port;
        query.ip_family = endpoint.address.family();
        // A query to our own nameserver is always accepted.
        if (pw::firewall::decide(config->filter, query).verdict != pw::packet::Verdict::Accept) {
            __builtin_trap();
        }
    }
    if (astray.reason.empty()) {
        __builtin_trap();
    }
    return 0;
}
