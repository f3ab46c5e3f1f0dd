#include "daemon/api_backend.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "config/settings_schema.h"
#include "firewall/endpoint_rule.h"
#include "network/event_writer.h"
#include "profile/fingerprint.h"

namespace pw::daemon {
namespace {

// The store's refusals as HTTP statuses: a missing profile is 404, a key that may not be
// changed here (the config file's, or a global key on a profile) is 409, any other bad value
// is 400. The message is the store's, which is the config file's.
api::Reply refusal(const Error& error) {
    const std::string message = error.message();
    if (message.starts_with("unknown profile")) {
        return api::error_reply(404, message);
    }
    if (message.find("set by the config file") != std::string::npos ||
        message.find("is a global setting") != std::string::npos ||
        message.find("cannot be deleted") != std::string::npos) {
        return api::error_reply(409, message);
    }
    return api::error_reply(400, message);
}

// Answers with `reply` once the database has the change, or 500 when it refused it (the
// change is in memory then, but would not survive a restart: the log has the reason).
profile::SettingsStore::Completion when_committed(api::Respond respond, api::Reply reply) {
    return [respond = std::move(respond), reply = std::move(reply)](Status status) {
        if (status) {
            respond(reply);
        } else {
            respond(api::error_reply(
                500, "the change applies now but could not be saved: " + status.error().message()));
        }
    };
}

api::SettingLayer layer_of(config::SettingSource source) {
    switch (source) {
        case config::SettingSource::Default:
            return api::SettingLayer::Default;
        case config::SettingSource::Store:
            return api::SettingLayer::Store;
        case config::SettingSource::ConfigFile:
            return api::SettingLayer::ConfigFile;
        case config::SettingSource::App:
            return api::SettingLayer::App;
    }
    return api::SettingLayer::Default;
}

std::string_view until_name(profile::TemporaryRule::Until until) {
    switch (until) {
        case profile::TemporaryRule::Until::Time:
            return "time";
        case profile::TemporaryRule::Until::ProcessExit:
            return "exit";
        case profile::TemporaryRule::Until::Restart:
            return "restart";
    }
    return "restart";
}

nlohmann::json statistics_json(const std::vector<profile::RuleStatistics>& statistics) {
    nlohmann::json list = nlohmann::json::array();
    for (const profile::RuleStatistics& stat : statistics) {
        list.push_back(
            {{"list", stat.list == firewall::RuleListKind::ServiceEndpoints ? "serviceEndpoints"
                                                                            : "endpoints"},
             {"rule", stat.rule},
             {"matches", stat.matches},
             {"lastMatch", stat.last_match.time_since_epoch().count() == 0
                               ? nlohmann::json(nullptr)
                               : nlohmann::json(network::utc_timestamp(stat.last_match))}});
    }
    return list;
}

nlohmann::json profile_json(const profile::ProfileState& state,
                            const std::vector<profile::RuleStatistics>& statistics) {
    const profile::Profile& profile = state.profile;
    nlohmann::json temporary = nlohmann::json::array();
    for (const profile::TemporaryRule& rule : state.temporary) {
        nlohmann::json entry = {
            {"list", rule.list == profile::RuleListName::ServiceEndpoints ? "serviceEndpoints"
                                                                          : "endpoints"},
            {"rule", rule.rule.text},
            {"until", until_name(rule.until)}};
        if (rule.until == profile::TemporaryRule::Until::Time) {
            entry["expires"] = network::utc_timestamp(rule.expires);
        }
        if (rule.until == profile::TemporaryRule::Until::ProcessExit) {
            entry["pid"] = rule.pid;
        }
        temporary.push_back(std::move(entry));
    }
    return {{"id", profile.id},
            {"name", profile.name},
            {"source", profile::profile_source_name(profile.source)},
            {"fingerprints", profile::to_json(profile.fingerprints)},
            {"settings", profile.settings.json()},
            {"temporaryRules", std::move(temporary)},
            {"ruleStatistics", statistics_json(statistics)},
            {"created", network::utc_timestamp(profile.created)},
            {"firstSeen", network::utc_timestamp(profile.first_seen)},
            {"lastSeen", network::utc_timestamp(profile.last_seen)}};
}

// A string member of a request body: `fallback` when absent, an error naming the member when it
// is not a string (nlohmann's value() would throw instead).
Result<std::string> string_member(const nlohmann::json& body, const char* name,
                                  std::string fallback) {
    const auto found = body.find(name);
    if (found == body.end()) {
        return fallback;
    }
    if (!found->is_string()) {
        return fail(fmt::format(R"("{}" must be a string, not {})", name, found->dump()));
    }
    return found->get<std::string>();
}

// The rule list a rules request names: "endpoints" (the default) or "serviceEndpoints".
Result<std::string_view> list_key(const nlohmann::json& body) {
    auto list = string_member(body, "list", "endpoints");
    if (!list) {
        return std::unexpected(list.error());
    }
    if (*list == "endpoints") {
        return "filter/endpoints";
    }
    if (*list == "serviceEndpoints") {
        return "filter/serviceEndpoints";
    }
    return fail(fmt::format(R"("list" must be endpoints or serviceEndpoints, not '{}')", *list));
}

} // namespace

nlohmann::json ApiBackend::profile_body(const profile::ProfileState& state) const {
    return profile_json(state, store_.rule_statistics(state.profile.id));
}

nlohmann::json ApiBackend::profiles() {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [id, state] : store_.profiles()) {
        list.push_back(profile_body(state));
    }
    return list;
}

