#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "config/settings_schema.h"
#include "firewall/connection_facts.h"
#include "firewall/decide.h"
#include "firewall/endpoint_rule.h"
#include "firewall/settings.h"
#include "process/process_info.h"
#include "profile/database.h"
#include "profile/policy_provider.h"
#include "profile/profile.h"
#include "profile/profile_matcher.h"
#include "profile/prompts.h"

namespace pw::profile {

// What changed in the settings: the settings of one profile (`profile_id`), or of every
// profile (nullopt: a global setting, or the set of profiles). The daemon decides the live
// connections it can affect again (issue 9 item 5).
struct SettingsChange {
    std::optional<std::string> profile_id;
    std::string what; // for the log: "filter/endpoints", "rule expired", "profile deleted"
};

// A rule that a prompt answer added for a while (issue 9 item 4), kept in front of the
// profile's own rules until it ends.
struct TemporaryRule {
    enum class Until : std::uint8_t { Time, ProcessExit, Restart };

    std::int64_t id = 0; // Time: the ID of its row in timed_rules
    RuleListName list = RuleListName::Endpoints;
    firewall::EndpointRule rule;
    Until until = Until::Restart;
    std::chrono::system_clock::time_point expires{}; // NOLINT(readability-redundant-member-init):
                                                     // Time only: wall clock, across suspend
    std::int64_t pid = -1;                           // ProcessExit only: the process and its
    std::uint64_t process_start = 0;                 // start time, against PID reuse
};

// One profile as the store keeps it: the stored profile, its own settings compiled, the rules
// that prompts added for a while, and the settings decide() reads for it.
struct ProfileState {
    Profile profile;
    // `{}` on the members that designated initializers may leave out: GCC's
    // -Wmissing-field-initializers otherwise warns about every such initializer.
    // NOLINTBEGIN(readability-redundant-member-init)
    config::CompiledSettings own{}; // the profile's own values, compiled (per-application keys)
    std::vector<TemporaryRule> temporary{}; // newest first
    std::shared_ptr<const firewall::FilterSettings> settings{};
    // NOLINTEND(readability-redundant-member-init)
    bool seen = false; // a process of it connected since the last flush of last-seen times
};

// How often one rule matched, and when last (the time of the flush after the match, to the
// second: the packet path reads no clock). Kept with its profile, so that a person sees which
// rules are used and which are dead.
struct RuleStatistics {
    firewall::RuleListKind list = firewall::RuleListKind::Endpoints;
    std::string rule;
    std::int64_t matches = 0;
    std::chrono::system_clock::time_point last_match;
};

struct StoreCounters {
    std::uint64_t policy_lookups = 0;
    std::uint64_t policy_cache_hits = 0;
    std::uint64_t profiles_created = 0;
    std::uint64_t ties = 0;
    std::uint64_t rule_matches = 0;
    std::uint64_t temporary_rules_ended = 0;
    std::uint64_t write_failures = 0; // writes the database refused (logged)
};

// The settings of portwarden and of every application: the one store every component reads
// settings through (issue 9 items 1, 2 and 6). It keeps the global layer (the store's own values
// under the config file's), every profile with its own values, and the temporary rules of
// answered prompts, all in memory; each change goes to the database as one transaction, and
// listeners hear it at once so that live connections are decided again.
//
// On the packet path (PolicyProvider) it costs hash lookups: the policy of a process is cached
// by PID and start time; a miss asks the ProfileMatcher, which caches too. Nothing on that path
// touches the database: new profiles, rule statistics and last-seen times are queued.
//
// Owned by the daemon; runs on the event-loop thread only (the database's completions are
// posted back to it).
class SettingsStore final : public PolicyProvider {
public:
    using Completion = Database::Completion;
    using Listener = std::function<void(const SettingsChange&)>;
    // The process behind attributed facts, for fingerprints (command line, environment, tags,
    // cgroup). nullptr when it is gone: matching then uses what the facts say.
    using ProcessLookup =
        std::function<std::shared_ptr<const process::ProcessInfo>(const firewall::ProcessFacts&)>;
    // Whether the process `pid` that started at `start_time` still runs ("until exit" rules).
    using ProcessAlive = std::function<bool(std::int64_t pid, std::uint64_t start_time)>;
    using WallClock = std::function<std::chrono::system_clock::time_point()>;

