#include "cli/commands.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/fake_transport.h"
#include "cli/prompt_watch.h"

// The verbs against a fake transport: which requests they send, how --app is resolved, what
// they print and with which exit code.

namespace pw::cli {
namespace {

using nlohmann::json;
using testing::FakeTransport;

json profile(const std::string& id, const std::string& name, const std::string& path) {
    return {{"id", id},
            {"name", name},
            {"source", "user"},
            {"fingerprints",
             json::array({{{"type", "path"}, {"operation", "equals"}, {"value", path}}})},
            {"settings", json::object()}};
}

json some_profiles() {
    return json::array({profile("curl-1", "curl", "/usr/bin/curl"),
                        profile("web-1", "web", "/usr/bin/firefox"),
                        profile("web-2", "web", "/opt/firefox/firefox"),
                        profile("curl", "downloader", "/usr/bin/wget")});
}

TEST(ExitCodeForStatus, OkForbiddenRefused) {
    EXPECT_EQ(exit_code_for_status(200), kExitOk);
    EXPECT_EQ(exit_code_for_status(201), kExitOk);
    EXPECT_EQ(exit_code_for_status(204), kExitOk);
    EXPECT_EQ(exit_code_for_status(403), kExitForbidden);
    EXPECT_EQ(exit_code_for_status(400), kExitRefused);
    EXPECT_EQ(exit_code_for_status(404), kExitRefused);
    EXPECT_EQ(exit_code_for_status(409), kExitRefused);
    EXPECT_EQ(exit_code_for_status(503), kExitRefused);
}

TEST(CommandError, NotReachableIsExitThreeWithTheHint) {
    const ApiEndpoint endpoint{.host = "127.0.0.1", .port = 817};
    const CommandError refused =
        command_error(ClientError{.failure = ClientFailure::NotReachable,
                                  .error = Error{.what = "connect to 127.0.0.1:817", .reason = {}}},
                      endpoint);
    EXPECT_EQ(refused.exit_code, kExitNotRunning);
    EXPECT_TRUE(refused.message.starts_with(
        "portwarden is not running (nothing answers on 127.0.0.1:817): start it with `systemctl "
        "start portwarden` or `portwarden run`"))
        << refused.message;
    const CommandError timeout =
        command_error(ClientError{.failure = ClientFailure::Timeout,
                                  .error = Error{.what = "no answer within 100 ms", .reason = {}}},
                      endpoint);
    EXPECT_EQ(timeout.exit_code, kExitRefused);
    EXPECT_EQ(timeout.message, "portwarden: no answer within 100 ms");
}

TEST(ParseValue, JsonWhenItParsesElseAString) {
    EXPECT_EQ(parse_value("true"), json(true));
    EXPECT_EQ(parse_value("5"), json(5));
    EXPECT_EQ(parse_value("\"ask\""), json("ask"));
    EXPECT_EQ(parse_value("ask"), json("ask"));
    EXPECT_EQ(parse_value("null"), json(nullptr));
    EXPECT_EQ(parse_value(R"(["+ a", "- b"])"), json::array({"+ a", "- b"}));
    EXPECT_EQ(parse_value("+ example.com"), json("+ example.com"));
    EXPECT_EQ(parse_value("[broken"), json("[broken"));
    EXPECT_EQ(parse_value(""), json(""));
}

TEST(EncodeSegment, KeepsUnreservedEscapesTheRest) {
    EXPECT_EQ(encode_segment("filter/defaultAction"), "filter%2FdefaultAction");
    EXPECT_EQ(encode_segment("my app"), "my%20app");
    EXPECT_EQ(encode_segment("curl-e4a2_x.y~z"), "curl-e4a2_x.y~z");
    EXPECT_EQ(encode_segment("%?#"), "%25%3F%23");
}

TEST(MatchApp, IdFirstThenNameThenPath) {
    // "curl" is both a profile's ID and another profile's name: the ID wins.
    AppMatch match = match_app(some_profiles(), "curl");
    ASSERT_EQ(match.kind, AppMatch::Kind::Found);
    EXPECT_EQ(match.profile["name"], "downloader");
    match = match_app(some_profiles(), "curl-1");
    ASSERT_EQ(match.kind, AppMatch::Kind::Found);
    EXPECT_EQ(match.profile["id"], "curl-1");
    match = match_app(some_profiles(), "downloader");
    ASSERT_EQ(match.kind, AppMatch::Kind::Found);
    EXPECT_EQ(match.profile["id"], "curl");
    match = match_app(some_profiles(), "/usr/bin/firefox");
    ASSERT_EQ(match.kind, AppMatch::Kind::Found);
    EXPECT_EQ(match.profile["id"], "web-1");
}

TEST(MatchApp, SeveralByNameAreAmbiguous) {
    const AppMatch match = match_app(some_profiles(), "web");
    ASSERT_EQ(match.kind, AppMatch::Kind::Ambiguous);
    ASSERT_EQ(match.profiles.size(), 2U);
    EXPECT_EQ(match.profiles[0]["id"], "web-1");
    EXPECT_EQ(match.profiles[1]["id"], "web-2");
}

TEST(MatchApp, NothingMatches) {
    EXPECT_EQ(match_app(some_profiles(), "/usr/bin/nothing").kind, AppMatch::Kind::NotFound);
    EXPECT_EQ(match_app(json::object(), "x").kind, AppMatch::Kind::NotFound);
}

TEST(RuleRequest, GlobalOrProfileAddOrRemove) {
    EXPECT_EQ(rule_request(RuleChange::Add, std::nullopt, "endpoints", "- .example.com"),
              (ApiRequest{.method = "POST",
                          .target = "/api/v1/rules",
                          .body = json{{"list", "endpoints"}, {"rule", "- .example.com"}}}));
    EXPECT_EQ(rule_request(RuleChange::Remove, "my app", "serviceEndpoints", "+ * tcp/22"),
              (ApiRequest{.method = "DELETE",
                          .target = "/api/v1/profiles/my%20app/rules",
                          .body = json{{"list", "serviceEndpoints"}, {"rule", "+ * tcp/22"}}}));
    EXPECT_EQ(rule_request(RuleChange::Add, "a", "endpoints", "+ x", 0).body,
              (json{{"list", "endpoints"}, {"rule", "+ x"}, {"position", 0}}));
}

TEST(SettingsRequests, EncodedKeysAndScopes) {
    EXPECT_EQ(settings_get_request(std::nullopt, std::nullopt).target, "/api/v1/settings");
    EXPECT_EQ(settings_get_request(std::nullopt, "filter/defaultAction").target,
              "/api/v1/settings/filter%2FdefaultAction");
    EXPECT_EQ(settings_get_request("curl-1", "filter/blockLAN").target,
              "/api/v1/profiles/curl-1/settings/filter%2FblockLAN");
    const ApiRequest put = settings_put_request("curl-1", "filter/blockLAN", true);
    EXPECT_EQ(put.method, "PUT");
    EXPECT_EQ(put.target, "/api/v1/profiles/curl-1/settings/filter%2FblockLAN");
    EXPECT_EQ(put.body, (json{{"value", true}}));
    EXPECT_EQ(settings_put_request(std::nullopt, "k", nullptr).body, (json{{"value", nullptr}}));
}

TEST(PromptAnswerRequest, MapsTheCommandLineToTheApiBody) {
    auto request = prompt_answer_request(
        {.id = 42, .verdict = "block", .duration = "always", .target = "domain-and-subdomains"});
    ASSERT_TRUE(request.has_value()) << request.error().message;
    EXPECT_EQ(
        *request,
        (ApiRequest{.method = "POST",
                    .target = "/api/v1/prompts/42/answer",
                    .body = json{{"verdict", "block"}, {"for", "always"}, {"target", "zone"}}}));
    for (const char* duration : {"once", "15m", "1h", "2d", "30s", "exit", "restart"}) {
        request = prompt_answer_request(
            {.id = 1, .verdict = "permit", .duration = duration, .target = std::nullopt});
        ASSERT_TRUE(request.has_value()) << duration;
        EXPECT_EQ(request->body, (json{{"verdict", "permit"}, {"for", duration}}));
    }
}

TEST(PromptAnswerRequest, TakesEveryTarget) {
    for (const char* target : {"domain", "ip", "port", "zone"}) {
        const auto request = prompt_answer_request(
            {.id = 1, .verdict = "permit", .duration = "once", .target = target});
        ASSERT_TRUE(request.has_value()) << target;
    }
}

TEST(PromptAnswerRequest, BadArgumentsAreUsageErrors) {
    for (const PromptAnswerArguments& bad : {
             PromptAnswerArguments{.id = 1, .verdict = "allow", .duration = "once", .target = {}},
             PromptAnswerArguments{.id = 1, .verdict = "permit", .duration = "0m", .target = {}},
             PromptAnswerArguments{.id = 1, .verdict = "permit", .duration = "5x", .target = {}},
             PromptAnswerArguments{.id = 1, .verdict = "permit", .duration = "m", .target = {}},
             PromptAnswerArguments{
                 .id = 1, .verdict = "permit", .duration = "once", .target = "host"},
         }) {
        const auto request = prompt_answer_request(bad);
        ASSERT_FALSE(request.has_value()) << bad.verdict << " " << bad.duration;
        EXPECT_EQ(request.error().exit_code, kExitUsage);
    }
}

TEST(PauseRequests, DurationOrNothing) {
    EXPECT_EQ(pause_request("5m"),
              (ApiRequest{
                  .method = "POST", .target = "/api/v1/pause", .body = json{{"duration", "5m"}}}));
    EXPECT_EQ(pause_request(std::nullopt).body, json::object());
    EXPECT_EQ(resume_request().target, "/api/v1/resume");
}

TEST(KeyAction, WatchKeys) {
    EXPECT_EQ(key_action('p')->verdict, "permit");
    EXPECT_EQ(key_action('p')->duration, "once");
    EXPECT_EQ(key_action('P')->duration, "always");
    EXPECT_EQ(key_action('b')->verdict, "block");
    EXPECT_EQ(key_action('B')->duration, "always");
    EXPECT_EQ(key_action('s')->kind, KeyAction::Kind::Skip);
    EXPECT_EQ(key_action('q')->kind, KeyAction::Kind::Quit);
    EXPECT_FALSE(key_action('x').has_value());
}

// --- Commands with the fake transport ---

class CommandsTest : public ::testing::Test {
protected:
    Commands commands(Output::Format format = Output::Format::Human) {
        return Commands(api_, ApiEndpoint{},
                        Output{.out = out_, .err = err_, .format = format, .colour = Colour::Off});
    }

