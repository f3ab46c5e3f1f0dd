#include "network/dns_query_policy.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_policy_provider.h"
#include "packet/packet_info.h"

namespace pw::network {
namespace {

firewall::ProcessFacts process_named(std::string executable) {
    firewall::ProcessFacts process;
    process.pid = 100;
    process.executable = executable;
    process.identity = std::move(executable);
    return process;
}

// Answers every lookup with one process and remembers the flows it was asked about.
class CountingAttributor final : public Attributor {
public:
    Attribution attribute(const firewall::ConnectionFacts& connection) override {
        flows.push_back(connection);
        return {.process = answer, .worth_retrying = false};
    }
    std::optional<firewall::ProcessFacts> answer = process_named("/usr/bin/host");
    std::vector<firewall::ConnectionFacts> flows;
};

class DnsEvents final : public EventSink {
public:
    void connection_new(std::uint64_t /*id*/,
                        const firewall::ConnectionFacts& /*connection*/) override {}
    void connection_decided(std::uint64_t /*id*/, const firewall::ConnectionFacts& /*connection*/,
                            const firewall::Decision& /*decision*/,
                            std::uint32_t /*mark*/) override {}
    void dns_query(const DnsQueryEvent& query) override {
        names.emplace_back(query.name);
        sources.emplace_back(query.source);
        scopes.emplace_back(query.scope);
        executables.push_back(query.process != nullptr ? query.process->executable : "");
        answers.push_back(query.answers.size());
    }
    void prompt(profile::PromptEvent /*event*/, const profile::Prompt& /*prompt*/,
                const profile::PromptAnswer* /*answer*/) override {}
    void flush() override {}
    std::vector<std::string> names, sources, scopes, executables;
    std::vector<std::size_t> answers;
};

class DnsQueryPolicyTest : public ::testing::Test {
protected:
    dns::Query query_for(std::string name) {
        dns::Query query;
        query.id = 1;
        query.question.name = std::move(name);
        return query;
    }

    dns::ClientQuery client_query(const dns::Query& query, std::uint16_t port = 40000) {
        return {.transport = dns::ClientTransport::Udp,
                .client_address = client_,
                .client_port = port,
                .server = {.address = IpAddress::parse("127.0.0.17").value(), .port = 53},
                .query = query};
    }

    static dns::Answer answer_with(std::vector<IpAddress> addresses,
                                   std::vector<std::string> chain = {}) {
        dns::Answer answer;
        answer.addresses = std::move(addresses);
        answer.cname_chain = std::move(chain);
        answer.wire.ttl_fields = {{.offset = 0, .ttl = 300}};
        answer.upstream = "dns://192.0.2.53:53";
        return answer;
    }

