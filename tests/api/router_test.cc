#include "api/router.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/backend.h"
#include "api/fake_backend.h"

// The routes of docs/api.md against a fake Backend: no sockets.

namespace pw::api {
namespace {

using nlohmann::json;

class RouterTest : public ::testing::Test {
protected:
    void SetUp() override {
        backend_.profiles_json = json::array({{{"id", "firefox"}, {"name", "Firefox"}}});
        backend_.profile_table["firefox"] = {{"id", "firefox"}, {"name", "Firefox"}};
        backend_.profile_table["my app/1"] = {{"id", "my app/1"}};
        backend_.global_settings = {
            {.key = "filter/defaultAction",
             .value = "permit",
             .layer = SettingLayer::Default,
             .scope = SettingScope::App},
            {.key = "core/listenAddress",
             .value = "localhost:817",
             .layer = SettingLayer::ConfigFile,
             .scope = SettingScope::Global},
        };
        backend_.app_settings["firefox"] = {{.key = "filter/defaultAction",
                                             .value = "block",
                                             .layer = SettingLayer::App,
                                             .scope = SettingScope::App}};
    }

    // The reply to one request; fails the test unless the router answered exactly once, now.
    Reply handle(std::string_view method, std::string_view target, std::string_view body = "",
                 std::optional<std::string_view> content_type = "application/json") {
        std::vector<Reply> replies;
        router_.handle(
            Request{.method = method, .target = target, .content_type = content_type, .body = body},
            [&replies](Reply reply) { replies.push_back(std::move(reply)); });
        EXPECT_EQ(replies.size(), 1U) << method << " " << target;
        return replies.empty() ? Reply{.status = 0, .body = nullptr, .allow = {}}
                               : std::move(replies.front());
    }

    [[nodiscard]] FakeBackend::Call last_call() const {
        const auto calls = backend_.calls();
        EXPECT_FALSE(calls.empty());
        return calls.empty() ? FakeBackend::Call{} : calls.back();
    }

