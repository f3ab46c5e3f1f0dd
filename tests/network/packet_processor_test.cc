#include "network/packet_processor.h"

#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_policy_provider.h"
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
    void dns_query(const DnsQueryEvent& /*query*/) override {}
    void prompt(profile::PromptEvent /*event*/, const profile::Prompt& /*prompt*/,
                const profile::PromptAnswer* /*answer*/) override {}
    void flush() override {}

    std::vector<Record> records;
};

// Collects the verdicts of packets the processor held back.
class RecordingVerdictSink final : public PacketProcessor::VerdictSink {
public:
    // network::PacketProcessor::VerdictSink
    void verdict(PacketRef packet, std::uint32_t mark) override {
        verdicts.emplace_back(packet, mark);
    }
    void flush() override { ++flushes; }

    std::vector<std::pair<PacketRef, std::uint32_t>> verdicts;
    int flushes = 0;
};

class PacketProcessorTest : public ::testing::Test {
protected:
    firewall::FilterSettings settings_;
    profile::FixedPolicyProvider policies_{settings_};
    ConnectionTable table_;
    RecordingEventSink events_;
    testing::FakeClock clock_;
    PacketProcessor processor_{policies_, table_, events_, clock_};
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
    settings_.endpoints.global = std::make_shared<const firewall::RuleList>(
        firewall::RuleList{*firewall::parse_endpoint_rule("- 10.0.0.2 tcp/22"),
                           *firewall::parse_endpoint_rule("+ * tcp")});
    const testing::PacketBuilder out("10.0.0.1", "10.0.0.2");
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out.tcp(40000, 22)),
              packet::mark::kPermanentBlock);
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out.tcp(40001, 80)),
              packet::mark::kPermanentAccept);
    EXPECT_THAT(events_.records[1].reason, ::testing::HasSubstr("- 10.0.0.2 tcp/22"));
}

TEST_F(PacketProcessorTest, InboundConnectionsAreKeyedFromTheLocalSide) {
    settings_.block_inbound = false; // the keying is under test, not the default inbound drop
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

// Finds nothing for the first `misses` lookups of each connection, then a process.
class SlowAttributor final : public Attributor {
public:
    explicit SlowAttributor(int misses) : misses_(misses) {}

    // network::Attributor
    Attribution attribute(const firewall::ConnectionFacts& /*connection*/) override {
        ++lookups;
        firewall::ProcessFacts facts;
        if (lookups <= misses_) {
            facts.kind = firewall::ProcessKind::Unidentified;
            return {.process = facts, .worth_retrying = true};
        }
        facts.pid = 4242;
        facts.executable = "/usr/bin/curl";
        return {.process = facts, .worth_retrying = false};
    }

    int lookups = 0;

private:
    int misses_;
};

class DeferredPacketProcessorTest : public PacketProcessorTest {
protected:
    // Runs the retries due after `by`; their verdicts go to sink_.
    void advance_and_retry(std::chrono::microseconds by, PacketProcessor& processor) {
        clock_.advance(by);
        processor.run_due_retries();
    }

    RecordingVerdictSink sink_;
    std::vector<std::pair<PacketRef, std::uint32_t>>& verdicts_ = sink_.verdicts;
    const testing::PacketBuilder out_{"10.0.0.1", "10.0.0.2"};
};

TEST_F(DeferredPacketProcessorTest, ConnectionWaitsUntilItsSocketIsVisible) {
    SlowAttributor attributor(1);
    PacketProcessor processor(policies_, table_, events_, clock_, &attributor);
    processor.set_verdict_sink(sink_);
    const auto syn = out_.tcp(40000, 80);
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, syn, {.queue = 0, .packet_id = 7}),
              std::nullopt);
    // A retransmission while waiting shares the connection's fate.
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, syn, {.queue = 0, .packet_id = 8}),
              std::nullopt);
    EXPECT_TRUE(events_.records.empty()); // nothing is reported before it is decided
    EXPECT_EQ(processor.next_retry_at(), clock_.now() + state::RetryPolicy{}.first_delay);

    advance_and_retry(state::RetryPolicy{}.first_delay, processor);
    ASSERT_EQ(verdicts_.size(), 2U);
    EXPECT_EQ(verdicts_[0],
              std::pair(PacketRef{.queue = 0, .packet_id = 7}, packet::mark::kPermanentAccept));
    EXPECT_EQ(verdicts_[1].first.packet_id, 8U);
    EXPECT_EQ(processor.counters().retry_found, 1U);
    EXPECT_EQ(processor.next_retry_at(), std::nullopt);
}

