#pragma once

#include <filesystem>
#include <string_view>

#include "common/result.h"
#include "config/listen_address.h"
#include "config/settings_schema.h"
#include "firewall/settings.h"

namespace pw::config {

// The daemon's configuration as loaded from its JSON config file: the global layer the file
// sets (settings_schema.h), and what the daemon reads from it. Every key is validated, unknown
// keys are errors (a typo must not silently leave a default in force). A default-constructed
// Config is what an empty file ("{}") gives.
struct Config {
    // The global FilterSettings: the defaults with the file's values (no profile).
    firewall::FilterSettings filter = default_filter_settings();
    DnsSettings dns;
    CoreSettings core = resolve_core_settings(CompiledSettings{});
    EventSettings events = resolve_event_settings(CompiledSettings{});
    // The file's layer, compiled; `file_layer.values` are the keys the file set, as written.
    // The settings store puts it above its own global values (overlay_layers), and the API
    // refuses to change these keys at runtime.
    CompiledSettings file_layer;
};

// Parses the text of a config file. Keys may be nested objects or slash paths, equivalently:
//   {"filter": {"defaultAction": "block", "endpoints": ["+ 10.0.0.1 tcp/22"]}}
//   {"filter/defaultAction": "block", "filter/endpoints": ["+ 10.0.0.1 tcp/22"]}
// The keys and their values are those of the settings catalogue (all_settings(); the file is
// the global layer, so it may set every key). An error names the source, the line and the
// reason, in the catalogue's words:
//   "config.json:7: filter/endpoints[2] '+ 10.0.0.300': invalid IP address '10.0.0.300'".
// Every problem is listed, in file order. Nothing is half-applied: either the whole Config or an
// error.
[[nodiscard]] Result<Config> parse_config(std::string_view text, std::string_view source_name);

// Reads and parses a file; a missing or unreadable file is an error naming the path.
[[nodiscard]] Result<Config> load_config_file(const std::filesystem::path& path);

} // namespace pw::config
