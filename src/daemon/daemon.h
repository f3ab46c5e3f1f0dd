#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "config/config_file.h"
#include "interception/rule_set.h"

namespace pw::daemon {

// Exit codes of `portwarden run`, documented in the README.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // the environment stopped us (no root, queue busy)
inline constexpr int kExitBadConfig = 2; // the config file or an option was refused; nothing
                                         // was touched
inline constexpr int kExitRulesLeft = 3; // stopped, but rules of ours are still installed:
                                         // new connections are dropped until they are removed

// Where process attribution (issue 3) looks.
enum class AttributionMode : std::uint8_t {
    Auto,   // eBPF socket-owner records first, the socket tables as fallback
    Tables, // sock_diag (or /proc/net) and the /proc inode index only: the seed's way
    Off,    // no process attribution
};

// Where settings and profiles live unless --data-dir says otherwise.
inline constexpr std::string_view kDefaultDataDirectory = "/var/lib/portwarden";

struct RunOptions {
    // nullopt: built-in defaults (permit everything, permanent verdicts).
    std::optional<std::filesystem::path> config_path;
    // The data directory: portwarden.db (settings, profiles) is kept there.
    std::filesystem::path data_directory{kDefaultDataDirectory};
    // "-" for standard output, a file path, or nullopt for no event stream.
    std::optional<std::string> events_target;
    AttributionMode attribution = AttributionMode::Auto;
    // The cgroup v2 directory whose processes the eBPF programs observe; nullopt: the cgroup v2
    // root (every process on the host). Tests and benchmarks pass a cgroup of their own.
    std::optional<std::filesystem::path> bpf_cgroup;
    // systemd-resolved's monitor socket (issue 4); nullopt: do not subscribe.
    std::optional<std::filesystem::path> resolved_monitor;
};

// Where the nat rules send astray DNS queries (mark 1799) for this config's `dns/listenAddress`:
// the first nameserver endpoint of each IP version, none for a version it does not listen on.
// `portwarden run` and `portwarden iptables show|apply` must agree on it.
[[nodiscard]] interception::RedirectTargets redirect_targets(const config::Config& config);

// Refuses a config path that names something other than a regular file (a FIFO would block the
// start forever). A missing file passes: loading it names the problem.
[[nodiscard]] Status check_config_path(const std::filesystem::path& path);

// Sets every signal that would end the process by default, and that the daemon does not handle
// itself, to be ignored (SIGPIPE, SIGXFSZ, real-time signals ...). Helpers it starts get the
// default actions back (interception::IptablesBinaryRunner).
void ignore_fatal_signals();

// Runs the firewall in the foreground until SIGINT, SIGTERM or SIGQUIT: loads the config, binds the
// four queues, forgets the conntrack marks of earlier runs, installs the rules, decides
// connections, and on a signal removes the rules again. Returns the process exit code (kExit*).
[[nodiscard]] int run(const RunOptions& options);

} // namespace pw::daemon