TEST_F(DeferredPacketProcessorTest, ConnectionFoundByARetryIsReportedAndRemembered) {
    SlowAttributor attributor(1);
    PacketProcessor processor(policies_, table_, events_, clock_, &attributor);
    processor.set_verdict_sink(sink_);
    const auto syn = out_.tcp(40000, 80);
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, syn, {.packet_id = 7}), std::nullopt);
    advance_and_retry(state::RetryPolicy{}.first_delay, processor);
    ASSERT_EQ(events_.records.size(), 2U);
    ASSERT_TRUE(events_.records[1].connection.process.has_value());
    EXPECT_EQ(events_.records[1].connection.process->pid, 4242);
    // Decided: later packets are answered at once.
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, syn), packet::mark::kPermanentAccept);
}

TEST_F(DeferredPacketProcessorTest, RetriesStopWithinTheBudget) {
    SlowAttributor attributor(100);
    PacketProcessor processor(policies_, table_, events_, clock_, &attributor);
    processor.set_verdict_sink(sink_);
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, out_.udp(40000, 53), {.packet_id = 1}),
              std::nullopt);
    const state::RetryPolicy policy;
    for (int step = 0; step < 100 && verdicts_.empty(); ++step) {
        advance_and_retry(std::chrono::microseconds(50), processor);
    }
    ASSERT_EQ(verdicts_.size(), 1U);
    EXPECT_EQ(attributor.lookups, policy.attempts);
    EXPECT_EQ(processor.counters().retry_gave_up, 1U);
    EXPECT_EQ(events_.records.back().connection.process.value_or(firewall::ProcessFacts{}).kind,
              firewall::ProcessKind::Unidentified);
}

TEST_F(DeferredPacketProcessorTest, ShutdownDecidesWhatIsStillWaiting) {
    SlowAttributor attributor(100);
    PacketProcessor processor(policies_, table_, events_, clock_, &attributor);
    processor.set_verdict_sink(sink_);
    EXPECT_EQ(processor.handle(packet::Direction::Outbound, out_.tcp(40000, 80), {.packet_id = 3}),
              std::nullopt);
    processor.decide_all_waiting();
    ASSERT_EQ(verdicts_.size(), 1U);
    EXPECT_EQ(verdicts_[0].first.packet_id, 3U);
    EXPECT_EQ(processor.pending_connections(), 0U);
}

} // namespace
} // namespace pw::network

namespace pw::network {
namespace {

// An attributor that names every flow after one process.
class OneProcessAttributor final : public Attributor {
public:
    explicit OneProcessAttributor(std::string identity) {
        process.pid = 4242;
        process.executable = identity;
        process.identity = std::move(identity);
        process.source = "ebpf";
    }
    Attribution attribute(const firewall::ConnectionFacts& /*connection*/) override {
        return {.process = process, .worth_retrying = false};
    }
    firewall::ProcessFacts process;
};

class PacketProcessorDnsTest : public ::testing::Test {
protected:
    PacketProcessorDnsTest() {
        settings_.dns.nameserver_endpoints = {
            {.address = IpAddress::parse("127.0.0.17").value(), .port = 53}};
        settings_.profile = {.id = "curl-profile", .name = "curl"};
        processor_.enable_dns(clients_, memory_);
    }

