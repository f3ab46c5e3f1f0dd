#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pw {

// The length of the well-formed UTF-8 sequence at the start of `text` (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 when it does not start with one.
// Paths and command lines are bytes, but JSON (the API, the settings database) holds Unicode
// text only, so whatever goes from a process into JSON is checked first.
[[nodiscard]] constexpr std::size_t utf8_sequence_length(std::string_view text) {
    if (text.empty()) {
        return 0;
    }
    const auto byte = [&text](std::size_t index) {
        return static_cast<std::uint8_t>(text[index]);
    };
    const std::uint8_t lead = byte(0);
    if (lead < 0x80U) {
        return 1;
    }
    std::size_t length = 0;
    std::uint8_t low = 0x80U; // the allowed range of the second byte
    std::uint8_t high = 0xBFU;
    if (lead >= 0xC2U && lead <= 0xDFU) {
        length = 2;
    } else if (lead >= 0xE0U && lead <= 0xEFU) {
        length = 3;
        low = lead == 0xE0U ? 0xA0U : 0x80U;  // no overlong forms
        high = lead == 0xEDU ? 0x9FU : 0xBFU; // no surrogates
    } else if (lead >= 0xF0U && lead <= 0xF4U) {
        length = 4;
        low = lead == 0xF0U ? 0x90U : 0x80U;  // no overlong forms
        high = lead == 0xF4U ? 0x8FU : 0xBFU; // nothing above U+10FFFF
    } else {
        return 0;
    }
    if (text.size() < length || byte(1) < low || byte(1) > high) {
        return 0;
    }
    for (std::size_t index = 2; index < length; ++index) {
        if (byte(index) < 0x80U || byte(index) > 0xBFU) {
            return 0;
        }
    }
    return length;
}

[[nodiscard]] constexpr bool is_valid_utf8(std::string_view text) {
    while (!text.empty()) {
        const std::size_t length = utf8_sequence_length(text);
        if (length == 0) {
            return false;
        }
        text.remove_prefix(length);
    }
    return true;
}

// `text` with every byte that is not part of well-formed UTF-8 replaced by `replacement`.
[[nodiscard]] inline std::string to_valid_utf8(std::string_view text, char replacement = '?') {
    std::string result;
    result.reserve(text.size());
    while (!text.empty()) {
        const std::size_t length = utf8_sequence_length(text);
        if (length == 0) {
            result.push_back(replacement);
            text.remove_prefix(1);
        } else {
            result.append(text.substr(0, length));
            text.remove_prefix(length);
        }
    }
    return result;
}

} // namespace pw
