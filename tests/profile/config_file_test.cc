#include "profile/config_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace pw::profile {
namespace {

namespace fs = std::filesystem;
using firewall::DefaultAction;
using firewall::OutboundBlockAction;
using firewall::PermanentVerdicts;
using firewall::RuleAction;

Config parse_ok(std::string_view text) {
    auto config = parse_config(text, "config.json");
    EXPECT_TRUE(config.has_value()) << config.error().what;
    return config.value_or(Config{});
}

std::string parse_error(std::string_view text) {
    auto config = parse_config(text, "config.json");
    EXPECT_FALSE(config.has_value()) << "parsed: " << text;
    return config.has_value() ? std::string{} : config.error().what;
}

// --- Accepted files ---------------------------------------------------------------------------

TEST(ConfigFile, EmptyObjectGivesTheDefaults) {
    const Config config = parse_ok("{}");
    EXPECT_EQ(config.filter.default_action, DefaultAction::Permit);
    EXPECT_TRUE(config.filter.endpoints.empty());
    EXPECT_EQ(config.filter.permanent_verdicts, PermanentVerdicts::On);
    EXPECT_EQ(config.filter.outbound_block_action, OutboundBlockAction::Reject);
}

TEST(ConfigFile, NestedFormSetsEveryKey) {
    const Config config = parse_ok(R"({
  "filter": {
    "defaultAction": "block",
    "endpoints": ["+ 10.0.0.1 tcp/22", "- *"],
    "permanentVerdicts": false,
    "outboundBlockAction": "drop"
  }
})");
    EXPECT_EQ(config.filter.default_action, DefaultAction::Block);
    ASSERT_EQ(config.filter.endpoints.size(), 2U);
    EXPECT_EQ(config.filter.endpoints[0].text, "+ 10.0.0.1 tcp/22");
    EXPECT_EQ(config.filter.endpoints[0].action, RuleAction::Permit);
    EXPECT_EQ(config.filter.endpoints[1].action, RuleAction::Block);
    EXPECT_EQ(config.filter.permanent_verdicts, PermanentVerdicts::Off);
    EXPECT_EQ(config.filter.outbound_block_action, OutboundBlockAction::Drop);
}

TEST(ConfigFile, SlashFormIsEquivalentToNestedForm) {
    const Config slashed = parse_ok(R"({
  "filter/defaultAction": "block",
  "filter/endpoints": ["+ 10.0.0.1 tcp/22"],
  "filter/permanentVerdicts": false,
  "filter/outboundBlockAction": "drop"
})");
    const Config nested = parse_ok(R"({"filter": {"defaultAction": "block",
        "endpoints": ["+ 10.0.0.1 tcp/22"], "permanentVerdicts": false,
        "outboundBlockAction": "drop"}})");
    EXPECT_EQ(slashed.filter.default_action, nested.filter.default_action);
    EXPECT_EQ(slashed.filter.endpoints, nested.filter.endpoints);
    EXPECT_EQ(slashed.filter.permanent_verdicts, nested.filter.permanent_verdicts);
    EXPECT_EQ(slashed.filter.outbound_block_action, nested.filter.outbound_block_action);
}

TEST(ConfigFile, NestedAndSlashFormsMayBeMixedForDifferentKeys) {
    const Config config =
        parse_ok(R"({"filter": {"defaultAction": "block"}, "filter/permanentVerdicts": false})");
    EXPECT_EQ(config.filter.default_action, DefaultAction::Block);
    EXPECT_EQ(config.filter.permanent_verdicts, PermanentVerdicts::Off);
}

TEST(ConfigFile, EndpointOrderIsKept) {
    const Config config =
        parse_ok(R"({"filter/endpoints": ["- 10.0.0.1", "+ 10.0.0.0/8", "- *"]})");
    ASSERT_EQ(config.filter.endpoints.size(), 3U);
    EXPECT_EQ(config.filter.endpoints[0].text, "- 10.0.0.1");
    EXPECT_EQ(config.filter.endpoints[1].text, "+ 10.0.0.0/8");
    EXPECT_EQ(config.filter.endpoints[2].text, "- *");
}

