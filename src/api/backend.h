#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pw::api {

// One HTTP answer of a route: a status and a JSON body (null: no body, as for 204). `allow`
// lists the methods of the route for a 405 answer.
struct Reply {
    int status = 200;
    nlohmann::json body;
    std::vector<std::string> allow;
};

// {"error": message} with `status`: every refusal says why, in words a person can act on.
[[nodiscard]] Reply error_reply(int status, std::string message);

// Routes that change something answer later, when the change is stored: the backend calls
// `Respond` exactly once, on the event-loop thread.
using Respond = std::function<void(Reply)>;

// Where a setting's effective value comes from (GET /settings shows it).
enum class SettingLayer : std::uint8_t { Default, Store, ConfigFile, App };
// Whether a profile may set the key for itself, or only the global layer.
enum class SettingScope : std::uint8_t { Global, App };

struct SettingView {
    std::string key;
    nlohmann::json value;
    SettingLayer layer = SettingLayer::Default;
    SettingScope scope = SettingScope::Global;
};

// [{"key": ..., "value": ..., "layer": "default|store|configFile|app", "scope": "global|app"}]
[[nodiscard]] nlohmann::json to_json(const std::vector<SettingView>& views);

// What the API's routes read and change: implemented by the daemon over the settings store and
// the prompt broker, by a fake in the API's own tests. Runs on the event-loop thread only.
class Backend {
public:
    virtual ~Backend() = default;

    [[nodiscard]] virtual nlohmann::json status() = 0;

    [[nodiscard]] virtual nlohmann::json profiles() = 0;
    [[nodiscard]] virtual std::optional<nlohmann::json> profile(std::string_view id) = 0;
    virtual void create_profile(const nlohmann::json& body, Respond respond) = 0;
    virtual void update_profile(std::string_view id, const nlohmann::json& body,
                                Respond respond) = 0;
    virtual void delete_profile(std::string_view id, Respond respond) = 0;
    // A rule added to (or removed from) a profile's list; `profile_id` empty: the global list.
    // Body: {"list": "endpoints|serviceEndpoints", "rule": "+ example.com", "position": n}.
    virtual void add_rule(std::string_view profile_id, const nlohmann::json& body,
                          Respond respond) = 0;
    virtual void remove_rule(std::string_view profile_id, const nlohmann::json& body,
                             Respond respond) = 0;

    // Every setting (global), or a profile's per-application settings; nullopt: no such profile.
    [[nodiscard]] virtual std::optional<std::vector<SettingView>> settings(
        std::optional<std::string_view> profile_id) = 0;
    // `value` null removes the key from its layer.
    virtual void set_setting(std::optional<std::string_view> profile_id, std::string_view key,
                             const nlohmann::json& value, Respond respond) = 0;

    [[nodiscard]] virtual nlohmann::json prompts() = 0;
    virtual void answer_prompt(std::uint64_t id, const nlohmann::json& answer, Respond respond) = 0;

    // Pauses filtering for `length` (replacing a pause that runs); resume() ends it. Both answer
    // {"paused": bool, "until": "2026-12-05T12:40:00Z" or null}.
    virtual void pause(std::chrono::seconds length, Respond respond) = 0;
    virtual void resume(Respond respond) = 0;
};

} // namespace pw::api
