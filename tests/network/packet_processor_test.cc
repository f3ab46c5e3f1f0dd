#include "network/packet_processor.h"

#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/packet_builder.h"
#include "packet/verdict.h"

namespace pw::network {
namespace {

// Records what the processor reports, to assert on the event stream.
class RecordingEventSink final : public EventSink {
public:
    struct Record {
        std::string event;
        std::uint64_t id;
        firewall::ConnectionFacts connection;
        std::uint32_t mark;
        std::string reason;
    };

    // network::EventSink
    void connection_new(std::uint64_t id, const firewall::ConnectionFacts& connection) override {
        records.push_back({"new", id, connection, 0, ""});
    }
    void connection_decided(std::uint64_t id, const firewall::ConnectionFacts& connection,
                            const firewall::Decision& decision, std::uint32_t mark) override {
        records.push_back({"decided", id, connection, mark, decision.reason});
    }
    void flush() override {}

    std::vector<Record> records;
};

class PacketProcessorTest : public ::testing::Test {
protected:
    firewall::FilterSettings settings_;
    ConnectionTable table_;
    RecordingEventSink events_;
    testing::FakeClock clock_;
    PacketProcessor processor_{settings_, table_, events_, clock_};
};

TEST_F(PacketProcessorTest, NewConnectionIsDecidedOnceAndReported) {
    const testing::PacketBuilder out("10.0.0.1", "10.0.0.2");
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out.tcp(40000, 80)),
              packet::mark::kPermanentAccept);
    ASSERT_EQ(events_.records.size(), 2U);
    EXPECT_EQ(events_.records[0].event, "new");
    EXPECT_EQ(events_.records[1].event, "decided");
    EXPECT_EQ(events_.records[1].mark, packet::mark::kPermanentAccept);
    const auto& connection = events_.records[1].connection;
    EXPECT_EQ(connection.local_address.to_string(), "10.0.0.1");
    EXPECT_EQ(connection.local_port, 40000);
    EXPECT_EQ(connection.remote_address.to_string(), "10.0.0.2");
    EXPECT_EQ(connection.remote_port, 80);
    EXPECT_EQ(connection.direction, packet::Direction::Outbound);
    EXPECT_EQ(processor_.counters().connections, 1U);
}

TEST_F(PacketProcessorTest, LaterPacketsOfAKnownConnectionReuseItsVerdict) {
    settings_.default_action = firewall::DefaultAction::Block;
    settings_.permanent_verdicts = firewall::PermanentVerdicts::Off;
    const testing::PacketBuilder out("10.0.0.1", "10.0.0.2");
    const testing::PacketBuilder in("10.0.0.2", "10.0.0.1");
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out.tcp(40000, 80)),
              packet::mark::kBlock);
    // Change the settings: a known connection keeps the verdict it was given.
    settings_.default_action = firewall::DefaultAction::Permit;
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, in.tcp(80, 40000, 0x12)),
              packet::mark::kBlock);
    EXPECT_EQ(processor_.counters().connections, 1U);
    EXPECT_EQ(processor_.counters().known, 1U);
    EXPECT_EQ(events_.records.size(), 2U);
}

TEST_F(PacketProcessorTest, MalformedPacketsAreCountedAndDropped) {
    const std::vector<std::uint8_t> garbage = {0x45, 0x00, 0x00};
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, garbage), packet::mark::kDrop);
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, {}), packet::mark::kDrop);
    EXPECT_EQ(processor_.counters().malformed, 2U);
    EXPECT_EQ(processor_.counters().connections, 0U);
    EXPECT_TRUE(events_.records.empty());
    EXPECT_EQ(table_.size(), 0U);
}

TEST_F(PacketProcessorTest, RulesDecideByRemoteAddressAndServicePort) {
    settings_.endpoints = {*firewall::parse_endpoint_rule("- 10.0.0.2 tcp/22"),
                           *firewall::parse_endpoint_rule("+ * tcp")};
    const testing::PacketBuilder out("10.0.0.1", "10.0.0.2");
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out.tcp(40000, 22)),
              packet::mark::kPermanentBlock);
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out.tcp(40001, 80)),
              packet::mark::kPermanentAccept);
    EXPECT_THAT(events_.records[1].reason, ::testing::HasSubstr("- 10.0.0.2 tcp/22"));
}

TEST_F(PacketProcessorTest, InboundConnectionsAreKeyedFromTheLocalSide) {
    const testing::PacketBuilder in("10.0.0.2", "10.0.0.1");
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, in.tcp(50000, 22)),
              packet::mark::kPermanentAccept);
    const auto& connection = events_.records[1].connection;
    EXPECT_EQ(connection.direction, packet::Direction::Inbound);
    EXPECT_EQ(connection.local_address.to_string(), "10.0.0.1");
    EXPECT_EQ(connection.local_port, 22);
    EXPECT_EQ(connection.remote_port, 50000);
}

TEST_F(PacketProcessorTest, ForgottenConnectionsAreDecidedAgain) {
    const testing::PacketBuilder out("fd00::1", "fd00::2");
    static_cast<void>(processor_.handle(packet::Direction::Outbound, out.udp(5353, 53)));
    clock_.advance(std::chrono::minutes(10));
    EXPECT_EQ(processor_.expire_connections(), 1U);
    static_cast<void>(processor_.handle(packet::Direction::Outbound, out.udp(5353, 53)));
    EXPECT_EQ(processor_.counters().connections, 2U);
    EXPECT_EQ(events_.records.back().id, 2U);
}

} // namespace
} // namespace pw::network