    struct Dependencies {
        Database* database = nullptr;        // required; outlives the store
        config::CompiledSettings file_layer; // what the config file set: fixed at runtime
        std::string file_name;               // the config file, for "set by the config file"
        ProcessLookup processes;             // may be empty (attribution off)
        ProfileMatcher::AncestorLookup ancestors;
        ProcessAlive process_alive; // may be empty: "until exit" rules then last until restart
        WallClock wall_clock;       // may be empty: std::chrono::system_clock::now
    };

    // Loads everything from the database, adds the special profiles that are missing, drops
    // timed rules that ended while portwarden was stopped. A stored value that no longer
    // validates is an error naming the database file and the value: the store never drops a
    // setting silently.
    [[nodiscard]] static Result<std::unique_ptr<SettingsStore>> open(Dependencies dependencies);

    SettingsStore(const SettingsStore&) = delete;
    SettingsStore& operator=(const SettingsStore&) = delete;
    SettingsStore(SettingsStore&&) = delete;
    SettingsStore& operator=(SettingsStore&&) = delete;
    ~SettingsStore() override;

    // --- profile::PolicyProvider (the packet path and the nameserver) ---
    [[nodiscard]] Policy policy_for(const firewall::ProcessFacts* process,
                                    packet::Direction direction) override;
    [[nodiscard]] Policy query_policy_for(const firewall::ProcessFacts* asker) override;
    void rule_matched(const firewall::FilterSettings& settings,
                      const firewall::RuleMatch& match) override;

    // --- Reading ---
    [[nodiscard]] const std::map<std::string, ProfileState, std::less<>>& profiles() const {
        return profiles_;
    }
    [[nodiscard]] const ProfileState* find_profile(std::string_view id) const;
    // The global settings as decide() reads them (no profile).
    [[nodiscard]] std::shared_ptr<const firewall::FilterSettings> global_settings() const {
        return global_settings_;
    }
    // The effective value of `key` and where it comes from, globally (`profile_id` empty) or for
    // one profile. Errors: unknown key, unknown profile.
    [[nodiscard]] Result<config::EffectiveSetting> effective_setting(
        std::string_view key, std::string_view profile_id) const;
    [[nodiscard]] const config::SettingsLayer& store_layer() const { return store_values_; }
    [[nodiscard]] const config::SettingsLayer& file_layer() const { return file_layer_.values; }
    [[nodiscard]] const StoreCounters& counters() const { return counters_; }
    // The statistics of the rules of one profile (empty ID: the global rules), stored and
    // recent ones together, by list and rule text.
    [[nodiscard]] std::vector<RuleStatistics> rule_statistics(std::string_view profile_id) const;

    // --- Changing (each change is validated whole first: an error changes nothing) ---
    // Memory changes at once (the next connection sees it, listeners hear it); `done` hears the
    // outcome of the database transaction. nullopt `value` removes the key from the layer.

    // A global value. Refused for a key the config file sets, naming the file.
    [[nodiscard]] Status set_global_setting(std::string_view key,
                                            std::optional<nlohmann::json> value,
                                            Completion done = {});
    // One profile's own value of a per-application key.
    [[nodiscard]] Status set_profile_setting(std::string_view profile_id, std::string_view key,
                                             std::optional<nlohmann::json> value,
                                             Completion done = {});
    // A profile a person made (or replaced): its fingerprints (JSON, as parse_fingerprints reads
    // them) and own settings (JSON object of per-application keys). Returns its ID: `id` when
    // given, else derived from the fingerprints. Special profiles keep their fingerprints.
    [[nodiscard]] Result<std::string> put_profile(std::string id, std::string name,
                                                  const nlohmann::json& fingerprints,
                                                  const nlohmann::json& settings,
                                                  Completion done = {});
    // Removes a profile (not a special one), its statistics and timed rules. Its processes are
    // matched again at their next connection.
    [[nodiscard]] Status delete_profile(std::string_view id, Completion done = {});

