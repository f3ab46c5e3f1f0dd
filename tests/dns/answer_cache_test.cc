#include "dns/answer_cache.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace pw::dns {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

Question question(std::string name, std::uint16_t record_type = type::kA) {
    return Question{.name = std::move(name), .type = record_type, .qclass = kClassIn};
}

// A positive answer: one address and one answer record.
std::shared_ptr<const Answer> positive(std::string_view address = "192.0.2.1") {
    auto answer = std::make_shared<Answer>();
    answer->addresses.push_back(IpAddress::parse(address).value());
    answer->wire.answer_count = 1;
    answer->upstream = "dns://192.0.2.53:53";
    return answer;
}

std::shared_ptr<const Answer> with_rcode(Rcode rcode) {
    auto answer = std::make_shared<Answer>();
    answer->rcode = rcode;
    return answer;
}

class AnswerCacheTest : public ::testing::Test {
protected:
    testing::FakeClock clock_;
    AnswerCache cache_;
};

TEST_F(AnswerCacheTest, AStoredAnswerIsFoundUntilItsTtlRunsOut) {
    const auto answer = positive();
    EXPECT_EQ(cache_.insert(question("www.example.com"), answer, 300, clock_.now()), seconds(300));
    EXPECT_EQ(cache_.size(), 1U);

    clock_.advance(seconds(299) + std::chrono::milliseconds(999));
    const auto hit = cache_.lookup(question("www.example.com"), clock_.now());
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->answer, answer);
    EXPECT_EQ(hit->age_seconds, 299U); // whole seconds

    clock_.advance(std::chrono::milliseconds(1));
    EXPECT_FALSE(cache_.lookup(question("www.example.com"), clock_.now()).has_value());
    EXPECT_EQ(cache_.size(), 0U); // an expired entry goes when it is looked up
    EXPECT_EQ(cache_.counters().hits, 1U);
    EXPECT_EQ(cache_.counters().misses, 1U);
    EXPECT_EQ(cache_.counters().insertions, 1U);
}

TEST_F(AnswerCacheTest, TheKeyIsNameTypeAndClass) {
    cache_.insert(question("www.example.com"), positive(), 300, clock_.now());
    EXPECT_FALSE(cache_.lookup(question("www.example.com", type::kAaaa), clock_.now()));
    EXPECT_FALSE(cache_.lookup(question("example.com"), clock_.now()));
    EXPECT_FALSE(cache_.lookup(Question{.name = "www.example.com", .type = type::kA, .qclass = 3},
                               clock_.now()));
    EXPECT_TRUE(cache_.lookup(question("www.example.com"), clock_.now()));
    EXPECT_EQ(cache_.counters().misses, 3U);
    EXPECT_EQ(cache_.counters().hits, 1U);
}

TEST_F(AnswerCacheTest, PositiveTtlsAreClamped) {
    EXPECT_EQ(cache_.insert(question("zero.example"), positive(), 0, clock_.now()), seconds(10));
    EXPECT_EQ(cache_.insert(question("long.example"), positive(), 7 * 24 * 3600, clock_.now()),
              hours(24));
    EXPECT_EQ(cache_.insert(question("none.example"), positive(), std::nullopt, clock_.now()),
              seconds(10));

    clock_.advance(seconds(9));
    EXPECT_TRUE(cache_.lookup(question("zero.example"), clock_.now()));
    clock_.advance(seconds(1));
    EXPECT_FALSE(cache_.lookup(question("zero.example"), clock_.now()));
}

TEST_F(AnswerCacheTest, NxDomainAndNodataUseTheNegativeRules) {
    EXPECT_EQ(
        cache_.insert(question("gone.example"), with_rcode(Rcode::NxDomain), 300, clock_.now()),
        seconds(300));
    EXPECT_EQ(
        cache_.insert(question("gone2.example"), with_rcode(Rcode::NxDomain), 86400, clock_.now()),
        hours(1));
    EXPECT_EQ(
        cache_.insert(question("gone3.example"), with_rcode(Rcode::NxDomain), 1, clock_.now()),
        seconds(10));
    EXPECT_EQ(cache_.insert(question("gone4.example"), with_rcode(Rcode::NxDomain), std::nullopt,
                            clock_.now()),
              seconds(60));
    // NOERROR without any answer record is NODATA: negative too.
    EXPECT_EQ(cache_.insert(question("v4only.example", type::kAaaa), with_rcode(Rcode::NoError),
                            86400, clock_.now()),
              hours(1));
    EXPECT_EQ(cache_.insert(question("v4only2.example", type::kAaaa), with_rcode(Rcode::NoError),
                            std::nullopt, clock_.now()),
              seconds(60));
    // A NOERROR answer with records but no address (MX, a dangling CNAME) is positive.
    auto mx = std::make_shared<Answer>();
    mx->wire.answer_count = 2;
    EXPECT_EQ(cache_.insert(question("example.com", type::kMx), mx, 86400, clock_.now()),
              hours(24));
    EXPECT_EQ(cache_.size(), 7U);
}

TEST_F(AnswerCacheTest, OtherRcodesAreNotStored) {
    for (const Rcode rcode : {Rcode::ServFail, Rcode::Refused, Rcode::FormErr, Rcode::NotImp}) {
        EXPECT_EQ(cache_.insert(question("www.example.com"), with_rcode(rcode), 300, clock_.now()),
                  seconds(0));
    }
    EXPECT_EQ(cache_.size(), 0U);
    EXPECT_EQ(cache_.counters().insertions, 0U);
    EXPECT_EQ(cache_.insert(question("www.example.com"), nullptr, 300, clock_.now()), seconds(0));
}

