// The `portwarden` command: the daemon (`run`) and the client verbs.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/client_command_line.h"
#include "common/log.h"
#include "config/config_file.h"
#include "daemon/daemon.h"
#include "dns/resolved_monitor.h"
#include "interception/rule_set.h"

namespace {

constexpr const char* kDefaultConfigPath = "/etc/portwarden/config.json";

const char* family_name(pw::IpFamily family) {
    return family == pw::IpFamily::V4 ? "IPv4" : "IPv6";
}

// `portwarden iptables apply|remove`: exit 0 when IPv4 succeeded; IPv6 failures are reported
// but do not fail the command, as a system without IPv6 is common.
enum class RuleChange : std::uint8_t { Apply, Remove };

// The config whose dns/listenAddress the rules redirect to: `--config FILE`, else the default
// file if it exists, else the built-in defaults. A bad file is reported; nullopt then.
std::optional<pw::config::Config> rules_config(const std::string& config_path) {
    std::filesystem::path path = config_path;
    if (path.empty()) {
        if (!std::filesystem::exists(kDefaultConfigPath)) {
            return pw::config::Config{};
        }
        path = kDefaultConfigPath;
    }
    if (auto regular = pw::daemon::check_config_path(path); !regular) {
        std::cerr << "portwarden iptables: " << regular.error().message() << "\n";
        return std::nullopt;
    }
    auto loaded = pw::config::load_config_file(path);
    if (!loaded) {
        std::cerr << "portwarden iptables: " << loaded.error().message() << "\n";
        return std::nullopt;
    }
    return std::move(*loaded);
}

int change_rules(RuleChange change, const pw::config::Config& config) {
    const bool apply = change == RuleChange::Apply;
    if (::geteuid() != 0) {
        std::cerr << "portwarden iptables: needs root (CAP_NET_ADMIN)\n";
        return 1;
    }
    pw::interception::IptablesBinaryRunner runner;
    pw::interception::RuleSet rules(runner, pw::daemon::redirect_targets(config));
    const auto outcomes = apply ? rules.apply() : rules.remove();
    int exit_code = 0;
    for (const auto& outcome : outcomes) {
        if (outcome.status) {
            std::cout << family_name(outcome.family) << ": rules "
                      << (apply ? "installed" : "removed") << "\n";
            continue;
        }
        std::cerr << family_name(outcome.family) << ": " << outcome.status.error().message()
                  << "\n";
        if (outcome.family == pw::IpFamily::V4) {
            exit_code = 1;
        }
    }
    if (apply && exit_code == 0) {
        std::cout << "Note: until `portwarden run` binds the queues, new connections are dropped "
                     "(fail-closed). `portwarden iptables remove` undoes this.\n";
    }
    return exit_code;
}

int show_rules(const pw::config::Config& config) {
    const auto targets = pw::daemon::redirect_targets(config);
    for (const pw::IpFamily family : {pw::IpFamily::V4, pw::IpFamily::V6}) {
        std::cout << "# " << (family == pw::IpFamily::V4 ? "iptables-restore" : "ip6tables-restore")
                  << " --noflush\n"
                  << pw::interception::render_rules(family, targets) << "\n";
    }
    return 0;
}

// `portwarden iptables show|apply|remove`.
int iptables_command(const CLI::App& show, const CLI::App& remove,
                     const std::string& rules_config_path) {
    if (remove.parsed()) {
        // Recovery must work whatever state the config is in: removal needs no config.
        return change_rules(RuleChange::Remove, pw::config::Config{});
    }
    const auto config = rules_config(rules_config_path);
    if (!config) {
        return 2; // the config was refused (as `portwarden run` would: kExitBadConfig)
    }
    if (show.parsed()) {
        return show_rules(*config);
    }
    return change_rules(RuleChange::Apply, *config);
}

// A client verb (docs/cli.md): tables in colour only on a terminal, and never with NO_COLOR.
int run_client(pw::cli::ClientCommandLine& client) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): one thread, and nothing calls setenv().
    const bool colour = ::isatty(STDOUT_FILENO) != 0 && std::getenv("NO_COLOR") == nullptr;
    return client.run({.out = std::cout,
                       .err = std::cerr,
                       .colour = colour ? pw::cli::Colour::On : pw::cli::Colour::Off,
                       .transport = nullptr,
                       .input_fd = STDIN_FILENO});
}

} // namespace

