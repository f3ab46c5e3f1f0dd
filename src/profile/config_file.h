#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"
#include "firewall/settings.h"

namespace pw::profile {

// The daemon's configuration as loaded from its JSON config file. Grows with later issues
// (dns/..., core/...); every key is validated, unknown keys are errors (a typo must not silently
// leave a default in force).
struct Config {
    firewall::FilterSettings filter;
};

// Parses the text of a config file. Keys may be nested objects or slash paths, equivalently:
//   {"filter": {"defaultAction": "block", "endpoints": ["+ 10.0.0.1 tcp/22"]}}
//   {"filter/defaultAction": "block", "filter/endpoints": ["+ 10.0.0.1 tcp/22"]}
// Known keys: filter/defaultAction (permit|block), filter/endpoints (list of rule lines),
// filter/permanentVerdicts (bool, default true), filter/outboundBlockAction (reject|drop).
// An error names the source, the line and the reason:
//   "config.json:7: filter/endpoints[2] '+ 10.0.0.300': invalid IP address '10.0.0.300'".
// Nothing is half-applied: either the whole Config or an error.
[[nodiscard]] Result<Config> parse_config(std::string_view text, std::string_view source_name);

// Reads and parses a file; a missing or unreadable file is an error naming the path.
[[nodiscard]] Result<Config> load_config_file(const std::filesystem::path& path);

} // namespace pw::profile
