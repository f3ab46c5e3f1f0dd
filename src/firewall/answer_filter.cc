#include "firewall/answer_filter.h"

#include <utility>

#include "firewall/endpoint_rule.h"

namespace pw::firewall {
namespace {

// Why `address` may not reach the application, or nullopt. `domain` is built on first use: most
// rule lists have no domain rule, and the nameserver calls this for every answer.
class AddressJudge {
public:
    AddressJudge(const FilterSettings& settings, const AnswerFacts& answer)
        : settings_(settings), answer_(answer) {}

    std::optional<std::string> removal_reason(const IpAddress& address) {
        const IpScope scope = ip_scope(address);
        if (settings_.remove_out_of_scope_dns && answer_.resolver_scope &&
            is_out_of_scope(*answer_.resolver_scope, scope)) {
            return "removeOutOfScopeDNS: " + out_of_scope_text(*answer_.resolver_scope, scope) +
                   setting_note(settings_, AppSetting::RemoveOutOfScopeDns);
        }
        if (!settings_.remove_blocked_dns || answer_.audience == AnswerAudience::Everyone) {
            return std::nullopt;
        }
        if (const auto setting = blocking_scope_setting(settings_, scope)) {
            return "removeBlockedDNS: " + std::string(app_setting_name(*setting)) +
                   setting_note(settings_, *setting);
        }
        return blocking_rule(address);
    }

private:
    // Step 2b of filter_answer() (answer_filter.h).
    std::optional<std::string> blocking_rule(const IpAddress& address) {
        for (const auto& [rules, layer] :
             {std::pair{settings_.endpoints.app.get(), SettingLayer::App},
              std::pair{settings_.endpoints.global.get(), SettingLayer::Global}}) {
            if (rules == nullptr) {
                continue;
            }
            for (const EndpointRule& rule : *rules) {
                if (!entity_matches(rule.entity, query_for(address, rule.entity))) {
                    continue;
                }
                const bool every_connection =
                    !rule.protocol && rule.port_low == 0 && rule.port_high == 65535;
                if (rule.action == RuleAction::Permit) {
                    return std::nullopt;
                }
                if (every_connection) {
                    return "removeBlockedDNS: rule '" + rule.text + "'" +
                           layer_note(settings_, layer);
                }
            }
        }
        return std::nullopt;
    }

    EndpointQuery query_for(const IpAddress& address, const Entity& entity) {
        EndpointQuery query{
            .remote_address = address,
            .protocol = 0,
            .service_port = 0,
            .domain = nullptr,
            .cnames = settings_.include_cnames ? IncludeCnames::Yes : IncludeCnames::No};
        if (std::holds_alternative<DomainPattern>(entity)) {
            if (!domain_) {
                domain_ = DomainFacts{
                    .domain = std::string(answer_.name),
                    .cname_chain = {answer_.cname_chain.begin(), answer_.cname_chain.end()}};
            }
            query.domain = &*domain_;
        }
        return query;
    }

    const FilterSettings& settings_;
    const AnswerFacts& answer_;
    std::optional<DomainFacts> domain_;
};

} // namespace

AnswerFilterResult filter_answer(const FilterSettings& settings, const AnswerFacts& answer) {
    AnswerFilterResult result;
    if (!settings.remove_out_of_scope_dns && !settings.remove_blocked_dns) {
        return result;
    }
    AddressJudge judge(settings, answer);
    for (const IpAddress& address : answer.addresses) {
        if (auto reason = judge.removal_reason(address)) {
            result.removed.push_back(
                RemovedAddress{.address = address, .reason = std::move(*reason)});
        }
    }
    result.nothing_left =
        !answer.addresses.empty() && result.removed.size() == answer.addresses.size();
    return result;
}

} // namespace pw::firewall
