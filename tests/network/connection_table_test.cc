#include "network/connection_table.h"

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace pw::network {
namespace {

using std::chrono::seconds;

ConnectionKey key(std::uint8_t protocol, std::uint16_t local_port) {
    return ConnectionKey{.protocol = protocol,
                         .local_address = *IpAddress::parse("10.0.0.1"),
                         .local_port = local_port,
                         .remote_address = *IpAddress::parse("10.0.0.2"),
                         .remote_port = 80};
}

ConnectionEntry entry(packet::Persistence persistence, Clock::TimePoint now) {
    return ConnectionEntry{.id = 1, .mark = 1710, .persistence = persistence, .last_seen = now};
}

TEST(ConnectionTable, FindsWhatWasInserted) {
    testing::FakeClock clock;
    ConnectionTable table;
    ASSERT_TRUE(table.insert(key(6, 1000), entry(packet::Persistence::Permanent, clock.now())));
    ASSERT_NE(table.find(key(6, 1000)), nullptr);
    EXPECT_EQ(table.find(key(6, 1000))->mark, 1710U);
    EXPECT_EQ(table.find(key(6, 1001)), nullptr);
    EXPECT_EQ(table.find(key(17, 1000)), nullptr);
}

TEST(ConnectionTable, PermanentEntriesLingerBriefly) {
    testing::FakeClock clock;
    ConnectionTable table({.permanent_linger = seconds(5)});
    ASSERT_TRUE(table.insert(key(6, 1000), entry(packet::Persistence::Permanent, clock.now())));
    clock.advance(seconds(4));
    EXPECT_EQ(table.expire(clock.now()), 0U);
    clock.advance(seconds(1));
    EXPECT_EQ(table.expire(clock.now()), 1U);
    EXPECT_EQ(table.size(), 0U);
}

TEST(ConnectionTable, TemporaryEntriesLiveUntilIdleByProtocol) {
    testing::FakeClock clock;
    ConnectionTable table(
        {.tcp_idle = seconds(600), .udp_idle = seconds(120), .other_idle = seconds(60)});
    ASSERT_TRUE(table.insert(key(6, 1), entry(packet::Persistence::Temporary, clock.now())));
    ASSERT_TRUE(table.insert(key(17, 2), entry(packet::Persistence::Temporary, clock.now())));
    ASSERT_TRUE(table.insert(key(1, 0), entry(packet::Persistence::Temporary, clock.now())));
    clock.advance(seconds(60));
    EXPECT_EQ(table.expire(clock.now()), 1U); // ICMP
    clock.advance(seconds(60));
    EXPECT_EQ(table.expire(clock.now()), 1U); // UDP
    EXPECT_NE(table.find(key(6, 1)), nullptr);
    clock.advance(seconds(480));
    EXPECT_EQ(table.expire(clock.now()), 1U); // TCP
}

TEST(ConnectionTable, RefusesNewEntriesWhenFull) {
    testing::FakeClock clock;
    ConnectionTable table({.max_entries = 2});
    EXPECT_TRUE(table.insert(key(6, 1), entry(packet::Persistence::Permanent, clock.now())));
    EXPECT_TRUE(table.insert(key(6, 2), entry(packet::Persistence::Permanent, clock.now())));
    EXPECT_FALSE(table.insert(key(6, 3), entry(packet::Persistence::Permanent, clock.now())));
    EXPECT_EQ(table.size(), 2U);
}

TEST(ConnectionKey, BothDirectionsOfAFlowShareOneKey) {
    packet::PacketInfo outbound{.protocol = 6,
                                .source = *IpAddress::parse("10.0.0.1"),
                                .destination = *IpAddress::parse("10.0.0.2"),
                                .source_port = 40000,
                                .destination_port = 80};
    packet::PacketInfo reply = outbound;
    std::swap(reply.source, reply.destination);
    std::swap(reply.source_port, reply.destination_port);
    EXPECT_EQ(ConnectionKey::from_packet(outbound, packet::Direction::Outbound),
              ConnectionKey::from_packet(reply, packet::Direction::Inbound));
    EXPECT_NE(ConnectionKey::from_packet(outbound, packet::Direction::Outbound),
              ConnectionKey::from_packet(outbound, packet::Direction::Inbound));
}

} // namespace
} // namespace pw::network
