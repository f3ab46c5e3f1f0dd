#pragma once

#include <cstdint>
#include <expected>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/api_client.h"
#include "cli/format.h"

namespace pw::cli {

// The client verbs of `portwarden` (issue 11 item 3): each one is a few requests to the local API
// and a table (or, with --json, the API's JSON). main.cc parses the command line and calls these;
// the unit tests call them with a fake ApiTransport. Runs on the caller's thread; one per command.

// Exit codes, documented in docs/cli.md and `portwarden --help`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;    // the daemon refused or failed; its message is printed
inline constexpr int kExitUsage = 2;      // a bad command line
inline constexpr int kExitNotRunning = 3; // nothing answers on the API's address
inline constexpr int kExitForbidden = 4;  // 403: not root, not in the API's group(s)

// The exit code of an HTTP status: 2xx ok, 403 forbidden, anything else refused.
[[nodiscard]] int exit_code_for_status(int status);

// A command that could not be done: the exit code and what to print on stderr.
struct CommandError {
    int exit_code = kExitRefused;
    std::string message;
    int http_status = 0; // the API's status when it answered, else 0
};

// The message and exit code of a transport failure: NotReachable is exit 3 with the hint to start
// the daemon; a timeout or a garbled answer is exit 1.
[[nodiscard]] CommandError command_error(const ClientError& error, const ApiEndpoint& endpoint);

// A setting's value from the command line: JSON when it parses (true, 5, "ask", ["+ a"]), else
// the text as a string (ask, + example.com).
[[nodiscard]] nlohmann::json parse_value(std::string_view text);

// Percent-encodes one path segment (RFC 3986 unreserved characters stay): a profile ID or a
// setting key ("filter/defaultAction" -> "filter%2FdefaultAction").
[[nodiscard]] std::string encode_segment(std::string_view text);

// --- --app resolution (client-side, through GET /profiles) ---

// What an --app argument names, in this order: a profile ID, a profile's exact name, an
// executable path matching a fingerprint {"type": "path", "operation": "equals"}.
struct AppMatch {
    enum class Kind : std::uint8_t { Found, Ambiguous, NotFound };
    Kind kind = Kind::NotFound;
    nlohmann::json profile;               // Found: the profile
    std::vector<nlohmann::json> profiles; // Ambiguous: every profile of that name
};

// Pure: looks `query` up in the list GET /profiles answered.
[[nodiscard]] AppMatch match_app(const nlohmann::json& profiles, std::string_view query);

// Whether the command changes something: only those create a profile for an unknown path.
enum class AppUse : std::uint8_t { Read, Write };

// --- request builders (pure) ---

enum class RuleChange : std::uint8_t { Add, Remove };

// POST or DELETE /rules or /profiles/{id}/rules with {"list", "rule"[, "position"]}.
[[nodiscard]] ApiRequest rule_request(RuleChange change,
                                      const std::optional<std::string>& profile_id,
                                      std::string_view list, std::string_view rule,
                                      std::optional<std::uint64_t> position = std::nullopt);

// GET /settings[/{key}] or /profiles/{id}/settings[/{key}].
[[nodiscard]] ApiRequest settings_get_request(const std::optional<std::string>& profile_id,
                                              const std::optional<std::string>& key);

// PUT .../settings/{key} with {"value": value} (null removes the key from its layer).
[[nodiscard]] ApiRequest settings_put_request(const std::optional<std::string>& profile_id,
                                              std::string_view key, nlohmann::json value);

// The answer to a prompt as the command line gives it.
struct PromptAnswerArguments {
    std::uint64_t id = 0;
    std::string verdict = "permit";    // permit or block
    std::string duration = "once";     // once, exit, restart, always or 15m, 2h, 1d, 30s
    std::optional<std::string> target; // domain, domain-and-subdomains (or zone), ip, port
};

// POST /prompts/{id}/answer with {"verdict", "for"[, "target"]}; domain-and-subdomains is the
// API's "zone". A bad verdict, duration or target is a usage error (exit 2).
[[nodiscard]] std::expected<ApiRequest, CommandError> prompt_answer_request(
    const PromptAnswerArguments& arguments);

// POST /pause with {"duration": "5m"} ({} without --for); POST /resume.
[[nodiscard]] ApiRequest pause_request(const std::optional<std::string>& duration);
[[nodiscard]] ApiRequest resume_request();

// Where a command's output goes and how it looks.
struct Output {
    std::ostream& out;
    std::ostream& err;
    enum class Format : std::uint8_t { Human, Json } format = Format::Human;
    Colour colour = Colour::Off;
};

// The verbs. Every method returns the process's exit code, having printed the result on `out` or
// the reason on `err`.
class Commands {
public:
    Commands(ApiTransport& api, ApiEndpoint endpoint, Output output)
        : api_(api), endpoint_(std::move(endpoint)), output_(output) {}

    int status();
    int apps();
    int app_show(std::string_view app);
    int rules_list(const std::optional<std::string>& app);
    int rules_change(RuleChange change, const std::optional<std::string>& app,
                     std::string_view list, std::string_view rule,
                     std::optional<std::uint64_t> position);
    int settings_get(const std::optional<std::string>& key, const std::optional<std::string>& app);
    int settings_set(std::string_view key, std::string_view value,
                     const std::optional<std::string>& app);
    int settings_unset(std::string_view key, const std::optional<std::string>& app);
    int prompts_list();
    int prompts_answer(const PromptAnswerArguments& arguments);
    int pause(const std::optional<std::string>& duration);
    int resume();

    // One request: the answer's body when its status is 2xx, else the error to print (the API's
    // own message for a refusal).
    [[nodiscard]] std::expected<nlohmann::json, CommandError> call(const ApiRequest& request);

    // The profile --app names (see match_app). For a path without a profile, a Write use creates
    // one (POST /profiles, named after the file) and says so on stderr; a Read use refuses.
    [[nodiscard]] std::expected<nlohmann::json, CommandError> resolve_app(std::string_view app,
                                                                          AppUse use);

    // Prints `error` on stderr and returns its exit code.
    int report(const CommandError& error);

    [[nodiscard]] const Output& output() const { return output_; }

private:
    // Prints the API's JSON (--json) or the human text.
    int print(const nlohmann::json& body, const std::string& human);
    // The profile ID of --app, or nullopt for the global scope.
    std::expected<std::optional<std::string>, CommandError> scope(
        const std::optional<std::string>& app, AppUse use);

    ApiTransport& api_;
    ApiEndpoint endpoint_;
    Output output_;
};

} // namespace pw::cli
