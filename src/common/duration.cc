#include "common/duration.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <system_error>
#include <utility>

namespace pw {
namespace {

constexpr std::uint64_t kMaxCount = 1'000'000'000;

// Largest unit first: duration_text() takes the first that divides evenly.
constexpr std::array<std::pair<char, std::uint64_t>, 4> kUnits = {
    {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}};

} // namespace

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
    if (text.size() < 2) {
        return std::nullopt;
    }
    const char unit = text.back();
    text.remove_suffix(1);
    std::uint64_t count = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), count);
    if (error != std::errc{} || end != text.data() + text.size() || count == 0 ||
        count > kMaxCount) {
        return std::nullopt;
    }
    for (const auto& [name, seconds] : kUnits) {
        if (name == unit) {
            return std::chrono::seconds(static_cast<std::int64_t>(count * seconds));
        }
    }
    return std::nullopt;
}

std::string duration_text(std::chrono::seconds length) {
    if (length.count() <= 0) {
        return "0s";
    }
    const auto seconds = static_cast<std::uint64_t>(length.count());
    for (const auto& [name, unit_seconds] : kUnits) {
        if (seconds % unit_seconds == 0) {
            return std::to_string(seconds / unit_seconds) + name;
        }
    }
    return std::to_string(seconds) + "s";
}

} // namespace pw
