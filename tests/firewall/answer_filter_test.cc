#include "firewall/answer_filter.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "firewall/decide.h"
#include "packet/packet_info.h"

namespace pw::firewall {
namespace {

IpAddress address(std::string_view text) {
    auto parsed = IpAddress::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(IpAddress{});
}

std::vector<IpAddress> addresses(const std::vector<std::string_view>& texts) {
    std::vector<IpAddress> result;
    for (const std::string_view text : texts) {
        result.push_back(address(text));
    }
    return result;
}

SharedRules rules(const std::vector<std::string_view>& lines) {
    RuleList list;
    for (const std::string_view line : lines) {
        auto rule = parse_endpoint_rule(line);
        EXPECT_TRUE(rule.has_value()) << line;
        if (rule) {
            list.push_back(*rule);
        }
    }
    return std::make_shared<const RuleList>(std::move(list));
}

FilterSettings curl_settings() {
    FilterSettings settings;
    settings.profile = ProfileLabel{.id = "p-curl", .name = "curl"};
    return settings;
}

// An answer for `name` (with `chain`), from a resolver of `resolver` scope.
class Answer {
public:
    Answer(std::string name, const std::vector<std::string_view>& texts,
           std::optional<IpScope> resolver = IpScope::Global, std::vector<std::string> chain = {})
        : name_(std::move(name)),
          chain_(std::move(chain)),
          addresses_(addresses(texts)),
          resolver_(resolver) {}