    firewall::FilterSettings settings_;
    profile::FixedPolicyProvider policies_{settings_};
    ConnectionTable table_;
    RecordingEventSink events_;
    testing::FakeClock clock_;
    OneProcessAttributor curl_{"/usr/bin/curl"};
    DnsClientDirectory clients_;
    dns::IpDomainMemory memory_;
    PacketProcessor processor_{policies_, table_, events_, clock_, &curl_};
};

TEST_F(PacketProcessorDnsTest, AConnectionCarriesTheDomainItsProcessResolved) {
    const std::vector<std::string> chain = {"edge.cdn.example"};
    // The profile's own scope comes before the global one.
    memory_.record("curl-profile", IpAddress::parse("192.0.2.10").value(), "www.example.com", chain,
                   std::chrono::seconds(60), clock_.now());
    memory_.record(dns::IpDomainMemory::kGlobalScope, IpAddress::parse("192.0.2.10").value(),
                   "other.example", {}, std::chrono::seconds(60), clock_.now());
    const testing::PacketBuilder out("10.0.0.1", "192.0.2.10");
    static_cast<void>(processor_.handle(packet::Direction::Outbound, out.tcp(40000, 443)));
    const auto& decided = events_.records.back().connection;
    ASSERT_TRUE(decided.domain.has_value());
    EXPECT_EQ(decided.domain->domain, "www.example.com");
    EXPECT_EQ(decided.domain->cname_chain, chain);
}

TEST_F(PacketProcessorDnsTest, WithoutAnAnswerOfItsOwnTheGlobalScopeNamesTheAddress) {
    memory_.record(dns::IpDomainMemory::kGlobalScope, IpAddress::parse("192.0.2.11").value(),
                   "via-resolved.example", {}, std::chrono::seconds(60), clock_.now());
    const testing::PacketBuilder out("10.0.0.1", "192.0.2.11");
    static_cast<void>(processor_.handle(packet::Direction::Outbound, out.tcp(40000, 443)));
    ASSERT_TRUE(events_.records.back().connection.domain.has_value());
    EXPECT_EQ(events_.records.back().connection.domain->domain, "via-resolved.example");
    // An address nobody resolved carries no domain.
    const testing::PacketBuilder unknown("10.0.0.1", "192.0.2.99");
    static_cast<void>(processor_.handle(packet::Direction::Outbound, unknown.tcp(40001, 443)));
    EXPECT_FALSE(events_.records.back().connection.domain.has_value());
}

TEST_F(PacketProcessorDnsTest, AConnectionCarriesTheScopeOfTheResolverThatAnswered) {
    // An Internet resolver named a LAN address (a rebinding attempt) while removeOutOfScopeDNS
    // was off; the setting is on by the time the application connects.
    memory_.record("curl-profile", IpAddress::parse("192.168.1.20").value(), "rebind.example", {},
                   std::chrono::seconds(60), clock_.now(),
                   IpAddress::parse("198.51.100.53").value());
    // The same kind of answer from a LAN resolver is in scope.
    memory_.record("curl-profile", IpAddress::parse("192.168.1.21").value(), "printer.lan", {},
                   std::chrono::seconds(60), clock_.now(), IpAddress::parse("192.168.1.1").value());
    settings_.remove_out_of_scope_dns = true;
    const testing::PacketBuilder out("192.168.1.10", "192.168.1.20");
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out.tcp(40000, 80)),
              packet::mark::kPermanentBlock);
    const auto& blocked = events_.records.back();
    ASSERT_TRUE(blocked.connection.domain.has_value());
    EXPECT_EQ(blocked.connection.domain->resolver_scope, firewall::IpScope::Global);
    EXPECT_THAT(blocked.reason, ::testing::HasSubstr("removeOutOfScopeDNS"));

