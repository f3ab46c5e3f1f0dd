#include "config/settings_schema.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/listen_address.h"
#include "firewall/endpoint_rule.h"

namespace pw::config {
namespace {

using Json = nlohmann::json;
using Problems = std::vector<ValueProblem>;

// Long values are cut in error messages so that one bad line stays one readable line.
constexpr std::size_t kMaxQuotedLength = 80;

// `filter/askTimeout`: a prompt may wait from a second to an hour.
constexpr std::int64_t kMinAskTimeoutSeconds = 1;
constexpr std::int64_t kMaxAskTimeoutSeconds = 3600;

// `events/...` (issue 10 item 6). The defaults keep the events of a day of heavy use within
// (1 + keepFiles) * maxFileSize = 256 MiB, and a flood of identical connections at about
// repeatLimit + 1 lines a minute per kind of connection.
constexpr std::int64_t kDefaultEventsMaxFileSize = std::int64_t{64} * 1024 * 1024;
constexpr std::int64_t kMaxEventsFileSize = std::int64_t{1} << 40; // 1 TiB
constexpr std::int64_t kDefaultEventsKeepFiles = 3;
constexpr std::int64_t kMaxEventsKeepFiles = 100;
constexpr std::int64_t kDefaultEventsRepeatLimit = 20;
constexpr std::int64_t kMaxEventsRepeatLimit = 1'000'000;
constexpr std::int64_t kDefaultEventsRepeatWindowSeconds = 60;
constexpr std::int64_t kMaxEventsRepeatWindowSeconds = 86'400;

// Linux's useradd/groupadd limit (shadow-utils' GROUP_NAME_MAX_LENGTH default).
constexpr std::size_t kMaxGroupNameLength = 32;

Problems problem(std::string message) {
    Problems problems;
    problems.push_back(ValueProblem{.message = std::move(message), .element = std::nullopt});
    return problems;
}

std::string element_name(std::string_view key, std::size_t index) {
    return std::string(key) + "[" + std::to_string(index) + "]";
}

// "permit, block or ask".
std::string list_choices(std::span<const std::string_view> choices) {
    std::string text;
    for (std::size_t index = 0; index < choices.size(); ++index) {
        if (index > 0) {
            text += index + 1 == choices.size() ? " or " : ", ";
        }
        text += choices[index];
    }
    return text;
}

// The value type of a CompiledSettings field, such as bool for std::optional<bool>.
template <auto Field>
using FieldValue =
    typename std::remove_cvref_t<decltype(std::declval<CompiledSettings&>().*Field)>::value_type;

// --- Parse functions, one shape per type ----------------------------------------------------

// true | false.
template <auto Field>
Problems parse_flag(std::string_view key, const Json& value, CompiledSettings& into) {
    if (!value.is_boolean()) {
        return problem(std::string(key) + " must be true or false, not " + describe_value(value));
    }
    into.*Field = value.get<bool>();
    return {};
}

// true | false into an Off/On enum.
template <auto Field>
Problems parse_switch(std::string_view key, const Json& value, CompiledSettings& into) {
    using Switch = FieldValue<Field>;
    if (!value.is_boolean()) {
        return problem(std::string(key) + " must be true or false, not " + describe_value(value));
    }
    into.*Field = value.get<bool>() ? Switch::On : Switch::Off;
    return {};
}

// One string of `Choices`, whose order is the order of the enum's values.
template <auto Field, const auto& Choices>
Problems parse_choice(std::string_view key, const Json& value, CompiledSettings& into) {
    using Choice = FieldValue<Field>;
    if (value.is_string()) {
        const auto& text = value.get_ref<const std::string&>();
        const auto found = std::ranges::find(Choices, text);
        if (found != Choices.end()) {
            into.*Field = static_cast<Choice>(found - Choices.begin());
            return {};
        }
    }
    return problem(std::string(key) + " must be " + list_choices(Choices) + ", not " +
                   describe_value(value));
}

// A list of rule lines; every bad rule is reported.
template <auto Field>
Problems parse_rules(std::string_view key, const Json& value, CompiledSettings& into) {
    if (!value.is_array()) {
        return problem(std::string(key) + " must be a list of rule strings, not " +
                       describe_value(value));
    }
    Problems problems;
    firewall::RuleList rules;
    rules.reserve(value.size());
    for (std::size_t index = 0; index < value.size(); ++index) {
        const Json& element = value[index];
        if (!element.is_string()) {
            problems.push_back(ValueProblem{.message = element_name(key, index) +
                                                       " must be a rule string, not " +
                                                       describe_value(element),
                                            .element = index});
            continue;
        }
        auto rule = firewall::parse_endpoint_rule(element.get_ref<const std::string&>());
        if (!rule) {
            problems.push_back(ValueProblem{.message = element_name(key, index) + " " +
                                                       describe_value(element) + ": " +
                                                       rule.error().what,
                                            .element = index});
            continue;
        }
        rules.push_back(std::move(*rule));
    }
    if (problems.empty()) {
        into.*Field = std::make_shared<const firewall::RuleList>(std::move(rules));
    }
    return problems;
}

// A JSON integer as a signed number; an unsigned one too big for it becomes the largest, which
// every range refuses. Anything else (fractions, strings, booleans) is nullopt.
std::optional<std::int64_t> whole_number(const Json& value) {
    if (value.is_number_unsigned()) {
        const auto unsigned_value = value.get<std::uint64_t>();
        return unsigned_value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                   ? std::numeric_limits<std::int64_t>::max()
                   : static_cast<std::int64_t>(unsigned_value);
    }
    if (value.is_number_integer()) {
        return value.get<std::int64_t>();
    }
    return std::nullopt;
}

// A whole number from Min to Max, stored as the field's type (std::chrono::seconds included).
template <auto Field, std::int64_t Min, std::int64_t Max>
Problems parse_count(std::string_view key, const Json& value, CompiledSettings& into) {
    using Value = FieldValue<Field>;
    const std::optional<std::int64_t> number = whole_number(value);
    if (!number || *number < Min || *number > Max) {
        return problem(std::string(key) + " must be a whole number from " + std::to_string(Min) +
                       " to " + std::to_string(Max) + ", not " + describe_value(value));
    }
    into.*Field = Value(*number);
    return {};
}

// A whole number of seconds, 1-3600. Strings such as "90s" are refused rather than guessed at:
// a stored value then has one spelling, and the API shows it as it was set.
Problems parse_ask_timeout(std::string_view key, const Json& value, CompiledSettings& into) {
    std::int64_t seconds = 0;
    if (value.is_number_unsigned()) {
        // An unsigned value above the range must not wrap when it is read as signed.
        seconds = value.get<std::uint64_t>() > static_cast<std::uint64_t>(kMaxAskTimeoutSeconds)
                      ? kMaxAskTimeoutSeconds + 1
                      : static_cast<std::int64_t>(value.get<std::uint64_t>());
    } else if (value.is_number_integer()) {
        seconds = value.get<std::int64_t>();
    }
    if (seconds < kMinAskTimeoutSeconds || seconds > kMaxAskTimeoutSeconds) {
        return problem(std::string(key) +
                       " must be a whole number of seconds from 1 to 3600, not " +
                       describe_value(value));
    }
    into.ask_timeout = std::chrono::seconds(seconds);
    return {};
}

Problems parse_nameservers(std::string_view key, const Json& value, CompiledSettings& into) {
    if (!value.is_array()) {
        return problem(std::string(key) +
                       " must be a list of URL strings such as [\"dns://192.0.2.53\"], not " +
                       describe_value(value));
    }
    if (value.empty()) {
        return problem(std::string(key) +
                       " is an empty list (name at least one upstream, or leave the setting out)");
    }
    Problems problems;
    std::vector<dns::Upstream> upstreams;
    upstreams.reserve(value.size());
    for (std::size_t index = 0; index < value.size(); ++index) {
        const Json& element = value[index];
        if (!element.is_string()) {
            problems.push_back(ValueProblem{.message = element_name(key, index) +
                                                       " must be a URL string, not " +
                                                       describe_value(element),
                                            .element = index});
            continue;
        }
        auto upstream = dns::parse_upstream_url(element.get_ref<const std::string&>());
        if (!upstream) {
            // The parser names the setting itself; the index says which entry.
            std::string_view message = upstream.error().what;
            if (message.starts_with(key) && message.substr(key.size()).starts_with(": ")) {
                message.remove_prefix(key.size() + 2);
            }
            problems.push_back(
                ValueProblem{.message = element_name(key, index) + ": " + std::string(message),
                             .element = index});
            continue;
        }
        upstreams.push_back(std::move(*upstream));
    }
    if (problems.empty()) {
        into.nameservers = std::move(upstreams);
    }
    return problems;
}

using ListenParser = Result<std::vector<firewall::IpEndpoint>> (*)(std::string_view);

Problems parse_listen(std::string_view key, std::string_view example, ListenParser parser,
                      const Json& value,
                      std::optional<std::vector<firewall::IpEndpoint>>& endpoints) {
    if (!value.is_string()) {
        return problem(std::string(key) + " must be a string such as \"" + std::string(example) +
                       "\", not " + describe_value(value));
    }
    auto parsed = parser(value.get_ref<const std::string&>());
    if (!parsed) {
        return problem(std::move(parsed.error().what));
    }
    endpoints = std::move(*parsed);
    return {};
}

Problems parse_dns_listen(std::string_view key, const Json& value, CompiledSettings& into) {
    return parse_listen(key, "localhost:53", parse_listen_address, value,
                        into.dns_listen_endpoints);
}

Problems parse_api_listen(std::string_view key, const Json& value, CompiledSettings& into) {
    return parse_listen(key, "localhost:817", parse_api_listen_address, value,
                        into.api_listen_endpoints);
}

// A Unix group name as groupadd accepts it in practice: 1-32 letters, digits, '_', '.', '-', not
// starting with '-' (it would read as an option) and not all digits (it would read as a GID).
bool is_group_name(std::string_view name) {
    const auto allowed = [](char character) {
        return (character >= 'a' && character <= 'z') || (character >= 'A' && character <= 'Z') ||
               (character >= '0' && character <= '9') || character == '_' || character == '.' ||
               character == '-';
    };
    const auto digit = [](char character) {
        return character >= '0' && character <= '9';
    };
    return !name.empty() && name.size() <= kMaxGroupNameLength && !name.starts_with('-') &&
           std::ranges::all_of(name, allowed) && !std::ranges::all_of(name, digit);
}

Problems parse_api_groups(std::string_view key, const Json& value, CompiledSettings& into) {
    if (!value.is_array()) {
        return problem(std::string(key) +
                       " must be a list of group names such as [\"portwarden\"], not " +
                       describe_value(value));
    }
    Problems problems;
    std::vector<std::string> groups;
    groups.reserve(value.size());
    for (std::size_t index = 0; index < value.size(); ++index) {
        const Json& element = value[index];
        if (!element.is_string()) {
            problems.push_back(ValueProblem{.message = element_name(key, index) +
                                                       " must be a group name string, not " +
                                                       describe_value(element),
                                            .element = index});
            continue;
        }
        const auto& name = element.get_ref<const std::string&>();
        if (!is_group_name(name)) {
            problems.push_back(ValueProblem{
                .message = element_name(key, index) + " " + describe_value(element) +
                           " is not a group name (1-32 letters, digits, '_', '.' or '-', not "
                           "starting with '-', not only digits)",
                .element = index});
            continue;
        }
        groups.push_back(name);
    }
    if (problems.empty()) {
        into.api_groups = std::move(groups);
    }
    return problems;
}

// --- The catalogue ----------------------------------------------------------------------------

constexpr std::array<std::string_view, 3> kDefaultActionChoices = {"permit", "block", "ask"};
constexpr std::array<std::string_view, 2> kOutboundBlockActionChoices = {"reject", "drop"};

// Per-application keys first, in the order of firewall::AppSetting (resolve_filter_settings and
// the tests rely on it), then the global-only keys.
constexpr std::array<SettingInfo, 24> kSettings = {{
    {.key = "filter/defaultAction",
     .scope = SettingScope::Application,
     .type = SettingType::Choice,
     .choices = kDefaultActionChoices,
     .default_json = R"("permit")",
     .description = "What happens to a connection that no rule or setting decides: permit it, "
                    "block it, or hold it and ask.",
     .parse = parse_choice<&CompiledSettings::default_action, kDefaultActionChoices>},
    {.key = "filter/endpoints",
     .scope = SettingScope::Application,
     .type = SettingType::RuleList,
     .choices = {},
     .default_json = "[]",
     .description = "Rules for outbound connections and DNS queries, checked from the top; the "
                    "first match decides (an application's own rules before the global ones).",
     .parse = parse_rules<&CompiledSettings::endpoints>},
    {.key = "filter/serviceEndpoints",
     .scope = SettingScope::Application,
     .type = SettingType::RuleList,
     .choices = {},
     .default_json = "[]",
     .description = "Rules for inbound connections (the port is the local port); a permit here "
                    "lets a connection through blockInbound.",
     .parse = parse_rules<&CompiledSettings::service_endpoints>},
    {.key = "filter/blockInternet",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "false",
     .description = "Block connections to addresses of Internet scope.",
     .parse = parse_flag<&CompiledSettings::block_internet>},
    {.key = "filter/blockLAN",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "false",
     .description = "Block connections to LAN addresses: private, link-local, local multicast "
                    "and broadcast.",
     .parse = parse_flag<&CompiledSettings::block_lan>},
    {.key = "filter/blockLocal",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "false",
     .description = "Block connections to this host's loopback addresses.",
     .parse = parse_flag<&CompiledSettings::block_local>},
    {.key = "filter/blockInbound",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "true",
     .description = "Silently drop inbound connections from other hosts that no service rule "
                    "permits.",
     .parse = parse_flag<&CompiledSettings::block_inbound>},
    {.key = "filter/blockP2P",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "false",
     .description = "Block direct connections: to an Internet address that no DNS answer of the "
                    "application led to, and to STUN/TURN ports.",
     .parse = parse_flag<&CompiledSettings::block_p2p>},
    {.key = "filter/includeCNAMEs",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "true",
     .description = "Domain rules and filter lists also match the names of the CNAME chain.",
     .parse = parse_flag<&CompiledSettings::include_cnames>},
    {.key = "filter/includeSubdomains",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "true",
     .description = "A domain on a filter list also blocks the names below it.",
     .parse = parse_flag<&CompiledSettings::include_subdomains>},
    {.key = "filter/removeOutOfScopeDNS",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "true",
     .description = "Remove LAN and loopback addresses from answers of Internet nameservers "
                    "(DNS rebinding).",
     .parse = parse_flag<&CompiledSettings::remove_out_of_scope_dns>},
    {.key = "filter/removeBlockedDNS",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "true",
     .description = "Remove addresses the application may not connect to from its DNS answers; "
                    "an answer left empty is blocked.",
     .parse = parse_flag<&CompiledSettings::remove_blocked_dns>},
    {.key = "filter/preventBypassing",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "true",
     .description = "Block DNS over TLS, known DNS-over-HTTPS resolvers and Firefox's DoH "
                    "canary, so that names are resolved by portwarden.",
     .parse = parse_switch<&CompiledSettings::prevent_bypassing>},
    {.key = "filter/permanentVerdicts",
     .scope = SettingScope::Application,
     .type = SettingType::Boolean,
     .choices = {},
     .default_json = "true",
     .description = "Let the kernel remember a verdict for the whole connection, so later "
                    "packets skip the daemon.",
     .parse = parse_switch<&CompiledSettings::permanent_verdicts>},
    {.key = "filter/askTimeout",
     .scope = SettingScope::Application,
     .type = SettingType::Seconds,
     .choices = {},
     .default_json = "60",
     .description = "Seconds a prompt waits for an answer (1-3600) before the connection is "
                    "blocked for now.",
     .parse = parse_ask_timeout},
    {.key = "filter/outboundBlockAction",
     .scope = SettingScope::Global,
     .type = SettingType::Choice,
     .choices = kOutboundBlockActionChoices,
     .default_json = R"("reject")",
     .description = "How a blocked outbound connection ends: rejected at once, or dropped "
                    "silently until the application times out.",
     .parse = parse_choice<&CompiledSettings::outbound_block_action, kOutboundBlockActionChoices>},
    {.key = "dns/nameservers",
     .scope = SettingScope::Global,
     .type = SettingType::UpstreamList,
     .choices = {},
     .default_json = "null",
     .description = "Upstream nameservers in order of preference (dns://, tcp://, dot:// URLs); "
                    "unset: those of /etc/resolv.conf.",
     .parse = parse_nameservers},
    {.key = "dns/listenAddress",
     .scope = SettingScope::Global,
     .type = SettingType::ListenAddress,
     .choices = {},
     .default_json = R"("localhost:53")",
     .description = "Where portwarden's nameserver listens (UDP and TCP); off: no nameserver.",
     .parse = parse_dns_listen},
    {.key = "core/listenAddress",
     .scope = SettingScope::Global,
     .type = SettingType::ListenAddress,
     .choices = {},
     .default_json = R"("localhost:817")",
     .description = "Where the local API listens; localhost is 127.0.0.1 and ::1; off: no API.",
     .parse = parse_api_listen},
    {.key = "core/apiGroups",
     .scope = SettingScope::Global,
     .type = SettingType::NameList,
     .choices = {},
     .default_json = R"(["portwarden"])",
     .description = "Unix groups whose members may use the API (root always may).",
     .parse = parse_api_groups},
    {.key = "events/maxFileSize",
     .scope = SettingScope::Global,
     .type = SettingType::Count,
     .choices = {},
     .default_json = "67108864",
     .description = "Bytes after which the --events file is rotated (FILE becomes FILE.1); 0: "
                    "never rotated.",
     .parse = parse_count<&CompiledSettings::events_max_file_size, 0, kMaxEventsFileSize>},
    {.key = "events/keepFiles",
     .scope = SettingScope::Global,
     .type = SettingType::Count,
     .choices = {},
     .default_json = "3",
     .description = "Rotated --events files kept (FILE.1 is the newest), 0-100; older ones are "
                    "deleted.",
     .parse = parse_count<&CompiledSettings::events_keep_files, 0, kMaxEventsKeepFiles>},
    {.key = "events/repeatLimit",
     .scope = SettingScope::Global,
     .type = SettingType::Count,
     .choices = {},
     .default_json = "20",
     .description = "Identical events written per repeatWindow; the rest are summed up in one "
                    "\"repeated\" event; 0: write them all.",
     .parse = parse_count<&CompiledSettings::events_repeat_limit, 0, kMaxEventsRepeatLimit>},
    {.key = "events/repeatWindow",
     .scope = SettingScope::Global,
     .type = SettingType::Seconds,
     .choices = {},
     .default_json = "60",
     .description = "Seconds over which events/repeatLimit counts identical events (1-86400).",
     .parse =
         parse_count<&CompiledSettings::events_repeat_window, 1, kMaxEventsRepeatWindowSeconds>},
}};

static_assert(firewall::kAppSettingCount <= kSettings.size());

std::string join_lines(const std::vector<std::string>& lines) {
    std::string joined;
    for (const std::string& line : lines) {
        if (!joined.empty()) {
            joined += '\n';
        }
        joined += line;
    }
    return joined;
}

// Resolves one per-application value: the app's own, else the global one, else the default
// already in `out`.
template <typename T>
void resolve_value(firewall::AppSetting setting, const std::optional<T> CompiledSettings::* field,
                   const CompiledSettings& global, const CompiledSettings* app, T& out,
                   firewall::SettingOrigins& origins) {
    const std::optional<T>* own = app != nullptr ? &(app->*field) : nullptr;
    const std::optional<T>& shared = global.*field;
    if (own != nullptr && own->has_value()) {
        out = own->value();
        origins.set(setting, firewall::SettingLayer::App);
    } else if (shared.has_value()) {
        out = shared.value();
    }
}

template <typename T>
void overlay_value(std::optional<T> CompiledSettings::* field, const CompiledSettings& upper,
                   CompiledSettings& merged) {
    if ((upper.*field).has_value()) {
        merged.*field = upper.*field;
    }
}

} // namespace

Json SettingInfo::default_value() const {
    // The defaults are constants of this file; a test parses every one.
    return Json::parse(default_json, nullptr, /*allow_exceptions=*/false);
}

std::span<const SettingInfo> all_settings() {
    return kSettings;
}

const SettingInfo* find_setting(std::string_view key) {
    const auto* const found = std::ranges::find(kSettings, key, &SettingInfo::key);
    return found == kSettings.end() ? nullptr : &*found;
}

Status validate_setting(std::string_view key, const Json& value) {
    const SettingInfo* info = find_setting(key);
    if (info == nullptr) {
        return fail("unknown setting '" + std::string(key) + "'");
    }
    CompiledSettings scratch;
    const Problems problems = info->parse_into(value, scratch);
    if (problems.empty()) {
        return {};
    }
    std::vector<std::string> lines;
    lines.reserve(problems.size());
    for (const ValueProblem& found : problems) {
        lines.push_back(found.message);
    }
    return fail(join_lines(lines));
}

Result<CompiledSettings> compile_layer(const SettingsLayer& layer, SettingScope scope) {
    CompiledSettings compiled;
    std::vector<std::string> errors;
    for (const auto& [key, value] : layer) {
        const SettingInfo* info = find_setting(key);
        if (info == nullptr) {
            errors.push_back("unknown setting '" + key + "'");
            continue;
        }
        if (scope == SettingScope::Application && info->scope == SettingScope::Global) {
            errors.push_back(key + " is a global setting; it cannot be set for one application");
            continue;
        }
        Problems problems = info->parse_into(value, compiled);
        if (!problems.empty()) {
            for (ValueProblem& found : problems) {
                errors.push_back(std::move(found.message));
            }
            continue;
        }
        compiled.values.emplace(key, value);
    }
    if (!errors.empty()) {
        return fail(join_lines(errors));
    }
    return compiled;
}

CompiledSettings overlay_layers(const CompiledSettings& lower, const CompiledSettings& upper) {
    CompiledSettings merged = lower;
    for (const auto& [key, value] : upper.values) {
        merged.values.insert_or_assign(key, value);
    }
    overlay_value(&CompiledSettings::default_action, upper, merged);
    if (upper.endpoints) {
        merged.endpoints = upper.endpoints;
    }
    if (upper.service_endpoints) {
        merged.service_endpoints = upper.service_endpoints;
    }
    overlay_value(&CompiledSettings::block_internet, upper, merged);
    overlay_value(&CompiledSettings::block_lan, upper, merged);
    overlay_value(&CompiledSettings::block_local, upper, merged);
    overlay_value(&CompiledSettings::block_inbound, upper, merged);
    overlay_value(&CompiledSettings::block_p2p, upper, merged);
    overlay_value(&CompiledSettings::include_cnames, upper, merged);
    overlay_value(&CompiledSettings::include_subdomains, upper, merged);
    overlay_value(&CompiledSettings::remove_out_of_scope_dns, upper, merged);
    overlay_value(&CompiledSettings::remove_blocked_dns, upper, merged);
    overlay_value(&CompiledSettings::prevent_bypassing, upper, merged);
    overlay_value(&CompiledSettings::permanent_verdicts, upper, merged);
    overlay_value(&CompiledSettings::ask_timeout, upper, merged);
    overlay_value(&CompiledSettings::outbound_block_action, upper, merged);
    overlay_value(&CompiledSettings::nameservers, upper, merged);
    overlay_value(&CompiledSettings::dns_listen_endpoints, upper, merged);
    overlay_value(&CompiledSettings::api_listen_endpoints, upper, merged);
    overlay_value(&CompiledSettings::api_groups, upper, merged);
    overlay_value(&CompiledSettings::events_max_file_size, upper, merged);
    overlay_value(&CompiledSettings::events_keep_files, upper, merged);
    overlay_value(&CompiledSettings::events_repeat_limit, upper, merged);
    overlay_value(&CompiledSettings::events_repeat_window, upper, merged);
    return merged;
}

firewall::FilterSettings resolve_filter_settings(const CompiledSettings& global,
                                                 const CompiledSettings* app,
                                                 firewall::ProfileLabel profile) {
    using firewall::AppSetting;
    firewall::FilterSettings settings;
    firewall::SettingOrigins& origins = settings.origins;

    resolve_value(AppSetting::DefaultAction, &CompiledSettings::default_action, global, app,
                  settings.default_action, origins);
    settings.endpoints = firewall::RuleLayers{.app = app != nullptr ? app->endpoints : nullptr,
                                              .global = global.endpoints};
    if (app != nullptr && app->endpoints) {
        origins.set(AppSetting::Endpoints, firewall::SettingLayer::App);
    }
    settings.service_endpoints =
        firewall::RuleLayers{.app = app != nullptr ? app->service_endpoints : nullptr,
                             .global = global.service_endpoints};
    if (app != nullptr && app->service_endpoints) {
        origins.set(AppSetting::ServiceEndpoints, firewall::SettingLayer::App);
    }
    resolve_value(AppSetting::BlockInternet, &CompiledSettings::block_internet, global, app,
                  settings.block_internet, origins);
    resolve_value(AppSetting::BlockLan, &CompiledSettings::block_lan, global, app,
                  settings.block_lan, origins);
    resolve_value(AppSetting::BlockLocal, &CompiledSettings::block_local, global, app,
                  settings.block_local, origins);
    resolve_value(AppSetting::BlockInbound, &CompiledSettings::block_inbound, global, app,
                  settings.block_inbound, origins);
    resolve_value(AppSetting::BlockP2p, &CompiledSettings::block_p2p, global, app,
                  settings.block_p2p, origins);
    resolve_value(AppSetting::IncludeCnames, &CompiledSettings::include_cnames, global, app,
                  settings.include_cnames, origins);
    resolve_value(AppSetting::IncludeSubdomains, &CompiledSettings::include_subdomains, global, app,
                  settings.include_subdomains, origins);
    resolve_value(AppSetting::RemoveOutOfScopeDns, &CompiledSettings::remove_out_of_scope_dns,
                  global, app, settings.remove_out_of_scope_dns, origins);
    resolve_value(AppSetting::RemoveBlockedDns, &CompiledSettings::remove_blocked_dns, global, app,
                  settings.remove_blocked_dns, origins);
    resolve_value(AppSetting::PreventBypassing, &CompiledSettings::prevent_bypassing, global, app,
                  settings.prevent_bypassing, origins);
    resolve_value(AppSetting::PermanentVerdicts, &CompiledSettings::permanent_verdicts, global, app,
                  settings.permanent_verdicts, origins);
    resolve_value(AppSetting::AskTimeout, &CompiledSettings::ask_timeout, global, app,
                  settings.ask_timeout, origins);

    // Global only: an application's layer never sets these (compile_layer refuses them), and
    // they are taken from the global layer even if it did.
    if (global.outbound_block_action) {
        settings.outbound_block_action = *global.outbound_block_action;
    }
    settings.dns.nameserver_endpoints = global.dns_listen_endpoints
                                            ? *global.dns_listen_endpoints
                                            : localhost_listen_endpoints(kDnsPort);
    settings.api_endpoints = global.api_listen_endpoints ? *global.api_listen_endpoints
                                                         : localhost_api_endpoints(kApiPort);
    settings.profile = std::move(profile);
    return settings;
}

firewall::FilterSettings default_filter_settings() {
    return resolve_filter_settings(CompiledSettings{}, nullptr, firewall::ProfileLabel{});
}

DnsSettings resolve_dns_settings(const CompiledSettings& global) {
    DnsSettings dns;
    if (global.nameservers) {
        dns.nameservers = *global.nameservers;
    }
    return dns;
}

CoreSettings resolve_core_settings(const CompiledSettings& global) {
    CoreSettings core;
    core.api_endpoints = global.api_listen_endpoints ? *global.api_listen_endpoints
                                                     : localhost_api_endpoints(kApiPort);
    core.api_groups =
        global.api_groups ? *global.api_groups : std::vector<std::string>{"portwarden"};
    return core;
}

EventSettings resolve_event_settings(const CompiledSettings& global) {
    return EventSettings{
        .max_file_size = global.events_max_file_size.value_or(
            static_cast<std::uint64_t>(kDefaultEventsMaxFileSize)),
        .keep_files =
            global.events_keep_files.value_or(static_cast<std::uint32_t>(kDefaultEventsKeepFiles)),
        .repeat_limit = global.events_repeat_limit.value_or(
            static_cast<std::uint32_t>(kDefaultEventsRepeatLimit)),
        .repeat_window = global.events_repeat_window.value_or(
            std::chrono::seconds(kDefaultEventsRepeatWindowSeconds)),
    };
}

EventSettings effective_event_settings(const LayerStack& layers) {
    CompiledSettings compiled;
    for (const std::string_view key :
         {"events/maxFileSize", "events/keepFiles", "events/repeatLimit", "events/repeatWindow"}) {
        auto effective = effective_setting(
            key, LayerStack{.store = layers.store, .file = layers.file, .app = nullptr});
        // Every layer holds valid values only (compile_layer checked them): nothing to report.
        if (effective && effective->source != SettingSource::Default) {
            static_cast<void>(find_setting(key)->parse_into(effective->value, compiled));
        }
    }
    return resolve_event_settings(compiled);
}

std::string_view setting_source_name(SettingSource source) {
    switch (source) {
        case SettingSource::Default:
            return "default";
        case SettingSource::Store:
            return "store";
        case SettingSource::ConfigFile:
            return "config file";
        case SettingSource::App:
            return "app";
    }
    return "unknown";
}

Result<EffectiveSetting> effective_setting(std::string_view key, const LayerStack& layers) {
    const SettingInfo* info = find_setting(key);
    if (info == nullptr) {
        return fail("unknown setting '" + std::string(key) + "'");
    }
    const auto lookup = [key](const SettingsLayer* layer) -> const Json* {
        if (layer == nullptr) {
            return nullptr;
        }
        const auto found = layer->find(key);
        return found == layer->end() ? nullptr : &found->second;
    };
    if (info->scope == SettingScope::Application) {
        if (const Json* value = lookup(layers.app)) {
            return EffectiveSetting{.value = *value, .source = SettingSource::App};
        }
    }
    if (const Json* value = lookup(layers.file)) {
        return EffectiveSetting{.value = *value, .source = SettingSource::ConfigFile};
    }
    if (const Json* value = lookup(layers.store)) {
        return EffectiveSetting{.value = *value, .source = SettingSource::Store};
    }
    return EffectiveSetting{.value = info->default_value(), .source = SettingSource::Default};
}

std::string describe_value(const Json& value) {
    if (value.is_array()) {
        return "a list";
    }
    if (value.is_object()) {
        return "an object";
    }
    std::string text = value.is_string()
                           ? "'" + value.get_ref<const std::string&>() + "'"
                           : value.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (text.size() > kMaxQuotedLength) {
        text.resize(kMaxQuotedLength);
        text += "...";
    }
    return text;
}

} // namespace pw::config
