#include "network/broadcast_replies.h"

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "packet/packet_info.h"

namespace pw::network {
namespace {

IpAddress address(const char* text) {
    return IpAddress::parse(text).value();
}

firewall::ProcessFacts process(std::int64_t pid, std::uint64_t start_time) {
    firewall::ProcessFacts facts;
    facts.pid = pid;
    facts.start_time = start_time;
    return facts;
}

// A connection between this host's 192.168.1.10 and `remote`, UDP unless told.
firewall::ConnectionFacts connection(packet::Direction direction, std::uint16_t local_port,
                                     const char* remote, std::uint16_t remote_port,
                                     const firewall::ProcessFacts& owner,
                                     std::uint8_t protocol = packet::protocol::kUdp) {
    firewall::ConnectionFacts facts;
    facts.direction = direction;
    facts.protocol = protocol;
    facts.local_address = address("192.168.1.10");
    facts.local_port = local_port;
    facts.remote_address = address(remote);
    facts.remote_port = remote_port;
    facts.process = owner;
    return facts;
}

ConnectionKey key_of(const firewall::ConnectionFacts& facts) {
    return {.protocol = facts.protocol,
            .local_address = facts.local_address,
            .local_port = facts.local_port,
            .remote_address = facts.remote_address,
            .remote_port = facts.remote_port};
}

class BroadcastRepliesTest : public ::testing::Test {
protected:
    void send(const firewall::ConnectionFacts& outbound) {
        replies_.sent(key_of(outbound), outbound, clock_.now());
    }
    std::optional<IpAddress> answer(std::uint16_t local_port, const firewall::ProcessFacts& owner,
                                    const char* device = "192.168.1.77") {
        return replies_.answered(
            connection(packet::Direction::Inbound, local_port, device, 1900, owner), clock_.now());
    }

    testing::FakeClock clock_;
    BroadcastReplies replies_{4};
    const firewall::ProcessFacts browser_ = process(100, 5000);
};

TEST_F(BroadcastRepliesTest, OnlyUdpBroadcastsAndMulticastsOfOrdinaryProcessesAreRemembered) {
    send(connection(packet::Direction::Outbound, 41000, "192.168.1.20", 1900, browser_));
    send(connection(packet::Direction::Outbound, 41001, "239.255.255.250", 1900, browser_,
                    packet::protocol::kTcp));
    firewall::ProcessFacts kernel = browser_;
    kernel.kind = firewall::ProcessKind::Kernel;
    send(connection(packet::Direction::Outbound, 41002, "255.255.255.255", 1900, kernel));
    EXPECT_EQ(replies_.size(), 0U);
    send(connection(packet::Direction::Outbound, 41003, "255.255.255.255", 137, browser_));
    send(connection(packet::Direction::Outbound, 41004, "ff02::c", 3702, browser_));
    send(connection(packet::Direction::Outbound, 41005, "233.1.2.3", 5000, browser_));
    EXPECT_EQ(replies_.size(), 3U);
    EXPECT_EQ(answer(41003, browser_), address("255.255.255.255"));
}

TEST_F(BroadcastRepliesTest, TheAnswerMustReachTheSameLocalAddressAndProcess) {
    send(connection(packet::Direction::Outbound, 41000, "239.255.255.250", 1900, browser_));
    EXPECT_EQ(answer(41000, browser_), address("239.255.255.250"));
    EXPECT_EQ(answer(41000, process(101, 5000)), std::nullopt);
    EXPECT_EQ(answer(41000, process(100, 5001)), std::nullopt);
    auto elsewhere = connection(packet::Direction::Inbound, 41000, "10.9.0.7", 1900, browser_);
    elsewhere.local_address = address("10.9.0.1");
    EXPECT_EQ(replies_.answered(elsewhere, clock_.now()), std::nullopt);
    auto unsolicited =
        connection(packet::Direction::Inbound, 41000, "192.168.1.77", 1900, process(-1, 0));
    unsolicited.process->kind = firewall::ProcessKind::Unsolicited;
    EXPECT_EQ(replies_.answered(unsolicited, clock_.now()), std::nullopt);
    EXPECT_EQ(replies_.counters().answers, 1U);
}

TEST_F(BroadcastRepliesTest, SeveralFlowsOnOnePortNameTheMostRecent) {
    send(connection(packet::Direction::Outbound, 5353, "224.0.0.251", 5353, browser_));
    clock_.advance(std::chrono::seconds(1));
    send(connection(packet::Direction::Outbound, 5353, "239.255.255.250", 1900, browser_));
    EXPECT_EQ(answer(5353, browser_), address("239.255.255.250"));
}

TEST_F(BroadcastRepliesTest, AnEndedFlowIsForgottenAfterTheWindow) {
    const auto outbound =
        connection(packet::Direction::Outbound, 41000, "239.255.255.250", 1900, browser_);
    send(outbound);
    replies_.ended(key_of(outbound), clock_.now());
    clock_.advance(BroadcastReplies::kAnswerWindow);
    EXPECT_EQ(answer(41000, browser_), std::nullopt);
    // Sent again on the same flow: remembered again, without a second entry.
    send(outbound);
    EXPECT_EQ(answer(41000, browser_), address("239.255.255.250"));
    EXPECT_EQ(replies_.size(), 1U);
}

TEST_F(BroadcastRepliesTest, BoundedExpiredFlowsGoFirstThenTheOldest) {
    for (std::uint16_t port = 41000; port < 41004; ++port) {
        send(connection(packet::Direction::Outbound, port, "239.255.255.250", 1900, browser_));
        clock_.advance(std::chrono::seconds(1));
    }
    // The third flow ended long ago: it makes room first.
    replies_.ended(
        key_of(connection(packet::Direction::Outbound, 41002, "239.255.255.250", 1900, browser_)),
        clock_.now());
    clock_.advance(BroadcastReplies::kAnswerWindow);
    send(connection(packet::Direction::Outbound, 41004, "239.255.255.250", 1900, browser_));
    EXPECT_EQ(replies_.size(), 4U);
    EXPECT_EQ(answer(41002, browser_), std::nullopt);
    EXPECT_EQ(answer(41000, browser_), address("239.255.255.250"));
    EXPECT_EQ(replies_.counters().evicted, 0U);
    // All live now: the oldest (41000) goes.
    send(connection(packet::Direction::Outbound, 41005, "239.255.255.250", 1900, browser_));
    EXPECT_EQ(replies_.size(), 4U);
    EXPECT_EQ(replies_.counters().evicted, 1U);
    EXPECT_EQ(answer(41000, browser_), std::nullopt);
    EXPECT_EQ(answer(41005, browser_), address("239.255.255.250"));
}

} // namespace
} // namespace pw::network
