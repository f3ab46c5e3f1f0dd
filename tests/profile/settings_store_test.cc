#include "profile/settings_store.h"

#include <stdlib.h> // NOLINT(modernize-deprecated-headers): mkdtemp is POSIX

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config_file.h"
#include "fakes/test_loop.h"
#include "firewall/decide.h"
#include "profile/special_profiles.h"

namespace pw::profile {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using pw::testing::TestLoop;

firewall::ProcessFacts process(std::string executable, std::int64_t pid) {
    firewall::ProcessFacts facts;
    facts.pid = pid;
    facts.start_time = 1000 + static_cast<std::uint64_t>(pid);
    facts.executable = executable;
    facts.identity = std::move(executable);
    facts.source = "ebpf";
    return facts;
}

firewall::ConnectionFacts outbound_to(const char* address, std::uint16_t port,
                                      const firewall::ProcessFacts& owner) {
    firewall::ConnectionFacts facts;
    facts.direction = packet::Direction::Outbound;
    facts.protocol = 6;
    facts.local_address = *IpAddress::parse("10.0.0.1");
    facts.local_port = 40000;
    facts.remote_address = *IpAddress::parse(address);
    facts.remote_port = port;
    facts.process = owner;
    return facts;
}

class SettingsStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "pw-store-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        directory_ = pattern;
    }
    void TearDown() override {
        store_.reset();
        database_.reset();
        std::error_code ignored;
        fs::remove_all(directory_, ignored);
    }

    // Opens (or reopens) the store over the test's database with `config_text` as config file.
    void open(std::string_view config_text = "{}") {
        store_.reset();
        database_.reset();
        loop_.run();
        auto database = Database::open(directory_ / "portwarden.db", loop_.poster());
        ASSERT_TRUE(database.has_value()) << database.error().message();
        database_ = std::move(*database);
        auto config = config::parse_config(config_text, "test.json");
        ASSERT_TRUE(config.has_value()) << config.error().message();
        auto store = SettingsStore::open(SettingsStore::Dependencies{
            .database = database_.get(),
            .file_layer = config->file_layer,
            .file_name = "test.json",
            .processes = {},
            .ancestors = {},
            .process_alive = [this](std::int64_t pid,
                                    std::uint64_t /*start*/) { return !exited_.contains(pid); },
            .wall_clock =
                [this] {
                    return now_;
                }});
        ASSERT_TRUE(store.has_value()) << store.error().message();
        store_ = std::move(*store);
        store_->subscribe([this](const SettingsChange& change) { changes_.push_back(change); });
    }

    // Commits what the store queued and runs the completions.
    void settle() {
        database_->flush();
        loop_.run();
    }

    firewall::Decision decide(const firewall::ConnectionFacts& facts) {
        const Policy policy = store_->policy_for(&*facts.process, facts.direction);
        return firewall::decide(*policy.settings, facts);
    }

    Prompt prompt_for(const firewall::ProcessFacts& owner, std::string domain) {
        const Policy policy = store_->policy_for(&owner, packet::Direction::Outbound);
        Prompt prompt;
        prompt.id = 7;
        prompt.subject.profile = policy.settings->profile;
        prompt.subject.executable = owner.executable;
        prompt.subject.pid = owner.pid;
        prompt.subject.process_start = owner.start_time;
        prompt.subject.protocol = 6;
        prompt.subject.domain = std::move(domain);
        prompt.subject.remote_address = *IpAddress::parse("203.0.113.5");
        prompt.subject.remote_port = 443;
        return prompt;
    }

    fs::path directory_;
    TestLoop loop_;
    std::unique_ptr<Database> database_;
    std::unique_ptr<SettingsStore> store_;
    std::vector<SettingsChange> changes_;
    std::set<std::int64_t> exited_;
    std::chrono::system_clock::time_point now_ =
        std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 56));
};

TEST_F(SettingsStoreTest, ANewDatabaseGetsEverySpecialProfile) {
    open();
    for (const SpecialProfile& special : special_profiles()) {
        const ProfileState* state = store_->find_profile(special.id);
        ASSERT_NE(state, nullptr) << special.id;
        EXPECT_EQ(state->profile.source, ProfileSource::Special);
    }
    settle();
    open();
    EXPECT_EQ(store_->profiles().size(), special_profiles().size());
}

