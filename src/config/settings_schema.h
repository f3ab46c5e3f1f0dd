#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "dns/upstream.h"
#include "firewall/settings.h"

namespace pw::config {

// The settings catalogue: every key portwarden knows, its scope, type, default and the one
// function that checks and parses its value. The config file, the settings store (profile/) and
// the API all validate through it, so a value that one of them accepts the others accept too,
// with the same error message.
//
// Layers, lowest first: the built-in defaults, the global values of the settings store, the
// config file (a key the file sets cannot be changed at runtime), and for the per-application
// keys the values of one application's profile, which override the global value whatever its
// source.

// One layer of settings as written: key ("filter/defaultAction") -> JSON value. Every value in a
// layer is valid (compile_layer checks it). This is what the settings store persists, what the
// API shows, and what the config file set.
using SettingsLayer = std::map<std::string, nlohmann::json, std::less<>>;

// Of a key: whether only the global layer may set it, or each application's profile too
// (facts 6.6). Of a layer (compile_layer): whether it is the global layer or an application's.
enum class SettingScope : std::uint8_t { Global, Application };

// The shape of a key's JSON value, for the API and a UI to choose an editor.
enum class SettingType : std::uint8_t {
    Boolean,       // true or false
    Choice,        // one of SettingInfo::choices, a string
    Seconds,       // a whole number of seconds (integer)
    ListenAddress, // "localhost:PORT", "IPv4:PORT", "[IPv6]:PORT" or "off"
    RuleList,      // list of rule lines (docs/rules.md)
    UpstreamList,  // list of upstream URLs (dns::parse_upstream_url)
    NameList,      // list of names (Unix group names)
    Count,         // a whole number (integer) in the key's range: bytes, files, events
};

struct CompiledSettings;

// One thing wrong with a value. `message` is exactly what the config file prints after
// "FILE:LINE: ". `element` is the index of the list element the problem is about (the config
// file then gives that element's line), nullopt when it is about the value as a whole.
struct ValueProblem {
    std::string message;
    std::optional<std::size_t> element;

    friend bool operator==(const ValueProblem&, const ValueProblem&) = default;
};

// The parse function of one key: checks `value` and, when it is valid, stores its parsed form
// in `into` (and nothing else). Returns every problem found, none when the value was stored: a
// rule list reports each bad rule, not only the first.
using ParseSetting = std::vector<ValueProblem> (*)(std::string_view key,
                                                   const nlohmann::json& value,
                                                   CompiledSettings& into);

// One key of the catalogue.
struct SettingInfo {
    std::string_view key; // "filter/defaultAction"
    SettingScope scope = SettingScope::Global;
    SettingType type = SettingType::Boolean;
    std::span<const std::string_view> choices; // Choice only: the accepted strings, in order
    // The built-in default as JSON text ("\"permit\"", "true", "[]"). "null" for a key whose
    // default is decided at start (dns/nameservers: the system's nameservers).
    std::string_view default_json;
    std::string_view description; // one line, for the API and `portwarden settings`
    ParseSetting parse = nullptr;

    // The default as a JSON value.
    [[nodiscard]] nlohmann::json default_value() const;
    // Checks `value` for this key and stores its parsed form in `into` (see ParseSetting).
    [[nodiscard]] std::vector<ValueProblem> parse_into(const nlohmann::json& value,
                                                       CompiledSettings& into) const {
        return parse(key, value, into);
    }
};

// Every key, in a fixed order: the per-application keys in the order of firewall::AppSetting,
// then the global-only keys.
[[nodiscard]] std::span<const SettingInfo> all_settings();

// The key's entry, or nullptr for an unknown key. Keys are case-sensitive slash paths.
[[nodiscard]] const SettingInfo* find_setting(std::string_view key);

// Checks one value for one key, as the API does before it stores a change. The error is
// "unknown setting 'KEY'" or the value's problems, one per line, in the config file's words.
// The key's scope is not checked here (compile_layer does that).
[[nodiscard]] Status validate_setting(std::string_view key, const nlohmann::json& value);

// `dns/...` settings that only the resolver reads. Where the nameserver
// listens (`dns/listenAddress`) is kept in FilterSettings::dns.nameserver_endpoints instead:
// decide() needs it too, and with a single copy the firewall and the nameserver cannot disagree.
struct DnsSettings {
    // `dns/nameservers`, in order of preference. Empty when the key is not set (the daemon then
    // picks its own upstreams); an empty list is refused as a value, so empty always means "not
    // set".
    std::vector<dns::Upstream> nameservers;
};

// `core/...`: the local API.
struct CoreSettings {
    // `core/listenAddress`; empty: no API ("off").
    std::vector<firewall::IpEndpoint> api_endpoints;
    // `core/apiGroups`: members of these Unix groups may use the API (root always may).
    std::vector<std::string> api_groups;
};

// `events/...`: the `--events` stream's size limits (issue 10 item 6). The daemon applies a
// change at once.
struct EventSettings {
    // `events/maxFileSize`: bytes after which the events file is rotated; 0: never.
    std::uint64_t max_file_size = 0;
    // `events/keepFiles`: rotated files kept (FILE.1 ... FILE.N).
    std::uint32_t keep_files = 0;
    // `events/repeatLimit`: identical events written per window and kind; 0: all of them.
    std::uint32_t repeat_limit = 0;
    // `events/repeatWindow`.
    std::chrono::seconds repeat_window{0};
};

// One layer parsed: its raw values and, for each key it sets, the parsed value (an empty
// optional, or a null rule list: the layer does not set the key). Built once when the layer
// changes (compile_layer); resolving settings from it parses nothing. Rule lists are shared, so
// copying a CompiledSettings or resolving a profile's settings from it copies no rule.
struct CompiledSettings {
    // The keys this layer sets, as written. `values` and the parsed fields below always describe
    // the same keys when built by compile_layer, overlay_layers or the config file.
    SettingsLayer values;

