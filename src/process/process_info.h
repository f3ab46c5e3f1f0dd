#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace pw::process {

// Who a connection is attributed to. Process is the common case; the others are the special
// identities of issue 3 that rules and the event stream can name.
enum class IdentityKind {
    Process,              // an ordinary process, found through its socket
    Kernel,               // PID 0, inode 0 sockets (kernel-owned), kernel threads
    UnidentifiedOutbound, // outbound, but no process holds the socket any more (or yet)
    UnsolicitedInbound,   // inbound to no listening socket
    Portwarden,           // the firewall itself (its DNS forwarding, its API)
};

// How a program was packaged or started; several can apply (a Python script in a Flatpak).
// An empty optional means "not this kind"; an empty string means "this kind, name unknown".
struct ProcessTags {
    std::optional<std::string> flatpak_id;  // FLATPAK_ID, or [Application] name of /.flatpak-info
    std::optional<std::string> snap_name;   // SNAP_NAME, or the <name> of /snap/<name>/...
    std::optional<std::string> appimage;    // APPIMAGE (the .AppImage file), or its /tmp/.mount_*
    std::optional<std::string> interpreter; // the interpreter's executable when a script is the
                                            // identity; the script is then identity_path

    // "flatpak", "snap", "appimage", "script": for the event stream and logs.
    [[nodiscard]] std::vector<std::string_view> names() const;
    bool operator==(const ProcessTags&) const = default;
};

// The environment of a process: NAME=value pairs in the order of /proc/<pid>/environ, each name
// once (the first, as getenv() finds it). Values may hold secrets: never log them.
using Environment = std::vector<std::pair<std::string, std::string>>;

// One process as the firewall sees it, read once from /proc and then shared, immutable, between
// the ProcessRegistry cache and every connection attributed to it (which may outlive the
// registry entry, hence shared_ptr<const ProcessInfo>).
struct ProcessInfo {
    IdentityKind kind = IdentityKind::Process;
    int pid = 0;
    std::uint64_t start_time = 0; // clock ticks after boot, field 22 of /proc/<pid>/stat
    int parent_pid = 0;
    std::uint32_t uid = 0;  // real UID
    std::string user;       // user name, or the UID as text when it has no name
    std::string executable; // /proc/<pid>/exe without " (deleted)"; empty if unreadable
    bool deleted = false;   // the executable was deleted or replaced (an upgrade, or worse)
    std::vector<std::string> command_line;
    std::string identity_path; // what rules match: the script for interpreters, else executable
    ProcessTags tags;
    // From /proc/<pid>/cgroup (see parse_cgroup): "apt-daily.service", and for a process in a
    // container its ID and name. Empty when not in a unit / container, or unreadable.
    std::optional<std::string> systemd_unit;
    std::optional<std::string> container_id;
    std::optional<std::string> container_name;
    // From /proc/<pid>/environ, cut at RegistryOptions::max_environ_bytes; empty if unreadable.
    Environment environment;
};

// The special identities. Each is one shared immutable object, so comparing pointers works.
[[nodiscard]] std::shared_ptr<const ProcessInfo> kernel_identity();
[[nodiscard]] std::shared_ptr<const ProcessInfo> unidentified_outbound_identity();
[[nodiscard]] std::shared_ptr<const ProcessInfo> unsolicited_inbound_identity();

// --- Pure parsers of /proc text, used by ProcessRegistry and tested on their own. ---

// The fields of /proc/<pid>/stat that we use (proc(5)).
struct StatFields {
    int pid = 0;
    std::string comm; // may hold spaces and parentheses: "a) b (c"
    char state = '?';
    int parent_pid = 0;
    std::uint32_t flags = 0; // PF_* flags; PF_KTHREAD marks kernel threads
    std::uint64_t start_time = 0;
};
inline constexpr std::uint32_t kKernelThreadFlag = 0x00200000; // PF_KTHREAD

// comm is whatever the process named itself, so the fields after it are found from the LAST ')'.
[[nodiscard]] Result<StatFields> parse_stat(std::string_view stat);

// The real UID: the first number of the "Uid:" line of /proc/<pid>/status.
[[nodiscard]] std::optional<std::uint32_t> parse_status_uid(std::string_view status);

// cmdline and environ: NUL-separated, usually with a trailing NUL.
[[nodiscard]] std::vector<std::string> split_nul(std::string_view text);

// The value of NAME=value in a NUL-separated environment block.
[[nodiscard]] std::optional<std::string> environment_value(std::string_view environ,
                                                           std::string_view name);

// The environment block of /proc/<pid>/environ as pairs. Entries without '=' or with an empty
// name are skipped; a name given twice keeps its first value.
[[nodiscard]] Environment parse_environ(std::string_view environ);

// The value of `name` in a parsed environment; nullptr when it is not set.
[[nodiscard]] const std::string* find_environment(const Environment& environment,
                                                  std::string_view name);

// What the cgroup path of a process says about who started it.
struct CgroupFacts {
    // The last "*.service" or "*.scope" element of the path ("apt-daily.service"), inside the
    // container when there is one: a container's own scope ("docker-<id>.scope") is the
    // container, not a unit, and the units above it belong to the host.
    std::optional<std::string> systemd_unit;
    // Docker ("docker-<64 hex>.scope", ".../docker/<64 hex>") and Podman ("libpod-<64 hex>
    // [.scope]"): the 64-hex ID. LXC ("lxc.payload.<name>", "/lxc/<name>"): the name.
    std::optional<std::string> container_id;
    // The LXC name; for Docker and Podman, whose cgroup path names no container, the short
    // (12-hex) ID that `docker ps` shows.
    std::optional<std::string> container_name;

    bool operator==(const CgroupFacts&) const = default;
};

// Parses /proc/<pid>/cgroup (cgroups(7)): the cgroup v2 line "0::/path" when there is one,
// else the v1 "name=systemd" hierarchy, else the first line. Nested containers (Docker in LXC)
// give the innermost. Never fails: unknown layouts give empty facts.
[[nodiscard]] CgroupFacts parse_cgroup(std::string_view text);

// The interpreters whose script, not the interpreter, is the identity.
enum class InterpreterFamily { Python, Shell, Perl, Ruby, Node };

// "python3.11", "bash", "perl5.36", "node" (basename, version suffix allowed); others nullopt.
[[nodiscard]] std::optional<InterpreterFamily> interpreter_family(std::string_view executable);

// The script an interpreter runs: the first non-option argument after argv[0], skipping the
// values of options that take one. Nothing for inline code (-c, -e, -m) or stdin ("-").
[[nodiscard]] std::optional<std::string> script_argument(
    InterpreterFamily family, const std::vector<std::string>& command_line);

// The [Application] name= of a .flatpak-info file, if present.
[[nodiscard]] std::optional<std::string> flatpak_info_name(std::string_view flatpak_info);

} // namespace pw::process
