#include "config/config_file.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "firewall/decide.h"

namespace pw::config {
namespace {

namespace fs = std::filesystem;
using firewall::DefaultAction;
using firewall::IpEndpoint;
using firewall::OutboundBlockAction;
using firewall::PermanentVerdicts;
using firewall::PreventBypassing;
using firewall::RuleAction;

IpEndpoint endpoint(std::string_view address, std::uint16_t port) {
    auto parsed = IpAddress::parse(address);
    EXPECT_TRUE(parsed.has_value()) << address;
    return IpEndpoint{.address = parsed.value_or(IpAddress{}), .port = port};
}

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

// The global rules of `filter/endpoints` (the config file is the global layer).
const firewall::RuleList& global_rules(const Config& config) {
    static const firewall::RuleList kNone;
    return config.filter.endpoints.global ? *config.filter.endpoints.global : kNone;
}

TEST(ConfigFile, EmptyObjectGivesTheDefaults) {
    const Config config = parse_ok("{}");
    EXPECT_EQ(config.filter.default_action, DefaultAction::Permit);
    EXPECT_TRUE(global_rules(config).empty());
    EXPECT_EQ(config.filter.permanent_verdicts, PermanentVerdicts::On);
    EXPECT_EQ(config.filter.outbound_block_action, OutboundBlockAction::Reject);
    EXPECT_EQ(config.filter.prevent_bypassing, PreventBypassing::On);
    EXPECT_EQ(config.filter.dns.nameserver_endpoints,
              (std::vector<IpEndpoint>{endpoint("127.0.0.17", 53), endpoint("::1", 53)}));
    EXPECT_EQ(config.filter.dns.astray, firewall::AstrayDns::Redirect);
    EXPECT_TRUE(config.dns.nameservers.empty());
}

TEST(ConfigFile, DefaultConfigIsWhatAnEmptyFileGives) {
    const Config parsed = parse_ok("{}");
    const Config constructed;
    EXPECT_EQ(constructed.filter.dns, parsed.filter.dns);
    EXPECT_EQ(constructed.filter.prevent_bypassing, parsed.filter.prevent_bypassing);
    EXPECT_EQ(constructed.dns.nameservers, parsed.dns.nameservers);
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
    ASSERT_EQ(global_rules(config).size(), 2U);
    EXPECT_EQ(global_rules(config)[0].text, "+ 10.0.0.1 tcp/22");
    EXPECT_EQ(global_rules(config)[0].action, RuleAction::Permit);
    EXPECT_EQ(global_rules(config)[1].action, RuleAction::Block);
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
    EXPECT_EQ(global_rules(slashed), global_rules(nested));
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
    ASSERT_EQ(global_rules(config).size(), 3U);
    EXPECT_EQ(global_rules(config)[0].text, "- 10.0.0.1");
    EXPECT_EQ(global_rules(config)[1].text, "+ 10.0.0.0/8");
    EXPECT_EQ(global_rules(config)[2].text, "- *");
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
    EXPECT_EQ(parse_error("{\n\"history\": {\"enable\": true}}"),
              "config.json:2: unknown setting 'history'");
}

TEST(ConfigFile, UnknownDnsKeyIsAnError) {
    EXPECT_EQ(parse_error("{\"dns\": {\n\"upstream\": \"1.1.1.1\"}}"),
              "config.json:2: unknown setting 'dns/upstream'");
    EXPECT_EQ(parse_error("{\"dns/redirectAstray\": false}"),
              "config.json:1: unknown setting 'dns/redirectAstray'");
}

TEST(ConfigFile, SectionThatIsNotAnObjectIsAnError) {
    EXPECT_EQ(parse_error("{\"filter\": \"block\"}"),
              "config.json:1: filter must be an object of settings, not 'block'");
}

TEST(ConfigFile, UnknownKeyLineIsFoundEvenWhenTheSameNameAppearsEarlier) {
    // "mode" appears as a value on line 2 and as a key on line 3.
    EXPECT_EQ(parse_error("{\n\"filter/defaultAction\": \"mode\",\n\"mode\": 1}"),
              "config.json:2: filter/defaultAction must be permit, block or ask, not 'mode'\n"
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
              "config.json:1: filter/defaultAction must be permit, block or ask, not 'allow'");
    EXPECT_EQ(parse_error("{\"filter/defaultAction\": 1}"),
              "config.json:1: filter/defaultAction must be permit, block or ask, not 1");
}

TEST(ConfigFile, AskIsADefaultAction) {
    EXPECT_EQ(parse_ok(R"({"filter/defaultAction": "ask"})").filter.default_action,
              firewall::DefaultAction::Ask);
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
        "{\"filter/endpoints\": [\n\"+ exa$mple.com\",\n\"- * tcp/9-1\",\n"
        "\"+ 10.0.0.9-10.0.0.1\"\n]}";
    EXPECT_EQ(parse_error(text),
              "config.json:2: filter/endpoints[0] '+ exa$mple.com': invalid character '$' in "
              "domain 'exa$mple.com' (expected letters, digits, '-', '_', dots, and '*' in a "
              "glob)\n"
              "config.json:3: filter/endpoints[1] '- * tcp/9-1': port range 9-1 is reversed (9 "
              "is above 1)\n"
              "config.json:4: filter/endpoints[2] '+ 10.0.0.9-10.0.0.1': IP range "
              "'10.0.0.9-10.0.0.1' is reversed (10.0.0.9 is above 10.0.0.1)");
}

TEST(ConfigFile, DomainRulesAreAccepted) {
    using firewall::DomainMatch;
    using firewall::DomainPattern;
    const Config config = parse_ok(
        R"({"filter/endpoints": ["- .tracker.example", "+ Example.COM. tcp/443", "- *.ads.*"]})");
    ASSERT_EQ(global_rules(config).size(), 3U);
    const firewall::Entity zone =
        DomainPattern{.match = DomainMatch::Zone, .pattern = "tracker.example"};
    const firewall::Entity exact =
        DomainPattern{.match = DomainMatch::Exact, .pattern = "example.com"};
    EXPECT_EQ(global_rules(config)[0].entity, zone);
    EXPECT_EQ(global_rules(config)[1].entity, exact);
    EXPECT_EQ(global_rules(config)[2].text, "- *.ads.*");
}

TEST(ConfigFile, BadDomainRuleNamesItsLineIndexAndToken) {
    EXPECT_EQ(parse_error("{\"filter/endpoints\": [\n\"- ok.example\",\n\"- a..b\"]}"),
              "config.json:3: filter/endpoints[1] '- a..b': empty label in domain 'a..b' (two "
              "dots in a row, or a dot where a name should start)");
}

// --- filter/preventBypassing ------------------------------------------------------------------

TEST(ConfigFile, PreventBypassingCanBeTurnedOff) {
    EXPECT_EQ(parse_ok(R"({"filter": {"preventBypassing": false}})").filter.prevent_bypassing,
              PreventBypassing::Off);
    EXPECT_EQ(parse_ok(R"({"filter/preventBypassing": true})").filter.prevent_bypassing,
              PreventBypassing::On);
}

TEST(ConfigFile, PreventBypassingMustBeABool) {
    EXPECT_EQ(parse_error("{\n\"filter/preventBypassing\": \"yes\"}"),
              "config.json:2: filter/preventBypassing must be true or false, not 'yes'");
}

TEST(ConfigFile, PreventBypassingReachesDecide) {
    const Config config = parse_ok(R"({"filter/preventBypassing": false})");
    firewall::ConnectionFacts facts;
    facts.protocol = 6;
    facts.remote_address = IpAddress::parse("203.0.113.5").value_or(IpAddress{});
    facts.remote_port = 853;
    EXPECT_EQ(firewall::decide(config.filter, facts).verdict, packet::Verdict::Accept);
    EXPECT_EQ(firewall::decide(parse_ok("{}").filter, facts).reason,
              "prevent bypassing: DNS over TLS");
}

// --- dns/nameservers --------------------------------------------------------------------------

TEST(ConfigFile, NameserversAreParsedInOrder) {
    const Config config = parse_ok(R"({"dns": {"nameservers": [
        "dot://dns.example?ip=192.0.2.53",
        "dns://[2001:db8::53]:5353",
        "tcp://192.0.2.54"
    ]}})");
    ASSERT_EQ(config.dns.nameservers.size(), 3U);
    EXPECT_EQ(config.dns.nameservers[0].protocol, dns::UpstreamProtocol::Tls);
    EXPECT_EQ(config.dns.nameservers[0].tls_name, "dns.example");
    EXPECT_EQ(config.dns.nameservers[0].address.to_string(), "192.0.2.53");
    EXPECT_EQ(config.dns.nameservers[0].port, 853);
    EXPECT_EQ(config.dns.nameservers[1].protocol, dns::UpstreamProtocol::Udp);
    EXPECT_EQ(config.dns.nameservers[1].port, 5353);
    EXPECT_EQ(config.dns.nameservers[2].protocol, dns::UpstreamProtocol::Tcp);
    EXPECT_EQ(config.dns.nameservers[2].url, "tcp://192.0.2.54");
}

