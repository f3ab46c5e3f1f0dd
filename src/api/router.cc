#include "api/router.h"

#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "api/openapi_document.h"
#include "common/duration.h"

namespace pw::api {
namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "/api/v1/";
// Error texts quote what the client sent; a quote longer than this is cut, so that a refusal
// stays one readable line however long the request was.
constexpr std::size_t kMaxQuote = 200;

enum class Route : std::uint8_t {
    Status,
    Profiles,
    Profile,
    ProfileRules,
    ProfileSettings,
    ProfileSetting,
    GlobalRules,
    Settings,
    Setting,
    Prompts,
    PromptAnswer,
    Pause,
    Resume,
    Events,
    OpenApi,
};

// The path of each route as the OpenAPI document writes it (route_table()).
std::string_view path_template(Route route) {
    switch (route) {
        case Route::Status:
            return "/api/v1/status";
        case Route::Profiles:
            return "/api/v1/profiles";
        case Route::Profile:
            return "/api/v1/profiles/{id}";
        case Route::ProfileRules:
            return "/api/v1/profiles/{id}/rules";
        case Route::ProfileSettings:
            return "/api/v1/profiles/{id}/settings";
        case Route::ProfileSetting:
            return "/api/v1/profiles/{id}/settings/{key}";
        case Route::GlobalRules:
            return "/api/v1/rules";
        case Route::Settings:
            return "/api/v1/settings";
        case Route::Setting:
            return "/api/v1/settings/{key}";
        case Route::Prompts:
            return "/api/v1/prompts";
        case Route::PromptAnswer:
            return "/api/v1/prompts/{id}/answer";
        case Route::Pause:
            return "/api/v1/pause";
        case Route::Resume:
            return "/api/v1/resume";
        case Route::Events:
            return "/api/v1/events";
        case Route::OpenApi:
            return "/api/v1/openapi.json";
    }
    return "";
}

// A route and its parameters, percent-decoded.
struct Match {
    Route route = Route::Status;
    std::string profile_id;
    std::string key;
    std::uint64_t prompt_id = 0;
};

// A match without parameters (GCC's -Wmissing-field-initializers would flag the designated
// initializer that leaves them out).
Match only(Route route) {
    Match match;
    match.route = route;
    return match;
}

std::string quote(std::string_view text) {
    if (text.size() <= kMaxQuote) {
        return "'" + std::string(text) + "'";
    }
    return "'" + std::string(text.substr(0, kMaxQuote)) + "...'";
}

std::unexpected<Reply> refuse(int status, std::string message) {
    return std::unexpected(error_reply(status, std::move(message)));
}

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> segments;
    std::size_t start = 0;
    while (true) {
        const std::size_t slash = path.find('/', start);
        segments.push_back(path.substr(start, slash - start));
        if (slash == std::string_view::npos) {
            return segments;
        }
        start = slash + 1;
    }
}

// The rest of `path` from segment `first` on, slashes included: a setting key such as
// "filter/defaultAction" may be written with literal slashes.
std::string_view rest_from(std::string_view path, std::span<const std::string_view> segments,
                           std::size_t first) {
    const auto offset = static_cast<std::size_t>(segments[first].data() - path.data());
    return path.substr(offset);
}

std::expected<std::string, Reply> decode(std::string_view raw) {
    std::optional<std::string> decoded = percent_decode(raw);
    if (!decoded) {
        return refuse(400, "bad percent-encoding in the path: " + quote(raw) +
                               " (a '%' must be followed by two hex digits)");
    }
    return std::move(*decoded);
}

// Routes under /api/v1/profiles/{id}.
std::expected<Match, Reply> match_profile(std::string_view rest,
                                          std::span<const std::string_view> segments,
                                          const std::unexpected<Reply>& not_found) {
    auto id = decode(segments[1]);
    if (!id) {
        return std::unexpected(std::move(id.error()));
    }
    Match match = only(Route::Profile);
    match.profile_id = std::move(*id);
    if (segments.size() == 2) {
        return match;
    }
    if (segments.size() == 3 && segments[2] == "rules") {
        match.route = Route::ProfileRules;
        return match;
    }
    if (segments[2] != "settings") {
        return not_found;
    }
    if (segments.size() == 3) {
        match.route = Route::ProfileSettings;
        return match;
    }
    auto key = decode(rest_from(rest, segments, 3));
    if (!key) {
        return std::unexpected(std::move(key.error()));
    }
    match.route = Route::ProfileSetting;
    match.key = std::move(*key);
    return match;
}

