#pragma once

#include <memory>
#include <optional>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "process/process_info.h"

namespace pw::profile {

// What a fingerprint looks at (facts 4.3, Portmaster's fingerprint types).
enum class FingerprintType {
    Tag,     // one of the tags below, named by `key`
    Cmdline, // the command line, its arguments joined by single spaces
    Env,     // the environment variable named by `key`
    Path,    // the identity path (the script of an interpreter, else the executable) or the
             // executable
};

// How a fingerprint compares its value with what it looks at.
enum class FingerprintOperation {
    Equals, // the same text
    Prefix, // starts with the value
    Regex,  // ECMAScript regular expression matching the WHOLE text (anchored, unlike
            // Portmaster's Go regexp, so that "/usr/bin/curl" cannot match "/usr/bin/curl-dl")
};

// "tag", "cmdline", "env", "path" / "equals", "prefix", "regex": the JSON names.
[[nodiscard]] std::string_view fingerprint_type_name(FingerprintType type);
[[nodiscard]] std::string_view fingerprint_operation_name(FingerprintOperation operation);

// The tags a Tag fingerprint can name (its `key`), and where each comes from.
inline constexpr std::string_view kTagScript = "script";                // identity_path of a script
inline constexpr std::string_view kTagFlatpak = "flatpak";              // ProcessTags::flatpak_id
inline constexpr std::string_view kTagSnap = "snap";                    // ProcessTags::snap_name
inline constexpr std::string_view kTagAppImage = "appimage";            // ProcessTags::appimage
inline constexpr std::string_view kTagSystemdUnit = "systemd-unit";     // "apt-daily.service"
inline constexpr std::string_view kTagContainerId = "container-id";     // 64 hex, or LXC name
inline constexpr std::string_view kTagContainerName = "container-name"; // LXC name, short ID
inline constexpr std::string_view kTagUser = "user";                    // the user name
[[nodiscard]] std::span<const std::string_view> fingerprint_tags();

// Bounds on what a fingerprint may hold, so that a stored profile cannot make matching slow.
inline constexpr std::size_t kMaxFingerprintValue = 4096; // PATH_MAX
inline constexpr std::size_t kMaxFingerprintRegex = 512;
inline constexpr std::size_t kMaxFingerprints = 256; // per profile

// One way to recognise an application. A profile lists several; a process matches the profile
// when ANY of them matches (Portmaster's semantics), and the profile scores its best one.
//
// Containers are separate systems: their /usr/bin/ping is not the host's. A fingerprint without
// `container` matches processes on the host only; with one, processes in the container of that
// name only (ProcessInfo::container_name). The container tags match wherever they are found
// and take no `container`.
struct Fingerprint {
    FingerprintType type = FingerprintType::Path;
    std::string key{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-...
    FingerprintOperation operation = FingerprintOperation::Equals;
    std::string value{}; // NOLINT(readability-redundant-member-init): as above
    // Match the parent chain (ProcessRegistry::ancestors) instead of the process itself: the
    // `curl` that a given script starts.
    bool ancestor = false;
    std::optional<std::string> container{}; // NOLINT(readability-redundant-member-init)
    // The compiled `value` of a Regex fingerprint, shared by the copies of the fingerprint (the
    // profile, the index); set by make_fingerprint() and parse_fingerprints(), null otherwise.
    std::shared_ptr<const std::regex> regex{}; // NOLINT(readability-redundant-member-init)

    // Equal content; the compiled regex follows from it and is not compared.
    friend bool operator==(const Fingerprint& left, const Fingerprint& right) {
        return left.type == right.type && left.key == right.key &&
               left.operation == right.operation && left.value == right.value &&
               left.ancestor == right.ancestor && left.container == right.container;
    }
};
using Fingerprints = std::vector<Fingerprint>;

// Checks a fingerprint built in code and compiles its regex. The errors are those of
// parse_fingerprints, without the "fingerprints[i]." prefix.
[[nodiscard]] Result<Fingerprint> make_fingerprint(Fingerprint fingerprint);

// Reads a JSON array of fingerprint objects:
//   {"type": "path", "operation": "equals", "value": "/usr/bin/curl"}
//   {"type": "tag", "key": "systemd-unit", "operation": "equals", "value": "apt-daily.service"}
//   {"type": "env", "key": "X", "operation": "prefix", "value": "y", "ancestor": true}
//   {"type": "path", "operation": "equals", "value": "/usr/bin/ping", "container": "web-1"}
// "key" is required for tag and env and refused for the others; unknown fields are refused, so
// that a misspelt "ancestors" does not silently match every process. Errors name the entry and
// the field: `fingerprints[2].operation: must be one of equals, prefix, regex (got "eq")`.
[[nodiscard]] Result<Fingerprints> parse_fingerprints(const nlohmann::json& array);

// The same from JSON text; every error starts with `where` ("profile curl-1a2b: ...").
[[nodiscard]] Result<Fingerprints> parse_fingerprints_text(std::string_view json_text,
                                                           std::string_view where);

// The JSON array parse_fingerprints() reads back: optional fields only when set.
[[nodiscard]] nlohmann::json to_json(const Fingerprint& fingerprint);
[[nodiscard]] nlohmann::json to_json(const Fingerprints& fingerprints);

// --- Scores (facts 4.3) ------------------------------------------------------------------------
// score = type + operation + strength, and kScoreAncestor more for an ancestor fingerprint:
//   type:      tag 50 000 > cmdline 40 000 > env 30 000 > path of the identity (the script of
//              an interpreter, or the executable) 20 000 > path of an interpreter's executable
//              10 000;
//   operation: equals 3 000 > prefix 2 000 > regex 1 000;
//   strength:  the length of the value, at most 499: a longer prefix is more specific.
// Strength < 1 000, so the operation always outranks it, and the type the operation. Portmaster's
// numbers, with its "MatchingPath" being our identity path. An ancestor fingerprint outranks
// every fingerprint of the process itself: it was written to catch a child that already has a
// profile of its own (a script's `curl` against the auto profile of curl).
inline constexpr int kScoreTag = 50'000;
inline constexpr int kScoreCmdline = 40'000;
inline constexpr int kScoreEnv = 30'000;
inline constexpr int kScoreIdentityPath = 20'000;
inline constexpr int kScoreExecutablePath = 10'000;
inline constexpr int kScoreEquals = 3'000;
inline constexpr int kScorePrefix = 2'000;
inline constexpr int kScoreRegex = 1'000;
inline constexpr int kScoreMaxStrength = 499;
inline constexpr int kScoreAncestor = 100'000;

using Ancestors = std::span<const std::shared_ptr<const process::ProcessInfo>>;

// How well `fingerprint` matches `process` (or, for an ancestor fingerprint, the best of
// `ancestors`, nearest first as ProcessRegistry::ancestors gives them); 0 for no match. Only
// ordinary processes (IdentityKind::Process) match anything.
[[nodiscard]] int score(const Fingerprint& fingerprint, const process::ProcessInfo& process,
                        Ancestors ancestors);

// A profile's score: the highest score of its fingerprints; 0 when none matches.
[[nodiscard]] int score(const Fingerprints& fingerprints, const process::ProcessInfo& process,
                        Ancestors ancestors);

// The value a Tag fingerprint with `key` compares for `process`; nullopt when the process has
// no such tag.
[[nodiscard]] std::optional<std::string_view> tag_value(std::string_view key,
                                                        const process::ProcessInfo& process);

// The command line as a Cmdline fingerprint sees it: the arguments joined by single spaces.
[[nodiscard]] std::string joined_command_line(const process::ProcessInfo& process);

// --- Identity ----------------------------------------------------------------------------------

// A profile ID derived from the fingerprints' content alone: "<slug>-<20 hex>", the slug a
// readable name (curl, org.mozilla.firefox), the hex the start of the SHA-256 of the canonical
// JSON (fingerprints sorted, duplicates removed). The same fingerprints give the same ID on
// every start and for every version of the executable at that path; it never starts with '_'
// (reserved for the special profiles) and holds only [a-z0-9.-].
[[nodiscard]] std::string profile_id_for(const Fingerprints& fingerprints);

// profile_id_for() with a counter mixed into the hash, for when the plain ID is taken already
// (a profile whose fingerprints were edited keeps its ID). `attempt` 0 is profile_id_for().
[[nodiscard]] std::string profile_id_for(const Fingerprints& fingerprints, unsigned attempt);

// The fingerprints of a new profile for a process that matches no profile: the first of its
// Flatpak ID, Snap name, AppImage and script (tag equals), else its executable (path equals),
// scoped to its container if it runs in one. Empty when it has nothing to recognise it by (an
// unreadable executable, a special identity).
[[nodiscard]] Fingerprints auto_fingerprints(const process::ProcessInfo& process);

} // namespace pw::profile