    FakeTransport api_;
    std::ostringstream out_;
    std::ostringstream err_;
};

TEST_F(CommandsTest, ForbiddenPrintsTheApisReasonAndExitsFour) {
    api_.answer(403, {{"error",
                       "user bob (uid 1001) running /usr/sbin/portwarden is not allowed "
                       "to use the API: root or a member of group(s) portwarden may use "
                       "it"}});
    EXPECT_EQ(commands().status(), kExitForbidden);
    EXPECT_EQ(err_.str(),
              "portwarden: user bob (uid 1001) running /usr/sbin/portwarden is not "
              "allowed to use the API: root or a member of group(s) portwarden may "
              "use it\n");
    EXPECT_EQ(out_.str(), "");
}

TEST_F(CommandsTest, NotRunningExitsThree) {
    api_.fail(ClientFailure::NotReachable, "connect to 127.0.0.1:817");
    EXPECT_EQ(commands().apps(), kExitNotRunning);
    EXPECT_NE(err_.str().find("portwarden is not running"), std::string::npos) << err_.str();
}

TEST_F(CommandsTest, RefusalPrintsTheApisMessageAndExitsOne) {
    api_.answer(409, {{"error", "filter/defaultAction is set by the config file"}});
    EXPECT_EQ(commands().settings_set("filter/defaultAction", "block", std::nullopt), kExitRefused);
    EXPECT_EQ(err_.str(), "portwarden: filter/defaultAction is set by the config file\n");
    ASSERT_EQ(api_.requests.size(), 1U);
    EXPECT_EQ(api_.requests[0].body, (json{{"value", "block"}}));
}

TEST_F(CommandsTest, JsonPrintsTheApisAnswer) {
    api_.answer(200, {{"version", "0.1.0"}, {"paused", false}});
    EXPECT_EQ(commands(Output::Format::Json).status(), kExitOk);
    EXPECT_EQ(json::parse(out_.str()), (json{{"version", "0.1.0"}, {"paused", false}}));
}

TEST_F(CommandsTest, AppByNameResolvesToItsId) {
    api_.answer(200, some_profiles());
    api_.answer(200, json::array({json::object()}));
    EXPECT_EQ(commands().settings_set("filter/blockLAN", "true", "downloader"), kExitOk);
    ASSERT_EQ(api_.requests.size(), 2U);
    EXPECT_EQ(api_.requests[0].target, "/api/v1/profiles");
    EXPECT_EQ(api_.requests[1].target, "/api/v1/profiles/curl/settings/filter%2FblockLAN");
    EXPECT_EQ(api_.requests[1].body, (json{{"value", true}}));
}

TEST_F(CommandsTest, AmbiguousNameIsRefusedWithTheCandidates) {
    api_.answer(200, some_profiles());
    EXPECT_EQ(commands().rules_list("web"), kExitUsage);
    EXPECT_EQ(api_.requests.size(), 1U);
    EXPECT_NE(err_.str().find("several profiles match 'web'"), std::string::npos) << err_.str();
    EXPECT_NE(err_.str().find("web-1  /usr/bin/firefox"), std::string::npos) << err_.str();
    EXPECT_NE(err_.str().find("web-2  /opt/firefox/firefox"), std::string::npos) << err_.str();
}

TEST_F(CommandsTest, UnknownPathGetsAProfileOnlyForWrites) {
    const std::string path = "/nonexistent-pw-test/bin/tool";
    api_.answer(200, some_profiles());
    EXPECT_EQ(commands().rules_list(path), kExitRefused);
    EXPECT_NE(err_.str().find("no profile for the executable"), std::string::npos) << err_.str();
    ASSERT_EQ(api_.requests.size(), 1U);

    err_.str("");
    api_.requests.clear();
    api_.answer(200, some_profiles());
    api_.answer(201, profile("tool-9", "tool", path));
    api_.answer(200, json::array());
    EXPECT_EQ(
        commands().rules_change(RuleChange::Add, path, "endpoints", "- .example.com", std::nullopt),
        kExitOk);
    ASSERT_EQ(api_.requests.size(), 3U);
    EXPECT_EQ(api_.requests[1],
              (ApiRequest{.method = "POST",
                          .target = "/api/v1/profiles",
                          .body = json{{"name", "tool"},
                                       {"fingerprints", json::array({{{"type", "path"},
                                                                      {"operation", "equals"},
                                                                      {"value", path}}})}}}));
    EXPECT_EQ(api_.requests[2].target, "/api/v1/profiles/tool-9/rules");
    EXPECT_EQ(err_.str(),
              "portwarden: no profile for " + path + ": created profile 'tool' (ID tool-9)\n");
    EXPECT_EQ(out_.str(), "added '- .example.com' to endpoints of profile 'tool-9'\n");
}

TEST_F(CommandsTest, UnknownNameIsNotCreated) {
    api_.answer(200, some_profiles());
    EXPECT_EQ(commands().settings_set("filter/blockLAN", "true", "nosuch"), kExitRefused);
    EXPECT_EQ(api_.requests.size(), 1U);
    EXPECT_NE(err_.str().find("no profile with the ID or name 'nosuch'"), std::string::npos);
}

TEST_F(CommandsTest, GlobalRulesListReadsBothSettings) {
    api_.answer(200, {{"key", "filter/endpoints"}, {"value", json::array({"- .ads.example"})}});
    api_.answer(200, {{"key", "filter/serviceEndpoints"}, {"value", json::array()}});
    EXPECT_EQ(commands(Output::Format::Json).rules_list(std::nullopt), kExitOk);
    ASSERT_EQ(api_.requests.size(), 2U);
    EXPECT_EQ(api_.requests[0].target, "/api/v1/settings/filter%2Fendpoints");
    EXPECT_EQ(api_.requests[1].target, "/api/v1/settings/filter%2FserviceEndpoints");
    const json printed = json::parse(out_.str());
    EXPECT_EQ(printed["profile"], nullptr);
    EXPECT_EQ(printed["endpoints"], json::array({"- .ads.example"}));
    EXPECT_EQ(printed["serviceEndpoints"], json::array());
}

TEST_F(CommandsTest, SettingsUnsetSendsNull) {
    api_.answer(200, json::array());
    EXPECT_EQ(commands().settings_unset("filter/defaultAction", std::nullopt), kExitOk);
    ASSERT_EQ(api_.requests.size(), 1U);
    EXPECT_EQ(api_.requests[0].method, "PUT");
    EXPECT_EQ(api_.requests[0].body, (json{{"value", nullptr}}));
}

TEST_F(CommandsTest, PauseOnAnOlderDaemonSaysItIsNotSupported) {
    api_.answer(404, {{"error", "no such route: '/api/v1/pause'"}});
    EXPECT_EQ(commands().pause("5m"), kExitRefused);
    EXPECT_TRUE(err_.str().starts_with("portwarden: this portwarden does not support pause"))
        << err_.str();
    err_.str("");
    api_.answer(404, {{"error", "no such route: '/api/v1/resume'"}});
    EXPECT_EQ(commands().resume(), kExitRefused);
    EXPECT_TRUE(err_.str().starts_with("portwarden: this portwarden does not support pause"));
}

TEST_F(CommandsTest, PauseRefusesAnUnreadableDuration) {
    EXPECT_EQ(commands().pause("always"), kExitUsage);
    EXPECT_EQ(commands().pause("soon"), kExitUsage);
    EXPECT_TRUE(api_.requests.empty());
    EXPECT_EQ(commands().pause("5m"), kExitOk);
    EXPECT_EQ(out_.str(), "paused for 5m\n");
}

TEST_F(CommandsTest, PromptsAnswerPrintsWhatWasDecided) {
    api_.answer(200, {{"id", 3}, {"verdict", "permit"}, {"for", "once"}, {"connections", 1}});
    EXPECT_EQ(commands().prompts_answer(
                  {.id = 3, .verdict = "permit", .duration = "once", .target = std::nullopt}),
              kExitOk);
    EXPECT_EQ(out_.str(), "prompt 3: permit once (1 connection decided)\n");
}

TEST_F(CommandsTest, WatchRefusesWithoutATerminal) {
    // A pipe is not a terminal.
    std::array<int, 2> fds = {-1, -1};
    ASSERT_EQ(::pipe(fds.data()), 0);
    Commands watched = commands();
    EXPECT_EQ(watch_prompts(watched, fds[0], std::chrono::milliseconds(10)), kExitUsage);
    ::close(fds[0]);
    ::close(fds[1]);
    EXPECT_NE(err_.str().find("needs a terminal"), std::string::npos) << err_.str();
    EXPECT_TRUE(api_.requests.empty());
}

} // namespace
} // namespace pw::cli