    FakeBackend backend_;
    Router router_{backend_};
};

std::string error_of(const Reply& reply) {
    return reply.body.is_object() && reply.body.contains("error")
               ? reply.body.at("error").get<std::string>()
               : std::string("(no error member)");
}

TEST_F(RouterTest, ReadRoutesAnswerFromTheBackend) {
    Reply status = handle("GET", "/api/v1/status");
    EXPECT_EQ(status.status, 200);
    EXPECT_EQ(status.body, backend_.status_json);

    Reply profiles = handle("GET", "/api/v1/profiles");
    EXPECT_EQ(profiles.status, 200);
    EXPECT_EQ(profiles.body, backend_.profiles_json);

    Reply profile = handle("GET", "/api/v1/profiles/firefox");
    EXPECT_EQ(profile.status, 200);
    EXPECT_EQ(profile.body.at("name"), "Firefox");

    Reply prompts = handle("GET", "/api/v1/prompts");
    EXPECT_EQ(prompts.status, 200);
    EXPECT_EQ(prompts.body, json::array());
}

TEST_F(RouterTest, QueryStringsAreIgnored) {
    EXPECT_EQ(handle("GET", "/api/v1/status?verbose=1&x").status, 200);
    EXPECT_EQ(handle("GET", "/api/v1/profiles/firefox?").status, 200);
}

TEST_F(RouterTest, UnknownRoutesAre404) {
    for (const std::string_view target :
         {"/", "/api", "/api/v1", "/api/v1/", "/api/v2/status", "/api/v1/status/",
          "/api/v1//status", "/api/v1/statuses", "/api/v1/profiles/", "/api/v1/profiles//rules",
          "/api/v1/profiles/firefox/rules/1", "/api/v1/profiles/firefox/other", "/api/v1/settings/",
          "/api/v1/prompts/1", "/api/v1/prompts/1/answer/x", "/metrics"}) {
        const Reply reply = handle("GET", target);
        EXPECT_EQ(reply.status, 404) << target;
        EXPECT_NE(error_of(reply).find("no such route"), std::string::npos) << target;
    }
}

TEST_F(RouterTest, ATargetThatIsNotAPathIs400) {
    const Reply reply = handle("GET", "http://127.0.0.1:817/api/v1/status");
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(handle("OPTIONS", "*").status, 400);
}

TEST_F(RouterTest, WrongMethodIs405WithTheAllowedOnes) {
    Reply reply = handle("POST", "/api/v1/status");
    EXPECT_EQ(reply.status, 405);
    EXPECT_EQ(reply.allow, std::vector<std::string>{"GET"});
    EXPECT_EQ(error_of(reply), "method 'POST' is not allowed on '/api/v1/status'; allowed: GET");

    reply = handle("PUT", "/api/v1/profiles/firefox");
    EXPECT_EQ(reply.status, 405);
    EXPECT_EQ(reply.allow, (std::vector<std::string>{"GET", "PATCH", "DELETE"}));

    // Methods are case-sensitive (RFC 9110 9.1); HEAD is not served.
    EXPECT_EQ(handle("get", "/api/v1/status").status, 405);
    EXPECT_EQ(handle("HEAD", "/api/v1/status").status, 405);
    EXPECT_EQ(handle("GET", "/api/v1/rules").allow, (std::vector<std::string>{"POST", "DELETE"}));
    EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(RouterTest, ProfileIdsArePercentDecoded) {
    const Reply reply = handle("GET", "/api/v1/profiles/my%20app%2F1");
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.body.at("id"), "my app/1");

    const Reply missing = handle("GET", "/api/v1/profiles/nobody");
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(error_of(missing), "no profile 'nobody'");

    const Reply bad = handle("GET", "/api/v1/profiles/bad%2");
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(error_of(bad).find("percent-encoding"), std::string::npos);
    EXPECT_EQ(handle("GET", "/api/v1/profiles/bad%zz").status, 400);
}

TEST_F(RouterTest, ProfileChangesGoToTheBackendWithTheirBody) {
    backend_.now_reply = Reply{.status = 201, .body = {{"id", "new"}}, .allow = {}};
    Reply created =
        handle("POST", "/api/v1/profiles", R"({"name": "New", "paths": ["/usr/bin/x"]})");
    EXPECT_EQ(created.status, 201);
    EXPECT_EQ(created.body.at("id"), "new");
    EXPECT_EQ(last_call().name, "create_profile");
    EXPECT_EQ(last_call().body.at("name"), "New");

    backend_.now_reply = Reply{.status = 200, .body = {{"id", "firefox"}}, .allow = {}};
    EXPECT_EQ(handle("PATCH", "/api/v1/profiles/firefox", R"({"name": "Fx"})").status, 200);
    EXPECT_EQ(last_call().name, "update_profile");
    EXPECT_EQ(last_call().profile_id, "firefox");

    backend_.now_reply = Reply{.status = 204, .body = nullptr, .allow = {}};
    const Reply deleted = handle("DELETE", "/api/v1/profiles/fire%66ox", "", std::nullopt);
    EXPECT_EQ(deleted.status, 204);
    EXPECT_TRUE(deleted.body.is_null());
    EXPECT_EQ(last_call().name, "delete_profile");
    EXPECT_EQ(last_call().profile_id, "firefox");
}

TEST_F(RouterTest, RulesOfAProfileAndGlobalRules) {
    const std::string body = R"({"list": "endpoints", "rule": "- .example.com"})";
    EXPECT_EQ(handle("POST", "/api/v1/profiles/firefox/rules", body).status, 200);
    EXPECT_EQ(last_call().name, "add_rule");
    EXPECT_EQ(last_call().profile_id, "firefox");
    EXPECT_EQ(last_call().body.at("rule"), "- .example.com");

    EXPECT_EQ(handle("DELETE", "/api/v1/profiles/firefox/rules", body).status, 200);
    EXPECT_EQ(last_call().name, "remove_rule");

    EXPECT_EQ(handle("POST", "/api/v1/rules", body).status, 200);
    EXPECT_EQ(last_call().name, "add_rule");
    EXPECT_EQ(last_call().profile_id, "");
    EXPECT_EQ(handle("DELETE", "/api/v1/rules", body).status, 200);
    EXPECT_EQ(last_call().name, "remove_rule");
    EXPECT_EQ(last_call().profile_id, "");

    // Removing a rule names it in the body: without one, nothing is removed.
    EXPECT_EQ(handle("DELETE", "/api/v1/rules", "", std::nullopt).status, 400);
    EXPECT_EQ(backend_.calls().size(), 4U);
}

TEST_F(RouterTest, SettingsListShowsLayersAndScopes) {
    const Reply reply = handle("GET", "/api/v1/settings");
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.body, json::parse(R"([
        {"key": "filter/defaultAction", "value": "permit", "layer": "default", "scope": "app"},
        {"key": "core/listenAddress", "value": "localhost:817", "layer": "configFile",
         "scope": "global"}])"));

