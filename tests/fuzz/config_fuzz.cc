// libFuzzer target: parse_config() on arbitrary bytes, then the settings layers (compile_layer,
// overlay_layers, resolve_filter_settings, effective_setting) and decide() / decide_query() with
// what it accepted.
// The config file is written by hand and the store's layers come from the API; any text must give
// a Config or an error message, never a crash, an escaped exception or undefined behaviour.
//
// An input may hold a second document after a line "---": it is read as an application's layer
// (the config file's syntax, compiled with SettingScope::Application) over the first one.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config_file.h"
#include "config/settings_schema.h"
#include "firewall/connection_facts.h"
#include "firewall/decide.h"
#include "packet/packet_info.h"

namespace {

using pw::config::CompiledSettings;
using pw::config::SettingScope;
using pw::config::SettingsLayer;
using pw::firewall::ConnectionFacts;
using pw::firewall::FilterSettings;

constexpr std::string_view kSeparator = "\n---\n";

ConnectionFacts sample_connection() {
    ConnectionFacts facts;
    facts.direction = pw::packet::Direction::Outbound;
    facts.protocol = pw::packet::protocol::kTcp;
    if (auto local = pw::IpAddress::parse("192.168.1.10")) {
        facts.local_address = *local;
    }
    facts.local_port = 40000;
    if (auto remote = pw::IpAddress::parse("10.1.2.3")) {
        facts.remote_address = *remote;
    }
    facts.remote_port = 22;
    return facts;
}

void check(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

CompiledSettings compile_or_trap(const SettingsLayer& layer, SettingScope scope) {
    auto compiled = pw::config::compile_layer(layer, scope);
    check(compiled.has_value());
    return compiled ? std::move(*compiled) : CompiledSettings{};
}

// The verdicts of a few connections and a query: two FilterSettings that hold the same values
// (in different layers) must agree on them.
struct Verdicts {
    pw::packet::Verdict outbound;
    pw::packet::Verdict inbound;
    pw::firewall::Outcome outcome;
    pw::firewall::QueryAction query;

    friend bool operator==(const Verdicts&, const Verdicts&) = default;
};

Verdicts verdicts_of(const FilterSettings& settings, const ConnectionFacts& outbound) {
    ConnectionFacts inbound = outbound;
    inbound.direction = pw::packet::Direction::Inbound;
    const pw::firewall::Decision out = pw::firewall::decide(settings, outbound);
    const pw::firewall::QueryDecision query =
        pw::firewall::decide_query(settings, "www.example.com");
    // decide() must always explain itself, and never reject an inbound connection loudly.
    check(!out.reason.empty() && !query.reason.empty());
    const pw::packet::Verdict in = pw::firewall::decide(settings, inbound).verdict;
    check(in != pw::packet::Verdict::Block);
    return Verdicts{
        .outbound = out.verdict, .inbound = in, .outcome = out.outcome, .query = query.action};
}

// The file's values moved into the layers the settings store uses: the per-application keys as an
// application's layer over the global-only ones, and the same keys overlaid as global values.
// Either way the settings must decide as the config file's own do.
void check_layers(const pw::config::Config& config, const ConnectionFacts& outbound) {
    const Verdicts expected = verdicts_of(config.filter, outbound);
    const SettingsLayer& values = config.file_layer.values;

    // What the file set compiles again, and every value passes validate_setting on its own.
    const CompiledSettings again = compile_or_trap(values, SettingScope::Global);
    check(again.values == values);
    check(verdicts_of(pw::config::resolve_filter_settings(again, nullptr, {}), outbound) ==
          expected);
    for (const auto& [key, value] : values) {
        check(pw::config::validate_setting(key, value).has_value());
    }

    SettingsLayer global_only;
    SettingsLayer per_app;
    for (const auto& [key, value] : values) {
        const pw::config::SettingInfo* info = pw::config::find_setting(key);
        check(info != nullptr);
        (info->scope == SettingScope::Application ? per_app : global_only).emplace(key, value);
    }
    const CompiledSettings global = compile_or_trap(global_only, SettingScope::Global);
    const CompiledSettings app = compile_or_trap(per_app, SettingScope::Application);
    const FilterSettings as_app =
        pw::config::resolve_filter_settings(global, &app, {.id = "fuzz", .name = "fuzz"});
    check(verdicts_of(as_app, outbound) == expected);
    for (std::size_t index = 0; index < pw::firewall::kAppSettingCount; ++index) {
        const auto setting = static_cast<pw::firewall::AppSetting>(index);
        const bool set = per_app.contains(pw::firewall::app_setting_key(setting));
        check((as_app.origins.of(setting) == pw::firewall::SettingLayer::App) == set);
    }
    const CompiledSettings merged =
        pw::config::overlay_layers(global, compile_or_trap(per_app, SettingScope::Global));
    check(merged.values == values);
    check(verdicts_of(pw::config::resolve_filter_settings(merged, nullptr, {}), outbound) ==
          expected);
}

// A second document as an application's layer over the first.
void check_app_layer(const pw::config::Config& global, std::string_view text,
                     const ConnectionFacts& outbound) {
    const auto parsed = pw::config::parse_config(text, "app.json");
    if (!parsed) {
        check(parsed.error().what.starts_with("app.json"));
        return;
    }
    const SettingsLayer& values = parsed->file_layer.values;
    const auto app = pw::config::compile_layer(values, SettingScope::Application);
    if (!app) {
        // Only a global-only key keeps a valid file from being an application's layer.
        check(app.error().what.find(" is a global setting; it cannot be set for one application") !=
              std::string::npos);
        return;
    }
    const FilterSettings settings =
        pw::config::resolve_filter_settings(global.file_layer, &*app, {.id = "app", .name = "app"});
    static_cast<void>(verdicts_of(settings, outbound));
    const pw::config::LayerStack layers{
        .store = nullptr, .file = &global.file_layer.values, .app = &values};
    for (const pw::config::SettingInfo& setting : pw::config::all_settings()) {
        const auto effective = pw::config::effective_setting(setting.key, layers);
        check(effective.has_value());
        if (effective && values.contains(setting.key)) {
            check(effective->source == pw::config::SettingSource::App);
        }
    }
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const ConnectionFacts kOutbound = sample_connection();
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): libFuzzer hands out bytes.
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t separator = input.find(kSeparator);
    const std::string_view text = input.substr(0, separator);

    const auto config = pw::config::parse_config(text, "fuzz.json");
    if (!config) {
        // Every error names the source, so that a user knows which file to fix.
        check(config.error().what.starts_with("fuzz.json"));
        return 0;
    }
    static_cast<void>(verdicts_of(config->filter, kOutbound));

    // A query to and around the configured nameserver.
    ConnectionFacts query = kOutbound;
    query.protocol = pw::packet::protocol::kUdp;
    query.remote_port = 53;
    check(!pw::firewall::decide(config->filter, query).reason.empty());
    for (const pw::firewall::IpEndpoint& endpoint : config->filter.dns.nameserver_endpoints) {
        query.remote_address = endpoint.address;
        query.remote_port = endpoint.port;
        query.ip_family = endpoint.address.family();
        // A query to our own nameserver is always accepted.
        check(pw::firewall::decide(config->filter, query).verdict == pw::packet::Verdict::Accept);
    }

    check_layers(*config, kOutbound);
    if (separator != std::string_view::npos) {
        check_app_layer(*config, input.substr(separator + kSeparator.size()), kOutbound);
    }
    return 0;
}