namespace {

// Parses the command line into `app`; nullopt when the command is to run, else the exit code.
// --help is an "error" that exits 0. A refused option exits 2, as a refused config does
// (kExitBadConfig), not with CLI11's own codes (105, 109, 114 ...; issue 10 item 7).
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        const int printed = app.exit(error);
        return printed == 0 ? 0 : pw::daemon::kExitBadConfig;
    }
    return std::nullopt;
}

int run_command_line(int argc, char** argv) {
    CLI::App app{"portwarden: an application firewall for Linux"};
    app.require_subcommand(1);
    // Global options may also follow the subcommand: `portwarden run --log-level debug`.
    app.fallthrough();
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "debug, info, warn or error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

    auto* run = app.add_subcommand("run", "Run the firewall daemon in the foreground (root)");
    std::string config_path;
    std::string events_target;
    run->add_option("--config", config_path,
                    std::string("JSON config file (default: ") + kDefaultConfigPath +
                        " if it exists, else built-in defaults)");
    run->add_option("--events", events_target,
                    "Write connection events as JSON lines to FILE, or - for standard output");
    std::string data_dir = std::string(pw::daemon::kDefaultDataDirectory);
    run->add_option("--data-dir", data_dir,
                    "Directory of the settings and profiles database (default: " +
                        std::string(pw::daemon::kDefaultDataDirectory) + ")");
    std::string attribution = "auto";
    run->add_option("--attribution", attribution,
                    "Process attribution: auto (eBPF records, then socket tables), tables "
                    "(sock_diag and /proc only) or off")
        ->check(CLI::IsMember({"auto", "tables", "off"}));
    std::string bpf_cgroup;
    run->add_option("--bpf-cgroup", bpf_cgroup,
                    "cgroup v2 directory whose processes the eBPF programs observe (default: "
                    "the cgroup v2 root, i.e. every process)");
    std::string resolved_monitor(pw::dns::kResolvedMonitorSocket);
    run->add_option("--resolved-monitor", resolved_monitor,
                    "systemd-resolved's monitor socket, whose answers label connections of "
                    "processes that ask resolved (default: " +
                        std::string(pw::dns::kResolvedMonitorSocket) +
                        "; watched until it appears; 'off' to disable)");

    auto* iptables = app.add_subcommand("iptables", "Show, install or remove the kernel rules");
    iptables->require_subcommand(1);
    std::string rules_config_path;
    iptables->add_option("--config", rules_config_path,
                         "JSON config whose dns/listenAddress the astray-DNS rules redirect to "
                         "(default: " +
                             std::string(kDefaultConfigPath) + " if it exists)");
    auto* show = iptables->add_subcommand("show", "Print the rules without applying them");
    iptables->add_subcommand("apply", "Install the rules (idempotent)");
    auto* remove = iptables->add_subcommand(
        "remove", "Remove every rule and chain of ours (recovery after a crash)");
    auto* version = app.add_subcommand("version", "Print the version");
    // The client verbs (status, apps, rules, settings, prompts, pause, resume): docs/cli.md.
    pw::cli::ClientCommandLine client(app);
    app.footer(pw::cli::ClientCommandLine::exit_codes_help());

    if (const auto exit_code = parse_command_line(app, argc, argv)) {
        return *exit_code;
    }
    pw::log::set_level(log_level);

    if (client.selected()) {
        return run_client(client);
    }
    if (*run) {
        pw::daemon::RunOptions options;
        if (!config_path.empty()) {
            options.config_path = config_path;
        } else if (std::filesystem::exists(kDefaultConfigPath)) {
            options.config_path = kDefaultConfigPath;
        }
        if (!events_target.empty()) {
            options.events_target = events_target;
        }
        options.data_directory = data_dir;
        options.attribution = attribution == "off"      ? pw::daemon::AttributionMode::Off
                              : attribution == "tables" ? pw::daemon::AttributionMode::Tables
                                                        : pw::daemon::AttributionMode::Auto;
        if (!bpf_cgroup.empty()) {
            options.bpf_cgroup = bpf_cgroup;
        }
        if (resolved_monitor != "off" && !resolved_monitor.empty()) {
            options.resolved_monitor = resolved_monitor;
        }
        return pw::daemon::run(options);
    }
    if (*iptables) {
        return iptables_command(*show, *remove, rules_config_path);
    }
    if (*version) {
        std::cout << "portwarden " << PW_VERSION << "\n";
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    // Exceptions (bad_alloc, or a library's at start-up) end the process with a message rather
    // than std::terminate's bare abort.
    try {
        return run_command_line(argc, argv);
    } catch (const std::exception& error) {
        std::cerr << "portwarden: " << error.what() << "\n";
        return 1;
    }
}