    const Reply app = handle("GET", "/api/v1/profiles/firefox/settings");
    EXPECT_EQ(app.status, 200);
    EXPECT_EQ(app.body.at(0).at("layer"), "app");
    EXPECT_EQ(handle("GET", "/api/v1/profiles/nobody/settings").status, 404);
}

TEST_F(RouterTest, SettingKeysMayBeEncodedOrLiteral) {
    for (const std::string_view target :
         {"/api/v1/settings/filter%2FdefaultAction", "/api/v1/settings/filter%2fdefaultAction",
          "/api/v1/settings/filter/defaultAction"}) {
        const Reply reply = handle("GET", target);
        EXPECT_EQ(reply.status, 200) << target;
        EXPECT_EQ(reply.body.at("key"), "filter/defaultAction") << target;
        EXPECT_EQ(reply.body.at("value"), "permit") << target;
    }
    const Reply unknown = handle("GET", "/api/v1/settings/filter/nothing");
    EXPECT_EQ(unknown.status, 404);
    EXPECT_EQ(error_of(unknown), "unknown setting 'filter/nothing'");

    const Reply app = handle("GET", "/api/v1/profiles/firefox/settings/filter/defaultAction");
    EXPECT_EQ(app.status, 200);
    EXPECT_EQ(app.body.at("value"), "block");
    EXPECT_EQ(handle("GET", "/api/v1/profiles/firefox/settings/core%2FlistenAddress").status, 404);
}

TEST_F(RouterTest, PutSettingPassesTheValueAndNullRemoves) {
    EXPECT_EQ(
        handle("PUT", "/api/v1/settings/filter/defaultAction", R"({"value": "block"})").status,
        200);
    FakeBackend::Call call = last_call();
    EXPECT_EQ(call.name, "set_setting");
    EXPECT_EQ(call.profile_id, std::nullopt);
    EXPECT_EQ(call.key, "filter/defaultAction");
    EXPECT_EQ(call.body, "block");

    EXPECT_EQ(handle("PUT", "/api/v1/profiles/firefox/settings/filter%2FdefaultAction",
                     R"({"value": null})")
                  .status,
              200);
    call = last_call();
    EXPECT_EQ(call.profile_id, "firefox");
    EXPECT_EQ(call.key, "filter/defaultAction");
    EXPECT_TRUE(call.body.is_null());

    // A key the backend does not know is its business: the router passes it on.
    EXPECT_EQ(handle("PUT", "/api/v1/settings/x%2Fy", R"({"value": 1})").status, 200);
    EXPECT_EQ(last_call().key, "x/y");
}

TEST_F(RouterTest, PutSettingRefusesABodyWithoutExactlyValue) {
    Reply reply = handle("PUT", "/api/v1/settings/filter/defaultAction", R"({"valeu": "block"})");
    EXPECT_EQ(reply.status, 400);
    EXPECT_NE(error_of(reply).find("{\"value\": ...}"), std::string::npos);
    reply = handle("PUT", "/api/v1/settings/filter/defaultAction",
                   R"({"value": "block", "scope": "x"})");
    EXPECT_EQ(reply.status, 400);
    EXPECT_NE(error_of(reply).find("unknown member 'scope'"), std::string::npos);
    EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(RouterTest, PromptAnswersGoToTheBackendByNumber) {
    const std::string answer = R"({"verdict": "permit", "for": "15m"})";
    EXPECT_EQ(handle("POST", "/api/v1/prompts/42/answer", answer).status, 200);
    EXPECT_EQ(last_call().name, "answer_prompt");
    EXPECT_EQ(last_call().prompt_id, 42U);
    EXPECT_EQ(last_call().body.at("for"), "15m");

    for (const std::string_view target :
         {"/api/v1/prompts/x/answer", "/api/v1/prompts/-1/answer", "/api/v1/prompts/1x/answer",
          "/api/v1/prompts/%2042/answer", "/api/v1/prompts/18446744073709551616/answer"}) {
        const Reply reply = handle("POST", target, answer);
        EXPECT_EQ(reply.status, 404) << target;
        EXPECT_NE(error_of(reply).find("no prompt"), std::string::npos) << target;
    }
    EXPECT_EQ(handle("POST", "/api/v1/prompts/18446744073709551615/answer", answer).status, 200);
    EXPECT_EQ(last_call().prompt_id, 18446744073709551615U);
}

TEST_F(RouterTest, PauseTakesADurationAndResumeNothing) {
    EXPECT_EQ(handle("POST", "/api/v1/pause", R"({"duration": "15m"})").status, 200);
    EXPECT_EQ(last_call().name, "pause");
    EXPECT_EQ(last_call().body, nlohmann::json({{"seconds", 900}}));
    // Without a duration: five minutes.
    EXPECT_EQ(handle("POST", "/api/v1/pause", "{}").status, 200);
    EXPECT_EQ(last_call().body, nlohmann::json({{"seconds", 300}}));
    EXPECT_EQ(handle("POST", "/api/v1/resume").status, 200);
    EXPECT_EQ(last_call().name, "resume");
    EXPECT_EQ(handle("GET", "/api/v1/pause").status, 405);
}

TEST_F(RouterTest, APauseWithoutAnEndOrWithOtherMembersIsRefused) {
    const std::size_t before = backend_.calls().size();
    for (const char* body :
         {R"({"duration": "0m"})", R"({"duration": "25h"})", R"({"duration": 300})",
          R"({"duration": "5 minutes"})", R"({"duration": null})", R"({"for": "5m"})"}) {
        const Reply reply = handle("POST", "/api/v1/pause", body);
        EXPECT_EQ(reply.status, 400) << body;
        EXPECT_TRUE(reply.body.contains("error")) << body;
    }
    EXPECT_THAT(handle("POST", "/api/v1/pause", R"({"duration": "2d"})").body.at("error"),
                ::testing::HasSubstr("at most 24h"));
    EXPECT_EQ(backend_.calls().size(), before);
}

TEST_F(RouterTest, BodiesMustBeJsonObjects) {
    const std::string_view target = "/api/v1/profiles";
    Reply reply = handle("POST", target, "", std::nullopt);
    EXPECT_EQ(reply.status, 400);
    EXPECT_NE(error_of(reply).find("needs a JSON object"), std::string::npos);

    EXPECT_EQ(handle("POST", target, R"({"name": "x"})", std::nullopt).status, 415);
    EXPECT_EQ(handle("POST", target, R"({"name": "x"})", "text/plain").status, 415);
    EXPECT_EQ(handle("POST", target, R"({"name": "x"})", "application/jsonx").status, 415);
    EXPECT_EQ(
        handle("POST", target, R"({"name": "x"})", "application/x-www-form-urlencoded").status,
        415);

    reply = handle("POST", target, R"([1, 2])");
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(error_of(reply), "the body must be a JSON object, not array");
    EXPECT_TRUE(backend_.calls().empty());

    EXPECT_EQ(handle("POST", target, R"({"name": "x"})", "Application/JSON; charset=utf-8").status,
              200);
}

TEST_F(RouterTest, MalformedJsonIs400WithThePosition) {
    const Reply reply = handle("POST", "/api/v1/profiles", "{\"name\": \"x\",\n  }");
    EXPECT_EQ(reply.status, 400);
    const std::string error = error_of(reply);
    EXPECT_TRUE(error.starts_with("malformed JSON body: parse error at line 2, column 3")) << error;
    EXPECT_TRUE(backend_.calls().empty());
}

TEST_F(RouterTest, NumbersTooBigForADoubleAre400) {
    const Reply reply = handle("POST", "/api/v1/profiles", R"({"name": 4444e44488888888})");
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(error_of(reply), "malformed JSON body: number overflow parsing '4444e44488888888'");
}

TEST_F(RouterTest, DeeplyNestedJsonIsRefused) {
    const auto nested = [](int depth) {
        return "{\"a\": " + std::string(static_cast<std::size_t>(depth - 1), '[') + "1" +
               std::string(static_cast<std::size_t>(depth - 1), ']') + "}";
    };
    EXPECT_EQ(handle("POST", "/api/v1/profiles", nested(kMaxJsonDepth)).status, 200);
    const Reply reply = handle("POST", "/api/v1/profiles", nested(kMaxJsonDepth + 1));
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(error_of(reply), "JSON body nested deeper than 32 levels");
    // Far deeper than any stack would take recursively.
    EXPECT_EQ(handle("POST", "/api/v1/profiles", nested(100000)).status, 400);
}

TEST_F(RouterTest, DeferredAnswersArriveThroughRespond) {
    backend_.answers = FakeBackend::Answers::Later;
    std::vector<Reply> replies;
    router_.handle(Request{.method = "POST",
                           .target = "/api/v1/rules",
                           .content_type = "application/json",
                           .body = R"({"list": "endpoints", "rule": "+ *"})"},
                   [&replies](Reply reply) { replies.push_back(std::move(reply)); });
    EXPECT_TRUE(replies.empty());
    ASSERT_EQ(backend_.waiting(), 1U);
    std::optional<Respond> respond = backend_.take_waiting();
    ASSERT_TRUE(respond.has_value());
    (*respond)(error_reply(409, "the rule is already in the list"));
    ASSERT_EQ(replies.size(), 1U);
    EXPECT_EQ(replies[0].status, 409);
}

TEST(PercentDecode, DecodesEscapesAndRefusesBrokenOnes) {
    EXPECT_EQ(percent_decode("a%2Fb%2fc"), "a/b/c");
    EXPECT_EQ(percent_decode("plain+text"), "plain+text");
    EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
    EXPECT_EQ(percent_decode(""), "");
    EXPECT_EQ(percent_decode("%"), std::nullopt);
    EXPECT_EQ(percent_decode("%4"), std::nullopt);
    EXPECT_EQ(percent_decode("%4g"), std::nullopt);
    EXPECT_EQ(percent_decode("x%"), std::nullopt);
}

TEST(Backend, ErrorReplyAndSettingsJson) {
    const Reply reply = error_reply(403, "no");
    EXPECT_EQ(reply.status, 403);
    EXPECT_EQ(reply.body, json({{"error", "no"}}));
    EXPECT_EQ(to_json({}), json::array());
    const json views = to_json(
        {{.key = "a", .value = 1, .layer = SettingLayer::Store},
         {.key = "b", .value = true, .layer = SettingLayer::App, .scope = SettingScope::App}});
    EXPECT_EQ(views.at(0).at("layer"), "store");
    EXPECT_EQ(views.at(0).at("scope"), "global");
    EXPECT_EQ(views.at(1).at("layer"), "app");
    EXPECT_EQ(views.at(1).at("scope"), "app");
}

} // namespace
} // namespace pw::api