    const testing::PacketBuilder lan("192.168.1.10", "192.168.1.21");
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, lan.tcp(40001, 80)),
              packet::mark::kPermanentAccept);
    ASSERT_TRUE(events_.records.back().connection.domain.has_value());
    EXPECT_EQ(events_.records.back().connection.domain->resolver_scope,
              firewall::IpScope::SiteLocal);
}

TEST_F(PacketProcessorDnsTest, RecordsWhoSentQueriesToOurNameserverAndAstrayOnes) {
    const testing::PacketBuilder direct("127.0.0.1", "127.0.0.17");
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, direct.udp(40000, 53)),
              packet::mark::kPermanentAccept);
    const testing::PacketBuilder astray("10.0.0.1", "192.0.2.53");
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, astray.tcp(40001, 53)),
              packet::mark::kRerouteToNameserver);
    const auto udp_asker = clients_.find(
        packet::protocol::kUdp, IpAddress::parse("127.0.0.1").value(), 40000, clock_.now());
    ASSERT_NE(udp_asker, nullptr);
    EXPECT_EQ(udp_asker->executable, "/usr/bin/curl");
    EXPECT_NE(clients_.find(packet::protocol::kTcp, IpAddress::parse("10.0.0.1").value(), 40001,
                            clock_.now()),
              nullptr);
    // Other flows are not DNS clients.
    const testing::PacketBuilder web("10.0.0.1", "192.0.2.80");
    static_cast<void>(processor_.handle(packet::Direction::Outbound, web.tcp(40002, 80)));
    EXPECT_EQ(clients_.size(), 2U);
}

} // namespace
} // namespace pw::network

namespace pw::network {
namespace {

// `filter/defaultAction: ask` (issue 9 item 4): held connections, prompts and their answers.
// An attributor whose process can be switched between packets (PID and start time).
class SwitchableAttributor final : public Attributor {
public:
    SwitchableAttributor() { become(100, 5000); }
    void become(std::int64_t pid, std::uint64_t start_time) {
        process.pid = pid;
        process.start_time = start_time;
        process.executable = "/usr/bin/discover-" + std::to_string(pid);
        process.identity = process.executable;
    }
    Attribution attribute(const firewall::ConnectionFacts& /*connection*/) override {
        return {.process = process, .worth_retrying = false};
    }
    firewall::ProcessFacts process;
};

class BroadcastReplyTest : public ::testing::Test {
protected:
    // The default blockInbound is on: only a recognised answer gets through.
    firewall::FilterSettings settings_;
    profile::FixedPolicyProvider policies_{settings_};
    ConnectionTable table_;
    RecordingEventSink events_;
    testing::FakeClock clock_;
    SwitchableAttributor process_;
    PacketProcessor processor_{policies_, table_, events_, clock_, &process_};

    const testing::PacketBuilder ssdp_{"192.168.1.10", "239.255.255.250"};
    const testing::PacketBuilder device_{"192.168.1.77", "192.168.1.10"};
};

TEST_F(BroadcastReplyTest, ADevicesAnswerToThisProcesssMulticastIsPermitted) {
    ASSERT_TRUE(settings_.block_inbound);
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, ssdp_.udp(41000, 1900)),
              packet::mark::kPermanentAccept);
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, device_.udp(1900, 41000)),
              packet::mark::kPermanentAccept);
    const auto& answer = events_.records.back();
    ASSERT_TRUE(answer.connection.answers_broadcast_to.has_value());
    EXPECT_EQ(answer.connection.answers_broadcast_to->to_string(), "239.255.255.250");
    EXPECT_THAT(answer.reason, ::testing::HasSubstr("broadcast to 239.255.255.250"));
    EXPECT_EQ(processor_.broadcast_replies().counters().answers, 1U);
}

