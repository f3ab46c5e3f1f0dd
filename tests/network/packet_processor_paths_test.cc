// The paths of PacketProcessor that a removed line would not otherwise show (issue 10 item 11):
// the keep-alive of a known connection, the domain of inbound connections, the cap on
// connections waiting for attribution and a full connection table. Each test below fails when
// the line it guards is taken out (checked by doing so).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dns/ip_domain_memory.h"
#include "fakes/fake_clock.h"
#include "fakes/packet_builder.h"
#include "network/packet_processor.h"
#include "packet/packet_parser.h"
#include "packet/verdict.h"

namespace pw::network {
namespace {

// Keeps the decided events: the facts a connection was decided with.
class DecidedEvents final : public EventSink {
public:
    // network::EventSink
    void connection_new(std::uint64_t /*id*/,
                        const firewall::ConnectionFacts& /*connection*/) override {}
    void connection_decided(std::uint64_t id, const firewall::ConnectionFacts& connection,
                            const firewall::Decision& /*decision*/, std::uint32_t mark) override {
        decided.push_back({.id = id, .connection = connection, .mark = mark});
    }
    void dns_query(const DnsQueryEvent& /*query*/) override {}
    void prompt(profile::PromptEvent /*event*/, const profile::Prompt& /*prompt*/,
                const profile::PromptAnswer* /*answer*/) override {}
    void flush() override {}

    struct Decided {
        std::uint64_t id = 0;
        firewall::ConnectionFacts connection;
        std::uint32_t mark = 0;
    };
    std::vector<Decided> decided;
};

// Verdicts of deferred packets; these tests only need them to be accepted somewhere.
class IgnoredVerdicts final : public PacketProcessor::VerdictSink {
public:
    // network::PacketProcessor::VerdictSink
    void verdict(PacketRef /*packet*/, std::uint32_t /*mark*/) override {}
    void flush() override {}
};

// Never finds the process of a flow, and always thinks another look might (a socket that is
// not visible yet): every new connection waits for a retry while there is room.
class NeverFoundAttributor final : public Attributor {
public:
    // network::Attributor
    Attribution attribute(const firewall::ConnectionFacts& /*connection*/) override {
        firewall::ProcessFacts unknown;
        unknown.kind = firewall::ProcessKind::Unidentified;
        return {.process = unknown, .worth_retrying = true};
    }
};

class PacketProcessorPathsTest : public ::testing::Test {
protected:
    firewall::FilterSettings settings_;
    profile::FixedPolicyProvider policies_{settings_};
    DecidedEvents events_;
    testing::FakeClock clock_;
    const testing::PacketBuilder out_{"10.0.0.1", "192.0.2.10"};
    const testing::PacketBuilder in_{"192.0.2.10", "10.0.0.1"};
};

// A temporary verdict is remembered until the connection is idle: each of its packets renews
// the entry, so a connection that keeps talking is never decided (and reported) a second time.
class KeepAliveTest : public PacketProcessorPathsTest {
protected:
    KeepAliveTest() { settings_.permanent_verdicts = firewall::PermanentVerdicts::Off; }

    // Three packets more than half the idle time apart after the first: the connection outlives
    // its idle time (counted from its first packet) only if each packet renews it. Returns how
    // many connections expired meanwhile.
    std::size_t talk_for_longer_than_the_idle_time() {
        EXPECT_EQ(processor_.handle(packet::Direction::Outbound, packet_), packet::mark::kAccept);
        std::size_t expired = 0;
        for (int round = 0; round < 3; ++round) {
            clock_.advance(limits_.udp_idle / 2 + std::chrono::seconds(10));
            expired += processor_.expire_connections();
            marks_.push_back(processor_.handle(packet::Direction::Outbound, packet_));
        }
        return expired;
    }