TEST_F(SettingsStoreTest, EachExecutableGetsItsOwnProfileWithTheSameIdAfterARestart) {
    open();
    const auto curl = process("/usr/bin/curl", 100);
    const auto wget = process("/usr/bin/wget", 101);
    const Policy curl_policy = store_->policy_for(&curl, packet::Direction::Outbound);
    const Policy wget_policy = store_->policy_for(&wget, packet::Direction::Outbound);
    EXPECT_EQ(curl_policy.settings->profile.name, "curl");
    EXPECT_EQ(wget_policy.settings->profile.name, "wget");
    EXPECT_NE(curl_policy.settings->profile.id, wget_policy.settings->profile.id);
    EXPECT_EQ(store_->counters().profiles_created, 2U);
    // A second connection of the same process: the cached policy.
    EXPECT_EQ(store_->policy_for(&curl, packet::Direction::Outbound).settings,
              curl_policy.settings);
    EXPECT_EQ(store_->counters().policy_cache_hits, 1U);

    const std::string curl_id = curl_policy.settings->profile.id;
    settle();
    open();
    ASSERT_NE(store_->find_profile(curl_id), nullptr);
    // Another process of the same executable after the restart: the same profile, not a new one.
    const auto curl_again = process("/usr/bin/curl", 200);
    EXPECT_EQ(store_->policy_for(&curl_again, packet::Direction::Outbound).settings->profile.id,
              curl_id);
    EXPECT_EQ(store_->counters().profiles_created, 0U);
}

TEST_F(SettingsStoreTest, AProfileSettingDecidesForItsApplicationOnly) {
    open(R"({"filter": {"defaultAction": "permit"}})");
    const auto curl = process("/usr/bin/curl", 100);
    const auto wget = process("/usr/bin/wget", 101);
    const std::string curl_id =
        store_->policy_for(&curl, packet::Direction::Outbound).settings->profile.id;
    ASSERT_TRUE(store_->set_profile_setting(curl_id, "filter/endpoints",
                                            nlohmann::json::array({"- 203.0.113.5"})));
    const firewall::Decision curl_decision = decide(outbound_to("203.0.113.5", 443, curl));
    const firewall::Decision wget_decision = decide(outbound_to("203.0.113.5", 443, wget));
    EXPECT_EQ(curl_decision.verdict, packet::Verdict::Block);
    EXPECT_NE(curl_decision.reason.find("(app, profile 'curl')"), std::string::npos)
        << curl_decision.reason;
    EXPECT_EQ(wget_decision.verdict, packet::Verdict::Accept);
    ASSERT_FALSE(changes_.empty());
    EXPECT_EQ(changes_.back().profile_id, curl_id);

    settle();
    open(R"({"filter": {"defaultAction": "permit"}})");
    EXPECT_EQ(decide(outbound_to("203.0.113.5", 443, curl)).verdict, packet::Verdict::Block);
}

TEST_F(SettingsStoreTest, AGlobalSettingChangesEveryProfileAndSurvivesARestart) {
    open();
    const auto curl = process("/usr/bin/curl", 100);
    EXPECT_EQ(decide(outbound_to("203.0.113.5", 443, curl)).verdict, packet::Verdict::Accept);
    ASSERT_TRUE(store_->set_global_setting("filter/defaultAction", "block"));
    EXPECT_EQ(decide(outbound_to("203.0.113.5", 443, curl)).verdict, packet::Verdict::Block);
    ASSERT_FALSE(changes_.empty());
    EXPECT_EQ(changes_.back().profile_id, std::nullopt);
    settle();
    open();
    EXPECT_EQ(decide(outbound_to("203.0.113.5", 443, curl)).verdict, packet::Verdict::Block);
    EXPECT_EQ(store_->effective_setting("filter/defaultAction", "")->source,
              config::SettingSource::Store);
}

TEST_F(SettingsStoreTest, BadChangesAreRefusedWithAReasonAndChangeNothing) {
    open(R"({"filter": {"blockLAN": true}})");
    const auto curl = process("/usr/bin/curl", 100);
    const std::string curl_id =
        store_->policy_for(&curl, packet::Direction::Outbound).settings->profile.id;
    const auto before = store_->global_settings();

    const auto file_key = store_->set_global_setting("filter/blockLAN", false);
    ASSERT_FALSE(file_key.has_value());
    EXPECT_NE(file_key.error().message().find("set by the config file test.json"),
              std::string::npos)
        << file_key.error().message();
    EXPECT_FALSE(store_->set_global_setting("filter/nope", true).has_value());
    const auto bad_rule =
        store_->set_profile_setting(curl_id, "filter/endpoints", nlohmann::json::array({"+ x y"}));
    EXPECT_FALSE(bad_rule.has_value());
    const auto global_only = store_->set_profile_setting(curl_id, "dns/nameservers",
                                                         nlohmann::json::array({"dns://1.1.1.1"}));
    ASSERT_FALSE(global_only.has_value());
    EXPECT_NE(global_only.error().message().find("global setting"), std::string::npos);
    EXPECT_FALSE(store_->set_profile_setting("nope", "filter/blockLAN", true).has_value());
    EXPECT_FALSE(store_->delete_profile(kKernelProfileId).has_value());

    EXPECT_EQ(store_->global_settings(), before);
    EXPECT_TRUE(changes_.empty());
    EXPECT_TRUE(store_->find_profile(curl_id)->profile.settings.empty());
}

