#include "network/repeat_aggregator.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace pw::network {
namespace {

using Admission = RepeatAggregator::Admission;
using std::chrono::seconds;

TEST(RepeatAggregator, WritesTheFirstEventsOfAWindowAndSumsUpTheRest) {
    testing::FakeClock clock;
    RepeatAggregator repeats(clock, RepeatLimit{.count = 3, .window = seconds(60)});
    for (int index = 0; index < 3; ++index) {
        EXPECT_EQ(repeats.admit("k", "line " + std::to_string(index)), Admission::Write);
    }
    const auto first_suppressed = clock.now();
    EXPECT_EQ(repeats.admit("k", "line 3"), Admission::Suppress);
    clock.advance(seconds(10));
    for (int index = 4; index < 100; ++index) {
        EXPECT_EQ(repeats.admit("k", "line " + std::to_string(index)), Admission::Suppress);
    }
    EXPECT_EQ(repeats.suppressed(), 97U);
    // Nothing is due before the window ends.
    clock.advance(seconds(49));
    EXPECT_TRUE(repeats.take_due().empty());

    clock.advance(seconds(1));
    const auto summaries = repeats.take_due();
    ASSERT_EQ(summaries.size(), 1U);
    EXPECT_EQ(summaries[0].count, 97U);
    EXPECT_EQ(summaries[0].first_line, "line 3");
    EXPECT_EQ(summaries[0].first, first_suppressed);
    EXPECT_EQ(summaries[0].last, first_suppressed + seconds(10));
    EXPECT_EQ(repeats.keys(), 0U);
    // A new window: written again.
    EXPECT_EQ(repeats.admit("k", "again"), Admission::Write);
}

TEST(RepeatAggregator, AWindowWithoutSuppressedEventsEndsWithoutASummary) {
    testing::FakeClock clock;
    RepeatAggregator repeats(clock, RepeatLimit{.count = 3, .window = seconds(5)});
    EXPECT_EQ(repeats.admit("k", "one"), Admission::Write);
    clock.advance(seconds(5));
    EXPECT_TRUE(repeats.take_due().empty());
    EXPECT_EQ(repeats.keys(), 0U);
}

TEST(RepeatAggregator, KeysAreCountedApart) {
    testing::FakeClock clock;
    RepeatAggregator repeats(clock, RepeatLimit{.count = 1, .window = seconds(5)});
    EXPECT_EQ(repeats.admit("a", "a1"), Admission::Write);
    EXPECT_EQ(repeats.admit("b", "b1"), Admission::Write);
    EXPECT_EQ(repeats.admit("a", "a2"), Admission::Suppress);
    EXPECT_EQ(repeats.admit("b", "b2"), Admission::Suppress);
    EXPECT_EQ(repeats.admit("b", "b3"), Admission::Suppress);
    clock.advance(seconds(5));
    const auto summaries = repeats.take_due();
    ASSERT_EQ(summaries.size(), 2U);
    EXPECT_EQ(summaries[0].first_line, "a2");
    EXPECT_EQ(summaries[0].count, 1U);
    EXPECT_EQ(summaries[1].first_line, "b2");
    EXPECT_EQ(summaries[1].count, 2U);
}

TEST(RepeatAggregator, WindowsOfDifferentKeysEndAtTheirOwnTime) {
    testing::FakeClock clock;
    RepeatAggregator repeats(clock, RepeatLimit{.count = 1, .window = seconds(10)});
    static_cast<void>(repeats.admit("early", "e1"));
    static_cast<void>(repeats.admit("early", "e2"));
    clock.advance(seconds(6));
    static_cast<void>(repeats.admit("late", "l1"));
    static_cast<void>(repeats.admit("late", "l2"));
    clock.advance(seconds(4));
    auto summaries = repeats.take_due();
    ASSERT_EQ(summaries.size(), 1U);
    EXPECT_EQ(summaries[0].first_line, "e2");
    clock.advance(seconds(5));
    EXPECT_TRUE(repeats.take_due().empty());
    clock.advance(seconds(1));
    summaries = repeats.take_due();
    ASSERT_EQ(summaries.size(), 1U);
    EXPECT_EQ(summaries[0].first_line, "l2");
}

TEST(RepeatAggregator, AnEventAfterItsWindowKeepsTheEndedWindowsSummary) {
    testing::FakeClock clock;
    RepeatAggregator repeats(clock, RepeatLimit{.count = 1, .window = seconds(5)});
    static_cast<void>(repeats.admit("k", "one"));
    static_cast<void>(repeats.admit("k", "two"));
    clock.advance(seconds(7));
    // take_due() did not come by in between: the new event opens a new window...
    EXPECT_EQ(repeats.admit("k", "three"), Admission::Write);
    EXPECT_EQ(repeats.admit("k", "four"), Admission::Suppress);
    // ...and the old window's summary is still there, at once.
    auto summaries = repeats.take_due();
    ASSERT_EQ(summaries.size(), 1U);
    EXPECT_EQ(summaries[0].first_line, "two");
    clock.advance(seconds(5));
    summaries = repeats.take_due();
    ASSERT_EQ(summaries.size(), 1U);
    EXPECT_EQ(summaries[0].first_line, "four");
}

TEST(RepeatAggregator, TakeAllEndsEveryWindow) {
    testing::FakeClock clock;
    RepeatAggregator repeats(clock, RepeatLimit{.count = 1, .window = seconds(60)});
    static_cast<void>(repeats.admit("k", "one"));
    static_cast<void>(repeats.admit("k", "two"));
    static_cast<void>(repeats.admit("j", "alone"));
    const auto summaries = repeats.take_all();
    ASSERT_EQ(summaries.size(), 1U);
    EXPECT_EQ(summaries[0].first_line, "two");
    EXPECT_EQ(repeats.keys(), 0U);
}

TEST(RepeatAggregator, LimitZeroWritesEverything) {
    testing::FakeClock clock;
    RepeatAggregator repeats(clock, RepeatLimit{.count = 0, .window = seconds(60)});
    for (int index = 0; index < 1000; ++index) {
        EXPECT_EQ(repeats.admit("k", "line"), Admission::Write);
    }
    EXPECT_EQ(repeats.keys(), 0U);
    EXPECT_TRUE(repeats.take_all().empty());
}

TEST(RepeatAggregator, AFullTableWritesNewKeysUnaggregated) {
    testing::FakeClock clock;
    RepeatAggregator repeats(clock, RepeatLimit{.count = 1, .window = seconds(60)}, 2);
    static_cast<void>(repeats.admit("a", "a"));
    static_cast<void>(repeats.admit("b", "b"));
    EXPECT_EQ(repeats.admit("c", "c1"), Admission::Write);
    EXPECT_EQ(repeats.admit("c", "c2"), Admission::Write);
    EXPECT_EQ(repeats.untracked(), 2U);
    EXPECT_EQ(repeats.keys(), 2U);
    // Keys already followed are still aggregated.
    EXPECT_EQ(repeats.admit("a", "a2"), Admission::Suppress);
}

} // namespace
} // namespace pw::network
