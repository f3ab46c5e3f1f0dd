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

// The facts of a connection of /usr/bin/curl on local port `port`.
firewall::ConnectionFacts facts(std::uint16_t port) {
    const ConnectionKey k = key(port);
    firewall::ProcessFacts process;
    process.executable = "/usr/bin/curl";
    process.identity = "/usr/bin/curl";
    return {.direction = packet::Direction::Outbound,
            .ip_family = IpFamily::V4,
            .protocol = k.protocol,
            .local_address = k.local_address,
            .local_port = k.local_port,
            .remote_address = k.remote_address,
            .remote_port = k.remote_port,
            .icmp_type = 0,
            .process = process,
            .domain = std::nullopt};
}

// A connection of `profile` (its id is the port unless given), accepted permanently.
NewLiveConnection connection(std::uint16_t port, std::string_view profile,
                             std::uint32_t mark = packet::mark::kPermanentAccept) {
    return NewLiveConnection{
        .id = port,
        .profile_id = profile,
        .mark = mark,
        .persistence = packet::Persistence::Permanent,
        .reason = "default action: permit (global)",
        .decided_at = {},
    };
}

// Adds connection(port, profile, mark) under key(port) with facts(port).
void add(LiveConnections& live, std::uint16_t port, std::string_view profile,
         std::uint32_t mark = packet::mark::kPermanentAccept) {
    live.add(key(port), facts(port), connection(port, profile, mark));
}

// The ids the filter selects, in the order visited.
std::vector<std::uint64_t> ids(const LiveConnections& live, const LiveFilter& filter) {
    std::vector<std::uint64_t> found;
    live.for_each(filter, [&](const ConnectionKey& /*key*/, const LiveConnection& connection) {
        found.push_back(connection.id());
    });
    return found;
}

// The connections `profile` lists, checked against the connections themselves and the map.
std::size_t checked_profile_size(const LiveConnections& live, const std::string& profile) {
    std::size_t size = 0;
    live.for_each(LiveFilter::profile(profile),
                  [&](const ConnectionKey& k, const LiveConnection& connection) {
                      ++size;
                      EXPECT_EQ(connection.profile_id(), profile);
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
    add(live, 1000, "curl");

    const LiveConnection* found = live.find(key(1000));

    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->id(), 1000U);
    EXPECT_EQ(found->profile_id(), "curl");
    EXPECT_EQ(found->mark(), packet::mark::kPermanentAccept);
    EXPECT_EQ(found->process()->executable, "/usr/bin/curl");
    EXPECT_EQ(found->facts().process->executable, "/usr/bin/curl");
    EXPECT_EQ(live.find(key(1001)), nullptr);
    EXPECT_EQ(live.size(), 1U);
}

TEST(LiveConnections, KeepsItsOwnCopyOfTheProfileId) {
    LiveConnections live;
    std::string profile = "curl";
    add(live, 1000, profile);
    profile = "overwritten";

    EXPECT_EQ(live.find(key(1000))->profile_id(), "curl");
    EXPECT_EQ(live.count("curl"), 1U);
}

TEST(LiveConnections, RemoveForgetsTheConnectionAndSaysWhetherItWasThere) {
    LiveConnections live;
    add(live, 1000, "curl");

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
    add(live, 1000, "curl");
    add(live, 1001, "curl");

    auto again = connection(1000, "wget");
    again.id = 5;
    live.add(key(1000), facts(1000), again);

    EXPECT_EQ(live.size(), 2U);
    EXPECT_EQ(live.find(key(1000))->id(), 5U);
    EXPECT_THAT(ids(live, LiveFilter::profile("curl")), ElementsAre(1001U));
    EXPECT_THAT(ids(live, LiveFilter::profile("wget")), ElementsAre(5U));
    EXPECT_THAT(ids(live, LiveFilter::all()), ElementsAre(1001U, 5U)); // now the newest
    EXPECT_EQ(live.counters().replaced, 1U);
    EXPECT_EQ(live.counters().added, 2U);
}

TEST(LiveConnections, AProfileIdThatViewsTheRegistrysOwnCopySurvivesItsReplacement) {
    LiveConnections live(1);
    add(live, 1000, "curl");
    const std::string_view ours = live.find(key(1000))->profile_id();

    add(live, 1000, ours);                               // replaces the profile's only connection
    add(live, 1001, live.find(key(1000))->profile_id()); // evicts it

    ASSERT_NE(live.find(key(1001)), nullptr);
    EXPECT_EQ(live.find(key(1001))->profile_id(), "curl");
    expect_consistent(live, {"curl"});
}

TEST(LiveConnections, WhenFullTheLeastRecentlyAddedConnectionMakesRoom) {
    LiveConnections live(3);
    add(live, 1, "a");
    add(live, 2, "b");
    add(live, 3, "a");
    add(live, 2, "b"); // replaced: now the newest

    add(live, 4, "b");
    add(live, 5, "c");

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
            add(live, port, profiles[next() % profiles.size()]);
        }
    }

    expect_consistent(live, profiles);
    EXPECT_LE(live.size(), 50U);
    EXPECT_GT(live.counters().evicted, 0U);
}