std::expected<Match, Reply> match_prompt(std::span<const std::string_view> segments,
                                         const std::unexpected<Reply>& not_found) {
    if (segments.size() != 3 || segments[2] != "answer") {
        return not_found;
    }
    auto id = decode(segments[1]);
    if (!id) {
        return std::unexpected(std::move(id.error()));
    }
    std::uint64_t number = 0;
    const char* end = id->data() + id->size();
    const auto [stop, error] = std::from_chars(id->data(), end, number);
    if (error != std::errc() || stop != end) {
        return refuse(404, "no prompt " + quote(*id) + ": prompt IDs are numbers");
    }
    Match match = only(Route::PromptAnswer);
    match.prompt_id = number;
    return match;
}

// Finds the route of a path (the target without its query). Literal segments are compared as
// sent; parameters are percent-decoded. An empty segment (a doubled or trailing slash) matches
// nothing.
std::expected<Match, Reply> match(std::string_view path) {
    const auto not_found = refuse(404, "no such route: " + quote(path));
    if (!path.starts_with(kPrefix)) {
        return not_found;
    }
    const std::string_view rest = path.substr(kPrefix.size());
    const std::vector<std::string_view> segments = split_path(rest);
    for (const std::string_view segment : segments) {
        if (segment.empty()) {
            return not_found;
        }
    }
    const std::string_view first = segments[0];
    const std::size_t count = segments.size();
    if (count == 1) {
        if (first == "status") {
            return only(Route::Status);
        }
        if (first == "profiles") {
            return only(Route::Profiles);
        }
        if (first == "rules") {
            return only(Route::GlobalRules);
        }
        if (first == "settings") {
            return only(Route::Settings);
        }
        if (first == "prompts") {
            return only(Route::Prompts);
        }
        if (first == "pause") {
            return only(Route::Pause);
        }
        if (first == "resume") {
            return only(Route::Resume);
        }
        if (first == "events") {
            return only(Route::Events);
        }
        if (first == "openapi.json") {
            return only(Route::OpenApi);
        }
        return not_found;
    }
    if (first == "profiles") {
        return match_profile(rest, segments, not_found);
    }
    if (first == "settings") {
        auto key = decode(rest_from(rest, segments, 1));
        if (!key) {
            return std::unexpected(std::move(key.error()));
        }
        Match match = only(Route::Setting);
        match.key = std::move(*key);
        return match;
    }
    if (first == "prompts") {
        return match_prompt(segments, not_found);
    }
    return not_found;
}

// --- The handlers: one per (route, method). ---

enum class Body : std::uint8_t { None, JsonObject };

using Handler = void (*)(Backend& backend, Match& match, json& body, Respond& respond);

struct Endpoint {
    Route route;
    std::string_view method;
    Body body;
    Handler handler;
};

Reply ok(json body) {
    return Reply{.status = 200, .body = std::move(body), .allow = {}};
}

std::optional<std::string_view> profile_scope(const Match& match) {
    if (match.route == Route::ProfileSetting || match.route == Route::ProfileSettings) {
        return match.profile_id;
    }
    return std::nullopt;
}

void list_settings(Backend& backend, Match& match, json& /*body*/, Respond& respond) {
    const std::optional<std::string_view> profile = profile_scope(match);
    const std::optional<std::vector<SettingView>> views = backend.settings(profile);
    if (!views) {
        respond(error_reply(404, "no profile " + quote(match.profile_id)));
        return;
    }
    respond(ok(to_json(*views)));
}

void get_setting(Backend& backend, Match& match, json& /*body*/, Respond& respond) {
    const std::optional<std::string_view> profile = profile_scope(match);
    const std::optional<std::vector<SettingView>> views = backend.settings(profile);
    if (!views) {
        respond(error_reply(404, "no profile " + quote(match.profile_id)));
        return;
    }
    for (const SettingView& view : *views) {
        if (view.key == match.key) {
            respond(ok(to_json({view}).at(0)));
            return;
        }
    }
    if (profile) {
        respond(error_reply(404, "profile " + quote(match.profile_id) + " has no setting " +
                                     quote(match.key) +
                                     ": a profile has the per-application settings only"));
        return;
    }
    respond(error_reply(404, "unknown setting " + quote(match.key)));
}