std::optional<nlohmann::json> ApiBackend::profile(std::string_view id) {
    const profile::ProfileState* state = store_.find_profile(id);
    if (state == nullptr) {
        return std::nullopt;
    }
    return profile_body(*state);
}

void ApiBackend::create_profile(const nlohmann::json& body, api::Respond respond) {
    auto name = string_member(body, "name", "");
    auto id = string_member(body, "id", "");
    if (!name || !id) {
        respond(api::error_reply(400, (!name ? name : id).error().message()));
        return;
    }
    if (name->empty() || !body.contains("fingerprints")) {
        respond(api::error_reply(400, R"(a new profile needs "name" and "fingerprints")"));
        return;
    }
    if (!id->empty() && store_.find_profile(*id) != nullptr) {
        respond(api::error_reply(409, "profile '" + *id + "' exists: change it with PATCH"));
        return;
    }
    // The ID is known when put_profile returns; the completion comes later, after the commit.
    auto created_id = std::make_shared<std::string>();
    auto created = store_.put_profile(
        *id, *name, body["fingerprints"], body.value("settings", nlohmann::json::object()),
        [this, respond, created_id](Status status) {
            if (!status) {
                respond(api::error_reply(
                    500, "the profile could not be saved: " + status.error().message()));
                return;
            }
            const profile::ProfileState* state = store_.find_profile(*created_id);
            respond(state != nullptr
                        ? api::Reply{.status = 201, .body = profile_body(*state), .allow = {}}
                        : api::error_reply(404, "the profile is gone again"));
        });
    if (!created) {
        respond(refusal(created.error()));
        return;
    }
    *created_id = *created;
}

void ApiBackend::update_profile(std::string_view id, const nlohmann::json& body,
                                api::Respond respond) {
    const profile::ProfileState* state = store_.find_profile(id);
    if (state == nullptr) {
        respond(api::error_reply(404, "unknown profile '" + std::string(id) + "'"));
        return;
    }
    const profile::Profile& current = state->profile;
    auto name = string_member(body, "name", current.name);
    if (!name) {
        respond(api::error_reply(400, name.error().message()));
        return;
    }
    const nlohmann::json fingerprints = body.contains("fingerprints")
                                            ? body["fingerprints"]
                                            : profile::to_json(current.fingerprints);
    const nlohmann::json settings =
        body.contains("settings") ? body["settings"] : current.settings.json();
    const std::string key(id);
    auto updated =
        store_.put_profile(key, *name, fingerprints, settings, [this, respond, key](Status status) {
            const profile::ProfileState* now = store_.find_profile(key);
            if (!status || now == nullptr) {
                respond(
                    api::error_reply(500, "the profile could not be saved: " +
                                              (status ? "it is gone" : status.error().message())));
                return;
            }
            respond(api::Reply{.status = 200, .body = profile_body(*now), .allow = {}});
        });
    if (!updated) {
        respond(refusal(updated.error()));
    }
}