    firewall::FilterSettings settings_;
    testing::ProfilePerExecutable policies_{settings_};
    DnsClientDirectory clients_;
    CountingAttributor attributor_;
    dns::IpDomainMemory memory_;
    DnsEvents events_;
    testing::FakeClock clock_;
    DnsQueryPolicy policy_{policies_, clients_, &attributor_, memory_, events_, clock_};
    IpAddress client_ = IpAddress::parse("127.0.0.1").value();
    IpAddress web_ = IpAddress::parse("192.0.2.10").value();
};

TEST_F(DnsQueryPolicyTest, TheFlowTheFirewallDecidedNamesTheAsker) {
    clients_.record(packet::protocol::kUdp, client_, 40000,
                    std::make_shared<const firewall::ProcessFacts>(process_named("/usr/bin/curl")),
                    clock_.now());
    const dns::Query query = query_for("www.example.com");
    const dns::QueryPlan plan = policy_.plan(client_query(query));
    EXPECT_EQ(plan.action, dns::QueryAction::Resolve);
    EXPECT_TRUE(attributor_.flows.empty());
    EXPECT_EQ(policy_.counters().by_directory, 1U);

    const dns::Answer answer = answer_with({web_}, {"edge.cdn.example"});
    policy_.answered(client_query(query), plan,
                     {.rcode = dns::Rcode::NoError,
                      .source = dns::AnswerSource::Upstream,
                      .answer = &answer,
                      .age_seconds = 0,
                      .failure = {}});
    const auto name = memory_.lookup("/usr/bin/curl", web_, clock_.now());
    ASSERT_TRUE(name.has_value());
    EXPECT_EQ(name->domain, "www.example.com");
    EXPECT_EQ(name->cname_chain, std::vector<std::string>{"edge.cdn.example"});
    // Only curl asked: the global scope learned nothing.
    EXPECT_FALSE(memory_.lookup("/usr/bin/other", web_, clock_.now()).has_value());
    ASSERT_EQ(events_.names.size(), 1U);
    EXPECT_EQ(events_.executables[0], "/usr/bin/curl");
    EXPECT_EQ(events_.scopes[0], "/usr/bin/curl");
    EXPECT_EQ(events_.sources[0], "upstream");
    EXPECT_EQ(events_.answers[0], 1U);
}

TEST_F(DnsQueryPolicyTest, AnUnknownFlowIsLookedUpOnceThenRemembered) {
    const dns::Query query = query_for("www.example.com");
    static_cast<void>(policy_.plan(client_query(query, 40001)));
    ASSERT_EQ(attributor_.flows.size(), 1U);
    const auto& flow = attributor_.flows[0];
    EXPECT_EQ(flow.local_address, client_);
    EXPECT_EQ(flow.local_port, 40001);
    EXPECT_EQ(flow.remote_port, 53);
    EXPECT_EQ(flow.protocol, packet::protocol::kUdp);
    static_cast<void>(policy_.plan(client_query(query, 40001)));
    EXPECT_EQ(attributor_.flows.size(), 1U);
    EXPECT_EQ(policy_.counters().by_lookup, 1U);
    EXPECT_EQ(policy_.counters().by_directory, 1U);
}

TEST_F(DnsQueryPolicyTest, ATcpConnectionNamesItsProcessAndItsQueriesFindItInTheDirectory) {
    const dns::ClientConnection connection{
        .client_address = client_,
        .client_port = 40003,
        .server = {.address = IpAddress::parse("127.0.0.17").value(), .port = 53}};
    EXPECT_EQ(policy_.connection_process(connection), 100);
    ASSERT_EQ(attributor_.flows.size(), 1U);
    EXPECT_EQ(attributor_.flows[0].protocol, packet::protocol::kTcp);
    EXPECT_EQ(attributor_.flows[0].local_port, 40003);
    const dns::Query query = query_for("www.example.com");
    dns::ClientQuery over_tcp = client_query(query, 40003);
    over_tcp.transport = dns::ClientTransport::Tcp;
    static_cast<void>(policy_.plan(over_tcp));
    EXPECT_EQ(attributor_.flows.size(), 1U);
    EXPECT_EQ(policy_.counters().by_directory, 1U);

    // Without a PID (the special identities have none), the nameserver goes by address.
    attributor_.answer = firewall::ProcessFacts{};
    EXPECT_EQ(policy_.connection_process(
                  {.client_address = client_, .client_port = 40004, .server = connection.server}),
              std::nullopt);
}

TEST_F(DnsQueryPolicyTest, SystemResolversAndUnidentifiedAskersTeachTheGlobalScope) {
    const firewall::ProcessFacts curl = process_named("/usr/bin/curl");
    EXPECT_EQ(memory_scope({.id = "_system-resolver", .name = "System DNS client"}, &curl),
              dns::IpDomainMemory::kGlobalScope);
    EXPECT_EQ(memory_scope({.id = "_unidentified", .name = "Unidentified"}, nullptr),
              dns::IpDomainMemory::kGlobalScope);
    EXPECT_EQ(memory_scope({}, nullptr), dns::IpDomainMemory::kGlobalScope);
    EXPECT_EQ(memory_scope({.id = "3f1c0a", .name = "fetch.py"}, &curl), "3f1c0a");
    firewall::ProcessFacts resolved = process_named("/usr/lib/systemd/systemd-resolved");
    // Without profiles, the executable is the scope, and the system resolvers teach everyone.
    EXPECT_EQ(memory_scope({}, &curl), "/usr/bin/curl");
    EXPECT_EQ(memory_scope({}, &resolved), dns::IpDomainMemory::kGlobalScope);

    attributor_.answer = resolved;
    const dns::Query query = query_for("cdn.example");
    const dns::QueryPlan plan = policy_.plan(client_query(query, 40002));
    const dns::Answer answer = answer_with({web_});
    policy_.answered(client_query(query, 40002), plan,
                     {.rcode = dns::Rcode::NoError,
                      .source = dns::AnswerSource::Cache,
                      .answer = &answer,
                      .age_seconds = 10,
                      .failure = {}});
    const auto name = memory_.lookup("/usr/bin/anyone", web_, clock_.now());
    ASSERT_TRUE(name.has_value());
    EXPECT_EQ(name->domain, "cdn.example");
    EXPECT_EQ(events_.sources[0], "cache");
}

TEST_F(DnsQueryPolicyTest, RulesAndTheCanaryShapeThePlan) {
    settings_.endpoints.global = std::make_shared<const firewall::RuleList>(
        firewall::RuleList{*firewall::parse_endpoint_rule("- .tracker.example")});
    const dns::Query tracker = query_for("x.tracker.example");
    const dns::QueryPlan blocked = policy_.plan(client_query(tracker));
    EXPECT_EQ(blocked.action, dns::QueryAction::Block);
    EXPECT_NE(blocked.reason.find(".tracker.example"), std::string::npos);

    const dns::Query canary = query_for("use-application-dns.net");
    EXPECT_EQ(policy_.plan(client_query(canary)).action, dns::QueryAction::NxDomain);
    settings_.prevent_bypassing = firewall::PreventBypassing::Off;
    EXPECT_EQ(policy_.plan(client_query(canary)).action, dns::QueryAction::Resolve);
    EXPECT_EQ(policy_.counters().blocked, 2U);

    policy_.answered(client_query(tracker), blocked,
                     {.rcode = dns::Rcode::NoError,
                      .source = dns::AnswerSource::Policy,
                      .answer = nullptr,
                      .age_seconds = 0,
                      .failure = {}});
    EXPECT_EQ(events_.sources.back(), "blocked");
    EXPECT_EQ(memory_.size(), 0U);
}

TEST_F(DnsQueryPolicyTest, WhilePausedNoNameIsBlockedAndNoAnswerFiltered) {
    settings_.endpoints.global = std::make_shared<const firewall::RuleList>(
        firewall::RuleList{*firewall::parse_endpoint_rule("- .tracker.example")});
    settings_.block_lan = true;
    FilterPause pause;
    pause.pause(std::chrono::system_clock::now() + std::chrono::minutes(5));
    policy_.set_pause(pause);
    const dns::Query tracker = query_for("x.tracker.example");
    const dns::QueryPlan plan = policy_.plan(client_query(tracker));
    EXPECT_EQ(plan.action, dns::QueryAction::Resolve);
    EXPECT_THAT(plan.reason, ::testing::StartsWith("filtering paused until "));
    EXPECT_THAT(plan.reason, ::testing::HasSubstr("would block"));
    dns::QueryPlan mixed = policy_.plan(client_query(query_for("mixed.example")));
    const IpAddress lan = IpAddress::parse("192.168.1.5").value();
    policy_.review(client_query(query_for("mixed.example")), mixed, answer_with({lan, web_}));
    EXPECT_TRUE(mixed.removed_addresses.empty());
    EXPECT_EQ(policy_.counters().blocked, 0U);

    pause.resume();
    EXPECT_EQ(policy_.plan(client_query(tracker)).action, dns::QueryAction::Block);
}

TEST_F(DnsQueryPolicyTest, ATrackerBehindAnAliasIsBlockedWhenTheAnswerShowsIt) {
    settings_.endpoints.global = std::make_shared<const firewall::RuleList>(
        firewall::RuleList{*firewall::parse_endpoint_rule("- .tracker.example")});
    const dns::Query query = query_for("metrics.shop.example");
    dns::QueryPlan plan = policy_.plan(client_query(query));
    ASSERT_EQ(plan.action, dns::QueryAction::Resolve);
    const dns::Answer cloaked = answer_with({web_}, {"x.tracker.example"});
    policy_.review(client_query(query), plan, cloaked);
    EXPECT_EQ(plan.action, dns::QueryAction::Block);
    EXPECT_NE(plan.reason.find(".tracker.example"), std::string::npos);
    dns::QueryPlan other = policy_.plan(client_query(query));
    const dns::Answer plain = answer_with({web_}, {"cdn.example.net"});
    policy_.review(client_query(query), other, plain);
    EXPECT_EQ(other.action, dns::QueryAction::Resolve);
}

TEST_F(DnsQueryPolicyTest, FailuresAreReportedWithWhatTheUpstreamsDid) {
    const dns::Query query = query_for("down.example");
    const dns::QueryPlan plan = policy_.plan(client_query(query));
    policy_.answered(client_query(query), plan,
                     {.rcode = dns::Rcode::ServFail,
                      .source = dns::AnswerSource::Failure,
                      .answer = nullptr,
                      .age_seconds = 0,
                      .failure = "dns://192.0.2.53:53 timed out"});
    EXPECT_EQ(events_.sources.back(), "error");
    EXPECT_EQ(memory_.size(), 0U);
}

// --- The answer filter (firewall/answer_filter.h) with the asker's settings ----------------------

TEST_F(DnsQueryPolicyTest, AddressesTheAskerMayNotReachAreRemovedAndNotRemembered) {
    settings_.block_lan = true;
    const IpAddress lan = IpAddress::parse("192.168.1.5").value();
    const dns::Query query = query_for("mixed.example");
    dns::QueryPlan plan = policy_.plan(client_query(query));
    dns::Answer answer = answer_with({lan, web_});
    answer.upstream_address = IpAddress::parse("192.168.1.1").value(); // a LAN resolver
    policy_.review(client_query(query), plan, answer);
    EXPECT_EQ(plan.action, dns::QueryAction::Resolve);
    EXPECT_EQ(plan.removed_addresses, std::vector<IpAddress>{lan});
    EXPECT_EQ(plan.reason,
              "removed 192.168.1.5 (removeBlockedDNS: blockLAN (global, profile 'host'))");
    EXPECT_EQ(policy_.counters().filtered, 1U);

    policy_.answered(client_query(query), plan,
                     {.rcode = dns::Rcode::NoError,
                      .source = dns::AnswerSource::Upstream,
                      .answer = &answer,
                      .age_seconds = 0,
                      .failure = {}});
    const auto remembered = memory_.lookup("/usr/bin/host", web_, clock_.now());
    ASSERT_TRUE(remembered.has_value());
    // The resolver is remembered with the name, for removeOutOfScopeDNS at connection time.
    EXPECT_EQ(remembered->resolver, answer.upstream_address);
    EXPECT_FALSE(memory_.lookup("/usr/bin/host", lan, clock_.now()).has_value());
    ASSERT_EQ(events_.answers.size(), 1U);
    EXPECT_EQ(events_.answers[0], 1U);
}

TEST_F(DnsQueryPolicyTest, AnAnswerWithoutAnyAllowedAddressIsBlocked) {
    settings_.block_internet = true;
    const dns::Query query = query_for("www.example.com");
    dns::QueryPlan plan = policy_.plan(client_query(query));
    policy_.review(client_query(query), plan, answer_with({web_}));
    EXPECT_EQ(plan.action, dns::QueryAction::Block);
    EXPECT_EQ(plan.reason, "removeBlockedDNS: blockInternet (global, profile 'host')");
    EXPECT_EQ(policy_.counters().blocked, 1U);
}

TEST_F(DnsQueryPolicyTest, AGlobalResolverMayNotAnswerWithPrivateAddresses) {
    const IpAddress lan = IpAddress::parse("10.1.2.3").value();
    const dns::Query query = query_for("rebind.example");
    dns::QueryPlan plan = policy_.plan(client_query(query));
    dns::Answer answer = answer_with({web_, lan});
    answer.upstream_address = IpAddress::parse("203.0.113.53").value();
    policy_.review(client_query(query), plan, answer);
    EXPECT_EQ(plan.removed_addresses, std::vector<IpAddress>{lan});
    EXPECT_NE(plan.reason.find("removeOutOfScopeDNS: a global resolver answered with a "
                               "site-local address"),
              std::string::npos);
    // Without a known upstream (an answer of no resolver), nothing is out of scope.
    dns::QueryPlan unknown = policy_.plan(client_query(query));
    policy_.review(client_query(query), unknown, answer_with({web_, lan}));
    EXPECT_TRUE(unknown.removed_addresses.empty());
}

TEST_F(DnsQueryPolicyTest, TheSystemResolversAnswersKeepWhatOnlySomeApplicationsMayNotReach) {
    settings_.block_lan = true;
    attributor_.answer = process_named("/usr/lib/systemd/systemd-resolved");
    const IpAddress lan = IpAddress::parse("192.168.1.5").value();
    const dns::Query query = query_for("nas.example");
    dns::QueryPlan plan = policy_.plan(client_query(query));
    dns::Answer answer = answer_with({lan});
    answer.upstream_address = IpAddress::parse("192.168.1.1").value();
    policy_.review(client_query(query), plan, answer);
    EXPECT_EQ(plan.action, dns::QueryAction::Resolve);
    EXPECT_TRUE(plan.removed_addresses.empty());
    // Out of scope is about the resolver, not the application: removed for everyone.
    answer.upstream_address = IpAddress::parse("203.0.113.53").value();
    dns::QueryPlan global = policy_.plan(client_query(query));
    policy_.review(client_query(query), global, answer);
    EXPECT_EQ(global.action, dns::QueryAction::Block);
}

TEST_F(DnsQueryPolicyTest, OnlyAddressQuestionsAreFiltered) {
    settings_.block_internet = true;
    dns::Query query = query_for("www.example.com");
    query.question.type = dns::type::kTxt;
    dns::QueryPlan plan = policy_.plan(client_query(query));
    policy_.review(client_query(query), plan, answer_with({web_}));
    EXPECT_EQ(plan.action, dns::QueryAction::Resolve);
    EXPECT_TRUE(plan.removed_addresses.empty());
}

} // namespace
} // namespace pw::network
