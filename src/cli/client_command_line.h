#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/api_client.h"
#include "cli/format.h"

namespace pw::cli {

// The client verbs on the command line (docs/cli.md): the global options --api, --json and
// --timeout, and status, apps, rules, settings, prompts, pause and resume as CLI11 subcommands of
// `app`. main.cc adds these next to `run` and `iptables`; the unit tests parse argument vectors
// through it against a fake ApiTransport. Holds the parsed values, which CLI11 writes through
// pointers: neither copied nor moved.
class ClientCommandLine {
public:
    explicit ClientCommandLine(CLI::App& app);
    ClientCommandLine(const ClientCommandLine&) = delete;
    ClientCommandLine& operator=(const ClientCommandLine&) = delete;
    ClientCommandLine(ClientCommandLine&&) = delete;
    ClientCommandLine& operator=(ClientCommandLine&&) = delete;
    ~ClientCommandLine() = default;

    // Whether the parsed command line names a client verb.
    [[nodiscard]] bool selected() const;

    // Where the verb writes and reads. `transport` null: an HttpApiClient on --api.
    struct Context {
        std::ostream& out;
        std::ostream& err;
        Colour colour = Colour::Off;
        ApiTransport* transport = nullptr;
        int input_fd = 0; // the terminal of `prompts watch`
    };

    // Runs the parsed verb; returns the exit code (docs/cli.md).
    int run(const Context& context);

    // The exit codes as `--help` shows them.
    static const char* exit_codes_help();

private:
    // Global options. Empty strings below mean "not given" (CLI11 2.1 has no std::optional).
    std::string api_ = "127.0.0.1:817";
    bool json_ = false;
    double timeout_seconds_ = 10.0;

    CLI::App* status_ = nullptr;
    CLI::App* apps_ = nullptr;
    CLI::App* apps_show_ = nullptr;
    std::string app_argument_;
    CLI::App* rules_ = nullptr;
    CLI::App* rules_list_ = nullptr;
    CLI::App* rules_add_ = nullptr;
    CLI::App* rules_remove_ = nullptr;
    std::string rules_app_;
    std::string rule_;
    std::string list_ = "endpoints";
    std::uint64_t position_ = 0;
    CLI::Option* position_option_ = nullptr;
    CLI::App* settings_ = nullptr;
    CLI::App* settings_get_ = nullptr;
    CLI::App* settings_set_ = nullptr;
    CLI::App* settings_unset_ = nullptr;
    std::string settings_app_;
    std::string key_;
    std::string value_;
    CLI::App* prompts_ = nullptr;
    CLI::App* prompts_list_ = nullptr;
    CLI::App* prompts_answer_ = nullptr;
    CLI::App* prompts_watch_ = nullptr;
    std::uint64_t prompt_id_ = 0;
    std::string verdict_;
    std::string duration_ = "once";
    std::string target_;
    CLI::App* pause_ = nullptr;
    CLI::App* resume_ = nullptr;
    std::string pause_for_;
};

} // namespace pw::cli