TEST(ConfigFile, NameserverSlashKeyIsEquivalent) {
    EXPECT_EQ(parse_ok(R"({"dns/nameservers": ["dns://192.0.2.53"]})").dns.nameservers,
              parse_ok(R"({"dns": {"nameservers": ["dns://192.0.2.53"]}})").dns.nameservers);
}

TEST(ConfigFile, BadNameserverNamesItsLineIndexAndTheParsersReason) {
    const std::string text = "{\"dns/nameservers\": [\n\"dns://192.0.2.53\",\n\"ftp://x\"\n]}";
    const std::string error = parse_error(text);
    EXPECT_TRUE(error.starts_with("config.json:3: dns/nameservers[1]: ")) << error;
    const auto parser = dns::parse_upstream_url("ftp://x");
    ASSERT_FALSE(parser.has_value());
    // The parser's own message, without its "dns/nameservers: " prefix given twice.
    std::string reason = parser.error().what;
    if (reason.starts_with("dns/nameservers: ")) {
        reason.erase(0, std::string_view("dns/nameservers: ").size());
    }
    EXPECT_EQ(error, "config.json:3: dns/nameservers[1]: " + reason);
    EXPECT_EQ(error.find("dns/nameservers: "), std::string::npos) << error;
}

TEST(ConfigFile, EveryBadNameserverIsReported) {
    const std::string error =
        parse_error("{\"dns/nameservers\": [\n\"dns://x\",\n5,\n\"dns://192.0.2.1:0\"]}");
    EXPECT_NE(error.find("config.json:2: dns/nameservers[0]: "), std::string::npos) << error;
    EXPECT_NE(error.find("config.json:1: dns/nameservers[1] must be a URL string, not 5"),
              std::string::npos)
        << error;
    EXPECT_NE(error.find("config.json:4: dns/nameservers[2]: "), std::string::npos) << error;
}

TEST(ConfigFile, ElementLinesStayRightAfterANonStringElement) {
    const std::string error =
        parse_error("{\"filter/endpoints\": [\n\"- *\",\n5,\n\"- *\",\n\"- b@d\"\n]}");
    EXPECT_NE(error.find("config.json:1: filter/endpoints[1] must be a rule string, not 5"),
              std::string::npos)
        << error;
    EXPECT_NE(error.find("config.json:5: filter/endpoints[3] '- b@d'"), std::string::npos) << error;
}

TEST(ConfigFile, NameserversMustBeANonEmptyList) {
    EXPECT_EQ(parse_error("{\"dns/nameservers\": \"dns://192.0.2.53\"}"),
              "config.json:1: dns/nameservers must be a list of URL strings such as "
              "[\"dns://192.0.2.53\"], not 'dns://192.0.2.53'");
    EXPECT_EQ(parse_error("{\n\"dns/nameservers\": []}"),
              "config.json:2: dns/nameservers is an empty list (name at least one upstream, or "
              "leave the setting out)");
}

// --- dns/listenAddress ------------------------------------------------------------------------

TEST(ConfigFile, ListenAddressFillsTheNameserverEndpoints) {
    const Config config = parse_ok(R"({"dns": {"listenAddress": "127.0.0.1:5353"}})");
    EXPECT_EQ(config.filter.dns.nameserver_endpoints,
              (std::vector<IpEndpoint>{endpoint("127.0.0.1", 5353)}));
}

TEST(ConfigFile, ListenAddressOffMeansNoNameserver) {
    EXPECT_TRUE(
        parse_ok(R"({"dns": {"listenAddress": "off"}})").filter.dns.nameserver_endpoints.empty());
    EXPECT_FALSE(parse_ok("{}").filter.dns.nameserver_endpoints.empty());
}

TEST(ConfigFile, ListenAddressReachesDecide) {
    const Config config = parse_ok(R"({"dns/listenAddress": "[::1]:5300"})");
    firewall::ConnectionFacts facts;
    facts.protocol = 17;
    facts.ip_family = IpFamily::V6;
    facts.local_address = IpAddress::parse("::1").value_or(IpAddress{});
    facts.remote_address = facts.local_address;
    facts.remote_port = 5300;
    EXPECT_EQ(firewall::decide(config.filter, facts).reason, "query to portwarden's nameserver");
}

// Issue 10: our own nameserver as the upstream would send every query back to us.
TEST(ConfigFile, OwnListenAddressAsNameserverIsRefusedOnItsLine) {
    EXPECT_EQ(parse_error("{\"dns/nameservers\": [\n\"dns://192.0.2.53\",\n"
                          "\"dns://127.0.0.17\"\n]}"),
              "config.json:3: dns/nameservers[1] 'dns://127.0.0.17' is portwarden's own "
              "nameserver (dns/listenAddress 127.0.0.17:53): every query would come back to it "
              "and fail; name the server portwarden should ask, such as your router or your "
              "provider's resolver");
    // Every protocol and both listen endpoints of localhost; an IPv4-mapped spelling too.
    EXPECT_NE(parse_error(R"({"dns/nameservers": ["tcp://[::1]:53"]})").find("[::1]:53"),
              std::string::npos);
    EXPECT_NE(parse_error(R"({"dns/nameservers": ["dns://[::ffff:127.0.0.17]"]})")
                  .find("own nameserver (dns/listenAddress 127.0.0.17:53)"),
              std::string::npos);
    EXPECT_NE(parse_error(R"({"dns/nameservers": ["dot://me.example:5300?ip=10.0.0.5"],
                             "dns/listenAddress": "10.0.0.5:5300"})")
                  .find("dns/nameservers[0] 'dot://me.example:5300?ip=10.0.0.5' is portwarden's"),
              std::string::npos);
}

TEST(ConfigFile, NameserversOnOtherPortsOrAddressesAreNotOurs) {
    EXPECT_EQ(parse_ok(R"({"dns/nameservers": ["dns://127.0.0.17:5353", "dns://127.0.0.1"]})")
                  .dns.nameservers.size(),
              2U);
    EXPECT_EQ(parse_ok(R"({"dns/nameservers": ["dns://127.0.0.17"],
                          "dns/listenAddress": "127.0.0.18:53"})")
                  .dns.nameservers.size(),
              1U);
    // No nameserver of ours: nothing to come back to.
    EXPECT_EQ(parse_ok(R"({"dns/nameservers": ["dns://127.0.0.17"], "dns/listenAddress": "off"})")
                  .dns.nameservers.size(),
              1U);
}

TEST(ConfigFile, BadListenAddressNamesItsLine) {
    EXPECT_EQ(parse_error("{\n\"dns\": {\n\"listenAddress\": \"localhost\"}}"),
              "config.json:3: dns/listenAddress 'localhost' has no port (expected e.g. "
              "localhost:53, 127.0.0.17:53 or [::1]:53)");
    EXPECT_EQ(parse_error("{\"dns/listenAddress\": 53}"),
              "config.json:1: dns/listenAddress must be a string such as \"localhost:53\", not 53");
}

TEST(ConfigFile, RuleLineIsExactEvenWithEscapesAndRepeatedText) {
    // The same rule text occurs in a key-like position earlier; the escaped quote shifts offsets.
    const std::string text =
        "{\"filter\": {\"defaultAction\": \"block\",\n"
        "\"endpoints\": [\"- * \\\"x\\\"\",\n\"- b@d\"]}}";
    const std::string error = parse_error(text);
    EXPECT_NE(error.find("config.json:2: filter/endpoints[0]"), std::string::npos) << error;
    EXPECT_NE(error.find("config.json:3: filter/endpoints[1] '- b@d'"), std::string::npos) << error;
}

TEST(ConfigFile, ErrorsFromDifferentKeysAreAllReported) {
    const std::string error = parse_error(
        "{\n\"filter/defaultAction\": \"allow\",\n\"filter/permanentVerdicts\": 1,\n\"x\": 0\n}");
    EXPECT_EQ(error,
              "config.json:2: filter/defaultAction must be permit, block or ask, not 'allow'\n"
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
        "filter/endpoints": ["+ 10.0.0.1", "+ b@d", "- *"], "filter/permanentVerdicts": false})",
                               "config.json");
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().what,
              "config.json:2: filter/endpoints[1] '+ b@d': invalid character '@' in domain 'b@d' "
              "(expected letters, digits, '-', '_', dots, and '*' in a glob)");
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

// --- Keys of issue 9: per-application keys (the file sets their global value), core/* ----------

// Every per-application key of issue 9 and the core keys, nested; kAllNewKeysSlashed is the same.
constexpr std::string_view kAllNewKeysNested = R"({
  "filter": {
    "serviceEndpoints": ["+ * tcp/22", "- *"],
    "blockInternet": true,
    "blockLAN": true,
    "blockLocal": true,
    "blockInbound": false,
    "blockP2P": true,
    "includeCNAMEs": false,
    "includeSubdomains": false,
    "removeOutOfScopeDNS": false,
    "removeBlockedDNS": false,
    "askTimeout": 300
  },
  "core": {
    "listenAddress": "[::1]:8817",
    "apiGroups": ["portwarden", "adm"]
  }
})";
constexpr std::string_view kAllNewKeysSlashed = R"({
  "filter/serviceEndpoints": ["+ * tcp/22", "- *"],
  "filter/blockInternet": true,
  "filter/blockLAN": true,
  "filter/blockLocal": true,
  "filter/blockInbound": false,
  "filter/blockP2P": true,
  "filter/includeCNAMEs": false,
  "filter/includeSubdomains": false,
  "filter/removeOutOfScopeDNS": false,
  "filter/removeBlockedDNS": false,
  "filter/askTimeout": 300,
  "core/listenAddress": "[::1]:8817",
  "core/apiGroups": ["portwarden", "adm"]
})";

