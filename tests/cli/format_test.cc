#include "cli/format.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

// The human-readable tables of the client verbs, from JSON shaped like the daemon's answers
// (src/daemon/api_backend.cc, docs/api.md).

namespace pw::cli {
namespace {

using nlohmann::json;

json curl_profile() {
    return json::parse(R"({
        "id": "curl-e4a2", "name": "curl", "source": "auto",
        "fingerprints": [{"type": "path", "operation": "equals", "value": "/usr/bin/curl"}],
        "settings": {"filter/endpoints": ["- 203.0.113.5", "+ .example.com"],
                     "filter/blockLAN": true},
        "temporaryRules": [{"list": "endpoints", "rule": "+ example.org", "until": "time",
                            "expires": "2026-12-05T07:15:00.000Z"}],
        "ruleStatistics": [{"list": "endpoints", "rule": "- 203.0.113.5", "matches": 3,
                            "lastMatch": "2026-12-05T06:55:02.000Z"}],
        "created": "2026-12-01T10:00:00.000Z", "firstSeen": "2026-12-01T10:00:00.000Z",
        "lastSeen": "2026-12-05T06:55:02.000Z"})");
}

TEST(RenderTable, AlignsColumnsWithoutTrailingSpaces) {
    const Table table{.header = {"ID", "NAME", "X"},
                      .rows = {{"1", "alpha", ""}, {"22", "b", "last"}}};
    EXPECT_EQ(render_table(table),
              "ID  NAME   X\n"
              "1   alpha\n"
              "22  b      last\n");
}

TEST(RenderTable, BoldHeaderOnlyWithColour) {
    const Table table{.header = {"A"}, .rows = {{"x"}}};
    EXPECT_EQ(render_table(table, Colour::On), "\033[1mA\033[0m\nx\n");
    EXPECT_EQ(render_table(table, Colour::Off), "A\nx\n");
}

TEST(DisplayValue, StringsBareOthersAsJson) {
    EXPECT_EQ(display_value("ask"), "ask");
    EXPECT_EQ(display_value(nullptr), "-");
    EXPECT_EQ(display_value(""), "-");
    EXPECT_EQ(display_value(true), "true");
    EXPECT_EQ(display_value(5), "5");
    EXPECT_EQ(display_value(json::array({"+ a"})), R"(["+ a"])");
}

TEST(DisplayTime, DropsTheTAndMilliseconds) {
    EXPECT_EQ(display_time("2026-12-05T07:15:00.000Z"), "2026-12-05 07:15:00");
    EXPECT_EQ(display_time(nullptr), "-");
    EXPECT_EQ(display_time(""), "-");
    EXPECT_EQ(display_time("soon"), "soon");
}

TEST(DisplayUptime, LargestTwoUnits) {
    EXPECT_EQ(display_uptime(59), "59s");
    EXPECT_EQ(display_uptime(125), "2m 5s");
    EXPECT_EQ(display_uptime(7500), "2h 5m");
    EXPECT_EQ(display_uptime(3 * 86400 + 4 * 3600 + 5), "3d 4h");
}

TEST(FingerprintsSummary, PathsBareOthersSpelledOut) {
    const json fingerprints = json::parse(R"([
        {"type": "path", "operation": "equals", "value": "/usr/bin/curl"},
        {"type": "tag", "key": "script", "operation": "equals", "value": "/opt/x.py"},
        {"type": "path", "operation": "prefix", "value": "/opt/"}])");
    EXPECT_EQ(fingerprints_summary(fingerprints),
              "/usr/bin/curl, tag[script] equals /opt/x.py, path prefix /opt/");
    EXPECT_EQ(fingerprints_summary(json::array()), "-");
    EXPECT_EQ(fingerprints_summary(nullptr), "-");
}

TEST(FormatStatus, KnownFieldsFirstThenTheRestFlattened) {
    const json status = json::parse(R"({"version": "0.1.0", "uptimeSeconds": 125,
        "paused": false, "profiles": 4, "counters": {"packets": 10, "held": 0},
        "queues": [17040, 17140], "events": null})");
    EXPECT_EQ(format_status(status, Colour::Off),
              "version           0.1.0\n"
              "uptime            2m 5s\n"
              "paused            no\n"
              "counters.held     0\n"
              "counters.packets  10\n"
              "events            -\n"
              "profiles          4\n"
              "queues            [17040,17140]\n");
}

TEST(FormatStatus, SurvivesAnAnswerWithoutTheFields) {
    EXPECT_EQ(format_status(json::object(), Colour::Off),
              "version  -\n"
              "uptime   -\n"
              "paused   -\n");
}

TEST(FormatProfiles, OneRowPerProfile) {
    const json profiles = json::array({curl_profile()});
    EXPECT_EQ(format_profiles(profiles, Colour::Off),
              "ID         NAME  SOURCE  EXECUTABLE     FIRST SEEN           LAST SEEN\n"
              "curl-e4a2  curl  auto    /usr/bin/curl  2026-12-01 10:00:00  2026-12-05 06:55:02\n");
    EXPECT_EQ(format_profiles(json::array(), Colour::Off),
              "ID  NAME  SOURCE  EXECUTABLE  FIRST SEEN  LAST SEEN\n");
}