void ApiBackend::delete_profile(std::string_view id, api::Respond respond) {
    auto deleted = store_.delete_profile(
        id, when_committed(respond, api::Reply{.status = 204, .body = nullptr, .allow = {}}));
    if (!deleted) {
        respond(refusal(deleted.error()));
    }
}

void ApiBackend::add_rule(std::string_view profile_id, const nlohmann::json& body,
                          api::Respond respond) {
    auto text = string_member(body, "rule", "");
    if (!text) {
        respond(api::error_reply(400, text.error().message()));
        return;
    }
    auto parsed = firewall::parse_endpoint_rule(*text);
    if (!parsed) {
        respond(api::error_reply(400, "rule '" + *text + "': " + parsed.error().message()));
        return;
    }
    std::optional<std::size_t> position;
    if (const auto found = body.find("position"); found != body.end()) {
        if (!found->is_number_unsigned()) {
            respond(api::error_reply(
                400, R"("position" must be a whole number from 0 (first), not )" + found->dump()));
            return;
        }
        position = found->get<std::size_t>();
    }
    edit_rules(
        profile_id, body,
        [&](nlohmann::json& list) -> std::optional<api::Reply> {
            const std::size_t at = std::min(position.value_or(list.size()), list.size());
            list.insert(list.begin() + static_cast<std::ptrdiff_t>(at), parsed->text);
            return std::nullopt;
        },
        std::move(respond));
}

void ApiBackend::remove_rule(std::string_view profile_id, const nlohmann::json& body,
                             api::Respond respond) {
    auto text = string_member(body, "rule", "");
    if (!text) {
        respond(api::error_reply(400, text.error().message()));
        return;
    }
    edit_rules(
        profile_id, body,
        [&](nlohmann::json& list) -> std::optional<api::Reply> {
            const auto found = std::ranges::find(list, nlohmann::json(*text));
            if (found == list.end()) {
                return api::error_reply(404, "no rule '" + *text + "' in the list");
            }
            list.erase(found);
            return std::nullopt;
        },
        std::move(respond));
}

void ApiBackend::edit_rules(std::string_view profile_id, const nlohmann::json& body,
                            const ListEdit& edit, api::Respond respond) {
    const auto key = list_key(body);
    if (!key) {
        respond(api::error_reply(400, key.error().message()));
        return;
    }
    // The list as this layer holds it. A list the config file sets is refused by set_setting,
    // naming the file.
    nlohmann::json list = nlohmann::json::array();
    if (profile_id.empty()) {
        if (auto found = store_.store_layer().find(*key); found != store_.store_layer().end()) {
            list = found->second;
        }
    } else {
        const profile::ProfileState* state = store_.find_profile(profile_id);
        if (state == nullptr) {
            respond(api::error_reply(404, "unknown profile '" + std::string(profile_id) + "'"));
            return;
        }
        list = state->profile.settings.json().value(std::string(*key), nlohmann::json::array());
    }
    if (auto refused = edit(list)) {
        respond(std::move(*refused));
        return;
    }
    set_setting(profile_id.empty() ? std::nullopt : std::optional(profile_id), *key, list,
                std::move(respond));
}

