// A new sender on a live UDP flow (issue 10 item 8): the connection decided for the earlier
// process is decided again for the new one, instead of the new one riding its verdict.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_policy_provider.h"
#include "fakes/packet_builder.h"
#include "network/live_connections.h"
#include "network/packet_processor.h"
#include "packet/verdict.h"

namespace pw::network {
namespace {

// Names every connection's process after `pid`, which the test changes between senders.
class SwitchableAttributor final : public Attributor {
public:
    // network::Attributor
    Attribution attribute(const firewall::ConnectionFacts& /*connection*/) override {
        firewall::ProcessFacts process;
        process.kind = kind;
        process.pid = kind == firewall::ProcessKind::Process ? pid : -1;
        process.start_time = start_time;
        process.executable = "/usr/bin/sender-" + std::to_string(pid);
        process.source = "ebpf";
        return {.process = process, .worth_retrying = false};
    }

    firewall::ProcessKind kind = firewall::ProcessKind::Process;
    std::int64_t pid = 100;
    std::uint64_t start_time = 5000;
};

// The process of every "decided" event, in order.
class DecidedPids final : public EventSink {
public:
    // network::EventSink
    void connection_new(std::uint64_t /*id*/, const firewall::ConnectionFacts& /*c*/) override {}
    void connection_decided(std::uint64_t /*id*/, const firewall::ConnectionFacts& connection,
                            const firewall::Decision& /*decision*/, std::uint32_t mark) override {
        pids.push_back(connection.process ? connection.process->pid : -1);
        marks.push_back(mark);
    }
    void dns_query(const DnsQueryEvent& /*query*/) override {}
    void prompt(profile::PromptEvent /*event*/, const profile::Prompt& /*prompt*/,
                const profile::PromptAnswer* /*answer*/) override {}
    void flush() override {}

    std::vector<std::int64_t> pids;
    std::vector<std::uint32_t> marks;
};

ConnectionKey flow(const char* local, std::uint16_t local_port, const char* remote,
                   std::uint16_t remote_port) {
    return ConnectionKey{.protocol = 17,
                         .local_address = IpAddress::parse(local).value(),
                         .local_port = local_port,
                         .remote_address = IpAddress::parse(remote).value(),
                         .remote_port = remote_port};
}

class UdpSenderTest : public ::testing::Test {
protected:
    void SetUp() override { processor_.enable_live_connections(live_); }

    std::optional<std::uint32_t> send_from_port(std::uint16_t local_port) {
        return processor_.handle(packet::Direction::Outbound, out_.udp(local_port, 9000));
    }

