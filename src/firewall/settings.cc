#include "firewall/settings.h"

#include <array>

namespace pw::firewall {
namespace {

struct AppSettingName {
    std::string_view key;
    std::string_view name;
};

// In the order of AppSetting.
constexpr std::array<AppSettingName, kAppSettingCount> kAppSettingNames = {{
    {.key = "filter/defaultAction", .name = "defaultAction"},
    {.key = "filter/endpoints", .name = "endpoints"},
    {.key = "filter/serviceEndpoints", .name = "serviceEndpoints"},
    {.key = "filter/blockInternet", .name = "blockInternet"},
    {.key = "filter/blockLAN", .name = "blockLAN"},
    {.key = "filter/blockLocal", .name = "blockLocal"},
    {.key = "filter/blockInbound", .name = "blockInbound"},
    {.key = "filter/blockP2P", .name = "blockP2P"},
    {.key = "filter/includeCNAMEs", .name = "includeCNAMEs"},
    {.key = "filter/includeSubdomains", .name = "includeSubdomains"},
    {.key = "filter/removeOutOfScopeDNS", .name = "removeOutOfScopeDNS"},
    {.key = "filter/removeBlockedDNS", .name = "removeBlockedDNS"},
    {.key = "filter/preventBypassing", .name = "preventBypassing"},
    {.key = "filter/permanentVerdicts", .name = "permanentVerdicts"},
    {.key = "filter/askTimeout", .name = "askTimeout"},
}};

} // namespace

std::string_view app_setting_key(AppSetting setting) {
    return kAppSettingNames.at(static_cast<std::size_t>(setting)).key;
}

std::string_view app_setting_name(AppSetting setting) {
    return kAppSettingNames.at(static_cast<std::size_t>(setting)).name;
}

std::string layer_note(const FilterSettings& settings, SettingLayer layer) {
    std::string note = layer == SettingLayer::App ? " (app" : " (global";
    if (!settings.profile.id.empty()) {
        note += ", profile '" + settings.profile.name + "'";
    }
    note += ')';
    return note;
}

std::string setting_note(const FilterSettings& settings, AppSetting setting) {
    return layer_note(settings, settings.origins.of(setting));
}

std::optional<AppSetting> blocking_scope_setting(const FilterSettings& settings, IpScope scope) {
    const auto network = network_scope(scope);
    if (!network) {
        return std::nullopt;
    }
    switch (*network) {
        case NetworkScope::Internet:
            return settings.block_internet ? std::optional(AppSetting::BlockInternet)
                                           : std::nullopt;
        case NetworkScope::Lan:
            return settings.block_lan ? std::optional(AppSetting::BlockLan) : std::nullopt;
        case NetworkScope::Localhost:
            return settings.block_local ? std::optional(AppSetting::BlockLocal) : std::nullopt;
    }
    return std::nullopt;
}

} // namespace pw::firewall
