// Micro benchmark of the userspace part of a verdict: parse, connection table, decide().
// The system benchmark (run_bench.py) measures the whole path through the kernel.

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include "common/clock.h"
#include "firewall/endpoint_rule.h"
#include "network/event_sink.h"
#include "network/packet_processor.h"
#include "packet/packet_parser.h"
#include "profile/policy_provider.h"

namespace {

// A TCP SYN from 10.0.0.1:<port> to 10.0.0.2:443, as the kernel queues it.
std::vector<std::uint8_t> syn_packet(std::uint16_t source_port) {
    std::vector<std::uint8_t> packet(40, 0);
    packet[0] = 0x45;
    packet[3] = 40;
    packet[8] = 64;
    packet[9] = 6;
    constexpr std::array<std::uint8_t, 8> kAddresses = {10, 0, 0, 1, 10, 0, 0, 2};
    std::ranges::copy(kAddresses, packet.begin() + 12);
    packet[20] = static_cast<std::uint8_t>(source_port >> 8U);
    packet[21] = static_cast<std::uint8_t>(source_port & 0xFFU);
    packet[22] = 443 >> 8;
    packet[23] = 443 & 0xFF;
    packet[32] = 5 << 4;
    packet[33] = 0x02;
    return packet;
}

void parse_syn(benchmark::State& state) {
    const auto packet = syn_packet(40000);
    for (auto _ : state) { // NOLINT(clang-analyzer-deadcode.DeadStores): the gbench idiom
        benchmark::DoNotOptimize(pw::packet::parse_packet(packet));
    }
}
BENCHMARK(parse_syn);

// Every packet is a new connection (the worst case: nothing is known yet). `range(0)` rules
// that do not match stand before the default action.
void new_connection(benchmark::State& state) {
    pw::firewall::FilterSettings settings;
    pw::firewall::RuleList rules;
    for (std::int64_t index = 0; index < state.range(0); ++index) {
        rules.push_back(*pw::firewall::parse_endpoint_rule(
            "- 192.168." + std::to_string(index % 256) + ".0/24 tcp/" + std::to_string(1 + index)));
    }
    settings.endpoints.global = std::make_shared<const pw::firewall::RuleList>(std::move(rules));
    pw::network::ConnectionTable table;
    pw::network::NullEventSink events;
    pw::SteadyClock clock;
    pw::profile::FixedPolicyProvider policies(settings);
    pw::network::PacketProcessor processor(policies, table, events, clock);
    std::vector<std::vector<std::uint8_t>> packets;
    for (std::uint32_t port = 1024; port < 1024 + 8192; ++port) {
        packets.push_back(syn_packet(static_cast<std::uint16_t>(port)));
    }
    std::size_t next = 0;
    for (auto _ : state) { // NOLINT(clang-analyzer-deadcode.DeadStores): the gbench idiom
        benchmark::DoNotOptimize(processor.handle(pw::packet::Direction::Outbound, packets[next]));
        if (++next == packets.size()) {
            next = 0;
            state.PauseTiming();
            table = pw::network::ConnectionTable();
            state.ResumeTiming();
        }
    }
}
BENCHMARK(new_connection)->Arg(0)->Arg(10)->Arg(100);

} // namespace

BENCHMARK_MAIN();