    [[nodiscard]] AnswerFacts facts(AnswerAudience audience = AnswerAudience::Asker) const {
        return AnswerFacts{.name = name_,
                           .cname_chain = chain_,
                           .addresses = addresses_,
                           .resolver_scope = resolver_,
                           .audience = audience};
    }

private:
    std::string name_;
    std::vector<std::string> chain_;
    std::vector<IpAddress> addresses_;
    std::optional<IpScope> resolver_;
};

std::vector<std::string> removed_texts(const AnswerFilterResult& result) {
    std::vector<std::string> texts;
    for (const RemovedAddress& removed : result.removed) {
        texts.push_back(removed.address.to_string());
    }
    return texts;
}

using Texts = std::vector<std::string>;

TEST(FilterAnswer, DefaultsKeepAnOrdinaryAnswer) {
    const Answer answer("www.example.com", {"203.0.113.5", "2001:db8::5"});
    const AnswerFilterResult result = filter_answer(curl_settings(), answer.facts());
    EXPECT_TRUE(result.removed.empty());
    EXPECT_FALSE(result.nothing_left);
}

// --- removeOutOfScopeDNS ----------------------------------------------------------------------

TEST(FilterAnswer, GlobalResolverLosesLanAndLocalhostAddresses) {
    const Answer answer("rebind.example.com",
                        {"203.0.113.5", "192.168.1.1", "127.0.0.1", "fe80::1", "10.0.0.1"});
    const AnswerFilterResult result = filter_answer(curl_settings(), answer.facts());
    EXPECT_EQ(removed_texts(result), (Texts{"192.168.1.1", "127.0.0.1", "fe80::1", "10.0.0.1"}));
    EXPECT_FALSE(result.nothing_left);
    EXPECT_EQ(result.removed[0].reason,
              "removeOutOfScopeDNS: a global resolver answered with a site-local address "
              "(global, profile 'curl')");
    EXPECT_EQ(result.removed[1].reason,
              "removeOutOfScopeDNS: a global resolver answered with a localhost address (global, "
              "profile 'curl')");
}

TEST(FilterAnswer, LanResolverMayAnswerLanButNotLocalhost) {
    const Answer answer("nas.home.arpa", {"192.168.1.20", "127.0.0.1", "::1", "203.0.113.5"},
                        IpScope::SiteLocal);
    EXPECT_EQ(removed_texts(filter_answer(curl_settings(), answer.facts())),
              (Texts{"127.0.0.1", "::1"}));
}

TEST(FilterAnswer, LocalhostOrUnknownResolverMayAnswerAnything) {
    for (const std::optional<IpScope> resolver :
         {std::optional(IpScope::Localhost), std::optional<IpScope>()}) {
        const Answer answer("x.example", {"127.0.0.1", "192.168.1.20"}, resolver);
        EXPECT_TRUE(filter_answer(curl_settings(), answer.facts()).removed.empty());
    }
}

TEST(FilterAnswer, OnlyOutOfScopeAddressesLeftMeansBlocked) {
    const Answer answer("rebind.example.com", {"192.168.1.1", "10.0.0.1"});
    const AnswerFilterResult result = filter_answer(curl_settings(), answer.facts());
    EXPECT_TRUE(result.nothing_left);
    EXPECT_EQ(result.removed.size(), 2U);
}

TEST(FilterAnswer, RemoveOutOfScopeOffKeepsThem) {
    FilterSettings settings = curl_settings();
    settings.remove_out_of_scope_dns = false;
    const Answer answer("rebind.example.com", {"192.168.1.1"});
    EXPECT_TRUE(filter_answer(settings, answer.facts()).removed.empty());
}

TEST(FilterAnswer, OutOfScopeAppliesToAnswersForEveryone) {
    const Answer answer("rebind.example.com", {"192.168.1.1", "203.0.113.5"});
    EXPECT_EQ(removed_texts(filter_answer(curl_settings(), answer.facts(AnswerAudience::Everyone))),
              (Texts{"192.168.1.1"}));
}

// --- removeBlockedDNS: scopes -----------------------------------------------------------------

TEST(FilterAnswer, BlockedScopesAreRemoved) {
    FilterSettings settings = curl_settings();
    settings.block_internet = true;
    settings.origins.set(AppSetting::BlockInternet, SettingLayer::App);
    const Answer answer("mixed.example", {"203.0.113.5", "192.168.1.20", "2001:db8::5"},
                        IpScope::SiteLocal);
    const AnswerFilterResult result = filter_answer(settings, answer.facts());
    EXPECT_EQ(removed_texts(result), (Texts{"203.0.113.5", "2001:db8::5"}));
    EXPECT_EQ(result.removed[0].reason, "removeBlockedDNS: blockInternet (app, profile 'curl')");
    EXPECT_FALSE(result.nothing_left);
}

TEST(FilterAnswer, BlockLanAndBlockLocal) {
    FilterSettings settings = curl_settings();
    settings.block_lan = true;
    settings.block_local = true;
    const Answer answer("x.example", {"192.168.1.20", "127.0.0.1", "224.0.0.251", "203.0.113.5"},
                        IpScope::Localhost);
    const AnswerFilterResult result = filter_answer(settings, answer.facts());
    EXPECT_EQ(removed_texts(result), (Texts{"192.168.1.20", "127.0.0.1", "224.0.0.251"}));
    EXPECT_EQ(result.removed[1].reason, "removeBlockedDNS: blockLocal (global, profile 'curl')");
}

TEST(FilterAnswer, EverythingInABlockedScopeMeansBlocked) {
    FilterSettings settings = curl_settings();
    settings.block_internet = true;
    const Answer answer("www.example.com", {"203.0.113.5", "2001:db8::5"});
    const AnswerFilterResult result = filter_answer(settings, answer.facts());
    EXPECT_TRUE(result.nothing_left);
    EXPECT_EQ(result.removed.front().reason,
              "removeBlockedDNS: blockInternet (global, profile "
              "'curl')");
}

TEST(FilterAnswer, RemoveBlockedOffKeepsThem) {
    FilterSettings settings = curl_settings();
    settings.block_internet = true;
    settings.remove_blocked_dns = false;
    const Answer answer("www.example.com", {"203.0.113.5"});
    EXPECT_TRUE(filter_answer(settings, answer.facts()).removed.empty());
}

TEST(FilterAnswer, AnswersForEveryoneKeepBlockedScopes) {
    // The system DNS client resolves for applications whose settings may differ.
    FilterSettings settings = curl_settings();
    settings.block_internet = true;
    settings.endpoints.global = rules({"- *"});
    const Answer answer("www.example.com", {"203.0.113.5"});
    EXPECT_TRUE(filter_answer(settings, answer.facts(AnswerAudience::Everyone)).removed.empty());
}

TEST(FilterAnswer, EmptyAnswerIsNotBlocked) {
    FilterSettings settings = curl_settings();
    settings.block_internet = true;
    const Answer answer("nodata.example", {});
    const AnswerFilterResult result = filter_answer(settings, answer.facts());
    EXPECT_TRUE(result.removed.empty());
    EXPECT_FALSE(result.nothing_left);
}

// --- removeBlockedDNS: rules ------------------------------------------------------------------

TEST(FilterAnswer, AddressRulesThatBlockEveryConnectionRemove) {
    FilterSettings settings = curl_settings();
    settings.endpoints.app = rules({"- 203.0.113.0/24"});
    settings.endpoints.global = rules({"- 198.51.100.5-198.51.100.9", "- 2001:db8::/32"});
    const Answer answer("www.example.com",
                        {"203.0.113.5", "198.51.100.7", "198.51.100.10", "2001:db8::5"});
    const AnswerFilterResult result = filter_answer(settings, answer.facts());
    EXPECT_EQ(removed_texts(result), (Texts{"203.0.113.5", "198.51.100.7", "2001:db8::5"}));
    EXPECT_EQ(result.removed[0].reason,
              "removeBlockedDNS: rule '- 203.0.113.0/24' (app, profile 'curl')");
    EXPECT_EQ(result.removed[1].reason,
              "removeBlockedDNS: rule '- 198.51.100.5-198.51.100.9' (global, profile 'curl')");
}

TEST(FilterAnswer, ScopeRulesRemove) {
    FilterSettings settings = curl_settings();
    settings.endpoints.global = rules({"- LAN"});
    const Answer answer("x.example", {"192.168.1.20", "203.0.113.5"}, IpScope::SiteLocal);
    EXPECT_EQ(removed_texts(filter_answer(settings, answer.facts())), (Texts{"192.168.1.20"}));
}

TEST(FilterAnswer, AnEarlierPermitKeepsTheAddress) {
    FilterSettings settings = curl_settings();
    settings.endpoints.app = rules({"+ 203.0.113.5"});
    settings.endpoints.global = rules({"- 203.0.113.0/24"});
    const Answer answer("www.example.com", {"203.0.113.5", "203.0.113.6"});
    EXPECT_EQ(removed_texts(filter_answer(settings, answer.facts())), (Texts{"203.0.113.6"}));
}

TEST(FilterAnswer, APermitLimitedToSomePortsKeepsTheAddress) {
    // tcp/443 to it is permitted: the application must get the address.
    FilterSettings settings = curl_settings();
    settings.endpoints.global = rules({"+ * tcp/443", "- 203.0.113.0/24"});
    const Answer answer("www.example.com", {"203.0.113.5"});
    EXPECT_TRUE(filter_answer(settings, answer.facts()).removed.empty());
}

TEST(FilterAnswer, ABlockLimitedToSomePortsIsPassedOver) {
    FilterSettings settings = curl_settings();
    settings.endpoints.global = rules({"- * tcp/80", "- 203.0.113.0/24", "+ 198.51.100.0/24 udp"});
    const Answer answer("www.example.com", {"203.0.113.5", "198.51.100.7"});
    const AnswerFilterResult result = filter_answer(settings, answer.facts());
    EXPECT_EQ(removed_texts(result), (Texts{"203.0.113.5"}));
    EXPECT_EQ(result.removed[0].reason,
              "removeBlockedDNS: rule '- 203.0.113.0/24' (global, "
              "profile 'curl')");
}

TEST(FilterAnswer, DomainRulesDecideForTheirNameOnly) {
    FilterSettings settings = curl_settings();
    settings.endpoints.global = rules({"+ www.example.com", "- other.example", "- *"});
    const Answer kept("www.example.com", {"203.0.113.5"});
    EXPECT_TRUE(filter_answer(settings, kept.facts()).removed.empty());
    const Answer other("unknown.example", {"203.0.113.5"});
    const AnswerFilterResult result = filter_answer(settings, other.facts());
    EXPECT_TRUE(result.nothing_left);
    EXPECT_EQ(result.removed[0].reason, "removeBlockedDNS: rule '- *' (global, profile 'curl')");
}

TEST(FilterAnswer, DomainRulesMatchCnamesOnlyWithIncludeCnames) {
    FilterSettings settings = curl_settings();
    settings.endpoints.global = rules({"+ .cdn.example", "- 203.0.113.0/24"});
    const Answer aliased("shop.example", {"203.0.113.5"}, IpScope::Global, {"x.cdn.example"});
    EXPECT_TRUE(filter_answer(settings, aliased.facts()).removed.empty());
    settings.include_cnames = false;
    EXPECT_TRUE(filter_answer(settings, aliased.facts()).nothing_left);
}

TEST(FilterAnswer, ScopeSettingsComeBeforeRules) {
    // As in decide(): a permit rule cannot overrule blockLAN.
    FilterSettings settings = curl_settings();
    settings.block_lan = true;
    settings.endpoints.app = rules({"+ 192.168.1.20"});
    const Answer answer("nas.example", {"192.168.1.20"}, IpScope::SiteLocal);
    EXPECT_EQ(filter_answer(settings, answer.facts()).removed.at(0).reason,
              "removeBlockedDNS: blockLAN (global, profile 'curl')");
}

TEST(FilterAnswer, ServiceEndpointsAreNotRead) {
    FilterSettings settings = curl_settings();
    settings.service_endpoints.global = rules({"- *"});
    const Answer answer("www.example.com", {"203.0.113.5"});
    EXPECT_TRUE(filter_answer(settings, answer.facts()).removed.empty());
}

// Every address the filter removes is one that decide() would block for every connection to it,
// and every address it keeps has at least one connection decide() would not block by the same
// rules or settings.
TEST(FilterAnswer, AgreesWithDecide) {
    const std::vector<std::vector<std::string_view>> rule_sets = {
        {"- 203.0.113.0/24"},
        {"+ * tcp/443", "- 203.0.113.0/24"},
        {"- * tcp/80", "- LAN", "+ *"},
        {"+ .example.com", "- *"},
        {"- 10.0.0.5-10.0.0.9 udp", "- 10.0.0.0/8"},
        {"- Internet"},
    };
    const Answer answer("www.example.com",
                        {"203.0.113.5", "10.0.0.7", "10.0.0.20", "192.168.1.1", "2001:db8::5"},
                        std::nullopt);
    int compared = 0;
    for (const auto& lines : rule_sets) {
        for (const bool block_lan : {false, true}) {
            FilterSettings settings = curl_settings();
            settings.block_lan = block_lan;
            settings.endpoints.global = rules(lines);
            const AnswerFilterResult result = filter_answer(settings, answer.facts());
            for (const std::string_view remote :
                 {"203.0.113.5", "10.0.0.7", "10.0.0.20", "192.168.1.1", "2001:db8::5"}) {
                const bool removed = std::ranges::any_of(result.removed, [&](const auto& one) {
                    return one.address == address(remote);
                });
                bool any_permitted = false;
                for (const auto& [proto, port] :
                     std::vector<std::pair<std::uint8_t, std::uint16_t>>{
                         {packet::protocol::kTcp, 443},
                         {packet::protocol::kTcp, 80},
                         {packet::protocol::kUdp, 443},
                         {packet::protocol::kIcmp, 0}}) {
                    ConnectionFacts facts;
                    facts.remote_address = address(remote);
                    facts.local_address =
                        address(facts.remote_address.is_v4() ? "192.168.1.10" : "2001:db8::10");
                    facts.protocol = proto;
                    facts.remote_port = port;
                    facts.local_port = 40000;
                    facts.domain = DomainFacts{.domain = "www.example.com", .cname_chain = {}};
                    any_permitted |= decide(settings, facts).verdict == packet::Verdict::Accept;
                }
                EXPECT_EQ(removed, !any_permitted) << lines.front() << " / " << remote;
                ++compared;
            }
        }
    }
    EXPECT_EQ(compared, 60);
}

} // namespace
} // namespace pw::firewall
