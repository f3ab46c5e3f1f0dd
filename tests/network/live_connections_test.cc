#include "network/live_connections.h"

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace pw::network {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr std::uint8_t kTcp = 6;

ConnectionKey key(std::uint16_t local_port) {
    return ConnectionKey{.protocol = kTcp,
                         .local_address = *IpAddress::parse("10.0.0.1"),
                         .local_port = local_port,
                         .remote_address = *IpAddress::parse("192.0.2.7"),
                         .remote_port = 443};
}

// A connection of `profile` on local port `port` (its id is the port), accepted permanently.
LiveConnection connection(std::uint16_t port, std::string_view profile,
                          std::uint32_t mark = packet::mark::kPermanentAccept) {
    const ConnectionKey k = key(port);
    firewall::ProcessFacts process;
    process.executable = "/usr/bin/curl";
    process.identity = "/usr/bin/curl";
    return LiveConnection{
        .id = port,
        .facts = {.direction = packet::Direction::Outbound,
                  .ip_family = IpFamily::V4,
                  .protocol = k.protocol,
                  .local_address = k.local_address,
                  .local_port = k.local_port,
                  .remote_address = k.remote_address,
                  .remote_port = k.remote_port,
                  .icmp_type = 0,
                  .process = process,
                  .domain = std::nullopt},
        .profile_id = profile,
        .decision = {.mark = mark,
                     .persistence = packet::Persistence::Permanent,
                     .reason = "default action: permit (global)"},
        .decided_at = {},
    };
}

// The ids the filter selects, in the order visited.
std::vector<std::uint64_t> ids(const LiveConnections& live, const LiveFilter& filter) {
    std::vector<std::uint64_t> found;
    live.for_each(filter, [&](const ConnectionKey& /*key*/, const LiveConnection& connection) {
        found.push_back(connection.id);
    });
    return found;
}

// The connections `profile` lists, checked against the connections themselves and the map.
std::size_t checked_profile_size(const LiveConnections& live, const std::string& profile) {
    std::size_t size = 0;
    live.for_each(LiveFilter::profile(profile),
                  [&](const ConnectionKey& k, const LiveConnection& connection) {
                      ++size;
                      EXPECT_EQ(connection.profile_id, profile);
                      EXPECT_EQ(live.find(k), &connection);
                  });
    EXPECT_EQ(size, live.count(profile)) << profile;
    return size;
}

// Every profile's list, the age list and the map agree.
void expect_consistent(const LiveConnections& live, const std::vector<std::string>& profiles) {
    std::size_t in_profiles = 0;
    for (const auto& profile : profiles) {
        in_profiles += checked_profile_size(live, profile);
    }
    EXPECT_EQ(in_profiles, live.size());
    EXPECT_EQ(ids(live, LiveFilter::all()).size(), live.size());
}

LiveDecision decision(std::uint32_t mark, std::string reason = "rule '- *' (app, profile 'p')") {
    return {.mark = mark,
            .persistence = mark >= packet::mark::kPermanentAccept ? packet::Persistence::Permanent
                                                                  : packet::Persistence::Temporary,
            .reason = std::move(reason)};
}

TEST(LiveConnections, FindsWhatWasAddedWithItsProfileAndDecision) {
    LiveConnections live;
    live.add(key(1000), connection(1000, "curl"));

    const LiveConnection* found = live.find(key(1000));

    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->id, 1000U);
    EXPECT_EQ(found->profile_id, "curl");
    EXPECT_EQ(found->decision.mark, packet::mark::kPermanentAccept);
    EXPECT_EQ(found->facts.process->executable, "/usr/bin/curl");
    EXPECT_EQ(live.find(key(1001)), nullptr);
    EXPECT_EQ(live.size(), 1U);
}

TEST(LiveConnections, KeepsItsOwnCopyOfTheProfileId) {
    LiveConnections live;
    std::string profile = "curl";
    live.add(key(1000), connection(1000, profile));
    profile = "overwritten";

    EXPECT_EQ(live.find(key(1000))->profile_id, "curl");
    EXPECT_EQ(live.count("curl"), 1U);
}

TEST(LiveConnections, RemoveForgetsTheConnectionAndSaysWhetherItWasThere) {
    LiveConnections live;
    live.add(key(1000), connection(1000, "curl"));

    EXPECT_TRUE(live.remove(key(1000)));

    EXPECT_EQ(live.find(key(1000)), nullptr);
    EXPECT_FALSE(live.remove(key(1000)));
    EXPECT_EQ(live.size(), 0U);
    EXPECT_EQ(live.count("curl"), 0U);
    EXPECT_EQ(live.profile_count(), 0U);
    EXPECT_EQ(live.counters().removed, 1U);
}

