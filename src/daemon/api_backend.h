#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backend.h"
#include "profile/prompts.h"
#include "profile/settings_store.h"

namespace pw::daemon {

// The API's routes (api::Backend) answered from the settings store and the prompt broker: the
// wiring between the api/ room and the profile/ room, so that neither knows the other. Writes
// answer when the database has committed them. Runs on the event-loop thread only.
class ApiBackend final : public api::Backend {
public:
    using StatusSource = std::function<nlohmann::json()>;
    // Pauses filtering for the length given, or resumes it (nullopt); returns the pause state.
    using PauseControl = std::function<nlohmann::json(std::optional<std::chrono::seconds>)>;

    ApiBackend(profile::SettingsStore& store, profile::PromptBroker& prompts, StatusSource status,
               PauseControl pause)
        : store_(store), prompts_(prompts), status_(std::move(status)), pause_(std::move(pause)) {}

    [[nodiscard]] nlohmann::json status() override { return status_(); }
    [[nodiscard]] nlohmann::json profiles() override;
    [[nodiscard]] std::optional<nlohmann::json> profile(std::string_view id) override;
    void create_profile(const nlohmann::json& body, api::Respond respond) override;
    void update_profile(std::string_view id, const nlohmann::json& body,
                        api::Respond respond) override;
    void delete_profile(std::string_view id, api::Respond respond) override;
    void add_rule(std::string_view profile_id, const nlohmann::json& body,
                  api::Respond respond) override;
    void remove_rule(std::string_view profile_id, const nlohmann::json& body,
                     api::Respond respond) override;
    [[nodiscard]] std::optional<std::vector<api::SettingView>> settings(
        std::optional<std::string_view> profile_id) override;
    void set_setting(std::optional<std::string_view> profile_id, std::string_view key,
                     const nlohmann::json& value, api::Respond respond) override;
    [[nodiscard]] nlohmann::json prompts() override;
    void answer_prompt(std::uint64_t id, const nlohmann::json& answer,
                       api::Respond respond) override;
    void pause(std::chrono::seconds length, api::Respond respond) override {
        respond(api::Reply{.status = 200, .body = pause_(length), .allow = {}});
    }
    void resume(api::Respond respond) override {
        respond(api::Reply{.status = 200, .body = pause_(std::nullopt), .allow = {}});
    }

private:
    // Changes the rule list that `body` names (global: empty `profile_id`) with `edit`, which
    // returns an error reply or nullopt when the list was changed.
    using ListEdit = std::function<std::optional<api::Reply>(nlohmann::json& list)>;
    void edit_rules(std::string_view profile_id, const nlohmann::json& body, const ListEdit& edit,
                    api::Respond respond);
    // A profile as the API shows it, with its rule statistics.
    [[nodiscard]] nlohmann::json profile_body(const profile::ProfileState& state) const;
    [[nodiscard]] std::optional<api::SettingView> setting_view(std::string_view key,
                                                               std::string_view profile_id) const;

    profile::SettingsStore& store_;
    profile::PromptBroker& prompts_;
    StatusSource status_;
    PauseControl pause_;
};

} // namespace pw::daemon