TEST(ConfigFile, EscapedKeysAreDecoded) {
    EXPECT_EQ(parse_ok(R"({"filter\/defaultAction": "block"})").filter.default_action,
              DefaultAction::Block);
}

// --- Errors and their lines -------------------------------------------------------------------

TEST(ConfigFile, EmptyTextIsAnError) {
    EXPECT_NE(parse_error("").find("config.json: the config file is empty"), std::string::npos);
    EXPECT_NE(parse_error(" \n\t\n").find("is empty"), std::string::npos);
}

TEST(ConfigFile, SyntaxErrorNamesItsLine) {
    const std::string error = parse_error("{\n  \"filter\": {\n    \"defaultAction\": block\n}}");
    EXPECT_TRUE(error.starts_with("config.json:3: JSON syntax error: ")) << error;
}

TEST(ConfigFile, TrailingCommaIsASyntaxError) {
    const std::string error = parse_error("{\n\"filter/endpoints\": [\"- *\",]\n}");
    EXPECT_TRUE(error.starts_with("config.json:2: JSON syntax error: ")) << error;
}

TEST(ConfigFile, UnterminatedDocumentIsASyntaxErrorOnTheLastLine) {
    const std::string error = parse_error("{\n\"filter\": {\n");
    EXPECT_TRUE(error.starts_with("config.json:3: JSON syntax error: ")) << error;
}

TEST(ConfigFile, HugeNumberIsASyntaxErrorNotACrash) {
    const std::string error = parse_error("{\n\"x\": 1e999}");
    EXPECT_TRUE(error.starts_with("config.json:2: JSON syntax error: ")) << error;
}

TEST(ConfigFile, TopLevelMustBeAnObject) {
    EXPECT_EQ(parse_error("\n[\"- *\"]"),
              "config.json:2: the top level must be a JSON object of settings, not a list");
    EXPECT_EQ(parse_error("\"block\""),
              "config.json:1: the top level must be a JSON object of settings, not a string");
}

TEST(ConfigFile, UnknownKeyIsAnErrorWithItsLine) {
    EXPECT_EQ(parse_error("{\n  \"filter\": {\n    \"defaultActoin\": \"block\"\n  }\n}"),
              "config.json:3: unknown setting 'filter/defaultActoin'");
}

TEST(ConfigFile, UnknownSlashKeyIsAnError) {
    EXPECT_EQ(parse_error("{\"filter/defaultActoin\": \"block\"}"),
              "config.json:1: unknown setting 'filter/defaultActoin'");
}

TEST(ConfigFile, UnknownTopLevelSectionIsAnError) {
    EXPECT_EQ(parse_error("{\n\"dns\": {\"upstream\": \"1.1.1.1\"}}"),
              "config.json:2: unknown setting 'dns'");
}

TEST(ConfigFile, SectionThatIsNotAnObjectIsAnError) {
    EXPECT_EQ(parse_error("{\"filter\": \"block\"}"),
              "config.json:1: filter must be an object of settings, not 'block'");
}

TEST(ConfigFile, UnknownKeyLineIsFoundEvenWhenTheSameNameAppearsEarlier) {
    // "mode" appears as a value on line 2 and as a key on line 3.
    EXPECT_EQ(parse_error("{\n\"filter/defaultAction\": \"mode\",\n\"mode\": 1}"),
              "config.json:2: filter/defaultAction must be permit or block, not 'mode'\n"
              "config.json:3: unknown setting 'mode'");
}

TEST(ConfigFile, SamePathTwiceInNestedAndSlashFormIsAnError) {
    EXPECT_EQ(parse_error("{\n\"filter\": {\"defaultAction\": \"block\"},\n"
                          "\"filter/defaultAction\": \"permit\"\n}"),
              "config.json:3: 'filter/defaultAction' is given twice (first on line 2)");
}

TEST(ConfigFile, SameKeyTwiceInOneObjectIsAnError) {
    EXPECT_EQ(parse_error("{\"filter\": {\n\"defaultAction\": \"block\",\n"
                          "\"defaultAction\": \"permit\"}}"),
              "config.json:3: 'filter/defaultAction' is given twice (first on line 2)");
}