std::optional<api::SettingView> ApiBackend::setting_view(std::string_view key,
                                                         std::string_view profile_id) const {
    const config::SettingInfo* info = config::find_setting(key);
    auto effective = store_.effective_setting(key, profile_id);
    if (info == nullptr || !effective) {
        return std::nullopt;
    }
    return api::SettingView{.key = std::string(key),
                            .value = effective->value,
                            .layer = layer_of(effective->source),
                            .scope = info->scope == config::SettingScope::Application
                                         ? api::SettingScope::App
                                         : api::SettingScope::Global};
}

std::optional<std::vector<api::SettingView>> ApiBackend::settings(
    std::optional<std::string_view> profile_id) {
    if (profile_id && store_.find_profile(*profile_id) == nullptr) {
        return std::nullopt;
    }
    std::vector<api::SettingView> views;
    for (const config::SettingInfo& info : config::all_settings()) {
        if (profile_id && info.scope != config::SettingScope::Application) {
            continue;
        }
        if (auto view = setting_view(info.key, profile_id.value_or(""))) {
            views.push_back(std::move(*view));
        }
    }
    return views;
}

void ApiBackend::set_setting(std::optional<std::string_view> profile_id, std::string_view key,
                             const nlohmann::json& value, api::Respond respond) {
    const std::optional<nlohmann::json> new_value =
        value.is_null() ? std::nullopt : std::optional(value);
    const std::string profile(profile_id.value_or(""));
    const std::string setting(key);
    // The reply is built when the change is committed, from the store's state then.
    auto done = [this, respond, profile, setting](Status status) {
        if (!status) {
            respond(api::error_reply(
                500, "the change applies now but could not be saved: " + status.error().message()));
            return;
        }
        auto view = setting_view(setting, profile);
        respond(view ? api::Reply{.status = 200, .body = api::to_json({*view}), .allow = {}}
                     : api::error_reply(404, "the profile is gone"));
    };
    const Status changed = profile_id
                               ? store_.set_profile_setting(*profile_id, key, new_value, done)
                               : store_.set_global_setting(key, new_value, done);
    if (!changed) {
        respond(refusal(changed.error()));
    }
}

nlohmann::json ApiBackend::prompts() {
    nlohmann::json list = nlohmann::json::array();
    for (const profile::Prompt& prompt : prompts_.list()) {
        const profile::PromptSubject& subject = prompt.subject;
        list.push_back(
            {{"id", prompt.id},
             {"profile", {{"id", subject.profile.id}, {"name", subject.profile.name}}},
             {"executable", subject.executable},
             {"pid", subject.pid},
             {"direction",
              subject.direction == packet::Direction::Outbound ? "outbound" : "inbound"},
             {"protocol", network::protocol_name(subject.protocol)},
             {"domain", subject.domain},
             {"remote",
              {{"ip", subject.remote_address.to_string()}, {"port", subject.remote_port}}},
             {"localPort", subject.local_port},
             {"connections", prompt.connections},
             {"opened", network::utc_timestamp(prompt.opened)}});
    }
    return list;
}

void ApiBackend::answer_prompt(std::uint64_t id, const nlohmann::json& answer,
                               api::Respond respond) {
    const profile::Prompt* prompt = prompts_.find(id);
    if (prompt == nullptr) {
        respond(api::error_reply(
            404, "no open prompt " + std::to_string(id) + " (answered, expired, or never opened)"));
        return;
    }
    auto parsed = profile::parse_prompt_answer(answer, prompt->subject);
    if (!parsed) {
        respond(api::error_reply(400, parsed.error().message()));
        return;
    }
    auto answered = prompts_.answer(id, *parsed);
    if (!answered) {
        respond(api::error_reply(400, answered.error().message()));
        return;
    }
    respond(api::Reply{
        .status = 200,
        .body = {{"id", id},
                 {"verdict",
                  parsed->verdict == profile::PromptVerdict::Permit ? "permit" : "block"},
                 {"for", profile::duration_text(*parsed)},
                 {"connections", answered->connections}},
        .allow = {}});
}

} // namespace pw::daemon