    // --- Per application (firewall::AppSetting). ---
    std::optional<firewall::DefaultAction> default_action;
    firewall::SharedRules endpoints;         // null: not set (an empty list is a set list)
    firewall::SharedRules service_endpoints; // null: not set
    std::optional<bool> block_internet;
    std::optional<bool> block_lan;
    std::optional<bool> block_local;
    std::optional<bool> block_inbound;
    std::optional<bool> block_p2p;
    std::optional<bool> include_cnames;
    std::optional<bool> include_subdomains;
    std::optional<bool> remove_out_of_scope_dns;
    std::optional<bool> remove_blocked_dns;
    std::optional<firewall::PreventBypassing> prevent_bypassing;
    std::optional<firewall::PermanentVerdicts> permanent_verdicts;
    std::optional<std::chrono::seconds> ask_timeout;

    // --- Global only. ---
    std::optional<firewall::OutboundBlockAction> outbound_block_action;
    std::optional<std::vector<dns::Upstream>> nameservers;
    std::optional<std::vector<firewall::IpEndpoint>> dns_listen_endpoints;
    std::optional<std::vector<firewall::IpEndpoint>> api_listen_endpoints;
    std::optional<std::vector<std::string>> api_groups;
    std::optional<std::uint64_t> events_max_file_size;
    std::optional<std::uint32_t> events_keep_files;
    std::optional<std::uint32_t> events_repeat_limit;
    std::optional<std::chrono::seconds> events_repeat_window;
};

// Checks and parses every value of a layer. Nothing is half-compiled: either every key is known,
// allowed in a layer of this scope and valid, or the error lists every problem, one per line in
// key order ("unknown setting 'filter/x'", "core/listenAddress is a global setting; it cannot be
// set for one application", or the value's own problems in the config file's words).
[[nodiscard]] Result<CompiledSettings> compile_layer(const SettingsLayer& layer,
                                                     SettingScope scope);

// Two layers as one: each key from `upper` when it sets it, else from `lower`. The settings store
// builds the global layer as overlay_layers(store, config file), so that the file's values win
// and its rule lists are shared, not parsed again.
[[nodiscard]] CompiledSettings overlay_layers(const CompiledSettings& lower,
                                              const CompiledSettings& upper);

// The settings decide() reads for one profile: the built-in defaults, then the global layer, then
// the application's own values for the per-application keys (`app`: nullptr for the global
// settings alone). `origins` says which values came from `app`; rule lists become RuleLayers
// {app, global}. Parses nothing and shares the rule lists: cheap enough to run for every profile
// whenever the global layer changes.
[[nodiscard]] firewall::FilterSettings resolve_filter_settings(const CompiledSettings& global,
                                                               const CompiledSettings* app,
                                                               firewall::ProfileLabel profile);

// FilterSettings as the daemon starts with them when nothing is set: the defaults of
// FilterSettings, and the nameserver on the default `dns/listenAddress` (localhost:53).
[[nodiscard]] firewall::FilterSettings default_filter_settings();

// The global-only settings of the resolver, the API and the events stream, with their defaults.
[[nodiscard]] DnsSettings resolve_dns_settings(const CompiledSettings& global);
[[nodiscard]] CoreSettings resolve_core_settings(const CompiledSettings& global);
[[nodiscard]] EventSettings resolve_event_settings(const CompiledSettings& global);

// Where an effective value comes from, lowest layer first.
enum class SettingSource : std::uint8_t { Default, Store, ConfigFile, App };

// "default", "store", "config file", "app": as the API names the source of a value.
[[nodiscard]] std::string_view setting_source_name(SettingSource source);

// The raw layers one profile's settings are made of. A null pointer is a layer that sets nothing
// (app: nullptr asks for the global value).
struct LayerStack {
    const SettingsLayer* store = nullptr; // the global values of the settings store
    const SettingsLayer* file = nullptr;  // the config file
    const SettingsLayer* app = nullptr;   // the application's profile
};

// A key's effective value and the layer it comes from.
struct EffectiveSetting {
    nlohmann::json value;
    SettingSource source = SettingSource::Default;
};

// The effective value of `key` for these layers, as the API shows it: the app's value for a
// per-application key it sets, else the config file's, else the store's, else the default. The
// only error is "unknown setting 'KEY'".
[[nodiscard]] Result<EffectiveSetting> effective_setting(std::string_view key,
                                                         const LayerStack& layers);

// The effective `events/...` settings of these layers (`app` is not read): the config file's
// values, else the store's, else the defaults.
[[nodiscard]] EventSettings effective_event_settings(const LayerStack& layers);

// How an error message quotes a value: strings in single quotes, scalars as JSON, containers by
// kind only ("a list", "an object"); cut to 80 characters with "..." so that one bad value stays
// one readable line.
[[nodiscard]] std::string describe_value(const nlohmann::json& value);

} // namespace pw::config