TEST_F(BroadcastReplyTest, AnotherProcessOnThePortOrAnotherPortIsNoAnswer) {
    static_cast<void>(processor_.handle(packet::Direction::Outbound, ssdp_.udp(41000, 1900)));
    // The port reused by another program (same PID, another start: PID reuse).
    process_.become(100, 6000);
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, device_.udp(1900, 41000)),
              packet::mark::kPermanentDrop);
    EXPECT_FALSE(events_.records.back().connection.answers_broadcast_to.has_value());
    EXPECT_THAT(events_.records.back().reason, ::testing::HasSubstr("blockInbound"));
    process_.become(100, 5000);
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, device_.udp(1900, 41001)),
              packet::mark::kPermanentDrop);
}

TEST_F(BroadcastReplyTest, AnswersAreRecognisedForAWindowAfterTheFlowEnded) {
    static_cast<void>(processor_.handle(packet::Direction::Outbound, ssdp_.udp(41000, 1900)));
    const ConnectionKey flow{.protocol = packet::protocol::kUdp,
                             .local_address = IpAddress::parse("192.168.1.10").value(),
                             .local_port = 41000,
                             .remote_address = IpAddress::parse("239.255.255.250").value(),
                             .remote_port = 1900};
    // Live flows are remembered however long they last (their later sends never reach us).
    clock_.advance(std::chrono::hours(1));
    processor_.connection_ended(flow);
    clock_.advance(BroadcastReplies::kAnswerWindow - std::chrono::seconds(1));
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, device_.udp(1900, 41000)),
              packet::mark::kPermanentAccept);
    clock_.advance(std::chrono::seconds(1));
    const testing::PacketBuilder late_device("192.168.1.78", "192.168.1.10");
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, late_device.udp(1900, 41000)),
              packet::mark::kPermanentDrop);
}

TEST_F(BroadcastReplyTest, ABlockedBroadcastIsNotRemembered) {
    settings_.block_lan = true;
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, ssdp_.udp(41000, 1900)),
              packet::mark::kPermanentBlock);
    settings_.block_lan = false;
    EXPECT_EQ(processor_.handle(packet::Direction::Inbound, device_.udp(1900, 41000)),
              packet::mark::kPermanentDrop);
    EXPECT_EQ(processor_.broadcast_replies().size(), 0U);
}

class PausedPacketProcessorTest : public PacketProcessorTest {
protected:
    PausedPacketProcessorTest() {
        settings_.default_action = firewall::DefaultAction::Block;
        processor_.set_pause(pause_);
    }
    FilterPause pause_;
    const testing::PacketBuilder out_{"10.0.0.1", "10.0.0.2"};
};

TEST_F(PausedPacketProcessorTest, WhilePausedWhatWouldBeBlockedIsPermittedAndSaysSo) {
    pause_.pause(std::chrono::system_clock::now() + std::chrono::minutes(5));
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out_.tcp(40000, 80)),
              packet::mark::kPermanentAccept);
    EXPECT_THAT(events_.records.back().reason, ::testing::StartsWith("filtering paused until "));
    EXPECT_THAT(events_.records.back().reason,
                ::testing::HasSubstr("(would block: default action: block"));
    pause_.resume();
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out_.tcp(40001, 80)),
              packet::mark::kPermanentBlock);
}

TEST_F(PausedPacketProcessorTest, APauseKeepsAcceptsAndReroutesAndNobodyIsAsked) {
    firewall::Decision rerouted{.verdict = packet::Verdict::RerouteToNameserver,
                                .persistence = packet::Persistence::Permanent,
                                .reason = "astray DNS",
                                .outcome = firewall::Outcome::Decided};
    firewall::Decision asked{.verdict = packet::Verdict::Block,
                             .persistence = packet::Persistence::Permanent,
                             .reason = "default action: ask",
                             .outcome = firewall::Outcome::Ask};
    pause_.pause(std::chrono::system_clock::now() + std::chrono::minutes(5));
    pause_.apply(rerouted);
    EXPECT_EQ(rerouted.verdict, packet::Verdict::RerouteToNameserver);
    EXPECT_EQ(rerouted.reason, "astray DNS");
    pause_.apply(asked);
    EXPECT_EQ(asked.verdict, packet::Verdict::Accept);
    EXPECT_EQ(asked.outcome, firewall::Outcome::Decided);
    EXPECT_THAT(asked.reason, ::testing::HasSubstr("(would ask: default action: ask)"));
    EXPECT_FALSE(pause_.ended_by(std::chrono::system_clock::now()));
    EXPECT_TRUE(pause_.ended_by(std::chrono::system_clock::now() + std::chrono::minutes(6)));
}

