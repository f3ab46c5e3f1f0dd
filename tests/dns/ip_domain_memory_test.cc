#include "dns/ip_domain_memory.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace pw::dns {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr std::string_view kFirefox = "/usr/lib/firefox/firefox";
constexpr std::string_view kCurl = "/usr/bin/curl";

IpAddress address(std::string_view text) {
    return IpAddress::parse(text).value();
}

const std::vector<std::string> kEdgeChain = {"edge.cdn.example"};

class IpDomainMemoryTest : public ::testing::Test {
protected:
    testing::FakeClock clock_;
    IpDomainMemory memory_;
};

TEST_F(IpDomainMemoryTest, RemembersTheNameAndItsCnameChainPerScope) {
    memory_.record(kFirefox, address("192.0.2.10"), "www.example.com", kEdgeChain, seconds(300),
                   clock_.now());
    const auto name = memory_.lookup(kFirefox, address("192.0.2.10"), clock_.now());
    ASSERT_TRUE(name.has_value());
    EXPECT_EQ(name->domain, "www.example.com");
    EXPECT_EQ(name->cname_chain, std::vector<std::string>{"edge.cdn.example"});
    EXPECT_EQ(name->recorded_at, clock_.now());
    // Another process did not ask: it learns nothing from firefox's answers.
    EXPECT_FALSE(memory_.lookup(kCurl, address("192.0.2.10"), clock_.now()).has_value());
}

TEST_F(IpDomainMemoryTest, TwoProcessesResolvingDifferentNamesToOneAddressKeepTheirOwn) {
    memory_.record(kFirefox, address("192.0.2.10"), "a.example", {}, seconds(60), clock_.now());
    memory_.record(kCurl, address("192.0.2.10"), "b.example", {}, seconds(60), clock_.now());
    EXPECT_EQ(memory_.lookup(kFirefox, address("192.0.2.10"), clock_.now())->domain, "a.example");
    EXPECT_EQ(memory_.lookup(kCurl, address("192.0.2.10"), clock_.now())->domain, "b.example");
}

TEST_F(IpDomainMemoryTest, OwnScopeFirstThenTheGlobalOne) {
    memory_.record(IpDomainMemory::kGlobalScope, address("2001:db8::1"), "via-resolved.example", {},
                   seconds(60), clock_.now());
    EXPECT_EQ(memory_.lookup(kCurl, address("2001:db8::1"), clock_.now())->domain,
              "via-resolved.example");
    memory_.record(kCurl, address("2001:db8::1"), "own.example", {}, seconds(60), clock_.now());
    EXPECT_EQ(memory_.lookup(kCurl, address("2001:db8::1"), clock_.now())->domain, "own.example");
}

TEST_F(IpDomainMemoryTest, TheNewestAnswerReplacesTheOlder) {
    memory_.record(kCurl, address("192.0.2.1"), "old.example", {}, seconds(60), clock_.now());
    clock_.advance(seconds(5));
    memory_.record(kCurl, address("192.0.2.1"), "new.example", {}, seconds(60), clock_.now());
    EXPECT_EQ(memory_.lookup(kCurl, address("192.0.2.1"), clock_.now())->domain, "new.example");
    EXPECT_EQ(memory_.size(), 1U);
}

TEST_F(IpDomainMemoryTest, ShortTtlsAreKeptForTheFloorLongOnesCutAtTheCeiling) {
    IpDomainMemory memory({.max_entries = 16, .min_keep = minutes(10), .max_keep = hours(1)});
    memory.record(kCurl, address("192.0.2.1"), "short.example", {}, seconds(5), clock_.now());
    memory.record(kCurl, address("192.0.2.2"), "long.example", {}, hours(48), clock_.now());
    clock_.advance(minutes(9));
    EXPECT_TRUE(memory.lookup(kCurl, address("192.0.2.1"), clock_.now()).has_value());
    clock_.advance(minutes(1));
    EXPECT_FALSE(memory.lookup(kCurl, address("192.0.2.1"), clock_.now()).has_value());
    EXPECT_EQ(memory.expire(clock_.now()), 1U);
    clock_.advance(minutes(50));
    EXPECT_FALSE(memory.lookup(kCurl, address("192.0.2.2"), clock_.now()).has_value());
    EXPECT_EQ(memory.expire(clock_.now()), 1U);
    EXPECT_EQ(memory.size(), 0U);
}

TEST_F(IpDomainMemoryTest, BoundedTheLeastRecentlyAnsweredGoesFirst) {
    IpDomainMemory memory({.max_entries = 2, .min_keep = minutes(10), .max_keep = hours(1)});
    memory.record(kCurl, address("192.0.2.1"), "one.example", {}, seconds(60), clock_.now());
    memory.record(kCurl, address("192.0.2.2"), "two.example", {}, seconds(60), clock_.now());
    // Answered again: now the youngest.
    memory.record(kCurl, address("192.0.2.1"), "one.example", {}, seconds(60), clock_.now());
    memory.record(kCurl, address("192.0.2.3"), "three.example", {}, seconds(60), clock_.now());
    EXPECT_EQ(memory.size(), 2U);
    EXPECT_TRUE(memory.lookup(kCurl, address("192.0.2.1"), clock_.now()).has_value());
    EXPECT_FALSE(memory.lookup(kCurl, address("192.0.2.2"), clock_.now()).has_value());
    EXPECT_TRUE(memory.lookup(kCurl, address("192.0.2.3"), clock_.now()).has_value());
}

TEST_F(IpDomainMemoryTest, Ipv4MappedAddressesAreTheIpv4Address) {
    memory_.record(kCurl, address("::ffff:192.0.2.7"), "mapped.example", {}, seconds(60),
                   clock_.now());
    EXPECT_EQ(memory_.lookup(kCurl, address("192.0.2.7"), clock_.now())->domain, "mapped.example");
}

} // namespace
} // namespace pw::dns
