#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pw {

// "15m", "2h", "900s", "1d": a positive whole number and one unit (s, m, h, d), as people write
// durations in prompt answers, `portwarden pause --for 5m` and the API. nullopt for anything
// else, zero and more than a billion units included.
[[nodiscard]] std::optional<std::chrono::seconds> parse_duration(std::string_view text);

// The shortest of those texts for `length`: "1d", "90m", "45s"; "0s" for zero or less.
[[nodiscard]] std::string duration_text(std::chrono::seconds length);

} // namespace pw