class AskingPacketProcessorTest : public ::testing::Test {
protected:
    AskingPacketProcessorTest() {
        settings_.default_action = firewall::DefaultAction::Ask;
        settings_.ask_timeout = std::chrono::seconds(60);
        processor_.set_verdict_sink(sink_);
        processor_.enable_prompts(prompts_);
    }

    firewall::FilterSettings settings_;
    testing::ProfilePerExecutable policies_{settings_};
    ConnectionTable table_;
    RecordingEventSink events_;
    testing::FakeClock clock_;
    RecordingVerdictSink sink_;
    profile::PromptBroker prompts_{clock_, {.per_profile = 2, .total = 8}};
    OneProcessAttributor curl_{"/usr/bin/curl"};
    PacketProcessor processor_{policies_, table_, events_, clock_, &curl_};
    const testing::PacketBuilder out_{"10.0.0.1", "203.0.113.5"};
};

TEST_F(AskingPacketProcessorTest, AnUndecidedConnectionWaitsForTheAnswerWithItsRetransmissions) {
    const auto syn = out_.tcp(40000, 443);
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, syn, {.packet_id = 1}), std::nullopt);
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, syn, {.packet_id = 2}), std::nullopt);
    EXPECT_TRUE(sink_.verdicts.empty()); // nothing accepted or dropped meanwhile
    ASSERT_EQ(prompts_.size(), 1U);
    const profile::Prompt prompt = prompts_.list().front();
    EXPECT_EQ(prompt.subject.profile.id, "/usr/bin/curl");
    EXPECT_EQ(prompt.subject.remote_port, 443);
    EXPECT_EQ(processor_.held_connections(), 1U);

    const auto answered = prompts_.answer(prompt.id, {.verdict = profile::PromptVerdict::Permit,
                                                      .target = profile::PromptTarget::Address,
                                                      .duration = profile::PromptDuration::Once});
    ASSERT_TRUE(answered.has_value()) << answered.error().what;
    ASSERT_EQ(sink_.verdicts.size(), 2U);
    EXPECT_EQ(sink_.verdicts[0].first.packet_id, 1U);
    EXPECT_EQ(sink_.verdicts[0].second, packet::mark::kPermanentAccept);
    EXPECT_EQ(sink_.verdicts[1].first.packet_id, 2U);
    EXPECT_GE(sink_.flushes, 1);
    EXPECT_EQ(events_.records.back().reason, "prompt answered: permit once (profile 'curl')");
    // Decided: later packets are answered at once.
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, syn), packet::mark::kPermanentAccept);
    EXPECT_EQ(processor_.held_connections(), 0U);
}

TEST_F(AskingPacketProcessorTest, ARuleAddedBeforeTheAnswerDecidesTheHeldConnection) {
    EXPECT_EQ(
        processor_.handle(packet::Direction::Outbound, out_.tcp(40000, 443), {.packet_id = 1}),
        std::nullopt);
    // What the settings store does for "always": the rule is in the profile's settings before
    // the prompt closes.
    firewall::FilterSettings& curl = policies_.per_profile("/usr/bin/curl");
    curl = settings_;
    curl.endpoints.app = std::make_shared<const firewall::RuleList>(
        firewall::RuleList{*firewall::parse_endpoint_rule("- 203.0.113.5")});
    const std::uint64_t id = prompts_.list().front().id;
    ASSERT_TRUE(prompts_.answer(id, {.verdict = profile::PromptVerdict::Block,
                                     .target = profile::PromptTarget::Address,
                                     .duration = profile::PromptDuration::Always}));
    ASSERT_EQ(sink_.verdicts.size(), 1U);
    EXPECT_EQ(sink_.verdicts[0].second, packet::mark::kPermanentBlock);
    EXPECT_EQ(events_.records.back().reason, "rule '- 203.0.113.5' (app, profile 'curl')");
    EXPECT_EQ(policies_.matches["/usr/bin/curl"], 1);
}

