#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/client_command_line.h"
#include "cli/commands.h"
#include "cli/fake_transport.h"

// Command lines as a person types them, parsed by CLI11 as main.cc does, down to the requests
// the fake transport receives.

namespace pw::cli {
namespace {

using nlohmann::json;
using testing::FakeTransport;

struct Ran {
    int exit_code = -1;
    std::vector<ApiRequest> requests;
    std::string out;
    std::string err;
};

// Parses `arguments` (after "portwarden") and runs the verb; a parse error is exit 2, as in
// main.cc.
Ran run(const std::vector<std::string>& arguments, FakeTransport& api) {
    CLI::App app{"portwarden"};
    app.require_subcommand(1);
    app.fallthrough();
    ClientCommandLine client(app);
    std::vector<const char*> argv = {"portwarden"};
    for (const std::string& argument : arguments) {
        argv.push_back(argument.c_str());
    }
    Ran ran;
    try {
        app.parse(
            static_cast<int>(argv.size()),
            const_cast<char**>(
                argv.data())); // NOLINT(cppcoreguidelines-pro-type-const-cast): CLI11 takes char**
    } catch (const CLI::ParseError& error) {
        ran.exit_code = error.get_exit_code() == 0 ? 0 : kExitUsage;
        ran.err = error.what();
        return ran;
    }
    EXPECT_TRUE(client.selected());
    std::ostringstream out;
    std::ostringstream err;
    ran.exit_code = client.run(
        {.out = out, .err = err, .colour = Colour::Off, .transport = &api, .input_fd = -1});
    ran.requests = api.requests;
    ran.out = out.str();
    ran.err = err.str();
    return ran;
}

TEST(CommandLine, Status) {
    FakeTransport api;
    const Ran ran = run({"status"}, api);
    EXPECT_EQ(ran.exit_code, kExitOk) << ran.err;
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0],
              (ApiRequest{.method = "GET", .target = "/api/v1/status", .body = std::nullopt}));
}

TEST(CommandLine, GlobalOptionsMayFollowTheVerb) {
    FakeTransport api;
    api.answer(200, json::array());
    const Ran ran = run({"apps", "--json", "--api", "[::1]:8170", "--timeout", "2"}, api);
    EXPECT_EQ(ran.exit_code, kExitOk) << ran.err;
    EXPECT_EQ(ran.out, "[]\n");
}

TEST(CommandLine, BadApiAddressIsAUsageError) {
    FakeTransport api;
    EXPECT_EQ(run({"--api", "localhost", "status"}, api).exit_code, kExitUsage);
    EXPECT_TRUE(api.requests.empty());
}

TEST(CommandLine, RulesAddGlobalWithARuleThatStartsWithADash) {
    FakeTransport api;
    const Ran ran = run({"rules", "add", "- .example.com"}, api);
    EXPECT_EQ(ran.exit_code, kExitOk) << ran.err;
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0],
              (ApiRequest{.method = "POST",
                          .target = "/api/v1/rules",
                          .body = json{{"list", "endpoints"}, {"rule", "- .example.com"}}}));
    EXPECT_EQ(ran.out, "added '- .example.com' to endpoints of the global rules\n");
}

TEST(CommandLine, RulesRemoveForAnAppOnServiceEndpoints) {
    FakeTransport api;
    api.answer(200, json::array({{{"id", "sshd-1"}, {"name", "sshd"}}}));
    const Ran ran =
        run({"rules", "remove", "--app", "sshd", "--list", "serviceEndpoints", "+ * tcp/22"}, api);
    EXPECT_EQ(ran.exit_code, kExitOk) << ran.err;
    ASSERT_EQ(ran.requests.size(), 2U);
    EXPECT_EQ(ran.requests[1],
              (ApiRequest{.method = "DELETE",
                          .target = "/api/v1/profiles/sshd-1/rules",
                          .body = json{{"list", "serviceEndpoints"}, {"rule", "+ * tcp/22"}}}));
}