TEST(FormatRules, ListsWithStatisticsAndTemporaryRules) {
    const json rules = {{"profile", {{"id", "curl-e4a2"}, {"name", "curl"}}},
                        {"endpoints", curl_profile()["settings"]["filter/endpoints"]},
                        {"serviceEndpoints", json::array({"+ * tcp/22"})},
                        {"temporaryRules", curl_profile()["temporaryRules"]},
                        {"ruleStatistics", curl_profile()["ruleStatistics"]}};
    EXPECT_EQ(format_rules(rules, Colour::Off),
              "LIST              #  RULE            MATCHES  LAST MATCH\n"
              "endpoints         0  - 203.0.113.5   3        2026-12-05 06:55:02\n"
              "endpoints         1  + .example.com  0        -\n"
              "serviceEndpoints  0  + * tcp/22      0        -\n"
              "\n"
              "LIST       TEMPORARY RULE  UNTIL\n"
              "endpoints  + example.org   until 2026-12-05 07:15:00\n");
}

TEST(FormatRules, GlobalRulesHaveNoStatistics) {
    const json rules = {{"profile", nullptr},
                        {"endpoints", json::array({"- .tracker.example"})},
                        {"serviceEndpoints", json::array()},
                        {"temporaryRules", json::array()},
                        {"ruleStatistics", json::array()}};
    EXPECT_EQ(format_rules(rules, Colour::Off),
              "LIST       #  RULE\n"
              "endpoints  0  - .tracker.example\n");
    EXPECT_EQ(format_rules({{"profile", nullptr}}, Colour::Off), "(no rules)\n");
}

TEST(FormatProfile, ShowsIdentitySettingsAndRules) {
    const std::string shown = format_profile(curl_profile(), Colour::Off);
    EXPECT_NE(shown.find("id           curl-e4a2\n"), std::string::npos) << shown;
    EXPECT_NE(shown.find("fingerprint  /usr/bin/curl\n"), std::string::npos) << shown;
    EXPECT_NE(shown.find("  filter/blockLAN   true\n"), std::string::npos) << shown;
    EXPECT_NE(shown.find("  endpoints  0  - 203.0.113.5   3"), std::string::npos) << shown;
    EXPECT_NE(shown.find("+ example.org"), std::string::npos) << shown;
    EXPECT_EQ(shown.find(" \n"), std::string::npos) << "trailing spaces:\n" << shown;
}

TEST(FormatSettings, ListOrOne) {
    const json settings = json::parse(R"([
        {"key": "filter/defaultAction", "value": "permit", "layer": "default", "scope": "app"},
        {"key": "filter/endpoints", "value": ["- a"], "layer": "store", "scope": "app"}])");
    EXPECT_EQ(format_settings(settings, Colour::Off),
              "KEY                   VALUE    LAYER    SCOPE\n"
              "filter/defaultAction  permit   default  app\n"
              "filter/endpoints      [\"- a\"]  store    app\n");
    EXPECT_EQ(format_settings(settings[0], Colour::Off),
              "KEY                   VALUE   LAYER    SCOPE\n"
              "filter/defaultAction  permit  default  app\n");
}

json outbound_prompt() {
    return json::parse(R"({"id": 7, "profile": {"id": "curl-e4a2", "name": "curl"},
        "executable": "/usr/bin/curl", "pid": 4242, "direction": "outbound",
        "protocol": "tcp", "domain": "example.com",
        "remote": {"ip": "93.184.216.34", "port": 443}, "localPort": 50000,
        "connections": 1, "opened": "2026-12-05T07:00:00.000Z"})");
}

TEST(FormatPrompts, TableWithTheRemotePortOutboundAndTheLocalPortInbound) {
    json inbound = outbound_prompt();
    inbound["id"] = 8;
    inbound["direction"] = "inbound";
    inbound["domain"] = "";
    EXPECT_EQ(format_prompts(json::array({outbound_prompt(), inbound}), Colour::Off),
              "ID  APPLICATION  DIRECTION  PROTOCOL  DOMAIN       IP             PORT   OPENED\n"
              "7   curl         outbound   tcp       example.com  93.184.216.34  443    "
              "2026-12-05 07:00:00\n"
              "8   curl         inbound    tcp       -            93.184.216.34  50000  "
              "2026-12-05 07:00:00\n");
    EXPECT_EQ(format_prompts(json::array(), Colour::Off), "(no open prompts)\n");
}

TEST(FormatPrompt, ApplicationDomainIpPortProtocolDirection) {
    EXPECT_EQ(format_prompt(outbound_prompt()),
              "prompt       7\n"
              "application  curl (/usr/bin/curl, pid 4242)\n"
              "direction    outbound\n"
              "protocol     tcp\n"
              "domain       example.com\n"
              "ip           93.184.216.34\n"
              "port         443\n");
}

TEST(FormatPromptAnswer, SaysWhatWasDecided) {
    EXPECT_EQ(format_prompt_answer(
                  {{"id", 7}, {"verdict", "permit"}, {"for", "always"}, {"connections", 1}}),
              "prompt 7: permit always (1 connection decided)\n");
    EXPECT_EQ(
        format_prompt_answer({{"id", 7}, {"verdict", "block"}, {"for", "15m"}, {"connections", 2}}),
        "prompt 7: block 15m (2 connections decided)\n");
}

} // namespace
} // namespace pw::cli