TEST_F(AskingPacketProcessorTest, NoAnswerInTimeBlocksTemporarily) {
    EXPECT_EQ(
        processor_.handle(packet::Direction::Outbound, out_.udp(40000, 5000), {.packet_id = 4}),
        std::nullopt);
    clock_.advance(std::chrono::seconds(59));
    prompts_.expire();
    EXPECT_TRUE(sink_.verdicts.empty());
    clock_.advance(std::chrono::seconds(1));
    prompts_.expire();
    ASSERT_EQ(sink_.verdicts.size(), 1U);
    EXPECT_EQ(sink_.verdicts[0].second, packet::mark::kBlock); // temporary: asked again next time
    EXPECT_EQ(events_.records.back().reason, "no answer to the prompt (profile 'curl')");
    EXPECT_EQ(processor_.counters().unanswered, 1U);
}

TEST_F(AskingPacketProcessorTest, AFloodOfDestinationsIsBoundedAndBlocked) {
    std::uint32_t packet_id = 0;
    for (int index = 0; index < 5; ++index) {
        const testing::PacketBuilder to("10.0.0.1", "203.0.113." + std::to_string(10 + index));
        static_cast<void>(processor_.handle(packet::Direction::Outbound, to.tcp(40000, 443),
                                            {.packet_id = ++packet_id}));
    }
    EXPECT_EQ(prompts_.size(), 2U); // the per-application limit
    EXPECT_EQ(processor_.held_connections(), 2U);
    EXPECT_EQ(processor_.counters().prompts_refused, 3U);
    EXPECT_EQ(events_.records.back().reason, "too many open prompts (profile 'curl')");
}

TEST_F(AskingPacketProcessorTest, AHeldConnectionKeepsOnlyItsShareOfPackets) {
    const auto datagram = out_.udp(40000, 5000);
    for (std::uint32_t id = 1; id <= PacketProcessor::kMaxHeldPacketsPerConnection; ++id) {
        EXPECT_EQ(processor_.handle(packet::Direction::Outbound, datagram, {.packet_id = id}),
                  std::nullopt);
    }
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, datagram), packet::mark::kDrop);
    EXPECT_EQ(processor_.counters().held_packets_dropped, 1U);
}

TEST_F(AskingPacketProcessorTest, AtShutdownHeldConnectionsAreBlocked) {
    EXPECT_EQ(
        processor_.handle(packet::Direction::Outbound, out_.tcp(40000, 443), {.packet_id = 9}),
        std::nullopt);
    processor_.decide_all_waiting();
    ASSERT_EQ(sink_.verdicts.size(), 1U);
    EXPECT_EQ(sink_.verdicts[0].second, packet::mark::kBlock);
    EXPECT_EQ(processor_.held_connections(), 0U);
}

} // namespace
} // namespace pw::network

namespace pw::network {
namespace {

// Issue 9 item 5: a change of settings decides live connections again.
class ReevaluationTest : public ::testing::Test {
protected:
    ReevaluationTest() {
        processor_.set_verdict_sink(sink_);
        processor_.enable_prompts(prompts_);
        processor_.enable_live_connections(live_);
    }