    firewall::FilterSettings settings_;
    profile::FixedPolicyProvider policies_{settings_};
    ConnectionTable table_;
    DecidedPids events_;
    testing::FakeClock clock_;
    SwitchableAttributor attributor_;
    LiveConnections live_;
    PacketProcessor processor_{policies_, table_, events_, clock_, &attributor_};
    testing::PacketBuilder out_{"10.0.0.1", "10.0.0.2"};
};

TEST_F(UdpSenderTest, AnotherProcessOnALiveFlowIsDecidedAgainForItself) {
    ASSERT_EQ(send_from_port(40000), packet::mark::kPermanentAccept);
    // Another program, which its settings block, reuses port 40000 towards the same destination
    // while the flow's permanent accept is still in the kernel.
    settings_.default_action = firewall::DefaultAction::Block;
    attributor_.pid = 200;
    const auto changes = processor_.udp_sender_seen(
        {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 200, .start_time = 6000});
    ASSERT_EQ(changes.size(), 1U);
    EXPECT_EQ(changes[0].key, flow("10.0.0.1", 40000, "10.0.0.2", 9000));
    EXPECT_EQ(changes[0].old_mark, packet::mark::kPermanentAccept);
    EXPECT_EQ(changes[0].new_mark, packet::mark::kPermanentBlock);
    EXPECT_EQ(changes[0].old_persistence, packet::Persistence::Permanent);
    EXPECT_EQ(processor_.counters().new_udp_owners, 1U);
    // The event names the new sender; the registry and the table carry its verdict.
    EXPECT_EQ(events_.pids, (std::vector<std::int64_t>{100, 200}));
    EXPECT_EQ(events_.marks.back(), packet::mark::kPermanentBlock);
    const LiveConnection* live = live_.find(changes[0].key);
    ASSERT_NE(live, nullptr);
    ASSERT_NE(live->process(), nullptr);
    EXPECT_EQ(live->process()->pid, 200);
    EXPECT_EQ(live->mark(), packet::mark::kPermanentBlock);
    EXPECT_EQ(send_from_port(40000), packet::mark::kPermanentBlock); // a packet still queued
    EXPECT_EQ(processor_.counters().connections, 1U);
}

TEST_F(UdpSenderTest, ANewSenderWithTheSameVerdictIsReportedButChangesNothingInTheKernel) {
    static_cast<void>(send_from_port(40000));
    attributor_.pid = 200;
    EXPECT_TRUE(
        processor_
            .udp_sender_seen(
                {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 200, .start_time = 6000})
            .empty());
    EXPECT_EQ(events_.pids, (std::vector<std::int64_t>{100, 200}));
    EXPECT_EQ(processor_.counters().new_udp_owners, 1U);
}

TEST_F(UdpSenderTest, ANewSenderThatWouldBeAskedIsForgottenSoThatItsNextPacketIsHeld) {
    static_cast<void>(send_from_port(40000));
    settings_.default_action = firewall::DefaultAction::Ask;
    attributor_.pid = 200;
    const auto changes = processor_.udp_sender_seen(
        {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 200, .start_time = 6000});
    ASSERT_EQ(changes.size(), 1U);
    EXPECT_EQ(changes[0].new_mark, 0U);
    EXPECT_EQ(changes[0].new_persistence, packet::Persistence::Temporary);
    EXPECT_EQ(live_.size(), 0U);
    EXPECT_EQ(table_.size(), 0U);
}

TEST_F(UdpSenderTest, WhenAttributionNamesSomeoneElseTheReportedPidIsUsed) {
    static_cast<void>(send_from_port(40000));
    // The attributor still names process 100 (say, its socket is still open).
    static_cast<void>(processor_.udp_sender_seen(
        {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 200, .start_time = 6000}));
    EXPECT_EQ(events_.pids, (std::vector<std::int64_t>{100, 200}));
}

TEST_F(UdpSenderTest, ASenderBoundToTheWildcardAddressFindsTheFlowByPortAndRemote) {
    static_cast<void>(send_from_port(40000));
    static_cast<void>(send_from_port(40001));
    settings_.default_action = firewall::DefaultAction::Block;
    const auto changes = processor_.udp_sender_seen(
        {.flow = flow("0.0.0.0", 40000, "10.0.0.2", 9000), .pid = 200, .start_time = 0});
    ASSERT_EQ(changes.size(), 1U);
    EXPECT_EQ(changes[0].key, flow("10.0.0.1", 40000, "10.0.0.2", 9000));
    EXPECT_EQ(live_.find(flow("10.0.0.1", 40001, "10.0.0.2", 9000))->mark(),
              packet::mark::kPermanentAccept); // another flow
}

TEST_F(UdpSenderTest, TheSameProcessWithANewSocketKeepsItsVerdict) {
    static_cast<void>(send_from_port(40000));
    EXPECT_TRUE(
        processor_
            .udp_sender_seen(
                {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 100, .start_time = 5000})
            .empty());
    EXPECT_EQ(processor_.counters().new_udp_owners, 0U);
    // A start time that is unknown on one side is no reason to decide again.
    EXPECT_TRUE(
        processor_
            .udp_sender_seen(
                {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 100, .start_time = 0})
            .empty());
}

TEST_F(UdpSenderTest, AReusedPidWithAnotherStartTimeIsAnotherProcess) {
    static_cast<void>(send_from_port(40000));
    static_cast<void>(processor_.udp_sender_seen(
        {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 100, .start_time = 7000}));
    EXPECT_EQ(processor_.counters().new_udp_owners, 1U);
}

TEST_F(UdpSenderTest, UnknownFlowsAndOtherDestinationsAreIgnored) {
    static_cast<void>(send_from_port(40000));
    EXPECT_TRUE(
        processor_
            .udp_sender_seen(
                {.flow = flow("10.0.0.1", 40000, "10.0.0.3", 9000), .pid = 200, .start_time = 0})
            .empty());
    EXPECT_TRUE(
        processor_
            .udp_sender_seen(
                {.flow = flow("10.0.0.1", 40002, "10.0.0.2", 9000), .pid = 200, .start_time = 0})
            .empty());
    EXPECT_EQ(processor_.counters().new_udp_owners, 0U);
}

TEST_F(UdpSenderTest, SpecialIdentitiesAreLeftAlone) {
    attributor_.kind = firewall::ProcessKind::Portwarden;
    static_cast<void>(send_from_port(40000));
    EXPECT_TRUE(
        processor_
            .udp_sender_seen(
                {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 200, .start_time = 0})
            .empty());
    EXPECT_EQ(processor_.counters().new_udp_owners, 0U);
}

TEST_F(UdpSenderTest, WithoutLiveConnectionsNothingChanges) {
    PacketProcessor bare(policies_, table_, events_, clock_, &attributor_);
    static_cast<void>(bare.handle(packet::Direction::Outbound, out_.udp(40000, 9000)));
    EXPECT_TRUE(
        bare.udp_sender_seen(
                {.flow = flow("10.0.0.1", 40000, "10.0.0.2", 9000), .pid = 200, .start_time = 0})
            .empty());
    EXPECT_EQ(table_.size(), 1U);
}

TEST(LiveConnectionsUdpIndex, FindsUdpConnectionsWhateverTheirLocalAddress) {
    LiveConnections live(2);
    live.add(flow("10.0.0.1", 40000, "10.0.0.2", 9000), {}, {});
    live.add(flow("10.0.0.9", 40000, "10.0.0.2", 9000), {}, {});
    EXPECT_EQ(live.find_udp_any_local(flow("0.0.0.0", 40000, "10.0.0.2", 9000)).size(), 2U);
    // Eviction and removal take connections out of the index too.
    live.add(flow("10.0.0.1", 40001, "10.0.0.2", 9000), {}, {});
    EXPECT_EQ(live.find_udp_any_local(flow("0.0.0.0", 40000, "10.0.0.2", 9000)),
              (std::vector<ConnectionKey>{flow("10.0.0.9", 40000, "10.0.0.2", 9000)}));
    EXPECT_TRUE(live.remove(flow("10.0.0.9", 40000, "10.0.0.2", 9000)));
    EXPECT_TRUE(live.find_udp_any_local(flow("0.0.0.0", 40000, "10.0.0.2", 9000)).empty());
    // TCP is not indexed.
    ConnectionKey tcp = flow("10.0.0.1", 40000, "10.0.0.2", 9000);
    tcp.protocol = 6;
    live.add(tcp, {}, {});
    EXPECT_TRUE(live.find_udp_any_local(tcp).empty());
}

} // namespace
} // namespace pw::network
