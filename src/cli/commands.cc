#include "cli/commands.h"

#include <cctype>
#include <filesystem>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>

namespace pw::cli {
namespace {

using nlohmann::json;

constexpr std::string_view kApi = "/api/v1";

std::string quote(std::string_view text) {
    return "'" + std::string(text) + "'";
}

std::string scope_prefix(const std::optional<std::string>& profile_id) {
    return profile_id ? std::string(kApi) + "/profiles/" + encode_segment(*profile_id)
                      : std::string(kApi);
}

bool is_duration(std::string_view text) {
    if (text == "once" || text == "exit" || text == "restart" || text == "always") {
        return true;
    }
    if (text.size() < 2) {
        return false;
    }
    const char unit = text.back();
    if (unit != 's' && unit != 'm' && unit != 'h' && unit != 'd') {
        return false;
    }
    bool nonzero = false;
    for (const char digit : text.substr(0, text.size() - 1)) {
        if (std::isdigit(static_cast<unsigned char>(digit)) == 0) {
            return false;
        }
        nonzero = nonzero || digit != '0';
    }
    return nonzero && text.size() <= 11;
}

const json& string_or_null(const json& object, const char* name) {
    static const json kNull;
    if (!object.is_object()) {
        return kNull;
    }
    const auto found = object.find(name);
    return found == object.end() ? kNull : *found;
}

bool equals(const json& value, std::string_view text) {
    return value.is_string() && value.get_ref<const std::string&>() == text;
}

bool has_path_fingerprint(const json& profile, std::string_view path) {
    const json& fingerprints = string_or_null(profile, "fingerprints");
    if (!fingerprints.is_array()) {
        return false;
    }
    for (const json& fingerprint : fingerprints) {
        if (string_or_null(fingerprint, "type") == "path" &&
            string_or_null(fingerprint, "operation") == "equals" &&
            equals(string_or_null(fingerprint, "value"), path)) {
            return true;
        }
    }
    return false;
}

} // namespace

int exit_code_for_status(int status) {
    if (status >= 200 && status < 300) {
        return kExitOk;
    }
    if (status == 403) {
        return kExitForbidden;
    }
    return kExitRefused;
}

CommandError command_error(const ClientError& error, const ApiEndpoint& endpoint) {
    if (error.failure == ClientFailure::NotReachable) {
        return CommandError{
            .exit_code = kExitNotRunning,
            .message = "portwarden is not running (nothing answers on " + to_string(endpoint) +
                       "): start it with `systemctl start portwarden` or `portwarden run` (" +
                       error.error.message() + ")",
            .http_status = 0};
    }
    return CommandError{.exit_code = kExitRefused,
                        .message = "portwarden: " + error.error.message(),
                        .http_status = 0};
}

json parse_value(std::string_view text) {
    try {
        return json::parse(text);
    } catch (const json::exception&) {
        return std::string(text);
    }
}

std::string encode_segment(std::string_view text) {
    constexpr std::string_view kHex = "0123456789ABCDEF";
    std::string out;
    for (const char letter : text) {
        const auto byte = static_cast<unsigned char>(letter);
        if (std::isalnum(byte) != 0 || letter == '-' || letter == '.' || letter == '_' ||
            letter == '~') {
            out.push_back(letter);
        } else {
            out.push_back('%');
            out.push_back(kHex[byte >> 4U]);
            out.push_back(kHex[byte & 0x0FU]);
        }
    }
    return out;
}

AppMatch match_app(const json& profiles, std::string_view query) {
    AppMatch match;
    if (!profiles.is_array()) {
        return match;
    }
    for (const json& profile : profiles) {
        if (equals(string_or_null(profile, "id"), query)) {
            match.kind = AppMatch::Kind::Found;
            match.profile = profile;
            return match;
        }
    }
    // Then by exact name, then by executable path; several matches at one step are ambiguous.
    const auto pick = [&match, &profiles](const auto& matches) {
        for (const json& profile : profiles) {
            if (matches(profile)) {
                match.profiles.push_back(profile);
            }
        }
        if (match.profiles.size() == 1) {
            match.kind = AppMatch::Kind::Found;
            match.profile = std::move(match.profiles.front());
            match.profiles.clear();
        } else if (match.profiles.size() > 1) {
            match.kind = AppMatch::Kind::Ambiguous;
        }
        return match.kind != AppMatch::Kind::NotFound;
    };
    if (pick([query](const json& profile) {
            return equals(string_or_null(profile, "name"), query);
        })) {
        return match;
    }
    pick([query](const json& profile) { return has_path_fingerprint(profile, query); });
    return match;
}

ApiRequest rule_request(RuleChange change, const std::optional<std::string>& profile_id,
                        std::string_view list, std::string_view rule,
                        std::optional<std::uint64_t> position) {
    json body = {{"list", list}, {"rule", rule}};
    if (position && change == RuleChange::Add) {
        body["position"] = *position;
    }
    return ApiRequest{.method = change == RuleChange::Add ? "POST" : "DELETE",
                      .target = scope_prefix(profile_id) + "/rules",
                      .body = std::move(body)};
}

ApiRequest settings_get_request(const std::optional<std::string>& profile_id,
                                const std::optional<std::string>& key) {
    std::string target = scope_prefix(profile_id) + "/settings";
    if (key) {
        target += "/" + encode_segment(*key);
    }
    return ApiRequest{.method = "GET", .target = std::move(target), .body = std::nullopt};
}

ApiRequest settings_put_request(const std::optional<std::string>& profile_id, std::string_view key,
                                json value) {
    return ApiRequest{.method = "PUT",
                      .target = scope_prefix(profile_id) + "/settings/" + encode_segment(key),
                      .body = json{{"value", std::move(value)}}};
}

std::expected<ApiRequest, CommandError> prompt_answer_request(
    const PromptAnswerArguments& arguments) {
    const auto usage = [](std::string message) {
        return std::unexpected(CommandError{.exit_code = kExitUsage,
                                            .message = "portwarden: " + std::move(message),
                                            .http_status = 0});
    };
    if (arguments.verdict != "permit" && arguments.verdict != "block") {
        return usage("verdict " + quote(arguments.verdict) + ": expected permit or block");
    }
    if (!is_duration(arguments.duration)) {
        return usage("--for " + quote(arguments.duration) +
                     ": expected once, exit, restart, always or a duration such as 15m, 1h, 1d");
    }
    json body = {{"verdict", arguments.verdict}, {"for", arguments.duration}};
    if (arguments.target) {
        const std::string& target = *arguments.target;
        if (target == "domain-and-subdomains" || target == "zone") {
            body["target"] = "zone";
        } else if (target == "domain" || target == "ip" || target == "port") {
            body["target"] = target;
        } else {
            return usage("--target " + quote(target) +
                         ": expected domain, domain-and-subdomains, ip or port");
        }
    }
    return ApiRequest{
        .method = "POST",
        .target = std::string(kApi) + "/prompts/" + std::to_string(arguments.id) + "/answer",
        .body = std::move(body)};
}

ApiRequest pause_request(const std::optional<std::string>& duration) {
    json body = json::object();
    if (duration) {
        body["duration"] = *duration;
    }
    return ApiRequest{
        .method = "POST", .target = std::string(kApi) + "/pause", .body = std::move(body)};
}

ApiRequest resume_request() {
    return ApiRequest{
        .method = "POST", .target = std::string(kApi) + "/resume", .body = json::object()};
}

// --- Commands ---

std::expected<json, CommandError> Commands::call(const ApiRequest& request) {
    ApiResult answer = api_.send(request);
    if (!answer) {
        return std::unexpected(command_error(answer.error(), endpoint_));
    }
    const int code = exit_code_for_status(answer->status);
    if (code == kExitOk) {
        return std::move(answer->body);
    }
    const json& error = string_or_null(answer->body, "error");
    std::string message =
        error.is_string() ? error.get<std::string>()
                          : "HTTP " + std::to_string(answer->status) + " " + answer->body.dump();
    return std::unexpected(CommandError{.exit_code = code,
                                        .message = "portwarden: " + std::move(message),
                                        .http_status = answer->status});
}

int Commands::report(const CommandError& error) {
    output_.err << error.message << "\n";
    return error.exit_code;
}

int Commands::print(const json& body, const std::string& human) {
    if (output_.format == Output::Format::Json) {
        output_.out << body.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    } else {
        output_.out << human;
    }
    return kExitOk;
}

std::expected<json, CommandError> Commands::resolve_app(std::string_view app, AppUse use) {
    auto profiles = call(ApiRequest{
        .method = "GET", .target = std::string(kApi) + "/profiles", .body = std::nullopt});
    if (!profiles) {
        return std::unexpected(std::move(profiles.error()));
    }
    AppMatch match = match_app(*profiles, app);
    std::string path(app);
    if (match.kind == AppMatch::Kind::NotFound && app.starts_with('/')) {
        // The daemon knows executables by their real path (/proc/PID/exe): a symlink such as
        // /usr/bin/python3 is looked up as the file it points to.
        std::error_code error;
        const std::filesystem::path canonical = std::filesystem::weakly_canonical(path, error);
        if (!error && canonical.string() != path) {
            path = canonical.string();
            match = match_app(*profiles, path);
        }
    }
    if (match.kind == AppMatch::Kind::Found) {
        return std::move(match.profile);
    }
    if (match.kind == AppMatch::Kind::Ambiguous) {
        std::string message = "portwarden: several profiles match " + quote(app) +
                              ": give the ID of the one you mean:";
        for (const json& profile : match.profiles) {
            message += "\n  " + display_value(string_or_null(profile, "id")) + "  " +
                       fingerprints_summary(string_or_null(profile, "fingerprints"));
        }
        return std::unexpected(
            CommandError{.exit_code = kExitUsage, .message = std::move(message), .http_status = 0});
    }
    if (!app.starts_with('/')) {
        return std::unexpected(CommandError{
            .exit_code = kExitRefused,
            .message = "portwarden: no profile with the ID or name " + quote(app) +
                       " (`portwarden apps` lists them; give an executable by its full path)",
            .http_status = 0});
    }
    if (use == AppUse::Read) {
        return std::unexpected(CommandError{
            .exit_code = kExitRefused,
            .message = "portwarden: no profile for the executable " + quote(path) +
                       ": it gets one when it first connects, or from `portwarden rules add "
                       "--app` and `portwarden settings set --app`",
            .http_status = 0});
    }
    const std::string name = std::filesystem::path(path).filename().string();
    auto created = call(ApiRequest{
        .method = "POST",
        .target = std::string(kApi) + "/profiles",
        .body =
            json{{"name", name},
                 {"fingerprints",
                  json::array({{{"type", "path"}, {"operation", "equals"}, {"value", path}}})}}});
    if (!created) {
        return std::unexpected(std::move(created.error()));
    }
    output_.err << "portwarden: no profile for " << path << ": created profile " << quote(name)
                << " (ID " << display_value(string_or_null(*created, "id")) << ")\n";
    return std::move(*created);
}

std::expected<std::optional<std::string>, CommandError> Commands::scope(
    const std::optional<std::string>& app, AppUse use) {
    if (!app) {
        return std::optional<std::string>();
    }
    auto profile = resolve_app(*app, use);
    if (!profile) {
        return std::unexpected(std::move(profile.error()));
    }
    const json& id = string_or_null(*profile, "id");
    if (!id.is_string()) {
        return std::unexpected(CommandError{.exit_code = kExitRefused,
                                            .message = "portwarden: a profile without an ID",
                                            .http_status = 0});
    }
    return std::optional<std::string>(id.get<std::string>());
}

int Commands::status() {
    auto body = call(
        ApiRequest{.method = "GET", .target = std::string(kApi) + "/status", .body = std::nullopt});
    if (!body) {
        return report(body.error());
    }
    return print(*body, format_status(*body, output_.colour));
}

int Commands::apps() {
    auto body = call(ApiRequest{
        .method = "GET", .target = std::string(kApi) + "/profiles", .body = std::nullopt});
    if (!body) {
        return report(body.error());
    }
    return print(*body, format_profiles(*body, output_.colour));
}

int Commands::app_show(std::string_view app) {
    auto profile = resolve_app(app, AppUse::Read);
    if (!profile) {
        return report(profile.error());
    }
    return print(*profile, format_profile(*profile, output_.colour));
}

int Commands::rules_list(const std::optional<std::string>& app) {
    json rules = {{"profile", nullptr},
                  {"endpoints", json::array()},
                  {"serviceEndpoints", json::array()},
                  {"temporaryRules", json::array()},
                  {"ruleStatistics", json::array()}};
    if (app) {
        auto profile = resolve_app(*app, AppUse::Read);
        if (!profile) {
            return report(profile.error());
        }
        rules["profile"] = {{"id", string_or_null(*profile, "id")},
                            {"name", string_or_null(*profile, "name")}};
        const json& settings = string_or_null(*profile, "settings");
        for (const char* list : {"endpoints", "serviceEndpoints"}) {
            const json& entries = string_or_null(settings, ("filter/" + std::string(list)).c_str());
            if (entries.is_array()) {
                rules[list] = entries;
            }
        }
        for (const char* member : {"temporaryRules", "ruleStatistics"}) {
            if (const json& entries = string_or_null(*profile, member); entries.is_array()) {
                rules[member] = entries;
            }
        }
    } else {
        for (const char* list : {"endpoints", "serviceEndpoints"}) {
            auto setting = call(settings_get_request(std::nullopt, "filter/" + std::string(list)));
            if (!setting) {
                return report(setting.error());
            }
            if (const json& value = string_or_null(*setting, "value"); value.is_array()) {
                rules[list] = value;
            }
        }
    }
    return print(rules, format_rules(rules, output_.colour));
}

int Commands::rules_change(RuleChange change, const std::optional<std::string>& app,
                           std::string_view list, std::string_view rule,
                           std::optional<std::uint64_t> position) {
    // Removing from an application that has no profile cannot succeed: no profile is made.
    auto profile_id = scope(app, change == RuleChange::Add ? AppUse::Write : AppUse::Read);
    if (!profile_id) {
        return report(profile_id.error());
    }
    auto body = call(rule_request(change, *profile_id, list, rule, position));
    if (!body) {
        return report(body.error());
    }
    const std::optional<std::string>& owner = *profile_id;
    const std::string where = owner.has_value() ? "profile " + quote(*owner) : "the global rules";
    return print(*body, std::string(change == RuleChange::Add ? "added " : "removed ") +
                            quote(rule) + (change == RuleChange::Add ? " to " : " from ") +
                            std::string(list) + " of " + where + "\n");
}

int Commands::settings_get(const std::optional<std::string>& key,
                           const std::optional<std::string>& app) {
    auto profile_id = scope(app, AppUse::Read);
    if (!profile_id) {
        return report(profile_id.error());
    }
    auto body = call(settings_get_request(*profile_id, key));
    if (!body) {
        return report(body.error());
    }
    return print(*body, format_settings(*body, output_.colour));
}

int Commands::settings_set(std::string_view key, std::string_view value,
                           const std::optional<std::string>& app) {
    auto profile_id = scope(app, AppUse::Write);
    if (!profile_id) {
        return report(profile_id.error());
    }
    auto body = call(settings_put_request(*profile_id, key, parse_value(value)));
    if (!body) {
        return report(body.error());
    }
    return print(*body, format_settings(*body, output_.colour));
}

int Commands::settings_unset(std::string_view key, const std::optional<std::string>& app) {
    auto profile_id = scope(app, AppUse::Read);
    if (!profile_id) {
        return report(profile_id.error());
    }
    auto body = call(settings_put_request(*profile_id, key, nullptr));
    if (!body) {
        return report(body.error());
    }
    return print(*body, format_settings(*body, output_.colour));
}

int Commands::prompts_list() {
    auto body = call(ApiRequest{
        .method = "GET", .target = std::string(kApi) + "/prompts", .body = std::nullopt});
    if (!body) {
        return report(body.error());
    }
    return print(*body, format_prompts(*body, output_.colour));
}

int Commands::prompts_answer(const PromptAnswerArguments& arguments) {
    auto request = prompt_answer_request(arguments);
    if (!request) {
        return report(request.error());
    }
    auto body = call(*request);
    if (!body) {
        return report(body.error());
    }
    return print(*body, format_prompt_answer(*body));
}

int Commands::pause(const std::optional<std::string>& duration) {
    // A pause ends by itself after a length of time; "once" or "always" mean nothing here.
    if (duration && (!is_duration(*duration) ||
                     std::isdigit(static_cast<unsigned char>(duration->front())) == 0)) {
        return report(CommandError{.exit_code = kExitUsage,
                                   .message = "portwarden: --for " + quote(*duration) +
                                              ": expected a duration such as 30s, 5m, 1h or 1d",
                                   .http_status = 0});
    }
    auto body = call(pause_request(duration));
    if (!body) {
        if (body.error().http_status == 404) {
            return report(
                CommandError{.exit_code = kExitRefused,
                             .message = "portwarden: this portwarden does not support pause (" +
                                        to_string(endpoint_) + " has no route POST /api/v1/pause)",
                             .http_status = 404});
        }
        return report(body.error());
    }
    return print(*body, duration ? "paused for " + *duration + "\n" : "paused\n");
}

int Commands::resume() {
    auto body = call(resume_request());
    if (!body) {
        if (body.error().http_status == 404) {
            return report(
                CommandError{.exit_code = kExitRefused,
                             .message = "portwarden: this portwarden does not support pause (" +
                                        to_string(endpoint_) + " has no route POST /api/v1/resume)",
                             .http_status = 404});
        }
        return report(body.error());
    }
    return print(*body, "resumed\n");
}

} // namespace pw::cli