// PUT .../settings/{key}: {"value": V}, V null removes the key from its layer.
void put_setting(Backend& backend, Match& match, json& body, Respond& respond) {
    if (!body.contains("value")) {
        respond(error_reply(400, "the body must be {\"value\": ...} (null removes the setting)"));
        return;
    }
    for (const auto& [member, value] : body.items()) {
        if (member != "value") {
            respond(error_reply(400, "unknown member " + quote(member) +
                                         " in the body: it must be {\"value\": ...}"));
            return;
        }
    }
    backend.set_setting(profile_scope(match), match.key, body.at("value"), std::move(respond));
}

void get_profile(Backend& backend, Match& match, json& /*body*/, Respond& respond) {
    std::optional<json> profile = backend.profile(match.profile_id);
    if (!profile) {
        respond(error_reply(404, "no profile " + quote(match.profile_id)));
        return;
    }
    respond(ok(std::move(*profile)));
}

// The rule routes of a profile and the global ones share their handlers: the global list is the
// profile ID "" for the backend.
const std::string& rules_owner(const Match& match) {
    static const std::string kGlobal;
    return match.route == Route::GlobalRules ? kGlobal : match.profile_id;
}

// POST /pause: {"duration": "15m"}; without it, kDefaultPause. A pause is for trying something
// out: longer than kLongestPause is refused (change the settings instead).
constexpr std::chrono::minutes kDefaultPause{5};
constexpr std::chrono::hours kLongestPause{24};

void pause(Backend& backend, Match& /*match*/, json& body, Respond& respond) {
    std::chrono::seconds length = kDefaultPause;
    for (const auto& [member, value] : body.items()) {
        if (member != "duration") {
            respond(error_reply(400, "unknown member " + quote(member) +
                                         " in the body: it may only have \"duration\""));
            return;
        }
        const std::optional<std::chrono::seconds> parsed =
            value.is_string() ? parse_duration(value.get_ref<const std::string&>()) : std::nullopt;
        if (!parsed || *parsed > kLongestPause) {
            respond(error_reply(400,
                                "\"duration\" must be a text such as \"90s\", \"15m\" or "
                                "\"2h\", at most 24h, not " +
                                    quote(value.dump())));
            return;
        }
        length = *parsed;
    }
    backend.pause(length, std::move(respond));
}