TEST(ConfigFile, WrongTypeForABoolIsAnError) {
    EXPECT_EQ(parse_error("{\"filter\": {\n\"permanentVerdicts\": \"yes\"}}"),
              "config.json:2: filter/permanentVerdicts must be true or false, not 'yes'");
}

TEST(ConfigFile, BadDefaultActionNamesTheChoices) {
    EXPECT_EQ(parse_error("{\"filter/defaultAction\": \"allow\"}"),
              "config.json:1: filter/defaultAction must be permit or block, not 'allow'");
    EXPECT_EQ(parse_error("{\"filter/defaultAction\": 1}"),
              "config.json:1: filter/defaultAction must be permit or block, not 1");
}

TEST(ConfigFile, AskSaysPromptingIsNotAvailableYet) {
    const std::string error = parse_error(R"({"filter/defaultAction": "ask"})");
    EXPECT_NE(error.find("'ask' is not available yet"), std::string::npos) << error;
    EXPECT_NE(error.find("prompting"), std::string::npos) << error;
}

TEST(ConfigFile, BadOutboundBlockActionNamesTheChoices) {
    EXPECT_EQ(parse_error("{\"filter/outboundBlockAction\": \"block\"}"),
              "config.json:1: filter/outboundBlockAction must be reject or drop, not 'block'");
}

TEST(ConfigFile, EndpointsMustBeAList) {
    EXPECT_EQ(parse_error("{\"filter/endpoints\": \"- *\"}"),
              "config.json:1: filter/endpoints must be a list of rule strings, not '- *'");
}

TEST(ConfigFile, EndpointThatIsNotAStringIsAnError) {
    EXPECT_EQ(parse_error("{\"filter/endpoints\": [\"- *\", 5]}"),
              "config.json:1: filter/endpoints[1] must be a rule string, not 5");
}

TEST(ConfigFile, BadRuleNamesItsLineIndexAndReason) {
    const std::string text = R"({
  "filter": {
    "endpoints": [
      "+ 10.0.0.1 tcp/22",
      "- * udp/5000-6000",
      "+ 10.0.0.300"
    ]
  }
})";
    EXPECT_EQ(parse_error(text),
              "config.json:6: filter/endpoints[2] '+ 10.0.0.300': invalid IP address '10.0.0.300'");
}

TEST(ConfigFile, EveryBadRuleIsReportedInFileOrder) {
    const std::string text =
        "{\"filter/endpoints\": [\n\"+ example.com\",\n\"- * tcp/9-1\",\n"
        "\"+ example.com\"\n]}";
    EXPECT_EQ(parse_error(text),
              "config.json:2: filter/endpoints[0] '+ example.com': unsupported entity "
              "'example.com': expected *, an IP address or a CIDR (domains and scopes come in a "
              "later version)\n"
              "config.json:3: filter/endpoints[1] '- * tcp/9-1': port range 9-1 is reversed\n"
              "config.json:4: filter/endpoints[2] '+ example.com': unsupported entity "
              "'example.com': expected *, an IP address or a CIDR (domains and scopes come in a "
              "later version)");
}

TEST(ConfigFile, RuleLineIsExactEvenWithEscapesAndRepeatedText) {
    // The same rule text occurs in a key-like position earlier; the escaped quote shifts offsets.
    const std::string text =
        "{\"filter\": {\"defaultAction\": \"block\",\n"
        "\"endpoints\": [\"- * \\\"x\\\"\",\n\"- bad\"]}}";
    const std::string error = parse_error(text);
    EXPECT_NE(error.find("config.json:2: filter/endpoints[0]"), std::string::npos) << error;
    EXPECT_NE(error.find("config.json:3: filter/endpoints[1] '- bad'"), std::string::npos) << error;
}

TEST(ConfigFile, ErrorsFromDifferentKeysAreAllReported) {
    const std::string error = parse_error(
        "{\n\"filter/defaultAction\": \"allow\",\n\"filter/permanentVerdicts\": 1,\n\"x\": 0\n}");
    EXPECT_EQ(error,
              "config.json:2: filter/defaultAction must be permit or block, not 'allow'\n"
              "config.json:3: filter/permanentVerdicts must be true or false, not 1\n"
              "config.json:4: unknown setting 'x'");
}