// Decides connection 3 a block, the others an accept with a new reason.
LiveDecision block_three(const LiveConnection& connection) {
    return connection.id() == 3 ? decision(packet::mark::kPermanentBlock)
                                : decision(packet::mark::kPermanentAccept, "new reason");
}

TEST(LiveConnections, ReevaluateDecidesOnlyTheSelectedProfileAndReportsOnlyChangedMarks) {
    testing::FakeClock clock;
    LiveConnections live;
    add(live, 1, "curl");
    add(live, 2, "wget");
    add(live, 3, "curl");
    std::vector<std::uint64_t> decided;

    const auto changes = live.reevaluate(
        LiveFilter::profile("curl"),
        [&](const LiveConnection& connection) {
            decided.push_back(connection.id());
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
    add(live, 1, "curl");
    add(live, 2, "wget");
    add(live, 3, "curl");

    static_cast<void>(live.reevaluate(LiveFilter::profile("curl"), block_three, clock.now()));

    EXPECT_EQ(live.find(key(3))->decision(), decision(packet::mark::kPermanentBlock));
    EXPECT_EQ(live.find(key(3))->decided_at(), clock.now());
    EXPECT_EQ(live.find(key(1))->reason(), "new reason"); // same mark, new reason
    EXPECT_EQ(live.find(key(1))->decided_at(), Clock::TimePoint{});
    EXPECT_EQ(live.find(key(2))->reason(), "default action: permit (global)");
}

TEST(LiveConnections, ReevaluateOfAllVisitsEveryConnectionOldestFirst) {
    testing::FakeClock clock;
    LiveConnections live;
    add(live, 1, "a");
    add(live, 2, "b");
    add(live, 3, "c");
    std::vector<std::uint64_t> decided;

    const auto changes = live.reevaluate(
        LiveFilter::all(),
        [&](const LiveConnection& connection) {
            decided.push_back(connection.id());
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
    add(live, 1, "curl");
    add(live, 2, "curl");
    LiveFilter filter = LiveFilter::profile("curl");
    filter.predicate = [](const LiveConnection& connection) {
        return connection.id() == 2;
    };

    const auto changes = live.reevaluate(
        filter, [](const LiveConnection& /*connection*/) { return decision(packet::mark::kDrop); },
        clock.now());

    ASSERT_EQ(changes.size(), 1U);
    EXPECT_EQ(changes.front().id, 2U);
    EXPECT_EQ(live.find(key(1))->mark(), packet::mark::kPermanentAccept);
}

TEST(LiveConnections, ReevaluateOfAProfileWithoutConnectionsDecidesNothing) {
    testing::FakeClock clock;
    LiveConnections live;
    add(live, 1, "curl");
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
        add(live, port, port % 2 == 0 ? "even" : "odd");
    }
    live.remove(key(4));
    std::vector<std::uint64_t> decided;

    const auto changes = live.reevaluate(
        LiveFilter::profile("odd"),
        [&](const LiveConnection& connection) {
            decided.push_back(connection.id());
            return decision(packet::mark::kPermanentDrop);
        },
        clock.now());

    EXPECT_THAT(decided, UnorderedElementsAre(3U, 5U));
    EXPECT_EQ(changes.size(), 2U);
    EXPECT_EQ(live.count("even"), 0U);
    expect_consistent(live, {"odd", "even"});
}

// Interning (issue 9, memory): what connections have in common is one shared copy.

firewall::ProcessFacts process_facts(std::int64_t pid, std::string executable) {
    firewall::ProcessFacts process;
    process.pid = pid;
    process.start_time = 4242;
    process.executable = executable;
    process.identity = std::move(executable);
    process.user = "alice";
    process.tags = {"flatpak"};
    process.source = "socket-table";
    return process;
}

TEST(LiveConnections, ConnectionsOfOneProcessShareOneCopyOfItsFactsDomainLabelAndReason) {
    LiveConnections live;
    for (std::uint16_t port = 1; port <= 3; ++port) {
        firewall::ConnectionFacts connection_facts = facts(port);
        connection_facts.process = process_facts(100, "/usr/bin/firefox");
        connection_facts.domain =
            firewall::DomainFacts{.domain = "example.com", .cname_chain = {"edge.example.net"}};
        connection_facts.profile = {.id = "firefox", .name = "Firefox"};
        live.add(key(port), connection_facts, connection(port, "firefox"));
    }

    const LiveConnection& first = *live.find(key(1));
    const LiveConnection& third = *live.find(key(3));
    EXPECT_EQ(first.process(), third.process());
    EXPECT_EQ(first.domain(), third.domain());
    EXPECT_EQ(&first.profile_label(), &third.profile_label());
    EXPECT_EQ(first.reason().data(), third.reason().data());
    EXPECT_EQ(live.shared(),
              (LiveConnections::Shared{.processes = 1, .domains = 1, .labels = 1, .reasons = 1}));
}

TEST(LiveConnections, FactsThatDifferInAnyFieldAreNotShared) {
    LiveConnections live;
    firewall::ConnectionFacts first = facts(1);
    first.process = process_facts(100, "/usr/bin/python3");
    firewall::ConnectionFacts second = facts(2);
    second.process = process_facts(100, "/usr/bin/python3");
    second.process->tags.emplace_back("script"); // same process, other tags (a later look)
    live.add(key(1), first, connection(1, "p"));
    live.add(key(2), second, connection(2, "p"));

    EXPECT_EQ(live.shared().processes, 2U);
    EXPECT_THAT(live.find(key(1))->process()->tags, ElementsAre("flatpak"));
    EXPECT_THAT(live.find(key(2))->process()->tags, ElementsAre("flatpak", "script"));
}

TEST(LiveConnections, TheSharedCopyIsFreedWithItsLastConnection) {
    LiveConnections live;
    firewall::ConnectionFacts connection_facts = facts(1);
    connection_facts.process = process_facts(100, "/usr/bin/firefox");
    connection_facts.domain = firewall::DomainFacts{.domain = "example.com", .cname_chain = {}};
    live.add(key(1), connection_facts, connection(1, "firefox"));
    live.add(key(2), connection_facts, connection(2, "firefox"));

    EXPECT_TRUE(live.remove(key(1)));
    EXPECT_EQ(live.shared().processes, 1U);
    EXPECT_EQ(live.find(key(2))->process()->executable, "/usr/bin/firefox");
    EXPECT_TRUE(live.remove(key(2)));

    EXPECT_EQ(live.shared(), LiveConnections::Shared{});
}

TEST(LiveConnections, EvictionAndReplacementGiveTheSharedCopiesBack) {
    LiveConnections live(2);
    for (std::uint16_t port = 1; port <= 4; ++port) {
        firewall::ConnectionFacts connection_facts = facts(port);
        connection_facts.process = process_facts(port, "/usr/bin/app" + std::to_string(port));
        live.add(key(port), connection_facts, connection(port, "p"));
    }
    EXPECT_EQ(live.counters().evicted, 2U);
    EXPECT_EQ(live.shared().processes, 2U); // of 3 and 4

    // Connection 4 again, for another process: the old one's facts go.
    firewall::ConnectionFacts again = facts(4);
    again.process = process_facts(3, "/usr/bin/app3");
    live.add(key(4), again, connection(4, "p"));

    EXPECT_EQ(live.shared().processes, 1U);
    EXPECT_EQ(live.find(key(4))->process(), live.find(key(3))->process());
    EXPECT_EQ(live.find(key(1)), nullptr);
}

// One random step: a removal, or an add of one of 7 processes; false when the connection added
// does not show its own process.
bool random_step(LiveConnections& live, std::minstd_rand& random) {
    const auto port = static_cast<std::uint16_t>(random() % 120);
    if (random() % 4 == 0) {
        live.remove(key(port));
        return true;
    }
    firewall::ConnectionFacts connection_facts = facts(port);
    connection_facts.process = process_facts(static_cast<std::int64_t>(random() % 7), "/a");
    live.add(key(port), connection_facts,
             connection(port, "p" + std::to_string(random() % 5),
                        random() % 2 == 0 ? packet::mark::kPermanentAccept : packet::mark::kBlock));
    return live.find(key(port))->process()->pid == connection_facts.process->pid;
}

TEST(LiveConnections, NothingIsLeftAfterManyAddsRemovesAndEvictions) {
    LiveConnections live(50);
    std::minstd_rand random(777); // NOLINT(cert-msc32-c,cert-msc51-cpp): reproducible
    int wrong_process = 0;
    for (int step = 0; step < 5000; ++step) {
        wrong_process += random_step(live, random) ? 0 : 1;
    }
    for (std::uint16_t port = 0; port < 120; ++port) {
        live.remove(key(port));
    }

    EXPECT_EQ(wrong_process, 0);
    EXPECT_EQ(live.size(), 0U);
    EXPECT_EQ(live.profile_count(), 0U);
    EXPECT_EQ(live.shared(), LiveConnections::Shared{});
    EXPECT_THAT(ids(live, LiveFilter::all()), IsEmpty());
}

TEST(LiveConnections, ReevaluationSeesTheFullFactsAsTheyWereAdded) {
    testing::FakeClock clock;
    LiveConnections live;
    firewall::ConnectionFacts added = facts(1);
    added.direction = packet::Direction::Inbound;
    added.icmp_type = 3;
    added.process = process_facts(100, "/usr/bin/avahi-daemon");
    added.process->parent_pid = 1;
    added.process->uid = 108;
    added.domain = firewall::DomainFacts{.domain = "printer.local",
                                         .cname_chain = {"a.local", "b.local"},
                                         .resolver_scope = firewall::IpScope::SiteLocal};
    added.profile = {.id = "avahi", .name = "Avahi"};
    added.answers_broadcast_to = *IpAddress::parse("224.0.0.251");
    live.add(key(1), added, connection(1, "avahi"));
    firewall::ConnectionFacts other = facts(2); // whose addresses are not the key's
    other.remote_port = 8443;
    live.add(key(2), other, connection(2, "avahi"));
    std::vector<firewall::ConnectionFacts> seen;

    static_cast<void>(live.reevaluate(
        LiveFilter::all(),
        [&](const LiveConnection& connection) {
            seen.push_back(connection.facts());
            return connection.decision();
        },
        clock.now()));

    // Every field, as added (ConnectionFacts' == is defaulted).
    EXPECT_TRUE(seen == (std::vector<firewall::ConnectionFacts>{added, other}));
    EXPECT_EQ(live.find(key(1))->direction(), packet::Direction::Inbound);
    EXPECT_EQ(live.find(key(2))->facts().remote_port, 8443U);
}

TEST(LiveConnections, ReevaluationGivesReplacedReasonsBack) {
    testing::FakeClock clock;
    LiveConnections live;
    add(live, 1, "curl");
    add(live, 2, "curl");

    static_cast<void>(live.reevaluate(
        LiveFilter::all(),
        [](const LiveConnection& connection) {
            return decision(packet::mark::kPermanentAccept,
                            "reason " + std::to_string(connection.id()));
        },
        clock.now()));

    EXPECT_EQ(live.shared().reasons, 2U);
    EXPECT_EQ(live.find(key(2))->reason(), "reason 2");
}

// The ids (ports) that stay of ports 0..4999 after a burst, all and profile p1's, oldest first.
struct Kept {
    std::vector<std::uint64_t> all;
    std::vector<std::uint64_t> p1;
};

// Removes all but every fiftieth of connections 0..4999 (of profiles p<port % 3>).
Kept remove_most(LiveConnections& live) {
    Kept kept;
    for (std::uint16_t port = 0; port < 5000; ++port) {
        if (port % 50 != 7) {
            live.remove(key(port));
            continue;
        }
        kept.all.push_back(port);
        if (port % 3 == 1) {
            kept.p1.push_back(port);
        }
    }
    return kept;
}

TEST(LiveConnections, AfterABurstTheSlotsAreGivenBackAndTheOrderKept) {
    LiveConnections live;
    const std::vector<std::string> profiles{"p0", "p1", "p2"};
    for (std::uint16_t port = 0; port < 5000; ++port) {
        add(live, port, profiles[port % 3]);
    }
    const std::size_t at_peak = live.slots();
    const Kept kept = remove_most(live);

    EXPECT_GE(at_peak, 5000U);
    EXPECT_LE(live.slots(), 512U);
    EXPECT_EQ(ids(live, LiveFilter::all()), kept.all);
    EXPECT_EQ(ids(live, LiveFilter::profile("p1")), kept.p1);
    expect_consistent(live, profiles);
}

TEST(LiveConnections, AfterTheSlotsAreGivenBackTheRegistryGoesOnWorking) {
    LiveConnections live;
    const std::vector<std::string> profiles{"p0", "p1", "p2"};
    for (std::uint16_t port = 0; port < 5000; ++port) {
        add(live, port, profiles[port % 3]);
    }
    const Kept kept = remove_most(live);

    for (std::uint16_t port = 6000; port < 6300; ++port) {
        add(live, port, profiles[port % 3]);
    }
    EXPECT_TRUE(live.remove(key(6001)));

    EXPECT_EQ(live.find(key(57))->facts(), facts(57));
    EXPECT_EQ(live.shared().processes, 1U);
    EXPECT_EQ(live.size(), kept.all.size() + 299);
    expect_consistent(live, profiles);
}

} // namespace
} // namespace pw::network