TEST_F(AnswerCacheTest, ANewerAnswerReplacesTheOlderOne) {
    cache_.insert(question("www.example.com"), positive("192.0.2.1"), 300, clock_.now());
    clock_.advance(seconds(100));
    const auto newer = positive("192.0.2.2");
    EXPECT_EQ(cache_.insert(question("www.example.com"), newer, 30, clock_.now()), seconds(30));
    EXPECT_EQ(cache_.size(), 1U);
    const auto hit = cache_.lookup(question("www.example.com"), clock_.now());
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->answer, newer);
    EXPECT_EQ(hit->age_seconds, 0U);
    // The newer answer's lifetime counts, not the older one's.
    clock_.advance(seconds(30));
    EXPECT_FALSE(cache_.lookup(question("www.example.com"), clock_.now()));
    EXPECT_EQ(cache_.counters().insertions, 2U);
    EXPECT_EQ(cache_.counters().evictions, 0U);
}

TEST_F(AnswerCacheTest, TheLeastRecentlyUsedGoesFirst) {
    AnswerCache cache(CacheLimits{.max_entries = 3});
    cache.insert(question("a.example"), positive(), 300, clock_.now());
    cache.insert(question("b.example"), positive(), 300, clock_.now());
    cache.insert(question("c.example"), positive(), 300, clock_.now());
    // A hit makes "a" the most recently used, so "b" is the oldest now.
    EXPECT_TRUE(cache.lookup(question("a.example"), clock_.now()));
    cache.insert(question("d.example"), positive(), 300, clock_.now());
    EXPECT_EQ(cache.size(), 3U);
    EXPECT_FALSE(cache.lookup(question("b.example"), clock_.now()));
    EXPECT_TRUE(cache.lookup(question("a.example"), clock_.now()));
    EXPECT_TRUE(cache.lookup(question("c.example"), clock_.now()));
    EXPECT_TRUE(cache.lookup(question("d.example"), clock_.now()));
    EXPECT_EQ(cache.counters().evictions, 1U);
    // Replacing an entry makes no room and evicts nothing.
    cache.insert(question("c.example"), positive(), 300, clock_.now());
    EXPECT_EQ(cache.size(), 3U);
    EXPECT_EQ(cache.counters().evictions, 1U);
}

TEST_F(AnswerCacheTest, ACacheOfNoEntriesStoresNothing) {
    AnswerCache cache(CacheLimits{.max_entries = 0});
    EXPECT_EQ(cache.insert(question("a.example"), positive(), 300, clock_.now()), seconds(0));
    EXPECT_EQ(cache.size(), 0U);
}

TEST_F(AnswerCacheTest, ExpireForgetsOnlyExpiredEntries) {
    cache_.insert(question("short.example"), positive(), 20, clock_.now());
    cache_.insert(question("long.example"), positive(), 600, clock_.now());
    cache_.insert(question("gone.example"), with_rcode(Rcode::NxDomain), 30, clock_.now());
    clock_.advance(minutes(1));
    EXPECT_EQ(cache_.expire(clock_.now()), 2U);
    EXPECT_EQ(cache_.size(), 1U);
    EXPECT_TRUE(cache_.lookup(question("long.example"), clock_.now()));
    EXPECT_EQ(cache_.expire(clock_.now()), 0U);
    // What expire() removed can be stored again.
    cache_.insert(question("short.example"), positive(), 20, clock_.now());
    EXPECT_TRUE(cache_.lookup(question("short.example"), clock_.now()));
}

TEST_F(AnswerCacheTest, ClearForgetsEverythingButTheCounters) {
    cache_.insert(question("a.example"), positive(), 300, clock_.now());
    cache_.insert(question("b.example"), positive(), 300, clock_.now());
    cache_.clear();
    EXPECT_EQ(cache_.size(), 0U);
    EXPECT_FALSE(cache_.lookup(question("a.example"), clock_.now()));
    EXPECT_EQ(cache_.counters().insertions, 2U);
    cache_.insert(question("a.example"), positive(), 300, clock_.now());
    EXPECT_TRUE(cache_.lookup(question("a.example"), clock_.now()));
}

TEST_F(AnswerCacheTest, AMovedCacheKeepsItsEntries) {
    cache_.insert(question("a.example"), positive(), 300, clock_.now());
    AnswerCache moved(std::move(cache_));
    EXPECT_TRUE(moved.lookup(question("a.example"), clock_.now()));
    EXPECT_EQ(moved.counters().insertions, 1U);
}

TEST_F(AnswerCacheTest, ManyNamesStayFindable) {
    AnswerCache cache(CacheLimits{.max_entries = 1000});
    for (int index = 0; index < 1500; ++index) {
        cache.insert(question("host" + std::to_string(index) + ".example"), positive(), 300,
                     clock_.now());
    }
    EXPECT_EQ(cache.size(), 1000U);
    EXPECT_EQ(cache.counters().evictions, 500U);
    for (int index = 0; index < 1500; ++index) {
        EXPECT_EQ(cache.lookup(question("host" + std::to_string(index) + ".example"), clock_.now())
                      .has_value(),
                  index >= 500)
            << index;
    }
}

} // namespace
} // namespace pw::dns
