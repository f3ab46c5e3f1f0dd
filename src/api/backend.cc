#include "api/backend.h"

#include <string_view>
#include <utility>

namespace pw::api {
namespace {

std::string_view layer_name(SettingLayer layer) {
    switch (layer) {
        case SettingLayer::Default:
            return "default";
        case SettingLayer::Store:
            return "store";
        case SettingLayer::ConfigFile:
            return "configFile";
        case SettingLayer::App:
            return "app";
    }
    return "default"; // unreachable: every enumerator is handled above
}

std::string_view scope_name(SettingScope scope) {
    return scope == SettingScope::App ? "app" : "global";
}

} // namespace

Reply error_reply(int status, std::string message) {
    return Reply{.status = status, .body = {{"error", std::move(message)}}, .allow = {}};
}

nlohmann::json to_json(const std::vector<SettingView>& views) {
    nlohmann::json out = nlohmann::json::array();
    for (const SettingView& view : views) {
        out.push_back({{"key", view.key},
                       {"value", view.value},
                       {"layer", layer_name(view.layer)},
                       {"scope", scope_name(view.scope)}});
    }
    return out;
}

} // namespace pw::api
