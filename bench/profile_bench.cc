// The decision for a new connection with many profiles (issue 9, item 8): the settings store
// (profiles matched by fingerprints, policies cached per process) and decide(), as the packet
// path calls them, with every profile holding many rules. Prints the latency percentiles of
//   - a connection of a process seen before (the policy is a hash lookup) whose profile's rules
//     and the global rules are all read without a match (the worst case of first-match-wins),
//   - the first connection of a new process (its profile is found through the fingerprint
//     index, not by a scan of the profiles),
// and the resident memory that the profiles cost. Not a test: `pw_profile_bench [profiles]
// [rules per profile]` (defaults 1000 x 1000), bench/README.md "Profiles".

#include <stdlib.h> // NOLINT(modernize-deprecated-headers): mkdtemp is POSIX

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/guarded.h"
#include "firewall/decide.h"
#include "process/process_info.h"
#include "profile/database.h"
#include "profile/settings_store.h"

namespace {

using namespace pw;
namespace fs = std::filesystem;
using BenchClock = std::chrono::steady_clock;

// The resident set of this process, in KiB (/proc/self/status VmRSS).
long resident_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("VmRSS:")) {
            return std::stol(line.substr(6));
        }
    }
    return -1;
}

std::string executable_of(int profile) {
    return fmt::format("/opt/app{}/bin/app{}", profile, profile);
}

// Rules that never match the measured connection, of the kinds people write: domains, zones,
// addresses, networks, ports.
std::string rule_text(int profile, int rule) {
    switch (rule % 5) {
        case 0:
            return fmt::format("- host{}-{}.example.com", profile, rule);
        case 1:
            return fmt::format("+ .zone{}-{}.example.org", profile, rule);
        case 2:
            return fmt::format("- 198.18.{}.{}", (rule / 250) % 250, rule % 250);
        case 3:
            return fmt::format("- 198.19.{}.0/24 tcp/443", rule % 250);
        default:
            return fmt::format("+ *.cdn{}.example.net udp/{}", rule, 1000 + (rule % 60000));
    }
}

struct Percentiles {
    double p50 = 0;
    double p99 = 0;
    double max = 0;
};

Percentiles percentiles(std::vector<double>& samples) {
    std::ranges::sort(samples);
    const auto at = [&](double fraction) {
        return samples[static_cast<std::size_t>(fraction *
                                                static_cast<double>(samples.size() - 1))];
    };
    return {.p50 = at(0.50), .p99 = at(0.99), .max = samples.back()};
}

firewall::ProcessFacts facts_of(int profile, std::int64_t pid) {
    firewall::ProcessFacts facts;
    facts.pid = pid;
    facts.start_time = 100000 + static_cast<std::uint64_t>(pid);
    facts.parent_pid = 1;
    facts.executable = executable_of(profile);
    facts.identity = facts.executable;
    facts.source = "ebpf";
    return facts;
}

firewall::ConnectionFacts connection_of(const firewall::ProcessFacts& process) {
    firewall::ConnectionFacts facts;
    facts.direction = packet::Direction::Outbound;
    facts.protocol = 6;
    facts.local_address = *IpAddress::parse("10.0.0.1");
    facts.local_port = 40000;
    facts.remote_address = *IpAddress::parse("203.0.113.80");
    facts.remote_port = 443;
    facts.domain = firewall::DomainFacts{.domain = "www.measured.test", .cname_chain = {}};
    facts.process = process;
    return facts;
}

} // namespace