    const ConnectionTable::Limits limits_;
    ConnectionTable table_{limits_};
    PacketProcessor processor_{policies_, table_, events_, clock_};
    const std::vector<std::uint8_t> packet_ = out_.udp(40000, 5000);
    std::vector<std::optional<std::uint32_t>> marks_;
};

TEST_F(KeepAliveTest, PacketsOfAKnownConnectionKeepItAlive) {
    EXPECT_EQ(talk_for_longer_than_the_idle_time(), 0U);
    EXPECT_EQ(marks_, std::vector<std::optional<std::uint32_t>>(3, packet::mark::kAccept));
    EXPECT_EQ(processor_.counters().connections, 1U);
    EXPECT_EQ(processor_.counters().known, 3U);
    EXPECT_EQ(events_.decided.size(), 1U);
}

TEST_F(KeepAliveTest, TheEntryCountsThePacketsAndExpiresOnceSilent) {
    static_cast<void>(talk_for_longer_than_the_idle_time());
    const ConnectionEntry* entry = table_.find(
        ConnectionKey::from_packet(*packet::parse_packet(packet_), packet::Direction::Outbound));
    ASSERT_NE(entry, nullptr);
    EXPECT_EQ(entry->packets, 4U);
    EXPECT_EQ(entry->last_seen, clock_.now());
    clock_.advance(limits_.udp_idle);
    EXPECT_EQ(processor_.expire_connections(), 1U);
}

// The name memory says which name a program resolved to reach an address. An inbound
// connection was resolved by nobody here: the remote peer's address must not be labelled (and
// matched by domain rules) with a name that some local program looked up.
TEST_F(PacketProcessorPathsTest, InboundConnectionsCarryNoDomain) {
    settings_.block_inbound = false;
    ConnectionTable table;
    PacketProcessor processor(policies_, table, events_, clock_);
    DnsClientDirectory clients;
    dns::IpDomainMemory memory;
    processor.enable_dns(clients, memory);
    memory.record(dns::IpDomainMemory::kGlobalScope, IpAddress::parse("192.0.2.10").value(),
                  "www.example.com", {}, std::chrono::seconds(60), clock_.now());

    static_cast<void>(processor.handle(packet::Direction::Inbound, in_.tcp(50000, 22)));
    ASSERT_EQ(events_.decided.size(), 1U);
    EXPECT_EQ(events_.decided[0].connection.direction, packet::Direction::Inbound);
    EXPECT_FALSE(events_.decided[0].connection.domain.has_value());

    // The same address outbound does carry the name: the memory above is in use.
    static_cast<void>(processor.handle(packet::Direction::Outbound, out_.tcp(40000, 443)));
    ASSERT_EQ(events_.decided.size(), 2U);
    ASSERT_TRUE(events_.decided[1].connection.domain.has_value());
    EXPECT_EQ(events_.decided[1].connection.domain->domain, "www.example.com");
}

// Connections waiting for attribution hold their packets in the kernel's queue; beyond the cap
// a new connection is decided at once (with what is known) instead of waiting too.
class PendingCapTest : public PacketProcessorPathsTest {
protected:
    static constexpr std::size_t kCap = PacketProcessor::kMaxPendingConnections;

    PendingCapTest() { processor_.set_verdict_sink(verdicts_); }

    // Starts kCap connections that all wait for attribution; returns how many did.
    std::size_t fill_to_the_cap() {
        std::size_t waiting = 0;
        for (std::size_t index = 0; index < kCap; ++index) {
            const auto port = static_cast<std::uint16_t>(1024 + index);
            const PacketRef ref{.packet_id = static_cast<std::uint32_t>(index)};
            waiting += processor_.handle(packet::Direction::Outbound, out_.udp(port, 5000), ref) ==
                       std::nullopt;
        }
        return waiting;
    }

    std::optional<std::uint32_t> one_more() {
        return processor_.handle(packet::Direction::Outbound,
                                 out_.udp(static_cast<std::uint16_t>(1024 + kCap), 5000));
    }

    ConnectionTable table_;
    NeverFoundAttributor attributor_;
    IgnoredVerdicts verdicts_;
    PacketProcessor processor_{policies_, table_, events_, clock_, &attributor_};
};

TEST_F(PendingCapTest, UpToTheCapConnectionsWait) {
    EXPECT_EQ(fill_to_the_cap(), kCap);
    EXPECT_EQ(processor_.pending_connections(), kCap);
    EXPECT_EQ(processor_.counters().deferred, kCap);
    EXPECT_TRUE(events_.decided.empty());
}

TEST_F(PendingCapTest, AConnectionBeyondTheCapIsDecidedAtOnce) {
    static_cast<void>(fill_to_the_cap());
    EXPECT_EQ(one_more(), packet::mark::kPermanentAccept) << "beyond the cap nothing may wait";
    EXPECT_EQ(processor_.pending_connections(), kCap);
    EXPECT_EQ(processor_.counters().pending_full, 1U);
    ASSERT_EQ(events_.decided.size(), 1U);
    EXPECT_EQ(events_.decided[0].connection.process.value_or(firewall::ProcessFacts{}).kind,
              firewall::ProcessKind::Unidentified);
}

// With the connection table full a new connection is still decided, by the rules, and counted;
// as it is not remembered, its next packet is decided again rather than answered from nothing.
TEST_F(PacketProcessorPathsTest, AFullTableStillDecidesAndCountsEachConnection) {
    settings_.endpoints.global = std::make_shared<const firewall::RuleList>(
        firewall::RuleList{*firewall::parse_endpoint_rule("- 192.0.2.10 udp/5002"),
                           *firewall::parse_endpoint_rule("+ *")});
    ConnectionTable table(ConnectionTable::Limits{.max_entries = 2});
    PacketProcessor processor(policies_, table, events_, clock_);

    EXPECT_EQ(processor.handle(packet::Direction::Outbound, out_.udp(40000, 5000)),
              packet::mark::kPermanentAccept);
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, out_.udp(40001, 5001)),
              packet::mark::kPermanentAccept);
    EXPECT_EQ(processor.counters().table_full, 0U);

    const auto third = out_.udp(40002, 5002);
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, third), packet::mark::kPermanentBlock);
    EXPECT_EQ(processor.counters().table_full, 1U);
    EXPECT_EQ(table.size(), 2U);
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, third), packet::mark::kPermanentBlock);
    EXPECT_EQ(processor.counters().table_full, 2U);
    EXPECT_EQ(processor.counters().connections, 4U);
    EXPECT_EQ(processor.counters().known, 0U);
    ASSERT_EQ(events_.decided.size(), 4U);
    EXPECT_NE(events_.decided[2].id, events_.decided[3].id);
}

} // namespace
} // namespace pw::network