TEST(ConfigFile, NewKeysAreReadIntoTheGlobalSettings) {
    const Config config = parse_ok(kAllNewKeysNested);
    const firewall::FilterSettings& filter = config.filter;
    ASSERT_NE(filter.service_endpoints.global, nullptr);
    ASSERT_EQ(filter.service_endpoints.global->size(), 2U);
    EXPECT_EQ((*filter.service_endpoints.global)[0].text, "+ * tcp/22");
    EXPECT_EQ(filter.service_endpoints.app, nullptr);
    EXPECT_TRUE(filter.block_internet && filter.block_lan && filter.block_local &&
                filter.block_p2p);
    EXPECT_FALSE(filter.block_inbound || filter.include_cnames || filter.include_subdomains ||
                 filter.remove_out_of_scope_dns || filter.remove_blocked_dns);
    EXPECT_EQ(filter.ask_timeout, std::chrono::seconds(300));
    // The file is the global layer: nothing in it is an application's own value.
    EXPECT_EQ(filter.origins, firewall::SettingOrigins{});
    EXPECT_TRUE(filter.profile.id.empty());
    EXPECT_EQ(config.core.api_endpoints, (std::vector<IpEndpoint>{endpoint("::1", 8817)}));
    EXPECT_EQ(config.core.api_groups, (std::vector<std::string>{"portwarden", "adm"}));
}

