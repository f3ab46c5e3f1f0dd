#include "config/settings_schema.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "config/listen_address.h"
#include "firewall/decide.h"

namespace pw::config {
namespace {

using firewall::AppSetting;
using firewall::DefaultAction;
using firewall::IpEndpoint;
using firewall::SettingLayer;
using Json = nlohmann::json;

IpEndpoint endpoint(std::string_view address, std::uint16_t port) {
    auto parsed = IpAddress::parse(address);
    EXPECT_TRUE(parsed.has_value()) << address;
    return IpEndpoint{.address = parsed.value_or(IpAddress{}), .port = port};
}

// Parses JSON text written in a test.
Json json(std::string_view text) {
    return Json::parse(text);
}

std::string validate_error(std::string_view key, const Json& value) {
    const Status status = validate_setting(key, value);
    EXPECT_FALSE(status.has_value()) << key << " accepted " << value.dump();
    return status.has_value() ? std::string{} : status.error().what;
}

void expect_valid(std::string_view key, const Json& value) {
    const Status status = validate_setting(key, value);
    EXPECT_TRUE(status.has_value()) << key << " " << value.dump() << ": " << status.error().what;
}

CompiledSettings compile_ok(const SettingsLayer& layer, SettingScope scope) {
    auto compiled = compile_layer(layer, scope);
    EXPECT_TRUE(compiled.has_value()) << compiled.error().what;
    return compiled.value_or(CompiledSettings{});
}

std::string compile_error(const SettingsLayer& layer, SettingScope scope) {
    auto compiled = compile_layer(layer, scope);
    EXPECT_FALSE(compiled.has_value()) << "compiled";
    return compiled.has_value() ? std::string{} : compiled.error().what;
}

std::vector<std::string> rule_texts(const firewall::SharedRules& rules) {
    std::vector<std::string> texts;
    if (rules) {
        for (const firewall::EndpointRule& rule : *rules) {
            texts.push_back(rule.text);
        }
    }
    return texts;
}

// How a summary shows rule lists: in their layers, or as decide() reads them (app then global).
enum class RuleView : std::uint8_t { Layers, Effective };

std::string rules_summary(const firewall::RuleLayers& layers, RuleView view) {
    std::string text;
    for (const auto& [name, rules] :
         {std::pair{"app", layers.app}, std::pair{"global", layers.global}}) {
        if (view == RuleView::Layers) {
            text += std::string(name) + "[";
        }
        for (const std::string& rule : rule_texts(rules)) {
            text += rule + ";";
        }
        if (view == RuleView::Layers) {
            text += "]";
        }
    }
    return text;
}

// Every value of FilterSettings that a layer can set, as one line, so that two settings compare
// with one EXPECT_EQ and a readable difference. Origins and the profile are left out (see
// app_origins). An explicit empty rule list and no list read the same (both hold no rule).
std::string summary(const firewall::FilterSettings& settings, RuleView view = RuleView::Layers) {
    std::ostringstream text;
    text << "defaultAction=" << static_cast<int>(settings.default_action)
         << " endpoints=" << rules_summary(settings.endpoints, view)
         << " serviceEndpoints=" << rules_summary(settings.service_endpoints, view)
         << " blockInternet=" << settings.block_internet << " blockLAN=" << settings.block_lan
         << " blockLocal=" << settings.block_local << " blockInbound=" << settings.block_inbound
         << " blockP2P=" << settings.block_p2p << " includeCNAMEs=" << settings.include_cnames
         << " includeSubdomains=" << settings.include_subdomains
         << " removeOutOfScopeDNS=" << settings.remove_out_of_scope_dns
         << " removeBlockedDNS=" << settings.remove_blocked_dns
         << " preventBypassing=" << static_cast<int>(settings.prevent_bypassing)
         << " permanentVerdicts=" << static_cast<int>(settings.permanent_verdicts)
         << " askTimeout=" << settings.ask_timeout.count()
         << " outboundBlockAction=" << static_cast<int>(settings.outbound_block_action)
         << " astray=" << static_cast<int>(settings.dns.astray) << " nameserver=";
    for (const IpEndpoint& listen : settings.dns.nameserver_endpoints) {
        text << listen.address.to_string() << "/" << listen.port << ";";
    }
    return text.str();
}

// The keys whose value came from the application's layer.
std::vector<std::string_view> app_origins(const firewall::FilterSettings& settings) {
    std::vector<std::string_view> keys;
    for (std::size_t index = 0; index < firewall::kAppSettingCount; ++index) {
        const auto setting = static_cast<AppSetting>(index);
        if (settings.origins.of(setting) == SettingLayer::App) {
            keys.push_back(firewall::app_setting_key(setting));
        }
    }
    return keys;
}

std::vector<std::string_view> all_app_keys() {
    std::vector<std::string_view> keys;
    keys.reserve(firewall::kAppSettingCount);
    for (std::size_t index = 0; index < firewall::kAppSettingCount; ++index) {
        keys.push_back(firewall::app_setting_key(static_cast<AppSetting>(index)));
    }
    return keys;
}

void expect_same_filter_settings(const firewall::FilterSettings& left,
                                 const firewall::FilterSettings& right) {
    EXPECT_EQ(summary(left), summary(right));
    EXPECT_EQ(app_origins(left), app_origins(right));
    EXPECT_EQ(left.profile, right.profile);
}

// A value other than the default for every key.
SettingsLayer every_key_changed() {
    return SettingsLayer{
        {"filter/defaultAction", "block"},
        {"filter/endpoints", json(R"(["+ 10.0.0.1 tcp/22", "- *"])")},
        {"filter/serviceEndpoints", json(R"(["+ * tcp/22"])")},
        {"filter/blockInternet", true},
        {"filter/blockLAN", true},
        {"filter/blockLocal", true},
        {"filter/blockInbound", false},
        {"filter/blockP2P", true},
        {"filter/includeCNAMEs", false},
        {"filter/includeSubdomains", false},
        {"filter/removeOutOfScopeDNS", false},
        {"filter/removeBlockedDNS", false},
        {"filter/preventBypassing", false},
        {"filter/permanentVerdicts", false},
        {"filter/askTimeout", 90},
        {"filter/outboundBlockAction", "drop"},
        {"dns/nameservers", json(R"(["dns://192.0.2.53"])")},
        {"dns/listenAddress", "127.0.0.17:5353"},
        {"core/listenAddress", "off"},
        {"core/apiGroups", json(R"(["wheel", "adm"])")},
        {"events/maxFileSize", 1048576},
        {"events/keepFiles", 5},
        {"events/repeatLimit", 0},
        {"events/repeatWindow", 10},
    };
}

// The per-application keys of every_key_changed().
SettingsLayer app_keys_changed() {
    SettingsLayer layer = every_key_changed();
    std::erase_if(layer, [](const auto& entry) {
        return find_setting(entry.first)->scope == SettingScope::Global;
    });
    return layer;
}

// --- The catalogue ----------------------------------------------------------------------------

TEST(SettingsCatalogue, PerApplicationKeysComeFirstInTheOrderOfAppSetting) {
    std::vector<std::string_view> application_keys;
    std::vector<std::string_view> global_keys;
    bool global_seen = false;
    bool application_after_global = false;
    for (const SettingInfo& setting : all_settings()) {
        const bool application = setting.scope == SettingScope::Application;
        application_after_global = application_after_global || (application && global_seen);
        global_seen = global_seen || !application;
        (application ? application_keys : global_keys).push_back(setting.key);
    }
    EXPECT_EQ(application_keys, all_app_keys());
    EXPECT_FALSE(application_after_global);
    EXPECT_EQ(global_keys, (std::vector<std::string_view>{
                               "filter/outboundBlockAction", "dns/nameservers", "dns/listenAddress",
                               "core/listenAddress", "core/apiGroups", "events/maxFileSize",
                               "events/keepFiles", "events/repeatLimit", "events/repeatWindow"}));
}

TEST(SettingsCatalogue, KnowsExactlyTheKeysOfIssue9) {
    std::set<std::string_view> keys;
    for (const SettingInfo& setting : all_settings()) {
        EXPECT_TRUE(keys.insert(setting.key).second) << "twice: " << setting.key;
    }
    const SettingsLayer changed = every_key_changed();
    std::set<std::string_view> expected;
    for (const auto& [key, value] : changed) {
        expected.insert(key);
    }
    EXPECT_EQ(keys, expected);
}

TEST(SettingsCatalogue, FindSettingIsExactAndCaseSensitive) {
    ASSERT_NE(find_setting("filter/blockLAN"), nullptr);
    EXPECT_EQ(find_setting("filter/blockLAN")->key, "filter/blockLAN");
    EXPECT_EQ(find_setting("filter/blocklan"), nullptr);
    EXPECT_EQ(find_setting("filter"), nullptr);
    EXPECT_EQ(find_setting("filter/blockLAN/x"), nullptr);
    EXPECT_EQ(find_setting(""), nullptr);
}

TEST(SettingsCatalogue, EveryKeyHasAOneLineDescriptionAndAParser) {
    for (const SettingInfo& setting : all_settings()) {
        EXPECT_FALSE(setting.description.empty()) << setting.key;
        EXPECT_EQ(setting.description.find('\n'), std::string_view::npos) << setting.key;
        EXPECT_NE(setting.parse, nullptr) << setting.key;
        EXPECT_EQ(setting.choices.empty(), setting.type != SettingType::Choice) << setting.key;
    }
}

TEST(SettingsCatalogue, EveryDefaultIsValidForItsOwnKey) {
    for (const SettingInfo& setting : all_settings()) {
        const Json value = setting.default_value();
        ASSERT_FALSE(value.is_discarded()) << setting.key << ": " << setting.default_json;
        if (value.is_null()) {
            EXPECT_EQ(setting.key, "dns/nameservers"); // the only default decided at start
            continue;
        }
        expect_valid(setting.key, value);
    }
}

TEST(SettingsCatalogue, DefaultsAreWhatResolvingNothingGives) {
    // Setting every key to its catalogue default changes nothing: the table and the code agree.
    SettingsLayer defaults;
    for (const SettingInfo& setting : all_settings()) {
        if (!setting.default_value().is_null()) {
            defaults.emplace(setting.key, setting.default_value());
        }
    }
    const CompiledSettings compiled = compile_ok(defaults, SettingScope::Global);
    const firewall::FilterSettings from_defaults = resolve_filter_settings(compiled, nullptr, {});
    const firewall::FilterSettings from_nothing = default_filter_settings();
    // An explicit empty list is a list, where nothing set is no list; both hold no rule.
    EXPECT_TRUE(rule_texts(from_defaults.endpoints.global).empty());
    expect_same_filter_settings(from_defaults, from_nothing);
    EXPECT_EQ(resolve_core_settings(compiled).api_endpoints,
              resolve_core_settings({}).api_endpoints);
    EXPECT_EQ(resolve_core_settings(compiled).api_groups, resolve_core_settings({}).api_groups);
    const EventSettings events = resolve_event_settings(compiled);
    const EventSettings no_events = resolve_event_settings({});
    EXPECT_EQ(events.max_file_size, no_events.max_file_size);
    EXPECT_EQ(events.keep_files, no_events.keep_files);
    EXPECT_EQ(events.repeat_limit, no_events.repeat_limit);
    EXPECT_EQ(events.repeat_window, no_events.repeat_window);
}

TEST(SettingsCatalogue, EventDefaultsKeepADayOfHeavyUseWithinAFewHundredMegabytes) {
    const EventSettings events = resolve_event_settings({});
    // The current file and the rotated ones together (issue 10 item 6).
    EXPECT_LE((events.keep_files + 1) * events.max_file_size, 300ULL * 1024 * 1024);
    EXPECT_GT(events.max_file_size, 0U);
    EXPECT_GT(events.repeat_limit, 0U);
    EXPECT_EQ(events.repeat_window, std::chrono::seconds(60));
}

TEST(EffectiveEventSettings, TheFileWinsOverTheStoreWhichWinsOverTheDefaults) {
    const SettingsLayer store{{"events/keepFiles", 7}, {"events/repeatLimit", 5}};
    const SettingsLayer file{{"events/keepFiles", 1}};
    const EventSettings events =
        effective_event_settings({.store = &store, .file = &file, .app = nullptr});
    EXPECT_EQ(events.keep_files, 1U);
    EXPECT_EQ(events.repeat_limit, 5U);
    EXPECT_EQ(events.max_file_size, resolve_event_settings({}).max_file_size);
    EXPECT_EQ(events.repeat_window, resolve_event_settings({}).repeat_window);
}

TEST(ValidateSetting, EventLimitsAreWholeNumbersInTheirRange) {
    const CompiledSettings compiled = compile_ok(SettingsLayer{{"events/maxFileSize", 0},
                                                               {"events/keepFiles", 100},
                                                               {"events/repeatLimit", 1000000},
                                                               {"events/repeatWindow", 86400}},
                                                 SettingScope::Global);
    const EventSettings events = resolve_event_settings(compiled);
    EXPECT_EQ(events.max_file_size, 0U);
    EXPECT_EQ(events.keep_files, 100U);
    EXPECT_EQ(events.repeat_limit, 1000000U);
    EXPECT_EQ(events.repeat_window, std::chrono::hours(24));
    EXPECT_EQ(validate_setting("events/keepFiles", 101).error().what,
              "events/keepFiles must be a whole number from 0 to 100, not 101");
    EXPECT_EQ(validate_setting("events/maxFileSize", -1).error().what,
              "events/maxFileSize must be a whole number from 0 to 1099511627776, not -1");
    EXPECT_EQ(validate_setting("events/maxFileSize", "64M").error().what,
              "events/maxFileSize must be a whole number from 0 to 1099511627776, not '64M'");
    EXPECT_EQ(validate_setting("events/repeatLimit", 1.5).error().what,
              "events/repeatLimit must be a whole number from 0 to 1000000, not 1.5");
    EXPECT_EQ(validate_setting("events/repeatWindow", 0).error().what,
              "events/repeatWindow must be a whole number from 1 to 86400, not 0");
    EXPECT_FALSE(validate_setting("events/repeatWindow", Json(18446744073709551615ULL)));
    EXPECT_EQ(compile_layer(SettingsLayer{{"events/keepFiles", 2}}, SettingScope::Application)
                  .error()
                  .what,
              "events/keepFiles is a global setting; it cannot be set for one application");
}

TEST(SettingsCatalogue, DefaultsMatchTheDesign) {
    const firewall::FilterSettings defaults = default_filter_settings();
    EXPECT_EQ(defaults.default_action, DefaultAction::Permit);
    EXPECT_TRUE(defaults.block_inbound);
    EXPECT_FALSE(defaults.block_internet || defaults.block_lan || defaults.block_local ||
                 defaults.block_p2p);
    EXPECT_EQ(defaults.ask_timeout, std::chrono::seconds(60));
    EXPECT_EQ(defaults.dns.nameserver_endpoints, localhost_listen_endpoints(53));
    const CoreSettings core = resolve_core_settings({});
    EXPECT_EQ(core.api_endpoints,
              (std::vector<IpEndpoint>{endpoint("127.0.0.1", 817), endpoint("::1", 817)}));
    EXPECT_EQ(core.api_groups, std::vector<std::string>{"portwarden"});
    EXPECT_TRUE(resolve_dns_settings({}).nameservers.empty());
}

TEST(SettingsCatalogue, ChoicesAreListedInTheOrderOfTheirEnum) {
    const SettingInfo* action = find_setting("filter/defaultAction");
    ASSERT_NE(action, nullptr);
    EXPECT_EQ(std::vector<std::string_view>(action->choices.begin(), action->choices.end()),
              (std::vector<std::string_view>{"permit", "block", "ask"}));
    const SettingInfo* outbound = find_setting("filter/outboundBlockAction");
    ASSERT_NE(outbound, nullptr);
    EXPECT_EQ(std::vector<std::string_view>(outbound->choices.begin(), outbound->choices.end()),
              (std::vector<std::string_view>{"reject", "drop"}));
}

// --- validate_setting ---------------------------------------------------------------------------

TEST(ValidateSetting, UnknownKeyIsRefused) {
    EXPECT_EQ(validate_error("filter/blockInternets", true),
              "unknown setting 'filter/blockInternets'");
}

TEST(ValidateSetting, EveryChangedValueIsValid) {
    for (const auto& [key, value] : every_key_changed()) {
        expect_valid(key, value);
    }
}

TEST(ValidateSetting, BooleansNameTheKey) {
    for (const std::string_view key :
         {"filter/blockInternet", "filter/blockLAN", "filter/blockLocal", "filter/blockInbound",
          "filter/blockP2P", "filter/includeCNAMEs", "filter/includeSubdomains",
          "filter/removeOutOfScopeDNS", "filter/removeBlockedDNS", "filter/preventBypassing",
          "filter/permanentVerdicts"}) {
        EXPECT_EQ(validate_error(key, "yes"),
                  std::string(key) + " must be true or false, not 'yes'");
        EXPECT_EQ(validate_error(key, 1), std::string(key) + " must be true or false, not 1");
        EXPECT_EQ(validate_error(key, nullptr),
                  std::string(key) + " must be true or false, not null");
    }
}

TEST(ValidateSetting, ChoicesAreCaseSensitive) {
    EXPECT_EQ(validate_error("filter/defaultAction", "Block"),
              "filter/defaultAction must be permit, block or ask, not 'Block'");
    EXPECT_EQ(validate_error("filter/outboundBlockAction", json("[]")),
              "filter/outboundBlockAction must be reject or drop, not a list");
    expect_valid("filter/defaultAction", "ask");
}

TEST(ValidateSetting, AskTimeoutIsWholeSecondsFromOneToAnHour) {
    expect_valid("filter/askTimeout", 1);
    expect_valid("filter/askTimeout", 3600);
    expect_valid("filter/askTimeout", json("60"));
    const std::string expected =
        "filter/askTimeout must be a whole number of seconds from 1 to "
        "3600, not ";
    EXPECT_EQ(validate_error("filter/askTimeout", 0), expected + "0");
    EXPECT_EQ(validate_error("filter/askTimeout", 3601), expected + "3601");
    EXPECT_EQ(validate_error("filter/askTimeout", -5), expected + "-5");
    EXPECT_EQ(validate_error("filter/askTimeout", "90s"), expected + "'90s'");
    EXPECT_EQ(validate_error("filter/askTimeout", "60"), expected + "'60'");
    EXPECT_EQ(validate_error("filter/askTimeout", json("60.5")), expected + "60.5");
    EXPECT_EQ(validate_error("filter/askTimeout", json("60.0")), expected + "60.0");
    EXPECT_EQ(validate_error("filter/askTimeout", json("18446744073709551615")),
              expected + "18446744073709551615");
    EXPECT_EQ(validate_error("filter/askTimeout", true), expected + "true");
}

TEST(ValidateSetting, RuleListsReportEveryBadRuleWithItsIndex) {
    EXPECT_EQ(validate_error("filter/serviceEndpoints", "+ * tcp/22"),
              "filter/serviceEndpoints must be a list of rule strings, not '+ * tcp/22'");
    EXPECT_EQ(
        validate_error("filter/serviceEndpoints", json(R"(["+ * tcp/22", 5, "+ 10.0.0.300"])")),
        "filter/serviceEndpoints[1] must be a rule string, not 5\n"
        "filter/serviceEndpoints[2] '+ 10.0.0.300': invalid IP address '10.0.0.300'");
    expect_valid("filter/endpoints", json("[]"));
}

TEST(ValidateSetting, NameserversKeepTheirMessages) {
    EXPECT_EQ(validate_error("dns/nameservers", json("[]")),
              "dns/nameservers is an empty list (name at least one upstream, or leave the "
              "setting out)");
    EXPECT_EQ(validate_error("dns/nameservers", nullptr),
              "dns/nameservers must be a list of URL strings such as [\"dns://192.0.2.53\"], not "
              "null");
    EXPECT_TRUE(validate_error("dns/nameservers", json(R"(["ftp://x"])"))
                    .starts_with("dns/nameservers[0]: "));
}

TEST(ValidateSetting, ListenAddressesNameTheirOwnKeyAndExample) {
    EXPECT_EQ(validate_error("dns/listenAddress", 53),
              "dns/listenAddress must be a string such as \"localhost:53\", not 53");
    EXPECT_EQ(validate_error("core/listenAddress", 817),
              "core/listenAddress must be a string such as \"localhost:817\", not 817");
    EXPECT_EQ(validate_error("core/listenAddress", "0.0.0.0:817"),
              "core/listenAddress '0.0.0.0:817': 0.0.0.0 would listen on every address; give one "
              "address, such as 127.0.0.1 or a LAN address, or localhost");
    expect_valid("core/listenAddress", "[::1]:8817");
    expect_valid("dns/listenAddress", "off");
}

TEST(ValidateSetting, ApiGroupsAreUnixGroupNames) {
    expect_valid("core/apiGroups", json(R"(["portwarden", "sudo", "my-admins", "team_2", "a.b"])"));
    expect_valid("core/apiGroups", json("[]")); // root only
    EXPECT_EQ(validate_error("core/apiGroups", "portwarden"),
              "core/apiGroups must be a list of group names such as [\"portwarden\"], not "
              "'portwarden'");
    EXPECT_EQ(validate_error("core/apiGroups", json("[1000]")),
              "core/apiGroups[0] must be a group name string, not 1000");
    const std::string rule =
        " is not a group name (1-32 letters, digits, '_', '.' or '-', not starting with '-', "
        "not only digits)";
    EXPECT_EQ(validate_error("core/apiGroups", json(R"(["wheel", "port warden"])")),
              "core/apiGroups[1] 'port warden'" + rule);
    EXPECT_EQ(validate_error("core/apiGroups", json(R"([""])")), "core/apiGroups[0] ''" + rule);
    EXPECT_EQ(validate_error("core/apiGroups", json(R"(["-x"])")), "core/apiGroups[0] '-x'" + rule);
    EXPECT_EQ(validate_error("core/apiGroups", json(R"(["1000"])")),
              "core/apiGroups[0] '1000'" + rule);
    EXPECT_EQ(validate_error("core/apiGroups", json(R"(["a:b"])")),
              "core/apiGroups[0] 'a:b'" + rule);
    const std::string longest(32, 'g');
    expect_valid("core/apiGroups", Json::array({longest}));
    EXPECT_FALSE(validate_setting("core/apiGroups", Json::array({longest + "g"})).has_value());
}

TEST(ValidateSetting, ParseIntoStoresNothingWhenTheValueIsBad) {
    const SettingInfo* rules = find_setting("filter/endpoints");
    ASSERT_NE(rules, nullptr);
    CompiledSettings into;
    const auto problems = rules->parse_into(json(R"(["- *", "+ b@d", 7])"), into);
    ASSERT_EQ(problems.size(), 2U);
    EXPECT_EQ(problems[0].element, std::optional<std::size_t>{1});
    EXPECT_EQ(problems[1].element, std::optional<std::size_t>{2});
    EXPECT_EQ(into.endpoints, nullptr);
    const SettingInfo* timeout = find_setting("filter/askTimeout");
    ASSERT_NE(timeout, nullptr);
    const auto whole = timeout->parse_into(json("0"), into);
    ASSERT_EQ(whole.size(), 1U);
    EXPECT_EQ(whole[0].element, std::nullopt);
    EXPECT_FALSE(into.ask_timeout.has_value());
}

// --- compile_layer ----------------------------------------------------------------------------

TEST(CompileLayer, GlobalLayerTakesEveryKeyAndKeepsTheRawValues) {
    const SettingsLayer layer = every_key_changed();
    const CompiledSettings compiled = compile_ok(layer, SettingScope::Global);
    EXPECT_EQ(compiled.values, layer);
    EXPECT_EQ(compiled.default_action, DefaultAction::Block);
    EXPECT_EQ(rule_texts(compiled.endpoints),
              (std::vector<std::string>{"+ 10.0.0.1 tcp/22", "- *"}));
    EXPECT_EQ(rule_texts(compiled.service_endpoints), std::vector<std::string>{"+ * tcp/22"});
    EXPECT_EQ(compiled.ask_timeout, std::chrono::seconds(90));
    EXPECT_EQ(compiled.outbound_block_action, firewall::OutboundBlockAction::Drop);
    ASSERT_TRUE(compiled.nameservers.has_value());
    EXPECT_EQ(compiled.nameservers->size(), 1U);
    EXPECT_EQ(compiled.dns_listen_endpoints,
              (std::vector<IpEndpoint>{endpoint("127.0.0.17", 5353)}));
    EXPECT_EQ(compiled.api_listen_endpoints, std::vector<IpEndpoint>{});
    EXPECT_EQ(compiled.api_groups, (std::vector<std::string>{"wheel", "adm"}));
}

TEST(CompileLayer, EmptyLayerSetsNothing) {
    const CompiledSettings compiled = compile_ok({}, SettingScope::Application);
    EXPECT_TRUE(compiled.values.empty());
    EXPECT_FALSE(compiled.default_action.has_value());
    EXPECT_EQ(compiled.endpoints, nullptr);
}

TEST(CompileLayer, EmptyRuleListIsSetNotMissing) {
    const CompiledSettings compiled =
        compile_ok({{"filter/endpoints", json("[]")}}, SettingScope::Application);
    ASSERT_NE(compiled.endpoints, nullptr);
    EXPECT_TRUE(compiled.endpoints->empty());
}

TEST(CompileLayer, ApplicationLayerTakesEveryPerApplicationKey) {
    const CompiledSettings compiled = compile_ok(app_keys_changed(), SettingScope::Application);
    EXPECT_EQ(compiled.values.size(), firewall::kAppSettingCount);
}

TEST(CompileLayer, ApplicationLayerRefusesGlobalKeys) {
    EXPECT_EQ(compile_error({{"core/listenAddress", "localhost:817"}}, SettingScope::Application),
              "core/listenAddress is a global setting; it cannot be set for one application");
    for (const SettingInfo& setting : all_settings()) {
        if (setting.scope != SettingScope::Global) {
            continue;
        }
        const SettingsLayer layer{
            {std::string(setting.key), every_key_changed().at(std::string(setting.key))}};
        EXPECT_EQ(compile_error(layer, SettingScope::Application),
                  std::string(setting.key) +
                      " is a global setting; it cannot be set for one application");
        EXPECT_TRUE(compile_layer(layer, SettingScope::Global).has_value()) << setting.key;
    }
}

TEST(CompileLayer, EveryProblemIsListedInKeyOrder) {
    const SettingsLayer layer{
        {"filter/blockLAN", "no"},
        {"dns/listenAddress", "localhost:53"},
        {"filter/endpoints", json(R"(["+ b@d", "- *", "+ 10.0.0.300"])")},
        {"filter/blokLAN", true},
        {"filter/askTimeout", 60},
    };
    EXPECT_EQ(compile_error(layer, SettingScope::Application),
              "dns/listenAddress is a global setting; it cannot be set for one application\n"
              "filter/blockLAN must be true or false, not 'no'\n"
              "unknown setting 'filter/blokLAN'\n"
              "filter/endpoints[0] '+ b@d': invalid character '@' in domain 'b@d' (expected "
              "letters, digits, '-', '_', dots, and '*' in a glob)\n"
              "filter/endpoints[2] '+ 10.0.0.300': invalid IP address '10.0.0.300'");
}

// --- overlay_layers ---------------------------------------------------------------------------

TEST(OverlayLayers, UpperValuesWinAndLowerOnesRemain) {
    const CompiledSettings store = compile_ok(
        {{"filter/defaultAction", "ask"}, {"filter/blockLAN", true}}, SettingScope::Global);
    const CompiledSettings file = compile_ok(
        {{"filter/defaultAction", "block"}, {"filter/askTimeout", 30}}, SettingScope::Global);
    const CompiledSettings merged = overlay_layers(store, file);
    EXPECT_EQ(merged.default_action, DefaultAction::Block);
    EXPECT_EQ(merged.block_lan, true);
    EXPECT_EQ(merged.ask_timeout, std::chrono::seconds(30));
    EXPECT_EQ(merged.values, (SettingsLayer{{"filter/askTimeout", 30},
                                            {"filter/blockLAN", true},
                                            {"filter/defaultAction", "block"}}));
}

TEST(OverlayLayers, CarriesEveryKeyFromEitherSide) {
    // A key overlay_layers forgot would be lost from one of the two merges.
    const CompiledSettings all = compile_ok(every_key_changed(), SettingScope::Global);
    const firewall::FilterSettings expected = resolve_filter_settings(all, nullptr, {});
    for (const CompiledSettings& merged : {overlay_layers(all, {}), overlay_layers({}, all)}) {
        expect_same_filter_settings(resolve_filter_settings(merged, nullptr, {}), expected);
        EXPECT_EQ(resolve_dns_settings(merged).nameservers, resolve_dns_settings(all).nameservers);
        EXPECT_EQ(resolve_core_settings(merged).api_endpoints,
                  resolve_core_settings(all).api_endpoints);
        EXPECT_EQ(resolve_core_settings(merged).api_groups, resolve_core_settings(all).api_groups);
        EXPECT_EQ(merged.values, all.values);
    }
}

TEST(OverlayLayers, SharesRuleListsInsteadOfCopyingThem) {
    const CompiledSettings file =
        compile_ok({{"filter/endpoints", json(R"(["- *"])")}}, SettingScope::Global);
    EXPECT_EQ(overlay_layers({}, file).endpoints.get(), file.endpoints.get());
}

// --- resolve_filter_settings ------------------------------------------------------------------

TEST(ResolveFilterSettings, GlobalValuesOverTheDefaults) {
    const CompiledSettings global = compile_ok(every_key_changed(), SettingScope::Global);
    const firewall::FilterSettings settings = resolve_filter_settings(global, nullptr, {});
    EXPECT_EQ(settings.default_action, DefaultAction::Block);
    EXPECT_EQ(settings.endpoints.app, nullptr);
    EXPECT_EQ(settings.endpoints.global.get(), global.endpoints.get());
    EXPECT_EQ(settings.service_endpoints.global.get(), global.service_endpoints.get());
    EXPECT_TRUE(settings.block_internet && settings.block_lan && settings.block_local &&
                settings.block_p2p);
    EXPECT_FALSE(settings.block_inbound || settings.include_cnames || settings.include_subdomains ||
                 settings.remove_out_of_scope_dns || settings.remove_blocked_dns);
    EXPECT_EQ(settings.prevent_bypassing, firewall::PreventBypassing::Off);
    EXPECT_EQ(settings.permanent_verdicts, firewall::PermanentVerdicts::Off);
    EXPECT_EQ(settings.ask_timeout, std::chrono::seconds(90));
    EXPECT_EQ(settings.outbound_block_action, firewall::OutboundBlockAction::Drop);
    EXPECT_EQ(settings.dns.nameserver_endpoints,
              (std::vector<IpEndpoint>{endpoint("127.0.0.17", 5353)}));
    EXPECT_EQ(settings.origins, firewall::SettingOrigins{});
}

TEST(ResolveFilterSettings, AppValuesOverrideGlobalOnesAndSayWhere) {
    const CompiledSettings global = compile_ok(
        {{"filter/defaultAction", "block"}, {"filter/blockLAN", true}, {"filter/askTimeout", 30}},
        SettingScope::Global);
    const CompiledSettings app =
        compile_ok({{"filter/defaultAction", "permit"}, {"filter/blockInternet", true}},
                   SettingScope::Application);
    const firewall::FilterSettings settings =
        resolve_filter_settings(global, &app, {.id = "abc", .name = "curl"});
    EXPECT_EQ(settings.default_action, DefaultAction::Permit);
    EXPECT_TRUE(settings.block_internet);
    EXPECT_TRUE(settings.block_lan);                           // global
    EXPECT_EQ(settings.ask_timeout, std::chrono::seconds(30)); // global
    EXPECT_TRUE(settings.block_inbound);                       // default
    EXPECT_EQ(settings.profile, (firewall::ProfileLabel{.id = "abc", .name = "curl"}));
    EXPECT_EQ(app_origins(settings),
              (std::vector<std::string_view>{"filter/defaultAction", "filter/blockInternet"}));
}

TEST(ResolveFilterSettings, EveryPerApplicationKeyCanBeOverridden) {
    const CompiledSettings app = compile_ok(app_keys_changed(), SettingScope::Application);
    const CompiledSettings global = compile_ok(every_key_changed(), SettingScope::Global);
    const firewall::FilterSettings from_app = resolve_filter_settings({}, &app, {});
    const firewall::FilterSettings from_global = resolve_filter_settings(global, nullptr, {});
    // The same values, read by decide() in the same order; only global-only keys differ.
    firewall::FilterSettings expected = from_global;
    expected.outbound_block_action = from_app.outbound_block_action;
    expected.dns = from_app.dns;
    EXPECT_EQ(summary(from_app, RuleView::Effective), summary(expected, RuleView::Effective));
    EXPECT_NE(rules_summary(from_app.endpoints, RuleView::Layers),
              rules_summary(from_global.endpoints, RuleView::Layers));
    EXPECT_EQ(app_origins(from_app), all_app_keys());
    EXPECT_TRUE(app_origins(from_global).empty());
}

TEST(ResolveFilterSettings, RulesBecomeLayersAppThenGlobalSharedNotCopied) {
    const CompiledSettings global = compile_ok(
        {{"filter/endpoints", json(R"(["- *"])")}, {"filter/serviceEndpoints", json("[]")}},
        SettingScope::Global);
    const CompiledSettings app =
        compile_ok({{"filter/endpoints", json(R"(["+ 10.0.0.1"])")}}, SettingScope::Application);
    const firewall::FilterSettings settings = resolve_filter_settings(global, &app, {});
    EXPECT_EQ(settings.endpoints.app.get(), app.endpoints.get());
    EXPECT_EQ(settings.endpoints.global.get(), global.endpoints.get());
    EXPECT_EQ(settings.service_endpoints.app, nullptr);
    EXPECT_EQ(settings.service_endpoints.global.get(), global.service_endpoints.get());
    EXPECT_EQ(settings.origins.of(AppSetting::Endpoints), SettingLayer::App);
    EXPECT_EQ(settings.origins.of(AppSetting::ServiceEndpoints), SettingLayer::Global);
}

TEST(ResolveFilterSettings, GlobalOnlyValuesNeverComeFromTheApp) {
    // compile_layer refuses them in an application's layer; a hand-made one is ignored.
    CompiledSettings app;
    app.outbound_block_action = firewall::OutboundBlockAction::Drop;
    app.dns_listen_endpoints = std::vector<IpEndpoint>{};
    const firewall::FilterSettings settings = resolve_filter_settings({}, &app, {});
    EXPECT_EQ(settings.outbound_block_action, firewall::OutboundBlockAction::Reject);
    EXPECT_EQ(settings.dns.nameserver_endpoints, localhost_listen_endpoints(53));
}

TEST(ResolveFilterSettings, DecideReadsTheAppRulesFirstAndNamesTheLayer) {
    const CompiledSettings global = compile_ok(
        {{"filter/endpoints", json(R"(["- 10.0.0.0/8"])")}, {"filter/defaultAction", "permit"}},
        SettingScope::Global);
    const CompiledSettings app = compile_ok(
        {{"filter/endpoints", json(R"(["+ 10.0.0.1 tcp/22"])")}, {"filter/defaultAction", "block"}},
        SettingScope::Application);
    const firewall::FilterSettings curl =
        resolve_filter_settings(global, &app, {.id = "c1", .name = "curl"});
    firewall::ConnectionFacts facts;
    facts.protocol = 6;
    facts.remote_address = IpAddress::parse("10.0.0.1").value_or(IpAddress{});
    facts.remote_port = 22;
    EXPECT_EQ(firewall::decide(curl, facts).reason,
              "rule '+ 10.0.0.1 tcp/22' (app, profile 'curl')");
    facts.remote_port = 80;
    EXPECT_EQ(firewall::decide(curl, facts).reason, "rule '- 10.0.0.0/8' (global, profile 'curl')");
    facts.remote_address = IpAddress::parse("192.0.2.1").value_or(IpAddress{});
    EXPECT_EQ(firewall::decide(curl, facts).reason, "default action: block (app, profile 'curl')");
    // The same connection with the global settings alone.
    EXPECT_EQ(firewall::decide(resolve_filter_settings(global, nullptr, {}), facts).verdict,
              packet::Verdict::Accept);
}

// --- effective_setting ------------------------------------------------------------------------

// "VALUE from SOURCE", or the error.
std::string effective(std::string_view key, const LayerStack& layers) {
    auto found = effective_setting(key, layers);
    if (!found) {
        return "error: " + found.error().what;
    }
    return found->value.dump() + " from " + std::string(setting_source_name(found->source));
}

TEST(EffectiveSetting, LayersFromDefaultToApp) {
    const SettingsLayer store{{"filter/blockLAN", true}, {"filter/askTimeout", 30}};
    const SettingsLayer file{{"filter/askTimeout", 120}, {"core/apiGroups", json(R"(["adm"])")}};
    const SettingsLayer app{{"filter/askTimeout", 10}, {"core/apiGroups", json(R"(["x"])")}};
    const LayerStack layers{.store = &store, .file = &file, .app = &app};
    EXPECT_EQ(effective("filter/blockInbound", layers), "true from default");
    EXPECT_EQ(effective("filter/blockLAN", layers), "true from store");
    EXPECT_EQ(effective("filter/askTimeout", layers), "10 from app");
    // A global-only key: an application's value (which compile_layer would refuse) is ignored.
    EXPECT_EQ(effective("core/apiGroups", layers), R"(["adm"] from config file)");
    EXPECT_EQ(effective("dns/nameservers", layers), "null from default");
    // The global value: the file's wins over the store's.
    const LayerStack global{.store = &store, .file = &file, .app = nullptr};
    EXPECT_EQ(effective("filter/askTimeout", global), "120 from config file");
}

TEST(EffectiveSetting, NoLayersGiveTheDefault) {
    auto effective = effective_setting("core/listenAddress", {});
    ASSERT_TRUE(effective.has_value());
    EXPECT_EQ(effective->value, "localhost:817");
    EXPECT_EQ(effective->source, SettingSource::Default);
}

TEST(EffectiveSetting, UnknownKeyIsAnError) {
    auto effective = effective_setting("filter/nope", {});
    ASSERT_FALSE(effective.has_value());
    EXPECT_EQ(effective.error().what, "unknown setting 'filter/nope'");
}

TEST(EffectiveSetting, SourcesHaveNames) {
    EXPECT_EQ(setting_source_name(SettingSource::Default), "default");
    EXPECT_EQ(setting_source_name(SettingSource::Store), "store");
    EXPECT_EQ(setting_source_name(SettingSource::ConfigFile), "config file");
    EXPECT_EQ(setting_source_name(SettingSource::App), "app");
}

// --- describe_value ---------------------------------------------------------------------------

TEST(DescribeValue, QuotesStringsAndNamesContainers) {
    EXPECT_EQ(describe_value("x"), "'x'");
    EXPECT_EQ(describe_value(5), "5");
    EXPECT_EQ(describe_value(nullptr), "null");
    EXPECT_EQ(describe_value(json("[1]")), "a list");
    EXPECT_EQ(describe_value(json("{}")), "an object");
    EXPECT_EQ(describe_value(std::string(100, 'a')), "'" + std::string(79, 'a') + "...");
}

} // namespace
} // namespace pw::config