TEST_F(SettingsStoreTest, AnAnswerForeverIsARuleInFrontOfTheProfilesOwnRules) {
    open(R"({"filter": {"defaultAction": "ask"}})");
    const auto curl = process("/usr/bin/curl", 100);
    const std::string curl_id =
        store_->policy_for(&curl, packet::Direction::Outbound).settings->profile.id;
    ASSERT_TRUE(store_->set_profile_setting(curl_id, "filter/endpoints",
                                            nlohmann::json::array({"- .example.com"})));
    auto facts = outbound_to("203.0.113.5", 443, curl);
    facts.domain = firewall::DomainFacts{.domain = "www.example.com", .cname_chain = {}};
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Block);

    store_->prompt_answered(prompt_for(curl, "www.example.com"),
                            PromptAnswer{.verdict = PromptVerdict::Permit,
                                         .target = PromptTarget::Domain,
                                         .duration = PromptDuration::Always,
                                         .length = {}});
    const firewall::Decision decision = decide(facts);
    EXPECT_EQ(decision.verdict, packet::Verdict::Accept) << decision.reason;
    EXPECT_EQ(store_->find_profile(curl_id)->profile.settings.json()["filter/endpoints"],
              nlohmann::json::array({"+ www.example.com", "- .example.com"}));

    settle();
    open(R"({"filter": {"defaultAction": "ask"}})");
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Accept);
}

TEST_F(SettingsStoreTest, ATimedAnswerEndsOnTimeEvenAcrossARestart) {
    open(R"({"filter": {"defaultAction": "block"}})");
    const auto curl = process("/usr/bin/curl", 100);
    const auto facts = outbound_to("203.0.113.5", 443, curl);
    store_->prompt_answered(prompt_for(curl, ""), PromptAnswer{.verdict = PromptVerdict::Permit,
                                                               .target = PromptTarget::Address,
                                                               .duration = PromptDuration::For,
                                                               .length = 15min});
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Accept);

    settle();
    now_ += 10min;
    open(R"({"filter": {"defaultAction": "block"}})");
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Accept) << "the rule survives a restart";

    changes_.clear();
    now_ += 6min;
    store_->tick(SettingsStore::FlushStatistics::No);
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Block);
    ASSERT_EQ(changes_.size(), 1U);
    EXPECT_EQ(store_->counters().temporary_rules_ended, 1U);

    settle();
    open(R"({"filter": {"defaultAction": "block"}})");
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Block) << "an ended rule stays ended";
}

TEST_F(SettingsStoreTest, AnAnswerUntilExitEndsWhenTheProcessExits) {
    open(R"({"filter": {"defaultAction": "block"}})");
    const auto curl = process("/usr/bin/curl", 100);
    const auto facts = outbound_to("203.0.113.5", 443, curl);
    store_->prompt_answered(prompt_for(curl, ""),
                            PromptAnswer{.verdict = PromptVerdict::Permit,
                                         .target = PromptTarget::Address,
                                         .duration = PromptDuration::UntilExit,
                                         .length = {}});
    store_->tick(SettingsStore::FlushStatistics::No);
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Accept);
    exited_.insert(curl.pid);
    store_->tick(SettingsStore::FlushStatistics::No);
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Block);
}

TEST_F(SettingsStoreTest, AnAnswerUntilRestartIsForgottenAtTheRestart) {
    open(R"({"filter": {"defaultAction": "block"}})");
    const auto curl = process("/usr/bin/curl", 100);
    const auto facts = outbound_to("203.0.113.5", 443, curl);
    store_->prompt_answered(prompt_for(curl, ""),
                            PromptAnswer{.verdict = PromptVerdict::Permit,
                                         .target = PromptTarget::Address,
                                         .duration = PromptDuration::UntilRestart,
                                         .length = {}});
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Accept);
    settle();
    open(R"({"filter": {"defaultAction": "block"}})");
    EXPECT_EQ(decide(facts).verdict, packet::Verdict::Block);
}