TEST(ConfigFile, NewKeysInSlashFormAreEquivalent) {
    const Config nested = parse_ok(kAllNewKeysNested);
    const Config slashed = parse_ok(kAllNewKeysSlashed);
    EXPECT_EQ(nested.file_layer.values, slashed.file_layer.values);
    EXPECT_EQ(nested.filter.block_p2p, slashed.filter.block_p2p);
    EXPECT_EQ(nested.filter.ask_timeout, slashed.filter.ask_timeout);
    EXPECT_EQ(nested.core.api_endpoints, slashed.core.api_endpoints);
    EXPECT_EQ(nested.core.api_groups, slashed.core.api_groups);
}

TEST(ConfigFile, CoreDefaultsAreTheLocalApiForThePortwardenGroup) {
    const Config config = parse_ok("{}");
    EXPECT_EQ(config.core.api_endpoints,
              (std::vector<IpEndpoint>{endpoint("127.0.0.1", 817), endpoint("::1", 817)}));
    EXPECT_EQ(config.core.api_groups, std::vector<std::string>{"portwarden"});
    EXPECT_EQ(Config{}.core.api_endpoints, config.core.api_endpoints);
    EXPECT_TRUE(parse_ok(R"({"core/listenAddress": "off"})").core.api_endpoints.empty());
    EXPECT_TRUE(parse_ok(R"({"core/apiGroups": []})").core.api_groups.empty());
}

