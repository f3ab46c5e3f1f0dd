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

} // namespace pw::firewall