    // The rule of an answered prompt, for as long as the answer says (nothing for "once"):
    // "always" adds it in front of the profile's own rules; the others keep it in memory (and
    // "for N minutes" in the database, so that it survives a restart until it ends). Subscribe
    // it to the PromptBroker BEFORE the packet processor, so that held connections see it.
    void prompt_answered(const Prompt& prompt, const PromptAnswer& answer);

    // Ends the temporary rules whose time has come or whose process has exited, and writes the
    // rule statistics and last-seen times gathered since the last call when `flush` says so.
    // The daemon calls it every second.
    enum class FlushStatistics : std::uint8_t { No, Yes };
    void tick(FlushStatistics flush);

    void subscribe(Listener listener) { listeners_.push_back(std::move(listener)); }

private:
    struct ProcessKey {
        std::int64_t pid = 0;
        std::uint64_t start_time = 0;
        bool operator==(const ProcessKey&) const = default;
    };
    struct ProcessKeyHash {
        std::size_t operator()(const ProcessKey& key) const noexcept {
            return std::hash<std::uint64_t>{}((key.start_time << 22U) ^
                                              static_cast<std::uint64_t>(key.pid));
        }
    };
    struct StatKey {
        std::string profile_id;
        firewall::RuleListKind list;
        std::string rule;
        auto operator<=>(const StatKey&) const = default;
    };
    struct StatDelta {
        std::int64_t matches = 0;
        std::int64_t last_match_ms = 0;
    };

    explicit SettingsStore(Dependencies dependencies);
    [[nodiscard]] Status load(const StoredState& state);
    [[nodiscard]] std::chrono::system_clock::time_point wall_now() const;
    [[nodiscard]] std::int64_t now_ms() const;

    [[nodiscard]] Policy special_policy(std::string_view id);
    [[nodiscard]] Policy process_policy(const firewall::ProcessFacts& process);
    void add_new_profile(Profile profile);

    void rebuild_global();
    void rebuild_profile(ProfileState& state);
    // The set of profiles changed: the index is built again before the next match (not at
    // once: 1,000 profiles created through the API in a row would build it 1,000 times, each a
    // copy of every fingerprint). Drop: the cached policies may be wrong now (a profile changed
    // its fingerprints, or went); Keep: only a new profile was added, which no process with a
    // cached policy can match better (it was made for one that matched none).
    enum class CachedPolicies : std::uint8_t { Keep, Drop };
    void invalidate_index(CachedPolicies cached = CachedPolicies::Drop);
    // The matcher, with an index of the current profiles.
    [[nodiscard]] const ProfileMatcher& matcher();
    void changed(SettingsChange change);
    void persist_profile(const ProfileState& state, Completion done);
    [[nodiscard]] Completion checked(Completion done, std::string what);

    Dependencies dependencies_;
    Database& database_;
    config::CompiledSettings file_layer_;
    config::SettingsLayer store_values_;
    config::CompiledSettings global_layer_; // store values under the file's
    std::shared_ptr<const firewall::FilterSettings> global_settings_;
    std::map<std::string, ProfileState, std::less<>> profiles_;
    ProfileMatcher matcher_;
    bool index_stale_ = false; // profiles_ changed since matcher_'s index was built
    struct CachedPolicy {
        Policy policy;
        ProfileState* state = nullptr; // for last-seen; null: no profile
    };
    std::unordered_map<ProcessKey, CachedPolicy, ProcessKeyHash> policy_cache_;
    std::map<StatKey, StatDelta> pending_stats_; // not yet in the database
    std::map<StatKey, StatDelta> rule_stats_;    // everything, for reading
    std::int64_t next_timed_rule_id_ = 1;
    std::vector<Listener> listeners_;
    StoreCounters counters_;
};

} // namespace pw::profile
