#include "network/dns_query_policy.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "firewall/answer_filter.h"
#include "firewall/decide.h"
#include "firewall/ip_scope.h"
#include "packet/packet_info.h"
#include "profile/special_profiles.h"

namespace pw::network {
namespace {

// What the query event says about where the answer came from.
std::string_view source_name(const dns::QueryPlan& plan, const dns::QueryOutcome& outcome) {
    switch (outcome.source) {
        case dns::AnswerSource::Cache:
            return "cache";
        case dns::AnswerSource::Upstream:
            return "upstream";
        case dns::AnswerSource::Failure:
            return "error";
        case dns::AnswerSource::Policy:
            break;
    }
    switch (plan.action) {
        case dns::QueryAction::Block:
            return "blocked";
        case dns::QueryAction::NxDomain:
            return "canary";
        case dns::QueryAction::Refuse:
        case dns::QueryAction::Resolve:
            break;
    }
    return "refused";
}

// The TTL left on an answer: the lowest of its records, minus its age in the cache.
std::chrono::seconds remaining_ttl(const dns::Answer& answer, std::uint32_t age_seconds) {
    std::uint32_t lowest = std::numeric_limits<std::uint32_t>::max();
    for (const auto& field : answer.wire.ttl_fields) {
        lowest = std::min(lowest, field.ttl);
    }
    if (answer.wire.ttl_fields.empty()) {
        lowest = 0;
    }
    return std::chrono::seconds(lowest > age_seconds ? lowest - age_seconds : 0);
}

// The per-query data the nameserver keeps for us until the answer goes out.
class AskerContext final : public dns::QueryContext {
public:
    AskerContext(std::shared_ptr<const firewall::ProcessFacts> asker, profile::Policy asker_policy)
        : process(std::move(asker)), policy(std::move(asker_policy)) {}
    std::shared_ptr<const firewall::ProcessFacts> process;
    profile::Policy policy; // the asker's, for the whole life of the query
};

} // namespace

std::string_view memory_scope(const firewall::ProfileLabel& profile,
                              const firewall::ProcessFacts* process) {
    if (!profile.id.empty()) {
        return profile.id.starts_with('_') ? dns::IpDomainMemory::kGlobalScope
                                           : std::string_view(profile.id);
    }
    // No profiles (one set of settings for everything): scoped by the executable, as rules are.
    if (process == nullptr || process->kind != firewall::ProcessKind::Process ||
        process->identity.empty()) {
        return dns::IpDomainMemory::kGlobalScope;
    }
    // The system resolvers (used only here without profiles, where no special profile names
    // them): their answers teach everyone.
    if (profile::is_system_resolver(process->executable)) {
        return dns::IpDomainMemory::kGlobalScope;
    }
    return process->identity;
}

std::shared_ptr<const firewall::ProcessFacts> DnsQueryPolicy::find_asker(
    dns::ClientTransport transport, const IpAddress& client_address, std::uint16_t client_port,
    const dns::ListenEndpoint& server) {
    const std::uint8_t protocol =
        transport == dns::ClientTransport::Udp ? packet::protocol::kUdp : packet::protocol::kTcp;
    if (auto known = clients_.find(protocol, client_address, client_port, clock_.now())) {
        ++counters_.by_directory;
        return known;
    }
    if (attributor_ == nullptr) {
        return nullptr;
    }
    // A flow the firewall did not see (a nameserver reached without interception): ask the
    // socket tables who owns the client's end.
    firewall::ConnectionFacts flow;
    flow.direction = packet::Direction::Outbound;
    flow.ip_family = client_address.family();
    flow.protocol = protocol;
    flow.local_address = client_address;
    flow.local_port = client_port;
    flow.remote_address = server.address;
    flow.remote_port = server.port;
    Attribution attribution = attributor_->attribute(flow);
    ++counters_.by_lookup;
    if (!attribution.process) {
        return nullptr;
    }
    auto process = std::make_shared<const firewall::ProcessFacts>(std::move(*attribution.process));
    clients_.record(protocol, client_address, client_port, process, clock_.now());
    return process;
}

std::optional<std::int64_t> DnsQueryPolicy::connection_process(
    const dns::ClientConnection& connection) {
    const auto asker = find_asker(dns::ClientTransport::Tcp, connection.client_address,
                                  connection.client_port, connection.server);
    if (!asker || asker->pid < 0) {
        return std::nullopt; // the special identities (unidentified, kernel, ...) have no PID
    }
    return asker->pid;
}

namespace {

dns::QueryAction nameserver_action(firewall::QueryAction action) {
    switch (action) {
        case firewall::QueryAction::Block:
            return dns::QueryAction::Block;
        case firewall::QueryAction::NxDomain:
            return dns::QueryAction::NxDomain;
        case firewall::QueryAction::Resolve:
            break;
    }
    return dns::QueryAction::Resolve;
}

} // namespace

dns::QueryPlan DnsQueryPolicy::plan(const dns::ClientQuery& query) {
    auto asker = find_asker(query.transport, query.client_address, query.client_port, query.server);
    profile::Policy policy = policies_.query_policy_for(asker.get());
    const firewall::QueryDecision decision =
        firewall::decide_query(*policy.settings, query.query.question.name);
    dns::QueryPlan plan;
    plan.action = nameserver_action(decision.action);
    plan.reason = decision.reason;
    if (plan.action != dns::QueryAction::Resolve && pause_ != nullptr && pause_->active()) {
        plan.reason = pause_->note() + " (would block: " + plan.reason + ")";
        plan.action = dns::QueryAction::Resolve;
    }
    if (plan.action != dns::QueryAction::Resolve) {
        ++counters_.blocked;
    }
    plan.context = std::make_unique<AskerContext>(std::move(asker), std::move(policy));
    return plan;
}

void DnsQueryPolicy::review(const dns::ClientQuery& query, dns::QueryPlan& plan,
                            const dns::Answer& answer) {
    // Every context is ours: plan() made it.
    const auto* context = static_cast<const AskerContext*>(plan.context.get());
    if (context == nullptr || (pause_ != nullptr && pause_->active())) {
        return; // while paused, answers are given as they came
    }
    const firewall::FilterSettings& settings = *context->policy.settings;
    if (!answer.cname_chain.empty()) {
        const firewall::DomainFacts domain{.domain = query.query.question.name,
                                           .cname_chain = answer.cname_chain};
        const firewall::QueryDecision decision = firewall::decide_query(settings, domain);
        const dns::QueryAction action = nameserver_action(decision.action);
        if (action != dns::QueryAction::Resolve) {
            ++counters_.blocked;
            plan.action = action;
            plan.reason = decision.reason;
            return;
        }
    }
    const std::uint16_t type = query.query.question.type;
    if (answer.addresses.empty() || (type != dns::type::kA && type != dns::type::kAaaa)) {
        return;
    }
    // An asker whose answers teach everyone (the system DNS client) resolves for applications
    // whose settings are not its own (answer_filter.h, AnswerAudience).
    const bool for_everyone =
        memory_scope(settings.profile, context->process.get()) == dns::IpDomainMemory::kGlobalScope;
    const firewall::AnswerFilterResult filtered = firewall::filter_answer(
        settings,
        firewall::AnswerFacts{
            .name = query.query.question.name,
            .cname_chain = answer.cname_chain,
            .addresses = answer.addresses,
            .resolver_scope = answer.upstream_address
                                  ? std::optional(firewall::ip_scope(*answer.upstream_address))
                                  : std::nullopt,
            .audience = for_everyone ? firewall::AnswerAudience::Everyone
                                     : firewall::AnswerAudience::Asker});
    if (filtered.removed.empty()) {
        return;
    }
    if (filtered.nothing_left) {
        ++counters_.blocked;
        plan.action = dns::QueryAction::Block;
        plan.reason = filtered.removed.front().reason;
        return;
    }
    ++counters_.filtered;
    plan.reason.clear();
    for (const firewall::RemovedAddress& removed : filtered.removed) {
        plan.removed_addresses.push_back(removed.address);
        plan.reason += (plan.reason.empty() ? "removed " : "; removed ") +
                       removed.address.to_string() + " (" + removed.reason + ")";
    }
}

void DnsQueryPolicy::answered(const dns::ClientQuery& query, const dns::QueryPlan& plan,
                              const dns::QueryOutcome& outcome) {
    // Every context is ours: plan() made it.
    const auto* context = static_cast<const AskerContext*>(plan.context.get());
    const firewall::ProcessFacts* process = context != nullptr ? context->process.get() : nullptr;
    static const firewall::ProfileLabel kNoProfile;
    const firewall::ProfileLabel& profile =
        context != nullptr ? context->policy.settings->profile : kNoProfile;
    const std::string_view scope = memory_scope(profile, process);
    const dns::Answer* answer = outcome.answer;
    const Clock::TimePoint now = clock_.now();
    // What the client got: the answer's addresses without those removed for it (rare).
    std::span<const IpAddress> addresses;
    std::vector<IpAddress> kept;
    if (answer != nullptr) {
        addresses = answer->addresses;
        if (!plan.removed_addresses.empty()) {
            std::ranges::copy_if(answer->addresses, std::back_inserter(kept),
                                 [&plan](const IpAddress& address) {
                                     return std::ranges::find(plan.removed_addresses, address) ==
                                            plan.removed_addresses.end();
                                 });
            addresses = kept;
        }
    }
    if (!addresses.empty()) {
        const std::chrono::seconds ttl = remaining_ttl(*answer, outcome.age_seconds);
        for (const IpAddress& address : addresses) {
            memory_.record(scope, address, query.query.question.name, answer->cname_chain, ttl, now,
                           answer->upstream_address);
        }
        counters_.recorded += addresses.size();
    }
    DnsQueryEvent event{
        .protocol = query.transport == dns::ClientTransport::Udp ? "udp" : "tcp",
        .client_address = query.client_address,
        .client_port = query.client_port,
        .name = query.query.question.name,
        .type = query.query.question.type,
        .rcode = dns::rcode_name(outcome.rcode),
        .answers = {},
        .cnames = {},
        .source = source_name(plan, outcome),
        .upstream = {},
        .reason = outcome.source == dns::AnswerSource::Failure ? outcome.failure
                                                               : std::string_view(plan.reason),
        .scope = scope,
        .process = process,
        .profile = profile.id.empty() ? nullptr : &profile,
    };
    if (answer != nullptr) {
        event.answers = addresses;
        event.cnames = answer->cname_chain;
        event.upstream = answer->upstream;
    } else if (plan.action == dns::QueryAction::Block &&
               outcome.source == dns::AnswerSource::Policy) {
        // The addresses the nameserver answered a blocked A / AAAA question with.
        static const std::array<IpAddress, 1> kBlockedV4 = {IpAddress::parse("0.0.0.17").value()};
        static const std::array<IpAddress, 1> kBlockedV6 = {IpAddress::parse("::17").value()};
        if (query.query.question.type == dns::type::kA) {
            event.answers = kBlockedV4;
        } else if (query.query.question.type == dns::type::kAaaa) {
            event.answers = kBlockedV6;
        }
    }
    events_.dns_query(event);
}

} // namespace pw::network