int main(int argc, char** argv) {
    const int profiles = argc > 1 ? std::stoi(argv[1]) : 1000;
    const int rules = argc > 2 ? std::stoi(argv[2]) : 1000;

    std::string pattern = (fs::temp_directory_path() / "pw-profile-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    const fs::path directory = pattern;

    Guarded<std::deque<std::function<void()>>> completions;
    const auto run_completions = [&] {
        auto calls = completions.with_lock([](auto& queue) { return std::exchange(queue, {}); });
        for (auto& call : calls) {
            call();
        }
    };
    const long rss_empty = resident_kib();
    auto database = profile::Database::open(directory / "portwarden.db", [&](auto call) {
        completions.with_lock([&](auto& queue) { queue.push_back(std::move(call)); });
    });
    if (!database) {
        fmt::print(stderr, "{}\n", database.error().message());
        return 1;
    }
    // Processes as /proc would describe them: the executable is what the fingerprints match.
    auto lookup = [](const firewall::ProcessFacts& facts) {
        auto info = std::make_shared<process::ProcessInfo>();
        info->pid = static_cast<int>(facts.pid);
        info->start_time = facts.start_time;
        info->parent_pid = static_cast<int>(facts.parent_pid);
        info->executable = facts.executable;
        info->identity_path = facts.identity;
        return std::shared_ptr<const process::ProcessInfo>(std::move(info));
    };
    auto store = profile::SettingsStore::open({.database = database->get(),
                                               .file_layer = {},
                                               .file_name = {},
                                               .processes = lookup,
                                               .ancestors = {},
                                               .process_alive = {},
                                               .wall_clock = {}});
    if (!store) {
        fmt::print(stderr, "{}\n", store.error().message());
        return 1;
    }
    const long rss_store = resident_kib();
    const auto loading_started = BenchClock::now();
    for (int index = 0; index < profiles; ++index) {
        nlohmann::json endpoints = nlohmann::json::array();
        for (int rule = 0; rule < rules; ++rule) {
            endpoints.push_back(rule_text(index, rule));
        }
        auto created = (*store)->put_profile(
            "", fmt::format("app{}", index),
            nlohmann::json::array(
                {{{"type", "path"}, {"operation", "equals"}, {"value", executable_of(index)}}}),
            {{"filter/endpoints", std::move(endpoints)}});
        if (!created) {
            fmt::print(stderr, "profile {}: {}\n", index, created.error().message());
            return 1;
        }
    }
    (*database)->flush();
    run_completions();
    const double loading_seconds =
        std::chrono::duration<double>(BenchClock::now() - loading_started).count();
    const long rss_loaded = resident_kib();

    // First connections of new processes: each is matched through the fingerprint index.
    std::vector<double> first;
    std::int64_t next_pid = 1000;
    constexpr int kFirstConnections = 20000;
    first.reserve(kFirstConnections);
    std::uint64_t accepted = 0;
    for (int index = 0; index < kFirstConnections; ++index) {
        const auto process = facts_of(index % profiles, next_pid++);
        const auto connection = connection_of(process);
        const auto started = BenchClock::now();
        const profile::Policy policy = (*store)->policy_for(&process, packet::Direction::Outbound);
        const firewall::Decision decision = firewall::decide(*policy.settings, connection);
        first.push_back(
            std::chrono::duration<double, std::micro>(BenchClock::now() - started).count());
        accepted += decision.verdict == packet::Verdict::Accept ? 1 : 0;
    }

    // Connections of processes seen before: a hash lookup, then every rule read.
    std::vector<firewall::ProcessFacts> known;
    for (int index = 0; index < 256; ++index) {
        known.push_back(facts_of(index % profiles, next_pid++));
        (void)(*store)->policy_for(&known.back(), packet::Direction::Outbound);
    }
    std::vector<double> repeat;
    constexpr int kRepeatConnections = 200000;
    repeat.reserve(kRepeatConnections);
    for (int index = 0; index < kRepeatConnections; ++index) {
        const auto& process = known[static_cast<std::size_t>(index) % known.size()];
        const auto connection = connection_of(process);
        const auto started = BenchClock::now();
        const profile::Policy policy = (*store)->policy_for(&process, packet::Direction::Outbound);
        const firewall::Decision decision = firewall::decide(*policy.settings, connection);
        repeat.push_back(
            std::chrono::duration<double, std::micro>(BenchClock::now() - started).count());
        accepted += decision.verdict == packet::Verdict::Accept ? 1 : 0;
    }

    const Percentiles cold = percentiles(first);
    const Percentiles warm = percentiles(repeat);
    fmt::print("profiles {} x rules {} (loaded and stored in {:.1f} s)\n", profiles, rules,
               loading_seconds);
    fmt::print(
        "decision, process seen before (cache hit, all {} rules read): p50 {:.2f} us, "
        "p99 {:.2f} us, max {:.1f} us ({} samples)\n",
        rules, warm.p50, warm.p99, warm.max, repeat.size());
    fmt::print(
        "decision, first connection of a new process (fingerprint index): p50 {:.2f} us, "
        "p99 {:.2f} us, max {:.1f} us ({} samples)\n",
        cold.p50, cold.p99, cold.max, first.size());
    fmt::print(
        "resident memory: {} KiB before the store, {} KiB with the store open, {} KiB "
        "with {} profiles: {:.1f} MiB for the profiles\n",
        rss_empty, rss_store, rss_loaded, profiles,
        static_cast<double>(rss_loaded - rss_store) / 1024.0);
    fmt::print("(accepted {} of {}: every decision ran)\n", accepted, first.size() + repeat.size());
    store->reset();
    database->reset();
    std::error_code ignored;
    fs::remove_all(directory, ignored);
    return 0;
}