TEST(LiveConnections, AddingAKnownKeyReplacesTheConnectionAndMovesItToItsNewProfile) {
    LiveConnections live;
    live.add(key(1000), connection(1000, "curl"));
    live.add(key(1001), connection(1001, "curl"));

    auto again = connection(1000, "wget");
    again.id = 5;
    live.add(key(1000), again);

    EXPECT_EQ(live.size(), 2U);
    EXPECT_EQ(live.find(key(1000))->id, 5U);
    EXPECT_THAT(ids(live, LiveFilter::profile("curl")), ElementsAre(1001U));
    EXPECT_THAT(ids(live, LiveFilter::profile("wget")), ElementsAre(5U));
    EXPECT_THAT(ids(live, LiveFilter::all()), ElementsAre(1001U, 5U)); // now the newest
    EXPECT_EQ(live.counters().replaced, 1U);
    EXPECT_EQ(live.counters().added, 2U);
}

TEST(LiveConnections, AProfileIdThatViewsTheRegistrysOwnCopySurvivesItsReplacement) {
    LiveConnections live(1);
    live.add(key(1000), connection(1000, "curl"));
    const std::string_view ours = live.find(key(1000))->profile_id;

    live.add(key(1000), connection(1000, ours)); // replaces the profile's only connection
    live.add(key(1001), connection(1001, live.find(key(1000))->profile_id)); // evicts it

    ASSERT_NE(live.find(key(1001)), nullptr);
    EXPECT_EQ(live.find(key(1001))->profile_id, "curl");
    expect_consistent(live, {"curl"});
}

TEST(LiveConnections, WhenFullTheLeastRecentlyAddedConnectionMakesRoom) {
    LiveConnections live(3);
    live.add(key(1), connection(1, "a"));
    live.add(key(2), connection(2, "b"));
    live.add(key(3), connection(3, "a"));
    live.add(key(2), connection(2, "b")); // replaced: now the newest

    live.add(key(4), connection(4, "b"));
    live.add(key(5), connection(5, "c"));

    EXPECT_EQ(live.size(), 3U);
    EXPECT_THAT(ids(live, LiveFilter::all()), ElementsAre(2U, 4U, 5U));
    EXPECT_EQ(live.find(key(1)), nullptr);
    EXPECT_EQ(live.find(key(3)), nullptr);
    EXPECT_EQ(live.counters().evicted, 2U);
    EXPECT_EQ(live.count("a"), 0U);
    EXPECT_EQ(live.profile_count(), 2U);
    expect_consistent(live, {"a", "b", "c"});
}

TEST(LiveConnections, TheProfileIndexStaysConsistentThroughManyAddsRemovesAndEvictions) {
    LiveConnections live(50);
    const std::vector<std::string> profiles{"p0", "p1", "p2", "p3", "p4", "p5", "p6"};
    std::minstd_rand random(12345); // NOLINT(cert-msc32-c,cert-msc51-cpp): reproducible
    const auto next = [&] {
        return static_cast<std::uint32_t>(random());
    };
    for (int step = 0; step < 5000; ++step) {
        const auto port = static_cast<std::uint16_t>(next() % 120);
        if (next() % 4 == 0) {
            live.remove(key(port));
        } else {
            live.add(key(port), connection(port, profiles[next() % profiles.size()]));
        }
    }

    expect_consistent(live, profiles);
    EXPECT_LE(live.size(), 50U);
    EXPECT_GT(live.counters().evicted, 0U);
}

// Decides connection 3 a block, the others an accept with a new reason.
LiveDecision block_three(const LiveConnection& connection) {
    return connection.id == 3 ? decision(packet::mark::kPermanentBlock)
                              : decision(packet::mark::kPermanentAccept, "new reason");
}

TEST(LiveConnections, ReevaluateDecidesOnlyTheSelectedProfileAndReportsOnlyChangedMarks) {
    testing::FakeClock clock;
    LiveConnections live;
    live.add(key(1), connection(1, "curl"));
    live.add(key(2), connection(2, "wget"));
    live.add(key(3), connection(3, "curl"));
    std::vector<std::uint64_t> decided;

    const auto changes = live.reevaluate(
        LiveFilter::profile("curl"),
        [&](const LiveConnection& connection) {
            decided.push_back(connection.id);
            return block_three(connection);
        },
        clock.now());

    EXPECT_THAT(decided, ElementsAre(1U, 3U));
    EXPECT_THAT(changes,
                ElementsAre(MarkChange{.key = key(3),
                                       .direction = packet::Direction::Outbound,
                                       .id = 3,
                                       .old_mark = packet::mark::kPermanentAccept,
                                       .new_mark = packet::mark::kPermanentBlock,
                                       .old_persistence = packet::Persistence::Permanent,
                                       .new_persistence = packet::Persistence::Permanent}));
}

