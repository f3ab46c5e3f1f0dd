#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pw::cli {

// The human-readable output of the client verbs: the API's JSON turned into aligned text. Pure
// functions (no I/O), so every table is unit-tested without a daemon. `--json` bypasses all of
// this and prints the API's JSON.

// Bold headers when stdout is a terminal and NO_COLOR is unset; plain text otherwise.
enum class Colour : std::uint8_t { Off, On };

// Rows of cells under a header; render_table() pads every column to its widest cell.
struct Table {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

// Columns separated by two spaces, no trailing spaces, one line per row (the header first).
// An empty table prints its header only.
[[nodiscard]] std::string render_table(const Table& table, Colour colour = Colour::Off);

// A value as a person reads it: strings without quotes, null as "-", anything else as compact
// JSON (`true`, `5`, `["+ a"]`).
[[nodiscard]] std::string display_value(const nlohmann::json& value);

// "2026-12-05T07:15:00.000Z" -> "2026-12-05 07:15:00"; null or missing -> "-".
[[nodiscard]] std::string display_time(const nlohmann::json& value);

// "3d 4h", "2h 5m", "59s".
[[nodiscard]] std::string display_uptime(std::int64_t seconds);

// A profile's fingerprints in one cell: the path of a path-equals fingerprint as is, others as
// "type[key] operation value"; several joined by ", ".
[[nodiscard]] std::string fingerprints_summary(const nlohmann::json& fingerprints);

// GET /status: "version", "uptime" and "paused" first, then every other member flattened
// ("counters.packets  42"), so fields the daemon adds later show up without a CLI change.
[[nodiscard]] std::string format_status(const nlohmann::json& status, Colour colour);

// GET /profiles: ID, NAME, SOURCE, EXECUTABLE, FIRST SEEN, LAST SEEN.
[[nodiscard]] std::string format_profiles(const nlohmann::json& profiles, Colour colour);

// GET /profiles/{id}: one profile, its settings, rules and rule statistics.
[[nodiscard]] std::string format_profile(const nlohmann::json& profile, Colour colour);

// The document `rules list` prints with --json (docs/cli.md): {"profile": null or {"id",
// "name"}, "endpoints": [...], "serviceEndpoints": [...], "temporaryRules": [...],
// "ruleStatistics": [...]}. As a table: LIST, #, RULE, MATCHES, LAST MATCH, then the temporary
// rules with their end.
[[nodiscard]] std::string format_rules(const nlohmann::json& rules, Colour colour);

// GET /settings, /settings/{key} and the profile's: KEY, VALUE, LAYER, SCOPE. Takes a list or
// one setting object.
[[nodiscard]] std::string format_settings(const nlohmann::json& settings, Colour colour);

// GET /prompts: ID, APPLICATION, DIRECTION, PROTOCOL, DOMAIN, IP, PORT, OPENED.
[[nodiscard]] std::string format_prompts(const nlohmann::json& prompts, Colour colour);

// One prompt in a few lines, for `prompts watch`.
[[nodiscard]] std::string format_prompt(const nlohmann::json& prompt);

// The answer of POST /prompts/{id}/answer: "prompt 7: permit always (1 connection released)".
[[nodiscard]] std::string format_prompt_answer(const nlohmann::json& answer);

// The port a prompt is about: the remote port outbound, the local port inbound.
[[nodiscard]] std::string prompt_port(const nlohmann::json& prompt);

} // namespace pw::cli
