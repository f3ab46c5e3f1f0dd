#include "cli/client_command_line.h"

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "cli/commands.h"
#include "cli/prompt_watch.h"

namespace pw::cli {
namespace {

constexpr std::chrono::milliseconds kWatchPoll{500};

std::optional<std::string> given(const std::string& value) {
    return value.empty() ? std::nullopt : std::optional<std::string>(value);
}

void add_app_option(CLI::App* command, std::string& target, const char* what) {
    command->add_option("--app", target,
                        std::string(what) +
                            ": a profile ID, a profile name or an executable's full path "
                            "(default: the global settings)");
}

} // namespace

const char* ClientCommandLine::exit_codes_help() {
    return "Exit codes: 0 ok; 1 the daemon refused or failed (its message is printed); 2 usage "
           "error; 3 the daemon is not reachable (not running); 4 not allowed (root or a member "
           "of group portwarden may use the API). See docs/cli.md.";
}

ClientCommandLine::ClientCommandLine(CLI::App& app) {
    app.add_option("--api", api_, "Address of the local API, ADDRESS:PORT (default 127.0.0.1:817)");
    app.add_flag("--json", json_, "Print the API's JSON instead of tables (docs/cli.md)");
    app.add_option("--timeout", timeout_seconds_,
                   "Seconds to wait for the daemon's answer (default 10)")
        ->check(CLI::Range(0.1, 3600.0));

    status_ = app.add_subcommand("status", "Show the daemon's state (GET /status)");

    apps_ = app.add_subcommand("apps", "List the application profiles; `apps show A` shows one");
    apps_->require_subcommand(0, 1);
    apps_show_ = apps_->add_subcommand("show", "Show one profile with its settings and rules");
    apps_show_->add_option("app", app_argument_, "A profile ID, a name or an executable's path")
        ->required();

    rules_ = app.add_subcommand("rules", "List, add or remove endpoint rules (docs/rules.md)");
    rules_->require_subcommand(1);
    rules_list_ = rules_->add_subcommand("list", "List the rules, global or of one application");
    add_app_option(rules_list_, rules_app_, "The application whose rules to list");
    rules_add_ = rules_->add_subcommand("add", "Add a rule such as '- .example.com'");
    rules_remove_ = rules_->add_subcommand("remove", "Remove a rule (its exact text)");
    for (CLI::App* change : {rules_add_, rules_remove_}) {
        change->add_option("rule", rule_, "The rule, e.g. '- .example.com' or '+ 10.0.0.0/8'")
            ->required();
        add_app_option(change, rules_app_, "The application whose rules to change");
        change
            ->add_option("--list", list_,
                         "endpoints (outgoing, the default) or serviceEndpoints (incoming)")
            ->check(CLI::IsMember({"endpoints", "serviceEndpoints"}));
    }
    position_option_ = rules_add_->add_option(
        "--position", position_, "Where the rule goes in the list, 0 first (default: the end)");

    settings_ = app.add_subcommand("settings", "Read or change settings (docs/configuration.md)");
    settings_->require_subcommand(1);
    settings_get_ = settings_->add_subcommand("get", "Show every setting, or one KEY");
    settings_get_->add_option("key", key_, "A setting key such as filter/defaultAction");
    add_app_option(settings_get_, settings_app_, "Show this application's settings");
    settings_set_ = settings_->add_subcommand("set", "Set KEY to VALUE");
    settings_set_->add_option("key", key_, "A setting key such as filter/defaultAction")
        ->required();
    settings_set_
        ->add_option("value", value_,
                     R"(JSON when it parses (true, 5, "ask", ["+ a"]), else a string)")
        ->required();
    add_app_option(settings_set_, settings_app_, "Set it for this application");
    settings_unset_ = settings_->add_subcommand(
        "unset", "Remove KEY from the store: the default or the config file's value applies");
    settings_unset_->add_option("key", key_, "A setting key")->required();
    add_app_option(settings_unset_, settings_app_, "Remove the application's own value");

    prompts_ = app.add_subcommand("prompts", "List open prompts; answer or watch them");
    prompts_->require_subcommand(0, 1);
    prompts_list_ = prompts_->add_subcommand("list", "List the open prompts (the default)");
    prompts_answer_ = prompts_->add_subcommand("answer", "Answer prompt ID with permit or block");
    prompts_answer_->add_option("id", prompt_id_, "The prompt's ID (from `portwarden prompts`)")
        ->required();
    prompts_answer_->add_option("verdict", verdict_, "permit or block")
        ->required()
        ->check(CLI::IsMember({"permit", "block"}));
    prompts_answer_->add_option(
        "--for", duration_, "once (default), a duration such as 15m or 1h, exit, restart, always");
    prompts_answer_->add_option("--target", target_,
                                "What the rule names: domain, domain-and-subdomains, ip or port "
                                "(default: the domain when there is one, else the IP)");
    prompts_watch_ = prompts_->add_subcommand(
        "watch", "Show new prompts as they open and answer each with one key (needs a terminal)");

    pause_ = app.add_subcommand("pause", "Pause filtering: every connection passes");
    pause_->add_option("--for", pause_for_, "How long, e.g. 5m or 1h, at most 24h (default: 5m)");
    resume_ = app.add_subcommand("resume", "Resume filtering after a pause");
}

bool ClientCommandLine::selected() const {
    for (const CLI::App* command : {status_, apps_, rules_, settings_, prompts_, pause_, resume_}) {
        if (command->parsed()) {
            return true;
        }
    }
    return false;
}

int ClientCommandLine::run(const Context& context) {
    auto endpoint = parse_api_endpoint(api_);
    if (!endpoint) {
        context.err << "portwarden: " << endpoint.error().message() << "\n";
        return kExitUsage;
    }
    std::unique_ptr<HttpApiClient> http;
    ApiTransport* transport = context.transport;
    if (transport == nullptr) {
        const auto timeout = std::chrono::milliseconds(std::lround(timeout_seconds_ * 1000.0));
        http = std::make_unique<HttpApiClient>(*endpoint, timeout);
        transport = http.get();
    }
    Commands commands(*transport, *endpoint,
                      Output{.out = context.out,
                             .err = context.err,
                             .format = json_ ? Output::Format::Json : Output::Format::Human,
                             .colour = json_ ? Colour::Off : context.colour});
    if (status_->parsed()) {
        return commands.status();
    }
    if (apps_->parsed()) {
        return apps_show_->parsed() ? commands.app_show(app_argument_) : commands.apps();
    }
    if (rules_list_->parsed()) {
        return commands.rules_list(given(rules_app_));
    }
    if (rules_add_->parsed() || rules_remove_->parsed()) {
        return commands.rules_change(
            rules_add_->parsed() ? RuleChange::Add : RuleChange::Remove, given(rules_app_), list_,
            rule_,
            position_option_->count() > 0 ? std::optional<std::uint64_t>(position_) : std::nullopt);
    }
    if (settings_get_->parsed()) {
        return commands.settings_get(given(key_), given(settings_app_));
    }
    if (settings_set_->parsed()) {
        return commands.settings_set(key_, value_, given(settings_app_));
    }
    if (settings_unset_->parsed()) {
        return commands.settings_unset(key_, given(settings_app_));
    }
    if (prompts_answer_->parsed()) {
        return commands.prompts_answer(PromptAnswerArguments{.id = prompt_id_,
                                                             .verdict = verdict_,
                                                             .duration = duration_,
                                                             .target = given(target_)});
    }
    if (prompts_watch_->parsed()) {
        return watch_prompts(commands, context.input_fd, kWatchPoll);
    }
    if (prompts_->parsed()) {
        return commands.prompts_list();
    }
    if (pause_->parsed()) {
        return commands.pause(given(pause_for_));
    }
    if (resume_->parsed()) {
        return commands.resume();
    }
    context.err << "portwarden: no client command given\n";
    return kExitUsage;
}

} // namespace pw::cli