constexpr std::array kEndpoints = {
    Endpoint{.route = Route::Status,
             .method = "GET",
             .body = Body::None,
             .handler =
                 [](Backend& backend, Match&, json&, Respond& respond) {
                     respond(ok(backend.status()));
                 }},
    Endpoint{.route = Route::Profiles,
             .method = "GET",
             .body = Body::None,
             .handler =
                 [](Backend& backend, Match&, json&, Respond& respond) {
                     respond(ok(backend.profiles()));
                 }},
    Endpoint{.route = Route::Profiles,
             .method = "POST",
             .body = Body::JsonObject,
             .handler =
                 [](Backend& backend, Match&, json& body, Respond& respond) {
                     backend.create_profile(body, std::move(respond));
                 }},
    Endpoint{.route = Route::Profile, .method = "GET", .body = Body::None, .handler = get_profile},
    Endpoint{.route = Route::Profile,
             .method = "PATCH",
             .body = Body::JsonObject,
             .handler =
                 [](Backend& backend, Match& match, json& body, Respond& respond) {
                     backend.update_profile(match.profile_id, body, std::move(respond));
                 }},
    Endpoint{.route = Route::Profile,
             .method = "DELETE",
             .body = Body::None,
             .handler =
                 [](Backend& backend, Match& match, json&, Respond& respond) {
                     backend.delete_profile(match.profile_id, std::move(respond));
                 }},
    Endpoint{.route = Route::ProfileRules,
             .method = "POST",
             .body = Body::JsonObject,
             .handler =
                 [](Backend& backend, Match& match, json& body, Respond& respond) {
                     backend.add_rule(rules_owner(match), body, std::move(respond));
                 }},
    Endpoint{.route = Route::ProfileRules,
             .method = "DELETE",
             .body = Body::JsonObject,
             .handler =
                 [](Backend& backend, Match& match, json& body, Respond& respond) {
                     backend.remove_rule(rules_owner(match), body, std::move(respond));
                 }},
    Endpoint{.route = Route::GlobalRules,
             .method = "POST",
             .body = Body::JsonObject,
             .handler =
                 [](Backend& backend, Match& match, json& body, Respond& respond) {
                     backend.add_rule(rules_owner(match), body, std::move(respond));
                 }},
    Endpoint{.route = Route::GlobalRules,
             .method = "DELETE",
             .body = Body::JsonObject,
             .handler =
                 [](Backend& backend, Match& match, json& body, Respond& respond) {
                     backend.remove_rule(rules_owner(match), body, std::move(respond));
                 }},
    Endpoint{
        .route = Route::Settings, .method = "GET", .body = Body::None, .handler = list_settings},
    Endpoint{.route = Route::ProfileSettings,
             .method = "GET",
             .body = Body::None,
             .handler = list_settings},
    Endpoint{.route = Route::Setting, .method = "GET", .body = Body::None, .handler = get_setting},
    Endpoint{
        .route = Route::Setting, .method = "PUT", .body = Body::JsonObject, .handler = put_setting},
    Endpoint{.route = Route::ProfileSetting,
             .method = "GET",
             .body = Body::None,
             .handler = get_setting},
    Endpoint{.route = Route::ProfileSetting,
             .method = "PUT",
             .body = Body::JsonObject,
             .handler = put_setting},
    Endpoint{.route = Route::Prompts,
             .method = "GET",
             .body = Body::None,
             .handler =
                 [](Backend& backend, Match&, json&, Respond& respond) {
                     respond(ok(backend.prompts()));
                 }},
    Endpoint{.route = Route::PromptAnswer,
             .method = "POST",
             .body = Body::JsonObject,
             .handler =
                 [](Backend& backend, Match& match, json& body, Respond& respond) {
                     backend.answer_prompt(match.prompt_id, body, std::move(respond));
                 }},
    Endpoint{.route = Route::Pause, .method = "POST", .body = Body::JsonObject, .handler = pause},
    // The HTTP server takes the WebSocket upgrade of this route; a plain GET ends here.
    Endpoint{.route = Route::Events,
             .method = "GET",
             .body = Body::None,
             .handler =
                 [](Backend&, Match&, json&, Respond& respond) {
                     respond(error_reply(400,
                                         "/api/v1/events is a WebSocket event stream: connect "
                                         "with a WebSocket client (Upgrade: websocket)"));
                 }},
    Endpoint{.route = Route::OpenApi,
             .method = "GET",
             .body = Body::None,
             .handler =
                 [](Backend&, Match&, json&, Respond& respond) {
                     // Parsed once: the document is compiled in and never changes.
                     static const json kDocument = json::parse(openapi_document());
                     respond(ok(kDocument));
                 }},
    Endpoint{.route = Route::Resume,
             .method = "POST",
             .body = Body::None,
             .handler =
                 [](Backend& backend, Match&, json&, Respond& respond) {
                     backend.resume(std::move(respond));
                 }},
};

// The body of a route that takes one: JSON, an object.
std::expected<json, Reply> read_body(const Request& request) {
    if (request.body.empty()) {
        return refuse(400,
                      "this request needs a JSON object as its body "
                      "(Content-Type: application/json)");
    }
    if (!request.content_type || !is_json_content_type(*request.content_type)) {
        return refuse(415, "the body must be JSON, sent with Content-Type: application/json");
    }
    Result<json> parsed = parse_json_body(request.body);
    if (!parsed) {
        return refuse(400, std::move(parsed.error().what));
    }
    if (!parsed->is_object()) {
        return refuse(400,
                      "the body must be a JSON object, not " + std::string(parsed->type_name()));
    }
    return std::move(*parsed);
}

Reply method_not_allowed(std::string_view method, std::string_view path, Route route) {
    std::vector<std::string> allow;
    std::string listed;
    for (const Endpoint& endpoint : kEndpoints) {
        if (endpoint.route == route) {
            allow.emplace_back(endpoint.method);
            listed += (listed.empty() ? "" : ", ") + std::string(endpoint.method);
        }
    }
    Reply reply = error_reply(405, "method " + quote(method) + " is not allowed on " + quote(path) +
                                       "; allowed: " + listed);
    reply.allow = std::move(allow);
    return reply;
}

} // namespace