TEST(CommandLine, RulesAddPosition) {
    FakeTransport api;
    const Ran ran = run({"rules", "add", "--position", "0", "+ 10.0.0.0/8"}, api);
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0].body,
              (json{{"list", "endpoints"}, {"rule", "+ 10.0.0.0/8"}, {"position", 0}}));
}

TEST(CommandLine, UnknownListIsAUsageError) {
    FakeTransport api;
    EXPECT_EQ(run({"rules", "add", "--list", "inbound", "+ x"}, api).exit_code, kExitUsage);
    EXPECT_EQ(run({"rules"}, api).exit_code, kExitUsage);
    EXPECT_EQ(run({"nosuchverb"}, api).exit_code, kExitUsage);
}

TEST(CommandLine, SettingsGet) {
    FakeTransport api;
    Ran ran = run({"settings", "get"}, api);
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0].target, "/api/v1/settings");

    FakeTransport one;
    ran = run({"settings", "get", "filter/defaultAction"}, one);
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0].target, "/api/v1/settings/filter%2FdefaultAction");
}

TEST(CommandLine, SettingsSetParsesTheValue) {
    for (const auto& [typed, sent] : std::vector<std::pair<std::string, json>>{
             {"true", true}, {"5", 5}, {"\"ask\"", "ask"}, {"ask", "ask"}}) {
        FakeTransport set;
        const Ran ran = run({"settings", "set", "filter/defaultAction", typed}, set);
        ASSERT_EQ(ran.requests.size(), 1U) << typed;
        EXPECT_EQ(ran.requests[0].body, (json{{"value", sent}})) << typed;
    }
}

TEST(CommandLine, SettingsUnsetSendsNull) {
    FakeTransport unset;
    const Ran ran = run({"settings", "unset", "filter/defaultAction"}, unset);
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0], (ApiRequest{.method = "PUT",
                                           .target = "/api/v1/settings/filter%2FdefaultAction",
                                           .body = json{{"value", nullptr}}}));
}

TEST(CommandLine, PromptsListAndAnswer) {
    FakeTransport api;
    Ran ran = run({"prompts"}, api);
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0].target, "/api/v1/prompts");

    FakeTransport answer;
    ran = run(
        {"prompts", "answer", "12", "block", "--for", "1h", "--target", "domain-and-subdomains"},
        answer);
    EXPECT_EQ(ran.exit_code, kExitOk) << ran.err;
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0],
              (ApiRequest{.method = "POST",
                          .target = "/api/v1/prompts/12/answer",
                          .body = json{{"verdict", "block"}, {"for", "1h"}, {"target", "zone"}}}));

    FakeTransport bad;
    EXPECT_EQ(run({"prompts", "answer", "12", "allow"}, bad).exit_code, kExitUsage);
    EXPECT_EQ(run({"prompts", "answer", "12", "permit", "--for", "forever"}, bad).exit_code,
              kExitUsage);
    EXPECT_TRUE(bad.requests.empty());
}

TEST(CommandLine, PauseAndResume) {
    FakeTransport api;
    Ran ran = run({"pause", "--for", "5m"}, api);
    EXPECT_EQ(ran.exit_code, kExitOk) << ran.err;
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0],
              (ApiRequest{
                  .method = "POST", .target = "/api/v1/pause", .body = json{{"duration", "5m"}}}));
    FakeTransport resume;
    ran = run({"resume"}, resume);
    ASSERT_EQ(ran.requests.size(), 1U);
    EXPECT_EQ(ran.requests[0].target, "/api/v1/resume");
}

TEST(CommandLine, AppsShow) {
    FakeTransport api;
    api.answer(200, json::array({{{"id", "curl-1"}, {"name", "curl"}}}));
    const Ran ran = run({"apps", "show", "curl"}, api);
    EXPECT_EQ(ran.exit_code, kExitOk) << ran.err;
    EXPECT_NE(ran.out.find("id           curl-1"), std::string::npos) << ran.out;
}

} // namespace
} // namespace pw::cli