TEST(ConfigFile, LongValuesAreShortenedInErrors) {
    const std::string error =
        parse_error(R"({"filter/defaultAction": ")" + std::string(500, 'a') + R"("})");
    EXPECT_LT(error.size(), 200U) << error;
    EXPECT_NE(error.find("..."), std::string::npos);
}

TEST(ConfigFile, SourceNameIsUsedAsGiven) {
    auto config = parse_config("{\"x\": 1}", "/etc/portwarden/config.json");
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().what, "/etc/portwarden/config.json:1: unknown setting 'x'");
}

TEST(ConfigFile, NothingIsHalfAppliedWhenOneRuleIsBad) {
    // Good settings before and after the bad rule: the result is still only an error.
    auto config = parse_config(R"({"filter/defaultAction": "block",
        "filter/endpoints": ["+ 10.0.0.1", "+ bad", "- *"], "filter/permanentVerdicts": false})",
                               "config.json");
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().what,
              "config.json:2: filter/endpoints[1] '+ bad': unsupported entity 'bad': expected *, "
              "an IP address or a CIDR (domains and scopes come in a later version)");
}

TEST(ConfigFile, SectionGivenTwiceIsCombined) {
    const Config config = parse_ok(
        R"({"filter": {"defaultAction": "block"}, "filter": {"permanentVerdicts": false}})");
    EXPECT_EQ(config.filter.default_action, DefaultAction::Block);
    EXPECT_EQ(config.filter.permanent_verdicts, PermanentVerdicts::Off);
}

TEST(ConfigFile, DeeplyNestedInputIsAnErrorNotACrash) {
    const std::string depth(100000, '[');
    const std::string undepth(100000, ']');
    EXPECT_EQ(parse_error("{\"filter/endpoints\": [" + depth + undepth + "]}"),
              "config.json:1: filter/endpoints[0] must be a rule string, not a list");
    EXPECT_EQ(parse_error("{\"x\": " + depth + undepth + "}"),
              "config.json:1: unknown setting 'x'");
}

TEST(ConfigFile, NullIsNotADefault) {
    EXPECT_EQ(parse_error("{\"filter/outboundBlockAction\": null}"),
              "config.json:1: filter/outboundBlockAction must be reject or drop, not null");
}

// --- Files ------------------------------------------------------------------------------------

class ConfigFileOnDisk : public ::testing::Test {
protected:
    void SetUp() override { fs::create_directories(directory_); }
    void TearDown() override { fs::remove_all(directory_); }

    fs::path write(std::string_view name, std::string_view text) {
        const fs::path path = directory_ / name;
        std::ofstream(path) << text;
        return path;
    }

    fs::path directory_ =
        fs::temp_directory_path() / ("pw-config-test-" + std::to_string(::getpid()));
};

TEST_F(ConfigFileOnDisk, LoadsAFile) {
    const fs::path path = write("config.json", R"({"filter": {"defaultAction": "block"}})");
    auto config = load_config_file(path);
    ASSERT_TRUE(config.has_value()) << config.error().what;
    EXPECT_EQ(config->filter.default_action, DefaultAction::Block);
}

TEST_F(ConfigFileOnDisk, ErrorsNameThePath) {
    const fs::path path = write("bad.json", "{\n\"filter/defaultActoin\": \"block\"}");
    auto config = load_config_file(path);
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().what, path.string() + ":2: unknown setting 'filter/defaultActoin'");
}

TEST_F(ConfigFileOnDisk, MissingFileIsAnErrorWithTheOsReason) {
    const fs::path path = directory_ / "missing.json";
    auto config = load_config_file(path);
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().message(),
              "cannot read config file " + path.string() + ": No such file or directory");
}

TEST_F(ConfigFileOnDisk, DirectoryIsAnError) {
    auto config = load_config_file(directory_);
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().message(),
              "cannot read config file " + directory_.string() + ": Is a directory");
}

TEST_F(ConfigFileOnDisk, EmptyFileIsAnError) {
    const fs::path path = write("empty.json", "");
    auto config = load_config_file(path);
    ASSERT_FALSE(config.has_value());
    EXPECT_NE(config.error().what.find("is empty"), std::string::npos);
}

} // namespace
} // namespace pw::profile