    firewall::FilterSettings settings_;
    testing::ProfilePerExecutable policies_{settings_};
    ConnectionTable table_;
    RecordingEventSink events_;
    testing::FakeClock clock_;
    RecordingVerdictSink sink_;
    profile::PromptBroker prompts_{clock_};
    LiveConnections live_;
    OneProcessAttributor curl_{"/usr/bin/curl"};
    PacketProcessor processor_{policies_, table_, events_, clock_, &curl_};
    const testing::PacketBuilder out_{"10.0.0.1", "203.0.113.5"};
};

TEST_F(ReevaluationTest, ANewBlockRuleCutsAPermittedConnectionOver) {
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out_.tcp(40000, 443)),
              packet::mark::kPermanentAccept);
    ASSERT_EQ(live_.size(), 1U);
    // Nothing changed: nothing to cut over.
    EXPECT_TRUE(processor_.reevaluate(LiveFilter::all()).empty());

    firewall::FilterSettings& curl = policies_.per_profile("/usr/bin/curl");
    curl.endpoints.app = std::make_shared<const firewall::RuleList>(
        firewall::RuleList{*firewall::parse_endpoint_rule("- 203.0.113.5")});
    const auto changes = processor_.reevaluate(LiveFilter::profile("/usr/bin/curl"));
    ASSERT_EQ(changes.size(), 1U);
    EXPECT_EQ(changes[0].old_mark, packet::mark::kPermanentAccept);
    EXPECT_EQ(changes[0].new_mark, packet::mark::kPermanentBlock);
    EXPECT_EQ(changes[0].direction, packet::Direction::Outbound);
    EXPECT_EQ(events_.records.back().reason,
              "re-evaluated: rule '- 203.0.113.5' (app, profile 'curl')");
    // The connection table answers its next packet with the new verdict at once.
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out_.tcp(40000, 443)),
              packet::mark::kPermanentBlock);
    // Another profile's re-evaluation does not touch it.
    curl.endpoints.app.reset();
    EXPECT_TRUE(processor_.reevaluate(LiveFilter::profile("/usr/bin/wget")).empty());
}

TEST_F(ReevaluationTest, AnEndedConnectionIsNotReevaluated) {
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out_.udp(40000, 53000)),
              packet::mark::kPermanentAccept);
    processor_.connection_ended(
        ConnectionKey{.protocol = packet::protocol::kUdp,
                      .local_address = IpAddress::parse("10.0.0.1").value(),
                      .local_port = 40000,
                      .remote_address = IpAddress::parse("203.0.113.5").value(),
                      .remote_port = 53000});
    EXPECT_EQ(live_.size(), 0U);
    settings_.default_action = firewall::DefaultAction::Block;
    EXPECT_TRUE(processor_.reevaluate(LiveFilter::all()).empty());
}

TEST_F(ReevaluationTest, AHeldConnectionThatNoLongerAsksIsDecided) {
    settings_.default_action = firewall::DefaultAction::Ask;
    EXPECT_EQ(
        processor_.handle(packet::Direction::Outbound, out_.tcp(40000, 443), {.packet_id = 5}),
        std::nullopt);
    ASSERT_EQ(prompts_.size(), 1U);
    settings_.default_action = firewall::DefaultAction::Permit;
    EXPECT_TRUE(processor_.reevaluate(LiveFilter::all()).empty());
    ASSERT_EQ(sink_.verdicts.size(), 1U);
    EXPECT_EQ(sink_.verdicts[0].second, packet::mark::kPermanentAccept);
    EXPECT_EQ(prompts_.size(), 0U); // nothing waits for the prompt any more
    EXPECT_EQ(processor_.held_connections(), 0U);
}

TEST_F(ReevaluationTest, ALiveConnectionIsNeverAskedAfterwards) {
    EXPECT_EQ(processor_.handle(packet::Direction::Outbound, out_.tcp(40000, 443)),
              packet::mark::kPermanentAccept);
    settings_.default_action = firewall::DefaultAction::Ask;
    EXPECT_TRUE(processor_.reevaluate(LiveFilter::all()).empty());
    EXPECT_EQ(prompts_.size(), 0U);
}

} // namespace
} // namespace pw::network