TEST_F(SettingsStoreTest, TheSystemResolversQueriesAreDecidedByTheGlobalSettings) {
    open();
    const auto resolved = process("/usr/lib/systemd/systemd-resolved", 50);
    const Policy policy = store_->query_policy_for(&resolved);
    EXPECT_EQ(policy.settings->profile.id, kSystemResolverProfileId);
    EXPECT_TRUE(policy.settings->endpoints.app == nullptr);
    EXPECT_EQ(store_->policy_for(nullptr, packet::Direction::Inbound).settings->profile.id,
              kUnsolicitedProfileId);
    EXPECT_EQ(store_->policy_for(nullptr, packet::Direction::Outbound).settings->profile.id,
              kUnidentifiedProfileId);
}

TEST_F(SettingsStoreTest, AStoredValueThatNoLongerValidatesIsAnErrorNamingTheFile) {
    open();
    settle();
    database_->set_setting("filter/defaultAction", R"("sometimes")", 1);
    settle();
    store_.reset();
    database_.reset();
    auto database = Database::open(directory_ / "portwarden.db", loop_.poster());
    ASSERT_TRUE(database.has_value());
    auto config = config::parse_config("{}", "test.json");
    auto store = SettingsStore::open(SettingsStore::Dependencies{.database = database->get(),
                                                                 .file_layer = config->file_layer,
                                                                 .file_name = "test.json",
                                                                 .processes = {},
                                                                 .ancestors = {},
                                                                 .process_alive = {},
                                                                 .wall_clock = {}});
    ASSERT_FALSE(store.has_value());
    EXPECT_NE(store.error().message().find("portwarden.db"), std::string::npos)
        << store.error().message();
    EXPECT_NE(store.error().message().find("sometimes"), std::string::npos)
        << store.error().message();
}

TEST_F(SettingsStoreTest, RuleMatchesAreCountedAndWrittenWhenFlushed) {
    open(R"({"filter": {"endpoints": ["+ 203.0.113.5"]}})");
    const auto curl = process("/usr/bin/curl", 100);
    const auto facts = outbound_to("203.0.113.5", 443, curl);
    const Policy policy = store_->policy_for(&curl, packet::Direction::Outbound);
    const firewall::Decision decision = firewall::decide(*policy.settings, facts);
    ASSERT_TRUE(decision.rule.has_value());
    store_->rule_matched(*policy.settings, *decision.rule);
    store_->rule_matched(*policy.settings, *decision.rule);
    store_->tick(SettingsStore::FlushStatistics::Yes);
    settle();
    auto state = database_->load();
    ASSERT_TRUE(state.has_value());
    ASSERT_EQ(state->rule_stats.size(), 1U);
    EXPECT_EQ(state->rule_stats[0].profile_id, "");
    EXPECT_EQ(state->rule_stats[0].rule, "+ 203.0.113.5");
    EXPECT_EQ(state->rule_stats[0].matches, 2);

    // Readable from the store, with the time of the flush; and again after a restart.
    for (int round = 0; round < 2; ++round) {
        const std::vector<RuleStatistics> statistics = store_->rule_statistics("");
        ASSERT_EQ(statistics.size(), 1U) << round;
        EXPECT_EQ(statistics[0].rule, "+ 203.0.113.5");
        EXPECT_EQ(statistics[0].matches, 2);
        EXPECT_NE(statistics[0].last_match.time_since_epoch().count(), 0);
        EXPECT_TRUE(store_->rule_statistics("some-profile").empty());
        if (round == 0) {
            settle();
            open(R"({"filter": {"endpoints": ["+ 203.0.113.5"]}})");
        }
    }
}

TEST_F(SettingsStoreTest, APersonsProfileTakesOverTheProcessesItMatches) {
    open();
    const auto curl = process("/usr/bin/curl", 100);
    const std::string auto_id =
        store_->policy_for(&curl, packet::Direction::Outbound).settings->profile.id;
    auto id = store_->put_profile(
        "", "Downloads",
        nlohmann::json::parse(R"([{"type": "path", "operation": "prefix", "value": "/usr/bin/"}])"),
        nlohmann::json::parse(R"({"filter/defaultAction": "block"})"));
    ASSERT_TRUE(id.has_value()) << id.error().message();
    // The automatic profile (path equals) scores higher than the prefix; delete it, and the
    // person's profile takes the process.
    ASSERT_TRUE(store_->delete_profile(auto_id));
    const Policy policy = store_->policy_for(&curl, packet::Direction::Outbound);
    EXPECT_EQ(policy.settings->profile.id, *id);
    EXPECT_EQ(decide(outbound_to("203.0.113.5", 443, curl)).verdict, packet::Verdict::Block);
    EXPECT_FALSE(store_
                     ->put_profile("", "Bad", nlohmann::json::parse(R"([{"type": "x"}])"),
                                   nlohmann::json::object())
                     .has_value());
}

} // namespace
} // namespace pw::profile
