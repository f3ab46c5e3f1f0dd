// Memory and add() cost of the registry of live connections (issue 9, last memory item), with a
// realistic mix: a few dozen processes, a few hundred domains, a handful of profiles and
// reasons, thousands of connections. `build/release/bench/pw_micro_bench
// --benchmark_filter=live_` reports bytes_per_connection (the heap that 50,000 connections
// take, from mallinfo2) and the ns of one add().

#include <malloc.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "common/clock.h"
#include "firewall/connection_facts.h"
#include "network/connection_key.h"
#include "network/live_connections.h"
#include "packet/verdict.h"

namespace {

using pw::network::ConnectionKey;
using pw::network::LiveConnections;

constexpr std::size_t kProcesses = 40;
constexpr std::size_t kDomains = 300;
constexpr std::size_t kProfiles = 6;
constexpr std::size_t kReasons = 8;
constexpr std::size_t kConnections = 50000;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;

// What the packet path would hand to add(): the facts of one decided connection.
struct Decided {
    ConnectionKey key;
    pw::firewall::ConnectionFacts facts;
    std::string profile_id;
    std::string reason;
};

pw::firewall::ProcessFacts process(std::size_t index) {
    pw::firewall::ProcessFacts facts;
    facts.pid = static_cast<std::int64_t>(1000 + index);
    facts.start_time = 500000 + index;
    facts.parent_pid = 1;
    facts.executable = "/usr/lib/application-" + std::to_string(index) + "/bin/application";
    facts.identity = facts.executable;
    facts.uid = 1000;
    facts.user = "alice";
    if (index % 4 == 0) {
        facts.tags = {"flatpak", "org.example.App" + std::to_string(index)};
    }
    facts.source = "socket-table";
    return facts;
}

pw::firewall::DomainFacts domain(std::size_t index) {
    pw::firewall::DomainFacts facts;
    facts.domain = "service-" + std::to_string(index) + ".cdn.example.com";
    if (index % 3 == 0) {
        facts.cname_chain = {"edge-" + std::to_string(index) + ".provider.example.net"};
    }
    return facts;
}

// Connection `index` of the mix: processes, domains, profiles and reasons repeat, keys do not.
// Every fifth connection is UDP, every tenth IPv6, every tenth without a domain. `set` gives
// a second set of keys (other local ports) with the same mix.
Decided decided(std::size_t index, std::size_t set) {
    const std::size_t process_index = (index * 13) % kProcesses;
    const std::size_t domain_index = (index * 7) % kDomains;
    const bool v6 = index % 10 == 3;
    Decided connection;
    connection.key.protocol = index % 5 == 0 ? kUdp : kTcp;
    connection.key.local_address = *pw::IpAddress::parse(v6 ? "fd00::1" : "10.0.0.1");
    connection.key.local_port = static_cast<std::uint16_t>(1024 + index % 30000 + set * 30000);
    connection.key.remote_address =
        *pw::IpAddress::parse(v6 ? "2001:db8::" + std::to_string(domain_index + 1)
                                 : "192.0." + std::to_string(domain_index / 200) + "." +
                                       std::to_string(domain_index % 200 + 1));
    connection.key.remote_port = index % 5 == 0 ? 53 : 443;
    connection.key.remote_port =
        static_cast<std::uint16_t>(connection.key.remote_port + index / 30000);
    pw::firewall::ConnectionFacts& facts = connection.facts;
    facts.direction = pw::packet::Direction::Outbound;
    facts.ip_family = connection.key.local_address.family();
    facts.protocol = connection.key.protocol;
    facts.local_address = connection.key.local_address;
    facts.local_port = connection.key.local_port;
    facts.remote_address = connection.key.remote_address;
    facts.remote_port = connection.key.remote_port;
    facts.process = process(process_index);
    if (index % 10 != 7) {
        facts.domain = domain(domain_index);
    }
    connection.profile_id = "org.example.profile-" + std::to_string(process_index % kProfiles);
    facts.profile = {.id = connection.profile_id,
                     .name = "Profile " + std::to_string(process_index % kProfiles)};
    connection.reason = "rule '+ *.cdn.example.com tcp/443' #" + std::to_string(index % kReasons) +
                        " (app, profile '" + facts.profile.name + "')";
    return connection;
}

std::vector<Decided> mix(std::size_t count, std::size_t set) {
    std::vector<Decided> connections;
    connections.reserve(count);
    for (std::size_t index = 0; index < count; ++index) {
        connections.push_back(decided(index, set));
    }
    return connections;
}

// Registers `connection` as the packet processor's finish() does.
void add(LiveConnections& live, const Decided& connection, std::uint64_t id,
         pw::Clock::TimePoint now) {
    live.add(connection.key, connection.facts,
             pw::network::NewLiveConnection{.id = id,
                                            .profile_id = connection.profile_id,
                                            .mark = pw::packet::mark::kPermanentAccept,
                                            .persistence = pw::packet::Persistence::Permanent,
                                            .reason = connection.reason,
                                            .decided_at = now});
}

// The heap that kConnections live connections take, per connection (the registry included).
void live_bytes_per_connection(benchmark::State& state) {
    const auto connections = mix(kConnections, 0);
    const pw::Clock::TimePoint now{};
    for (auto _ : state) { // NOLINT(clang-analyzer-deadcode.DeadStores): the gbench idiom
        const std::size_t before = mallinfo2().uordblks;
        {
            LiveConnections live;
            std::uint64_t id = 0;
            for (const Decided& connection : connections) {
                add(live, connection, ++id, now);
            }
            const std::size_t after = mallinfo2().uordblks;
            state.counters["bytes_per_connection"] =
                static_cast<double>(after - before) / static_cast<double>(live.size());
            benchmark::DoNotOptimize(live.size());
        }
    }
}
BENCHMARK(live_bytes_per_connection)->Iterations(1)->Unit(benchmark::kMillisecond);

// One add() of a new connection into a full registry (it evicts the oldest): the packet path's
// cost, at the worst.
void live_add_at_capacity(benchmark::State& state) {
    const std::vector<std::vector<Decided>> sets{mix(kConnections, 0), mix(kConnections, 1)};
    LiveConnections live(kConnections);
    const pw::Clock::TimePoint now{};
    std::uint64_t id = 0;
    for (const Decided& connection : sets[0]) {
        add(live, connection, ++id, now);
    }
    std::size_t next = 0;
    for (auto _ : state) { // NOLINT(clang-analyzer-deadcode.DeadStores): the gbench idiom
        const std::size_t set = (next / kConnections + 1) % 2;
        add(live, sets[set][next % kConnections], ++id, now);
        ++next;
    }
    state.counters["evicted"] = static_cast<double>(live.counters().evicted);
}
BENCHMARK(live_add_at_capacity);

// A connection ends and a new one starts: remove() and add() with 50,000 registered.
void live_remove_and_add(benchmark::State& state) {
    const auto connections = mix(kConnections, 0);
    LiveConnections live;
    const pw::Clock::TimePoint now{};
    std::uint64_t id = 0;
    for (const Decided& connection : connections) {
        add(live, connection, ++id, now);
    }
    std::size_t next = 0;
    for (auto _ : state) { // NOLINT(clang-analyzer-deadcode.DeadStores): the gbench idiom
        const Decided& connection = connections[next % kConnections];
        live.remove(connection.key);
        add(live, connection, ++id, now);
        ++next;
    }
}
BENCHMARK(live_remove_and_add);

} // namespace