TEST(LiveConnections, ReevaluateStoresTheNewDecisionsAndTimesOnlyChangedMarks) {
    testing::FakeClock clock;
    LiveConnections live;
    live.add(key(1), connection(1, "curl"));
    live.add(key(2), connection(2, "wget"));
    live.add(key(3), connection(3, "curl"));

    static_cast<void>(live.reevaluate(LiveFilter::profile("curl"), block_three, clock.now()));

    EXPECT_EQ(live.find(key(3))->decision, decision(packet::mark::kPermanentBlock));
    EXPECT_EQ(live.find(key(3))->decided_at, clock.now());
    EXPECT_EQ(live.find(key(1))->decision.reason, "new reason"); // same mark, new reason
    EXPECT_EQ(live.find(key(1))->decided_at, Clock::TimePoint{});
    EXPECT_EQ(live.find(key(2))->decision.reason, "default action: permit (global)");
}

TEST(LiveConnections, ReevaluateOfAllVisitsEveryConnectionOldestFirst) {
    testing::FakeClock clock;
    LiveConnections live;
    live.add(key(1), connection(1, "a"));
    live.add(key(2), connection(2, "b"));
    live.add(key(3), connection(3, "c"));
    std::vector<std::uint64_t> decided;

    const auto changes = live.reevaluate(
        LiveFilter::all(),
        [&](const LiveConnection& connection) {
            decided.push_back(connection.id);
            return decision(packet::mark::kBlock);
        },
        clock.now());

    EXPECT_THAT(decided, ElementsAre(1U, 2U, 3U));
    ASSERT_EQ(changes.size(), 3U);
    EXPECT_EQ(changes[0].new_persistence, packet::Persistence::Temporary);
    EXPECT_EQ(changes[0].old_persistence, packet::Persistence::Permanent);
}

TEST(LiveConnections, AFilterPredicateNarrowsTheSelection) {
    testing::FakeClock clock;
    LiveConnections live;
    live.add(key(1), connection(1, "curl"));
    live.add(key(2), connection(2, "curl"));
    LiveFilter filter = LiveFilter::profile("curl");
    filter.predicate = [](const LiveConnection& connection) {
        return connection.id == 2;
    };

    const auto changes = live.reevaluate(
        filter, [](const LiveConnection& /*connection*/) { return decision(packet::mark::kDrop); },
        clock.now());

    ASSERT_EQ(changes.size(), 1U);
    EXPECT_EQ(changes.front().id, 2U);
    EXPECT_EQ(live.find(key(1))->decision.mark, packet::mark::kPermanentAccept);
}

TEST(LiveConnections, ReevaluateOfAProfileWithoutConnectionsDecidesNothing) {
    testing::FakeClock clock;
    LiveConnections live;
    live.add(key(1), connection(1, "curl"));
    int calls = 0;

    const auto changes = live.reevaluate(
        LiveFilter::profile("nobody"),
        [&](const LiveConnection& /*connection*/) {
            ++calls;
            return decision(packet::mark::kDrop);
        },
        clock.now());

    EXPECT_THAT(changes, IsEmpty());
    EXPECT_EQ(calls, 0);
}

TEST(LiveConnections, ReevaluateAfterEvictionsAndRemovalsSeesOnlyLiveConnections) {
    testing::FakeClock clock;
    LiveConnections live(3);
    for (std::uint16_t port = 1; port <= 5; ++port) {
        live.add(key(port), connection(port, port % 2 == 0 ? "even" : "odd"));
    }
    live.remove(key(4));
    std::vector<std::uint64_t> decided;

    const auto changes = live.reevaluate(
        LiveFilter::profile("odd"),
        [&](const LiveConnection& connection) {
            decided.push_back(connection.id);
            return decision(packet::mark::kPermanentDrop);
        },
        clock.now());

    EXPECT_THAT(decided, UnorderedElementsAre(3U, 5U));
    EXPECT_EQ(changes.size(), 2U);
    EXPECT_EQ(live.count("even"), 0U);
    expect_consistent(live, {"odd", "even"});
}

} // namespace
} // namespace pw::network
