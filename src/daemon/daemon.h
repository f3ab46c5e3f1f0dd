#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace pw::daemon {

// Exit codes of `portwarden run`, documented in the README.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // the environment stopped us (no root, queue busy)
inline constexpr int kExitBadConfig = 2; // the config file was refused; nothing was touched

struct RunOptions {
    // nullopt: built-in defaults (permit everything, permanent verdicts).
    std::optional<std::filesystem::path> config_path;
    // "-" for standard output, a file path, or nullopt for no event stream.
    std::optional<std::string> events_target;
};

// Runs the firewall in the foreground until SIGINT or SIGTERM: loads the config, binds the four
// queues, forgets the conntrack marks of earlier runs, installs the rules, decides connections,
// and on a signal removes the rules again. Returns the process exit code.
[[nodiscard]] int run(const RunOptions& options);

} // namespace pw::daemon