TEST(ConfigFile, FileLayerHoldsExactlyTheKeysTheFileSetAsWritten) {
    const Config config = parse_ok(R"({"filter": {"defaultAction": "ask", "askTimeout": 30},
        "dns/listenAddress": "off", "filter/endpoints": ["- *"]})");
    EXPECT_EQ(config.file_layer.values,
              (SettingsLayer{{"dns/listenAddress", "off"},
                             {"filter/askTimeout", 30},
                             {"filter/defaultAction", "ask"},
                             {"filter/endpoints", nlohmann::json::array({"- *"})}}));
    EXPECT_EQ(config.file_layer.default_action, DefaultAction::Ask);
    EXPECT_EQ(config.file_layer.endpoints.get(), config.filter.endpoints.global.get());
    EXPECT_FALSE(config.file_layer.block_lan.has_value());
    EXPECT_TRUE(parse_ok("{}").file_layer.values.empty());
}

TEST(ConfigFile, FileLayerCompilesAgainToTheSameSettings) {
    // What the file set, handed to the settings store as a layer, means the same thing.
    const Config config = parse_ok(kAllNewKeysSlashed);
    auto compiled = compile_layer(config.file_layer.values, SettingScope::Global);
    ASSERT_TRUE(compiled.has_value()) << compiled.error().what;
    const firewall::FilterSettings again = resolve_filter_settings(*compiled, nullptr, {});
    EXPECT_EQ(again.block_p2p, config.filter.block_p2p);
    EXPECT_EQ(again.ask_timeout, config.filter.ask_timeout);
    EXPECT_EQ(again.service_endpoints.global->size(),
              config.filter.service_endpoints.global->size());
    EXPECT_EQ(resolve_core_settings(*compiled).api_endpoints, config.core.api_endpoints);
}

