#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backend.h"

namespace pw::api {

// A Backend played by the test: reads answer from tables the test fills, changes are recorded
// and answered at once (Answers::Now) or kept for the test to answer later (Answers::Later).
// The server tests call it on their event-loop thread and look at it from the test's thread, so
// what it records is behind a mutex.
class FakeBackend final : public Backend {
public:
    enum class Answers : std::uint8_t { Now, Later };

    // One change the API asked for. The `{}` initializers keep GCC's -Wmissing-field-initializers
    // quiet about the designated initializers below that leave members out.
    struct Call {
        std::string name{}; // "create_profile", "add_rule", "set_setting", ...
        std::optional<std::string> profile_id{};
        std::string key{};
        std::uint64_t prompt_id = 0;
        nlohmann::json body{};
    };

    // What the test sets up before the first request.
    nlohmann::json status_json = {{"version", "test"}, {"paused", false}};
    nlohmann::json profiles_json = nlohmann::json::array();
    std::map<std::string, nlohmann::json, std::less<>> profile_table;
    std::vector<SettingView> global_settings;
    std::map<std::string, std::vector<SettingView>, std::less<>> app_settings;
    nlohmann::json prompts_json = nlohmann::json::array();
    Answers answers = Answers::Now;
    Reply now_reply = Reply{.status = 200, .body = {{"ok", true}}, .allow = {}};

    // api::Backend
    nlohmann::json status() override {
        note_read();
        return status_json;
    }
    nlohmann::json profiles() override {
        note_read();
        return profiles_json;
    }
    std::optional<nlohmann::json> profile(std::string_view id) override {
        note_read();
        const auto found = profile_table.find(id);
        if (found == profile_table.end()) {
            return std::nullopt;
        }
        return found->second;
    }
    void create_profile(const nlohmann::json& body, Respond respond) override {
        change({.name = "create_profile", .body = body}, std::move(respond));
    }
    void update_profile(std::string_view id, const nlohmann::json& body, Respond respond) override {
        change({.name = "update_profile", .profile_id = std::string(id), .body = body},
               std::move(respond));
    }
    void delete_profile(std::string_view id, Respond respond) override {
        change({.name = "delete_profile", .profile_id = std::string(id)}, std::move(respond));
    }
    void add_rule(std::string_view profile_id, const nlohmann::json& body,
                  Respond respond) override {
        change({.name = "add_rule", .profile_id = std::string(profile_id), .body = body},
               std::move(respond));
    }
    void remove_rule(std::string_view profile_id, const nlohmann::json& body,
                     Respond respond) override {
        change({.name = "remove_rule", .profile_id = std::string(profile_id), .body = body},
               std::move(respond));
    }
    std::optional<std::vector<SettingView>> settings(
        std::optional<std::string_view> profile_id) override {
        note_read();
        if (!profile_id) {
            return global_settings;
        }
        const auto found = app_settings.find(*profile_id);
        if (found == app_settings.end()) {
            return std::nullopt;
        }
        return found->second;
    }
    void set_setting(std::optional<std::string_view> profile_id, std::string_view key,
                     const nlohmann::json& value, Respond respond) override {
        Call call{.name = "set_setting", .key = std::string(key), .body = value};
        if (profile_id) {
            call.profile_id = std::string(*profile_id);
        }
        change(std::move(call), std::move(respond));
    }
    nlohmann::json prompts() override {
        note_read();
        return prompts_json;
    }
    void answer_prompt(std::uint64_t id, const nlohmann::json& answer, Respond respond) override {
        change({.name = "answer_prompt", .prompt_id = id, .body = answer}, std::move(respond));
    }
    void pause(std::chrono::seconds length, Respond respond) override {
        change({.name = "pause", .body = {{"seconds", length.count()}}}, std::move(respond));
    }
    void resume(Respond respond) override { change({.name = "resume"}, std::move(respond)); }

    // What the test looks at, from any thread.
    [[nodiscard]] std::vector<Call> calls() const {
        const std::scoped_lock lock(mutex_);
        return calls_;
    }
    [[nodiscard]] int reads() const {
        const std::scoped_lock lock(mutex_);
        return reads_;
    }
    [[nodiscard]] std::size_t waiting() const {
        const std::scoped_lock lock(mutex_);
        return waiting_.size();
    }
    // The oldest change not answered yet (Answers::Later); call the Respond on the event loop.
    [[nodiscard]] std::optional<Respond> take_waiting() {
        const std::scoped_lock lock(mutex_);
        if (waiting_.empty()) {
            return std::nullopt;
        }
        Respond respond = std::move(waiting_.front());
        waiting_.pop_front();
        return respond;
    }

    // Forgets the calls recorded so far (the fuzzer makes millions).
    void forget_calls() {
        const std::scoped_lock lock(mutex_);
        calls_.clear();
        waiting_.clear();
    }

private:
    void note_read() {
        const std::scoped_lock lock(mutex_);
        ++reads_;
    }
    void change(Call call, Respond respond) {
        {
            const std::scoped_lock lock(mutex_);
            calls_.push_back(std::move(call));
            if (answers == Answers::Later) {
                waiting_.push_back(std::move(respond));
                return;
            }
        }
        respond(now_reply);
    }

    mutable std::mutex mutex_;
    std::vector<Call> calls_;
    std::deque<Respond> waiting_;
    int reads_ = 0;
};

} // namespace pw::api
