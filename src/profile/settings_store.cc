#include "profile/settings_store.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/log.h"
#include "profile/fingerprint.h"
#include "profile/profile_index.h"
#include "profile/special_profiles.h"

namespace pw::profile {
namespace {

// Processes remembered with their policy before the cache starts again: bounds memory when
// many short-lived processes connect (each is matched again at its next connection anyway).
constexpr std::size_t kMaxCachedProcesses = 16384;

std::int64_t to_ms(std::chrono::system_clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

firewall::RuleListKind list_kind(RuleListName list) {
    return list == RuleListName::ServiceEndpoints ? firewall::RuleListKind::ServiceEndpoints
                                                  : firewall::RuleListKind::Endpoints;
}

RuleListName list_name(firewall::RuleListKind kind) {
    return kind == firewall::RuleListKind::ServiceEndpoints ? RuleListName::ServiceEndpoints
                                                            : RuleListName::Endpoints;
}

std::string_view list_key(RuleListName list) {
    return list == RuleListName::ServiceEndpoints ? "filter/serviceEndpoints" : "filter/endpoints";
}

StoredProfile::Source stored_source(ProfileSource source) {
    switch (source) {
        case ProfileSource::Auto:
            return StoredProfile::Source::Auto;
        case ProfileSource::User:
            return StoredProfile::Source::User;
        case ProfileSource::Special:
            return StoredProfile::Source::Special;
    }
    return StoredProfile::Source::Auto;
}

ProfileSource profile_source(StoredProfile::Source source) {
    switch (source) {
        case StoredProfile::Source::Auto:
            return ProfileSource::Auto;
        case StoredProfile::Source::User:
            return ProfileSource::User;
        case StoredProfile::Source::Special:
            return ProfileSource::Special;
    }
    return ProfileSource::Auto;
}

StoredProfile stored(const Profile& profile) {
    return StoredProfile{.id = profile.id,
                         .name = profile.name,
                         .source = stored_source(profile.source),
                         .fingerprints_json = to_json(profile.fingerprints).dump(),
                         .settings_json = profile.settings.text(),
                         .created_ms = to_ms(profile.created),
                         .first_seen_ms = to_ms(profile.first_seen),
                         .last_seen_ms = to_ms(profile.last_seen)};
}

// A JSON object of settings as a layer (keys to values).
config::SettingsLayer layer_of(const nlohmann::json& settings) {
    config::SettingsLayer layer;
    for (const auto& [key, value] : settings.items()) {
        layer.emplace(key, value);
    }
    return layer;
}

// A profile's own settings as a layer, checked: only per-application keys, valid values.
Result<config::CompiledSettings> compile_own(const nlohmann::json& settings) {
    if (!settings.is_object()) {
        return fail("settings: expected an object of per-application keys");
    }
    auto compiled = config::compile_layer(layer_of(settings), config::SettingScope::Application);
    if (compiled) {
        // The values as written stay in Profile::settings alone: with many profiles of many
        // rules a second copy would be the larger part of the store's memory.
        compiled->values.clear();
    }
    return compiled;
}

// The process as attribution described it, for matching when /proc no longer has it.
process::ProcessInfo info_from_facts(const firewall::ProcessFacts& facts) {
    process::ProcessInfo info;
    info.pid = static_cast<int>(facts.pid);
    info.start_time = facts.start_time;
    info.parent_pid = static_cast<int>(facts.parent_pid);
    info.uid = facts.uid;
    info.user = facts.user;
    info.executable = facts.executable;
    info.identity_path = facts.identity;
    return info;
}

// A rule list with `front` before `rules`.
firewall::SharedRules with_front(const std::vector<const firewall::EndpointRule*>& front,
                                 const firewall::SharedRules& rules) {
    if (front.empty()) {
        return rules;
    }
    auto merged = std::make_shared<firewall::RuleList>();
    merged->reserve(front.size() + (rules ? rules->size() : 0));
    for (const firewall::EndpointRule* rule : front) {
        merged->push_back(*rule);
    }
    if (rules) {
        merged->insert(merged->end(), rules->begin(), rules->end());
    }
    return merged;
}

} // namespace

SettingsStore::SettingsStore(Dependencies dependencies)
    : dependencies_(std::move(dependencies)),
      database_(*dependencies_.database),
      file_layer_(std::move(dependencies_.file_layer)),
      matcher_(std::make_shared<const ProfileIndex>(), dependencies_.ancestors) {}

SettingsStore::~SettingsStore() {
    // What was gathered since the last tick is worth keeping: queue it; the database commits
    // everything queued before it closes.
    tick(FlushStatistics::Yes);
}

Result<std::unique_ptr<SettingsStore>> SettingsStore::open(Dependencies dependencies) {
    if (dependencies.database == nullptr) {
        return fail("settings store: no database");
    }
    auto state = dependencies.database->load();
    if (!state) {
        return std::unexpected(state.error());
    }
    std::unique_ptr<SettingsStore> store(new SettingsStore(std::move(dependencies)));
    if (auto loaded = store->load(*state); !loaded) {
        return fail(
            fmt::format("{}: {}", store->database_.file().string(), loaded.error().message()));
    }
    return store;
}

Status SettingsStore::load(const StoredState& state) {
    for (const StoredSetting& setting : state.settings) {
        auto value = nlohmann::json::parse(setting.value_json, nullptr, false);
        if (value.is_discarded()) {
            return fail(fmt::format("setting {}: stored value is not JSON", setting.key));
        }
        store_values_.insert_or_assign(setting.key, std::move(value));
    }
    auto store_layer = config::compile_layer(store_values_, config::SettingScope::Global);
    if (!store_layer) {
        return fail("stored global settings: " + store_layer.error().message());
    }
    global_layer_ = config::overlay_layers(*store_layer, file_layer_);

    for (const StoredProfile& row : state.profiles) {
        const std::string where = fmt::format("profile '{}'", row.id);
        auto fingerprints = parse_fingerprints_text(row.fingerprints_json, where + " fingerprints");
        if (!fingerprints) {
            return std::unexpected(fingerprints.error());
        }
        const auto settings = nlohmann::json::parse(row.settings_json, nullptr, false);
        auto own = compile_own(settings);
        if (!own) {
            return fail(where + " " + own.error().message());
        }
        ProfileState entry{.profile = Profile{.id = row.id,
                                              .name = row.name,
                                              .source = profile_source(row.source),
                                              .fingerprints = std::move(*fingerprints),
                                              .settings = OwnSettings(settings),
                                              .created = from_ms(row.created_ms),
                                              .first_seen = from_ms(row.first_seen_ms),
                                              .last_seen = from_ms(row.last_seen_ms)},
                           .own = std::move(*own),
                           .temporary = {},
                           .settings = nullptr};
        profiles_.insert_or_assign(row.id, std::move(entry));
    }
    const auto now = wall_now();
    for (const SpecialProfile& special : special_profiles()) {
        if (profiles_.contains(special.id)) {
            continue;
        }
        Profile profile = make_special_profile(special, now);
        ProfileState entry{.profile = std::move(profile)};
        persist_profile(entry, checked({}, "special profile"));
        profiles_.insert_or_assign(std::string(special.id), std::move(entry));
    }
    for (const StoredRuleStat& row : state.rule_stats) {
        rule_stats_.insert_or_assign(
            StatKey{.profile_id = row.profile_id, .list = row.list, .rule = row.rule},
            StatDelta{.matches = row.matches, .last_match_ms = row.last_match_ms});
    }
    for (const StoredTimedRule& row : state.timed_rules) {
        next_timed_rule_id_ = std::max(next_timed_rule_id_, row.id + 1);
        auto found = profiles_.find(row.profile_id);
        auto rule = firewall::parse_endpoint_rule(row.rule);
        if (found == profiles_.end() || !rule || from_ms(row.expires_ms) <= now) {
            database_.delete_timed_rule(row.id, checked({}, "ended timed rule"));
            continue;
        }
        // Newest first: rows come in ID order, so each goes in front.
        found->second.temporary.insert(found->second.temporary.begin(),
                                       TemporaryRule{.id = row.id,
                                                     .list = list_name(row.list),
                                                     .rule = std::move(*rule),
                                                     .until = TemporaryRule::Until::Time,
                                                     .expires = from_ms(row.expires_ms)});
    }
    rebuild_global();
    for (auto& [id, entry] : profiles_) {
        rebuild_profile(entry);
    }
    invalidate_index();
    return {};
}

std::chrono::system_clock::time_point SettingsStore::wall_now() const {
    return dependencies_.wall_clock ? dependencies_.wall_clock() : std::chrono::system_clock::now();
}

std::int64_t SettingsStore::now_ms() const {
    return to_ms(wall_now());
}

// --- The packet path ---------------------------------------------------------------------------

Policy SettingsStore::policy_for(const firewall::ProcessFacts* process,
                                 packet::Direction direction) {
    ++counters_.policy_lookups;
    if (process == nullptr) {
        return special_policy(direction == packet::Direction::Inbound ? kUnsolicitedProfileId
                                                                      : kUnidentifiedProfileId);
    }
    switch (process->kind) {
        case firewall::ProcessKind::Process:
            return process_policy(*process);
        case firewall::ProcessKind::Kernel:
            return special_policy(kKernelProfileId);
        case firewall::ProcessKind::Unidentified:
            return special_policy(kUnidentifiedProfileId);
        case firewall::ProcessKind::Unsolicited:
            return special_policy(kUnsolicitedProfileId);
        case firewall::ProcessKind::Portwarden:
            return special_policy(kPortwardenProfileId);
    }
    return special_policy(kUnidentifiedProfileId);
}

Policy SettingsStore::query_policy_for(const firewall::ProcessFacts* asker) {
    if (asker != nullptr && asker->kind == firewall::ProcessKind::Process &&
        is_system_resolver(asker->executable)) {
        // It asks for applications we cannot see: its special profile decides, which holds the
        // global settings unless a person gave it values of its own, and the answers teach
        // everyone (the special profile's ID puts them in the global memory scope).
        return special_policy(kSystemResolverProfileId);
    }
    return policy_for(asker, packet::Direction::Outbound);
}

Policy SettingsStore::special_policy(std::string_view id) {
    const auto found = profiles_.find(id);
    if (found == profiles_.end()) {
        return {.settings = global_settings_, .tie = {}};
    }
    found->second.seen = true;
    return {.settings = found->second.settings, .tie = {}};
}

Policy SettingsStore::process_policy(const firewall::ProcessFacts& process) {
    const bool cacheable = process.pid >= 0 && process.start_time != 0;
    const ProcessKey key{.pid = process.pid, .start_time = process.start_time};
    if (cacheable) {
        if (auto cached = policy_cache_.find(key); cached != policy_cache_.end()) {
            ++counters_.policy_cache_hits;
            if (cached->second.state != nullptr) {
                cached->second.state->seen = true;
            }
            return cached->second.policy;
        }
    }
    std::shared_ptr<const process::ProcessInfo> info;
    if (dependencies_.processes) {
        info = dependencies_.processes(process);
    }
    const process::ProcessInfo fallback = info ? process::ProcessInfo{} : info_from_facts(process);
    const MatcherOutcome outcome = matcher().profile_for(info ? *info : fallback, wall_now());
    if (outcome.create && !profiles_.contains(outcome.create->id)) {
        add_new_profile(*outcome.create);
    }
    if (!outcome.assignment) { // the matcher always assigns; the global settings otherwise
        return {.settings = global_settings_, .tie = {}};
    }
    const ProfileAssignment& assignment = *outcome.assignment;
    std::string tie;
    if (!assignment.tied_with.empty()) {
        ++counters_.ties;
        const auto name_of = [this](const std::string& id) {
            const auto found = profiles_.find(id);
            return found == profiles_.end() ? id : found->second.profile.name;
        };
        tie = fmt::format("profile match tie: '{}'", name_of(assignment.profile_id));
        for (const std::string& other : assignment.tied_with) {
            tie += fmt::format(" and '{}'", name_of(other));
        }
        tie +=
            fmt::format(" scored {}, used '{}'", assignment.score, name_of(assignment.profile_id));
    }
    const auto found = profiles_.find(assignment.profile_id);
    // Without a profile, no profile can describe the process (its executable is unknown).
    ProfileState* state = found == profiles_.end() ? nullptr : &found->second;
    Policy policy{.settings = state != nullptr ? state->settings : global_settings_,
                  .tie = std::move(tie)};
    if (state != nullptr) {
        state->seen = true;
    }
    if (cacheable) {
        if (policy_cache_.size() >= kMaxCachedProcesses) {
            policy_cache_.clear();
        }
        // The state pointer stays valid: std::map keeps its elements' addresses, and removing a
        // profile clears the cache.
        policy_cache_.emplace(key, CachedPolicy{.policy = policy, .state = state});
    }
    return policy;
}

void SettingsStore::add_new_profile(Profile profile) {
    ++counters_.profiles_created;
    log::get("profile")->info("profile_created id={} name=\"{}\"", profile.id, profile.name);
    ProfileState entry{.profile = std::move(profile)};
    rebuild_profile(entry);
    persist_profile(entry, checked({}, "new profile"));
    const std::string id = entry.profile.id;
    profiles_.insert_or_assign(id, std::move(entry));
    // Only processes that matched nothing can match the new profile, and they have it already:
    // no cached policy changes, and no live connection needs a new decision.
    invalidate_index(CachedPolicies::Keep);
}

void SettingsStore::rule_matched(const firewall::FilterSettings& settings,
                                 const firewall::RuleMatch& match) {
    ++counters_.rule_matches;
    const firewall::EndpointRule& rule = firewall::rule_at(settings, match);
    StatKey key{.profile_id = match.layer == firewall::SettingLayer::App ? settings.profile.id
                                                                         : std::string(),
                .list = match.list,
                .rule = rule.text};
    ++rule_stats_[key].matches; // its time is set when flushed (no clock on the packet path)
    StatDelta& delta = pending_stats_[std::move(key)];
    ++delta.matches;
    delta.last_match_ms = 0; // the time is taken when flushed
}

std::vector<RuleStatistics> SettingsStore::rule_statistics(std::string_view profile_id) const {
    // Keys sort by profile first: one profile's statistics are one range.
    std::vector<RuleStatistics> found;
    const StatKey first{.profile_id = std::string(profile_id),
                        .list = firewall::RuleListKind::Endpoints,
                        .rule = {}};
    for (auto entry = rule_stats_.lower_bound(first);
         entry != rule_stats_.end() && entry->first.profile_id == profile_id; ++entry) {
        found.push_back({.list = entry->first.list,
                         .rule = entry->first.rule,
                         .matches = entry->second.matches,
                         .last_match = from_ms(entry->second.last_match_ms)});
    }
    return found;
}

// --- Reading -----------------------------------------------------------------------------------

const ProfileState* SettingsStore::find_profile(std::string_view id) const {
    const auto found = profiles_.find(id);
    return found == profiles_.end() ? nullptr : &found->second;
}

Result<config::EffectiveSetting> SettingsStore::effective_setting(
    std::string_view key, std::string_view profile_id) const {
    config::LayerStack layers{.store = &store_values_, .file = &file_layer_.values, .app = nullptr};
    // The profile's values as written: kept once, in the profile (own.values is dropped).
    config::SettingsLayer app;
    if (!profile_id.empty()) {
        const ProfileState* state = find_profile(profile_id);
        if (state == nullptr) {
            return fail(fmt::format("unknown profile '{}'", profile_id));
        }
        app = layer_of(state->profile.settings.json());
        layers.app = &app;
    }
    return config::effective_setting(key, layers);
}

// --- Changing ----------------------------------------------------------------------------------

Status SettingsStore::set_global_setting(std::string_view key, std::optional<nlohmann::json> value,
                                         Completion done) {
    if (config::find_setting(key) == nullptr) {
        return fail(fmt::format("unknown setting '{}'", key));
    }
    if (file_layer_.values.contains(key)) {
        return fail(fmt::format(
            "{} is set by the config file{}{}: change it there (the file's values are fixed "
            "while portwarden runs)",
            key, dependencies_.file_name.empty() ? "" : " ", dependencies_.file_name));
    }
    config::SettingsLayer next = store_values_;
    if (value) {
        next.insert_or_assign(std::string(key), *value);
    } else if (auto found = next.find(key); found != next.end()) {
        next.erase(found);
    }
    auto compiled = config::compile_layer(next, config::SettingScope::Global);
    if (!compiled) {
        return std::unexpected(compiled.error());
    }
    store_values_ = std::move(next);
    global_layer_ = config::overlay_layers(*compiled, file_layer_);
    rebuild_global();
    for (auto& [id, entry] : profiles_) {
        rebuild_profile(entry);
    }
    database_.set_setting(std::string(key),
                          value ? std::optional<std::string>(value->dump()) : std::nullopt,
                          now_ms(), checked(std::move(done), fmt::format("setting {}", key)));
    changed({.profile_id = std::nullopt, .what = std::string(key)});
    return {};
}

Status SettingsStore::set_profile_setting(std::string_view profile_id, std::string_view key,
                                          std::optional<nlohmann::json> value, Completion done) {
    const auto found = profiles_.find(profile_id);
    if (found == profiles_.end()) {
        return fail(fmt::format("unknown profile '{}'", profile_id));
    }
    const config::SettingInfo* info = config::find_setting(key);
    if (info == nullptr) {
        return fail(fmt::format("unknown setting '{}'", key));
    }
    if (info->scope != config::SettingScope::Application) {
        return fail(
            fmt::format("{} is a global setting; it cannot be set for one application", key));
    }
    ProfileState& state = found->second;
    nlohmann::json settings = state.profile.settings.json();
    if (value) {
        settings[std::string(key)] = *value;
    } else {
        settings.erase(std::string(key));
    }
    auto own = compile_own(settings);
    if (!own) {
        return std::unexpected(own.error());
    }
    state.profile.settings = OwnSettings(settings);
    state.own = std::move(*own);
    rebuild_profile(state);
    persist_profile(state, checked(std::move(done), fmt::format("profile {}", profile_id)));
    changed({.profile_id = std::string(profile_id), .what = std::string(key)});
    return {};
}

Result<std::string> SettingsStore::put_profile(std::string id, std::string name,
                                               const nlohmann::json& fingerprints,
                                               const nlohmann::json& settings, Completion done) {
    auto parsed = parse_fingerprints(fingerprints);
    if (!parsed) {
        return std::unexpected(parsed.error());
    }
    auto own = compile_own(settings);
    if (!own) {
        return std::unexpected(own.error());
    }
    if (id.empty()) {
        if (parsed->empty()) {
            return fail("fingerprints: a profile needs at least one (or an ID)");
        }
        id = profile_id_for(*parsed);
    }
    if (id.starts_with('_') && !is_special_profile_id(id)) {
        return fail(fmt::format("profile ID '{}': IDs that start with '_' are reserved", id));
    }
    if (name.empty()) {
        return fail("name: empty");
    }
    const auto now = wall_now();
    ProfileState next;
    if (const auto found = profiles_.find(id); found != profiles_.end()) {
        next.profile = found->second.profile;
        next.temporary = found->second.temporary;
        if (next.profile.source == ProfileSource::Auto) {
            next.profile.source = ProfileSource::User; // a person has made it theirs
        }
    } else {
        next.profile = Profile{.id = id,
                               .name = {},
                               .source = ProfileSource::User,
                               .fingerprints = {},
                               .settings = {},
                               .created = now,
                               .first_seen = now,
                               .last_seen = now};
    }
    next.profile.name = std::move(name);
    if (next.profile.source != ProfileSource::Special) {
        next.profile.fingerprints = std::move(*parsed);
    }
    next.profile.settings = OwnSettings(settings);
    next.own = std::move(*own);
    rebuild_profile(next);
    persist_profile(next, checked(std::move(done), fmt::format("profile {}", id)));
    profiles_.insert_or_assign(id, std::move(next));
    invalidate_index();
    changed({.profile_id = std::nullopt, .what = "profile " + id});
    return id;
}

Status SettingsStore::delete_profile(std::string_view id, Completion done) {
    const auto found = profiles_.find(id);
    if (found == profiles_.end()) {
        return fail(fmt::format("unknown profile '{}'", id));
    }
    if (found->second.profile.source == ProfileSource::Special) {
        return fail(fmt::format("profile '{}' is built in and cannot be deleted", id));
    }
    database_.delete_profile(std::string(id),
                             checked(std::move(done), fmt::format("deleting profile {}", id)));
    profiles_.erase(found);
    // Its statistics go with it, as in the database: a new profile of the same ID starts afresh.
    const auto of_profile = [id](const auto& entry) {
        return entry.first.profile_id == id;
    };
    std::erase_if(rule_stats_, of_profile);
    std::erase_if(pending_stats_, of_profile);
    invalidate_index();
    changed({.profile_id = std::nullopt, .what = fmt::format("profile {} deleted", id)});
    return {};
}

void SettingsStore::prompt_answered(const Prompt& prompt, const PromptAnswer& answer) {
    if (answer.duration == PromptDuration::Once) {
        return;
    }
    const auto found = profiles_.find(prompt.subject.profile.id);
    if (found == profiles_.end()) {
        log::get("profile")->warn("prompt_rule_dropped prompt={} profile={} (no such profile)",
                                  prompt.id, prompt.subject.profile.id);
        return;
    }
    ProfileState& state = found->second;
    const AnswerRule answer_rule = rule_for(prompt.subject, answer);
    auto rule = firewall::parse_endpoint_rule(answer_rule.text);
    if (!rule) {
        log::get("profile")->error(R"(prompt_rule_invalid rule="{}" error="{}")", answer_rule.text,
                                   rule.error().message());
        return;
    }
    const std::string what = fmt::format("prompt {} answered: {} ({})", prompt.id, answer_rule.text,
                                         duration_text(answer));
    if (answer.duration == PromptDuration::Always) {
        const std::string key(list_key(answer_rule.list));
        nlohmann::json list = state.profile.settings.json().value(key, nlohmann::json::array());
        // In front: the newest answer wins over older rules of the profile.
        list.insert(list.begin(), answer_rule.text);
        if (auto set = set_profile_setting(state.profile.id, key, std::move(list)); !set) {
            log::get("profile")->error(R"(prompt_rule_refused rule="{}" error="{}")",
                                       answer_rule.text, set.error().message());
        }
        return;
    }
    TemporaryRule temporary{.id = 0,
                            .list = answer_rule.list,
                            .rule = std::move(*rule),
                            .until = TemporaryRule::Until::Restart};
    if (answer.duration == PromptDuration::For) {
        temporary.until = TemporaryRule::Until::Time;
        temporary.id = next_timed_rule_id_++;
        temporary.expires = wall_now() + answer.length;
        database_.put_timed_rule(StoredTimedRule{.id = temporary.id,
                                                 .profile_id = state.profile.id,
                                                 .list = list_kind(temporary.list),
                                                 .rule = temporary.rule.text,
                                                 .expires_ms = to_ms(temporary.expires)},
                                 checked({}, "timed rule"));
    } else if (answer.duration == PromptDuration::UntilExit && prompt.subject.pid >= 0 &&
               dependencies_.process_alive) {
        temporary.until = TemporaryRule::Until::ProcessExit;
        temporary.pid = prompt.subject.pid;
        temporary.process_start = prompt.subject.process_start;
    }
    state.temporary.insert(state.temporary.begin(), std::move(temporary));
    rebuild_profile(state);
    changed({.profile_id = state.profile.id, .what = what});
}

void SettingsStore::tick(FlushStatistics flush) {
    const auto now = wall_now();
    for (auto& [id, state] : profiles_) {
        const auto ends = [&](const TemporaryRule& rule) {
            switch (rule.until) {
                case TemporaryRule::Until::Time:
                    return rule.expires <= now;
                case TemporaryRule::Until::ProcessExit:
                    return !dependencies_.process_alive(rule.pid, rule.process_start);
                case TemporaryRule::Until::Restart:
                    return false;
            }
            return false;
        };
        // Each rule is asked once: "until exit" reads /proc, and the answer may change between
        // two reads.
        std::uint64_t ended = 0;
        std::erase_if(state.temporary, [&](const TemporaryRule& rule) {
            if (!ends(rule)) {
                return false;
            }
            if (rule.until == TemporaryRule::Until::Time) {
                database_.delete_timed_rule(rule.id, checked({}, "ended timed rule"));
            }
            ++ended;
            return true;
        });
        if (ended == 0) {
            continue;
        }
        counters_.temporary_rules_ended += ended;
        rebuild_profile(state);
        changed({.profile_id = id, .what = "temporary rule ended"});
    }
    if (flush == FlushStatistics::No) {
        return;
    }
    const std::int64_t stamp = to_ms(now);
    if (!pending_stats_.empty()) {
        std::vector<StoredRuleStat> deltas;
        deltas.reserve(pending_stats_.size());
        for (auto& [key, delta] : pending_stats_) {
            rule_stats_[key].last_match_ms = stamp;
            deltas.push_back(StoredRuleStat{.profile_id = key.profile_id,
                                            .list = key.list,
                                            .rule = key.rule,
                                            .matches = delta.matches,
                                            .last_match_ms = stamp});
        }
        pending_stats_.clear();
        database_.add_rule_stats(std::move(deltas), checked({}, "rule statistics"));
    }
    std::vector<ProfileSeen> seen;
    for (auto& [id, state] : profiles_) {
        if (state.seen) {
            state.seen = false;
            state.profile.last_seen = now;
            seen.push_back({.id = id, .last_seen_ms = stamp});
        }
    }
    if (!seen.empty()) {
        database_.touch_profiles(std::move(seen), checked({}, "last seen"));
    }
}

// --- Internals ---------------------------------------------------------------------------------

void SettingsStore::rebuild_global() {
    global_settings_ = std::make_shared<const firewall::FilterSettings>(
        config::resolve_filter_settings(global_layer_, nullptr, {}));
    policy_cache_.clear();
}

void SettingsStore::rebuild_profile(ProfileState& state) {
    firewall::FilterSettings settings = config::resolve_filter_settings(
        global_layer_, &state.own, {.id = state.profile.id, .name = state.profile.name});
    std::vector<const firewall::EndpointRule*> outbound;
    std::vector<const firewall::EndpointRule*> inbound;
    for (const TemporaryRule& rule : state.temporary) {
        (rule.list == RuleListName::ServiceEndpoints ? inbound : outbound).push_back(&rule.rule);
    }
    settings.endpoints.app = with_front(outbound, settings.endpoints.app);
    settings.service_endpoints.app = with_front(inbound, settings.service_endpoints.app);
    state.settings = std::make_shared<const firewall::FilterSettings>(std::move(settings));
    // Only the processes of this profile hold its old settings.
    std::erase_if(policy_cache_,
                  [&state](const auto& entry) { return entry.second.state == &state; });
}

void SettingsStore::invalidate_index(CachedPolicies cached) {
    index_stale_ = true;
    if (cached == CachedPolicies::Drop) {
        policy_cache_.clear();
    }
}

const ProfileMatcher& SettingsStore::matcher() {
    if (!index_stale_) {
        return matcher_;
    }
    std::vector<Profile> profiles;
    profiles.reserve(profiles_.size());
    for (const auto& [id, state] : profiles_) {
        // The index reads the ID and the fingerprints only: no copy of the settings.
        profiles.push_back(Profile{.id = state.profile.id,
                                   .name = {},
                                   .source = state.profile.source,
                                   .fingerprints = state.profile.fingerprints,
                                   .settings = {},
                                   .created = {},
                                   .first_seen = {},
                                   .last_seen = {}});
    }
    matcher_.set_index(std::make_shared<const ProfileIndex>(std::move(profiles)));
    index_stale_ = false;
    return matcher_;
}

void SettingsStore::changed(SettingsChange change) {
    log::get("profile")->info("settings_changed profile={} what=\"{}\"",
                              change.profile_id.value_or("*"), change.what);
    for (const Listener& listener : listeners_) {
        listener(change);
    }
}

void SettingsStore::persist_profile(const ProfileState& state, Completion done) {
    database_.put_profile(stored(state.profile), std::move(done));
}

SettingsStore::Completion SettingsStore::checked(Completion done, std::string what) {
    return [this, done = std::move(done), what = std::move(what)](Status status) {
        if (!status) {
            ++counters_.write_failures;
            log::get("profile")->error(R"(settings_write_failed what="{}" error="{}")", what,
                                       status.error().message());
        }
        if (done) {
            done(std::move(status));
        }
    };
}

} // namespace pw::profile