TEST(ConfigFile, BadNewBooleansNameTheirLine) {
    EXPECT_EQ(parse_error("{\"filter\": {\n\"blockInternet\": \"yes\",\n\"blockP2P\": 0}}"),
              "config.json:2: filter/blockInternet must be true or false, not 'yes'\n"
              "config.json:3: filter/blockP2P must be true or false, not 0");
}

TEST(ConfigFile, BadAskTimeoutNamesItsLine) {
    EXPECT_EQ(parse_error("{\n\"filter/askTimeout\": \"90s\"}"),
              "config.json:2: filter/askTimeout must be a whole number of seconds from 1 to "
              "3600, not '90s'");
    EXPECT_EQ(parse_error("{\"filter\": {\n\"askTimeout\": 0}}"),
              "config.json:2: filter/askTimeout must be a whole number of seconds from 1 to "
              "3600, not 0");
    EXPECT_EQ(parse_error("{\"filter/askTimeout\": 3601}"),
              "config.json:1: filter/askTimeout must be a whole number of seconds from 1 to "
              "3600, not 3601");
}

TEST(ConfigFile, BadServiceRuleNamesItsElementLine) {
    EXPECT_EQ(parse_error("{\"filter/serviceEndpoints\": [\n\"+ * tcp/22\",\n\"+ * tcp/0-\"]}"),
              "config.json:3: filter/serviceEndpoints[1] '+ * tcp/0-': " +
                  firewall::parse_endpoint_rule("+ * tcp/0-").error().what);
    EXPECT_EQ(parse_error("{\"filter/serviceEndpoints\": {}}"),
              "config.json:1: filter/serviceEndpoints must be a list of rule strings, not an "
              "object");
}