void Router::handle(const Request& request, Respond respond) {
    // Query strings select nothing yet: they are ignored, not refused, so that later filters
    // (?app=...) reach older daemons harmlessly.
    const std::string_view path = request.target.substr(0, request.target.find('?'));
    if (!path.starts_with('/')) {
        respond(error_reply(400, "the request target must be a path such as /api/v1/status, not " +
                                     quote(request.target)));
        return;
    }
    std::expected<Match, Reply> matched = match(path);
    if (!matched) {
        respond(std::move(matched.error()));
        return;
    }
    const Endpoint* endpoint = nullptr;
    for (const Endpoint& candidate : kEndpoints) {
        if (candidate.route == matched->route && candidate.method == request.method) {
            endpoint = &candidate;
            break;
        }
    }
    if (endpoint == nullptr) {
        respond(method_not_allowed(request.method, path, matched->route));
        return;
    }
    // A body sent to a route that takes none is ignored, as HTTP allows for GET and DELETE.
    json body;
    if (endpoint->body == Body::JsonObject) {
        std::expected<json, Reply> read = read_body(request);
        if (!read) {
            respond(std::move(read.error()));
            return;
        }
        body = std::move(*read);
    }
    endpoint->handler(backend_, *matched, body, respond);
}

std::vector<std::pair<std::string, std::string>> route_table() {
    std::vector<std::pair<std::string, std::string>> table;
    table.reserve(kEndpoints.size());
    for (const Endpoint& endpoint : kEndpoints) {
        table.emplace_back(endpoint.method, path_template(endpoint.route));
    }
    return table;
}

std::optional<std::string> percent_decode(std::string_view text) {
    const auto hex_value = [](char digit) -> int {
        if (digit >= '0' && digit <= '9') {
            return digit - '0';
        }
        if (digit >= 'a' && digit <= 'f') {
            return digit - 'a' + 10;
        }
        if (digit >= 'A' && digit <= 'F') {
            return digit - 'A' + 10;
        }
        return -1;
    };
    std::string out;
    out.reserve(text.size());
    for (std::size_t index = 0; index < text.size(); ++index) {
        if (text[index] != '%') {
            out.push_back(text[index]);
            continue;
        }
        if (index + 2 >= text.size()) {
            return std::nullopt;
        }
        const int high = hex_value(text[index + 1]);
        const int low = hex_value(text[index + 2]);
        if (high < 0 || low < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>((high << 4) | low));
        index += 2;
    }
    return out;
}

Result<json> parse_json_body(std::string_view body) {
    bool too_deep = false;
    // `depth` counts from 0 at the top level. Returning false for a too deep container drops it
    // whole, so the parse stays shallow.
    const json::parser_callback_t limit_depth = [&too_deep](int depth, json::parse_event_t event,
                                                            json& /*parsed*/) {
        if (depth >= kMaxJsonDepth && (event == json::parse_event_t::object_start ||
                                       event == json::parse_event_t::array_start)) {
            too_deep = true;
            return false;
        }
        return true;
    };
    json parsed;
    try {
        parsed = json::parse(body, limit_depth);
    } catch (const json::exception& error) {
        // "[json.exception.parse_error.101] parse error at line 1, column 9: ..." without the
        // library's tag: the position and what was expected are what the client needs. A number
        // too big for a double ("1e999") is out_of_range.406 instead, found by the fuzzer.
        std::string_view text = error.what();
        if (const std::size_t tag_end = text.find("] ");
            text.starts_with("[json.exception") && tag_end != std::string_view::npos) {
            text.remove_prefix(tag_end + 2);
        }
        std::string message = "malformed JSON body: ";
        message += text.substr(0, kMaxQuote);
        if (text.size() > kMaxQuote) {
            message += "...";
        }
        return fail(std::move(message));
    }
    if (too_deep) {
        return fail("JSON body nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    return parsed;
}

bool is_json_content_type(std::string_view content_type) {
    constexpr std::string_view kJson = "application/json";
    const std::string_view media = content_type.substr(0, content_type.find(';'));
    // Optional whitespace before the parameters ("application/json ; charset=utf-8").
    const std::size_t last = media.find_last_not_of(" \t");
    const std::string_view trimmed = media.substr(0, last == std::string_view::npos ? 0 : last + 1);
    if (trimmed.size() != kJson.size()) {
        return false;
    }
    for (std::size_t index = 0; index < kJson.size(); ++index) {
        const char letter = trimmed[index];
        const char lower =
            (letter >= 'A' && letter <= 'Z') ? static_cast<char>(letter + 32) : letter;
        if (lower != kJson[index]) {
            return false;
        }
    }
    return true;
}

} // namespace pw::api