TEST(ConfigFile, BadCoreValuesNameTheirLine) {
    EXPECT_EQ(parse_error("{\"core\": {\n\"listenAddress\": \"0.0.0.0:817\"}}"),
              "config.json:2: core/listenAddress '0.0.0.0:817': 0.0.0.0 would listen on every "
              "address; give one address, such as 127.0.0.1 or a LAN address, or localhost");
    EXPECT_EQ(parse_error("{\"core/listenAddress\": 817}"),
              "config.json:1: core/listenAddress must be a string such as \"localhost:817\", "
              "not 817");
    EXPECT_EQ(parse_error("{\"core/apiGroups\": [\n\"portwarden\",\n\"bad group\",\n7]}"),
              "config.json:1: core/apiGroups[2] must be a group name string, not 7\n"
              "config.json:3: core/apiGroups[1] 'bad group' is not a group name (1-32 letters, "
              "digits, '_', '.' or '-', not starting with '-', not only digits)");
    EXPECT_EQ(parse_error("{\"core/apiGroups\": \"portwarden\"}"),
              "config.json:1: core/apiGroups must be a list of group names such as "
              "[\"portwarden\"], not 'portwarden'");
}

TEST(ConfigFile, UnknownCoreKeyIsAnError) {
    EXPECT_EQ(parse_error("{\"core\": {\n\"listenAdress\": \"localhost:817\"}}"),
              "config.json:2: unknown setting 'core/listenAdress'");
    EXPECT_EQ(parse_error("{\"core\": \"off\"}"),
              "config.json:1: core must be an object of settings, not 'off'");
}

TEST(ConfigFile, NewKeyGivenTwiceIsAnError) {
    EXPECT_EQ(parse_error("{\"core/apiGroups\": [],\n\"core\": {\"apiGroups\": []}}"),
              "config.json:2: 'core/apiGroups' is given twice (first on line 1)");
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
} // namespace pw::config
