#include "profile/fingerprint.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <utility>

#include "common/sha256.h"
#include "common/utf8.h"

namespace pw::profile {
namespace {

using process::ProcessInfo;

constexpr std::array<std::string_view, 8> kTags = {
    kTagScript,      kTagFlatpak,     kTagSnap,          kTagAppImage,
    kTagSystemdUnit, kTagContainerId, kTagContainerName, kTagUser,
};

constexpr std::array kTypes = {FingerprintType::Tag, FingerprintType::Cmdline, FingerprintType::Env,
                               FingerprintType::Path};
constexpr std::array kOperations = {FingerprintOperation::Equals, FingerprintOperation::Prefix,
                                    FingerprintOperation::Regex};

// libstdc++'s default executor backtracks, recursing once per character of the text: a long
// command line and a pattern like "(a|b)*" overflow the stack, and "(a*)*b" takes exponential
// time. Its Thompson executor (__polynomial) runs in time linear in the text and recursion
// bounded by the pattern; it refuses back-references, which fingerprints do not need.
constexpr std::regex::flag_type kRegexFlags = std::regex::ECMAScript | std::regex::nosubs |
#if defined(__GLIBCXX__)
                                              std::regex_constants::__polynomial |
#endif
                                              std::regex::optimize;

bool is_container_tag(const Fingerprint& fingerprint) {
    return fingerprint.type == FingerprintType::Tag &&
           (fingerprint.key == kTagContainerId || fingerprint.key == kTagContainerName);
}

// "a, b, c": for the "must be one of" messages.
template <typename Range, typename Name>
std::string joined_names(const Range& range, Name name) {
    std::string text;
    for (const auto& item : range) {
        if (!text.empty()) {
            text += ", ";
        }
        text += name(item);
    }
    return text;
}

// A JSON value as the error messages quote it, shortened so that a huge value stays readable.
std::string shown(const nlohmann::json& value) {
    constexpr std::size_t kMaxShown = 64;
    std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (text.size() > kMaxShown) {
        text.resize(kMaxShown);
        text += "...";
    }
    return text;
}

std::string json_kind(const nlohmann::json& value) {
    return value.type_name(); // "object", "array", "string", "number", "boolean", "null"
}

std::optional<FingerprintType> type_named(std::string_view name) {
    for (const FingerprintType type : kTypes) {
        if (fingerprint_type_name(type) == name) {
            return type;
        }
    }
    return std::nullopt;
}

std::optional<FingerprintOperation> operation_named(std::string_view name) {
    for (const FingerprintOperation operation : kOperations) {
        if (fingerprint_operation_name(operation) == name) {
            return operation;
        }
    }
    return std::nullopt;
}

// `field: message`, or just the message when the error is about the whole entry.
Error field_error(std::string_view field, std::string message) {
    return Error{
        .what = field.empty() ? std::move(message) : std::string(field) + ": " + std::move(message),
        .reason = {}};
}

Status check_text(std::string_view field, std::string_view text, std::size_t max_length) {
    if (text.empty()) {
        return std::unexpected(field_error(field, "must not be empty"));
    }
    if (text.size() > max_length) {
        return std::unexpected(field_error(field, "is " + std::to_string(text.size()) +
                                                      " bytes long; at most " +
                                                      std::to_string(max_length) + " are allowed"));
    }
    if (text.find('\0') != std::string_view::npos) {
        return std::unexpected(field_error(field, "must not contain NUL characters"));
    }
    return {};
}

Status check_key(const Fingerprint& fingerprint) {
    switch (fingerprint.type) {
        case FingerprintType::Tag:
            if (fingerprint.key.empty()) {
                return std::unexpected(field_error("key", "is required for type tag"));
            }
            if (std::ranges::find(kTags, fingerprint.key) == kTags.end()) {
                return std::unexpected(field_error(
                    "key",
                    "must be one of " +
                        joined_names(kTags, [](std::string_view tag) { return std::string(tag); }) +
                        " (got " + shown(fingerprint.key) + ")"));
            }
            return {};
        case FingerprintType::Env: {
            if (fingerprint.key.empty()) {
                return std::unexpected(field_error("key", "is required for type env"));
            }
            if (auto checked = check_text("key", fingerprint.key, kMaxFingerprintValue); !checked) {
                return checked;
            }
            if (fingerprint.key.find('=') != std::string::npos) {
                return std::unexpected(field_error("key", "an environment name has no '='"));
            }
            return {};
        }
        case FingerprintType::Cmdline:
        case FingerprintType::Path:
            if (!fingerprint.key.empty()) {
                return std::unexpected(field_error(
                    "key",
                    "is not used by type " + std::string(fingerprint_type_name(fingerprint.type))));
            }
            return {};
    }
    return {};
}

// libstdc++ 12 reads the numbers of a pattern (back-references, "\0" escapes, repetition
// counts) into a `long` without checking for overflow: undefined behaviour from 19 digits on.
// No fingerprint needs more than a few, so longer runs are refused before the compiler sees
// them. Only digits right after a backslash or between braces are numbers; others are text.
bool has_huge_number(std::string_view pattern) {
    constexpr std::size_t kMaxDigits = 6;
    const auto digits_at = [pattern](std::size_t start) {
        std::size_t end = start;
        while (end < pattern.size() && pattern[end] >= '0' && pattern[end] <= '9') {
            ++end;
        }
        return end - start;
    };
    bool in_braces = false;
    for (std::size_t i = 0; i < pattern.size();) {
        const char c = pattern[i];
        if (c == '\\') {
            const std::size_t run = digits_at(i + 1);
            if (run > kMaxDigits) {
                return true;
            }
            i += 1 + std::max<std::size_t>(run, 1); // the escaped character, or its number
            continue;
        }
        if (c == '{') {
            in_braces = true;
        } else if (c == '}') {
            in_braces = false;
        } else if (in_braces && c >= '0' && c <= '9') {
            const std::size_t run = digits_at(i);
            if (run > kMaxDigits) {
                return true;
            }
            i += run;
            continue;
        }
        ++i;
    }
    return false;
}

Result<std::shared_ptr<const std::regex>> compile_regex(const std::string& pattern) {
    if (pattern.size() > kMaxFingerprintRegex) {
        return std::unexpected(field_error("value", "a regular expression may be at most " +
                                                        std::to_string(kMaxFingerprintRegex) +
                                                        " bytes long"));
    }
    if (has_huge_number(pattern)) {
        return std::unexpected(field_error(
            "value", "is not a valid regular expression: a number of more than 6 digits"));
    }
    try {
        return std::make_shared<const std::regex>(pattern, kRegexFlags);
    } catch (const std::regex_error& error) {
        return std::unexpected(field_error(
            "value", std::string("is not a valid regular expression: ") + error.what()));
    }
}

// One member of a fingerprint object.
Status read_member(Fingerprint& fingerprint, const std::string& name, const nlohmann::json& value,
                   bool& has_type, bool& has_operation, bool& has_value) {
    const auto need_string = [&]() -> Result<std::string> {
        if (!value.is_string()) {
            return std::unexpected(field_error(name, "must be a string, not " + json_kind(value)));
        }
        return value.get<std::string>();
    };
    if (name == "type") {
        auto text = need_string();
        if (!text) {
            return std::unexpected(text.error());
        }
        const auto type = type_named(*text);
        if (!type) {
            return std::unexpected(field_error(
                name, "must be one of " +
                          joined_names(kTypes,
                                       [](FingerprintType item) {
                                           return std::string(fingerprint_type_name(item));
                                       }) +
                          " (got " + shown(value) + ")"));
        }
        fingerprint.type = *type;
        has_type = true;
    } else if (name == "operation") {
        auto text = need_string();
        if (!text) {
            return std::unexpected(text.error());
        }
        const auto operation = operation_named(*text);
        if (!operation) {
            return std::unexpected(field_error(
                name, "must be one of " +
                          joined_names(kOperations,
                                       [](FingerprintOperation item) {
                                           return std::string(fingerprint_operation_name(item));
                                       }) +
                          " (got " + shown(value) + ")"));
        }
        fingerprint.operation = *operation;
        has_operation = true;
    } else if (name == "key" || name == "value" || name == "container") {
        auto text = need_string();
        if (!text) {
            return std::unexpected(text.error());
        }
        if (name == "key") {
            fingerprint.key = std::move(*text);
        } else if (name == "value") {
            fingerprint.value = std::move(*text);
            has_value = true;
        } else {
            fingerprint.container = std::move(*text);
        }
    } else if (name == "ancestor") {
        if (!value.is_boolean()) {
            return std::unexpected(field_error(name, "must be true or false, not " + shown(value)));
        }
        fingerprint.ancestor = value.get<bool>();
    } else {
        return std::unexpected(field_error(
            name, "unknown field (known: type, key, operation, value, ancestor, container)"));
    }
    return {};
}

Result<Fingerprint> parse_one(const nlohmann::json& entry) {
    if (!entry.is_object()) {
        return std::unexpected(field_error("", "must be an object, not " + json_kind(entry)));
    }
    Fingerprint fingerprint;
    bool has_type = false;
    bool has_operation = false;
    bool has_value = false;
    for (const auto& [name, value] : entry.items()) {
        if (auto read = read_member(fingerprint, name, value, has_type, has_operation, has_value);
            !read) {
            return std::unexpected(read.error());
        }
    }
    for (const auto& [present, field] :
         {std::pair{has_type, "type"}, std::pair{has_operation, "operation"},
          std::pair{has_value, "value"}}) {
        if (!present) {
            return std::unexpected(field_error(field, "is missing"));
        }
    }
    return make_fingerprint(std::move(fingerprint));
}

// --- Matching ----------------------------------------------------------------------------------

int strength(const Fingerprint& fingerprint) {
    return static_cast<int>(
        std::min(fingerprint.value.size(), static_cast<std::size_t>(kScoreMaxStrength)));
}

// The operation's part of the score for one text, 0 for no match.
int operation_score(const Fingerprint& fingerprint, std::string_view text) {
    switch (fingerprint.operation) {
        case FingerprintOperation::Equals:
            return text == fingerprint.value ? kScoreEquals + strength(fingerprint) : 0;
        case FingerprintOperation::Prefix:
            return text.starts_with(fingerprint.value) ? kScorePrefix + strength(fingerprint) : 0;
        case FingerprintOperation::Regex:
            if (fingerprint.regex == nullptr) {
                return 0; // not made by make_fingerprint(): a programming error, never a match
            }
            return std::regex_match(text.data(), text.data() + text.size(), *fingerprint.regex)
                       ? kScoreRegex + strength(fingerprint)
                       : 0;
    }
    return 0;
}

int with_base(int base, int operation) {
    return operation == 0 ? 0 : base + operation;
}

int own_score(const Fingerprint& fingerprint, const ProcessInfo& process) {
    if (process.kind != process::IdentityKind::Process) {
        return 0;
    }
    if (!is_container_tag(fingerprint) && fingerprint.container != process.container_name) {
        return 0; // the host's fingerprints are not a container's, nor one container's another's
    }
    switch (fingerprint.type) {
        case FingerprintType::Tag: {
            const auto value = tag_value(fingerprint.key, process);
            return value ? with_base(kScoreTag, operation_score(fingerprint, *value)) : 0;
        }
        case FingerprintType::Cmdline:
            return with_base(kScoreCmdline,
                             operation_score(fingerprint, joined_command_line(process)));
        case FingerprintType::Env: {
            const std::string* value =
                process::find_environment(process.environment, fingerprint.key);
            return value != nullptr ? with_base(kScoreEnv, operation_score(fingerprint, *value))
                                    : 0;
        }
        case FingerprintType::Path: {
            int best = 0;
            if (!process.identity_path.empty()) {
                best = with_base(kScoreIdentityPath,
                                 operation_score(fingerprint, process.identity_path));
            }
            if (best == 0 && !process.executable.empty() &&
                process.executable != process.identity_path) {
                best = with_base(kScoreExecutablePath,
                                 operation_score(fingerprint, process.executable));
            }
            return best;
        }
    }
    return 0;
}

// --- Identity ----------------------------------------------------------------------------------

// Length-prefixed fields: an unambiguous byte string whatever the values hold (JSON text would
// need valid UTF-8). Never change it: every auto profile's ID depends on it.
void append_field(std::string& out, std::string_view field) {
    out += std::to_string(field.size());
    out += ':';
    out += field;
}

std::string canonical_bytes(const Fingerprints& fingerprints, unsigned attempt) {
    using Key = std::tuple<std::string_view, std::string_view, std::string_view, std::string_view,
                           bool, bool, std::string_view>;
    std::vector<Key> keys;
    keys.reserve(fingerprints.size());
    for (const Fingerprint& fingerprint : fingerprints) {
        keys.emplace_back(
            fingerprint_type_name(fingerprint.type), fingerprint.key,
            fingerprint_operation_name(fingerprint.operation), fingerprint.value,
            fingerprint.ancestor, fingerprint.container.has_value(),
            fingerprint.container ? std::string_view(*fingerprint.container) : std::string_view());
    }
    std::ranges::sort(keys);
    const auto [first, last] = std::ranges::unique(keys);
    keys.erase(first, last);
    std::string out = "portwarden-fingerprints-v1\n";
    for (const auto& [type, key, operation, value, ancestor, scoped, container] : keys) {
        append_field(out, type);
        append_field(out, key);
        append_field(out, operation);
        append_field(out, value);
        append_field(out, ancestor ? "ancestor" : "self");
        append_field(out, scoped ? "container" : "host");
        append_field(out, container);
        out += '\n';
    }
    if (attempt > 0) {
        append_field(out, "attempt " + std::to_string(attempt));
    }
    return out;
}

std::string sha256_hex(std::string_view bytes, std::size_t hex_digits) {
    const Sha256Digest digest = sha256(bytes);
    constexpr std::string_view kHex = "0123456789abcdef";
    std::string hex;
    for (std::size_t i = 0; i < digest.size() && hex.size() < hex_digits; ++i) {
        hex += kHex[digest[i] >> 4U];
        hex += kHex[digest[i] & 0x0FU];
    }
    hex.resize(std::min(hex.size(), hex_digits));
    return hex;
}

std::string_view basename_of(std::string_view path) {
    while (path.size() > 1 && path.ends_with('/')) {
        path.remove_suffix(1);
    }
    const std::size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// [a-z0-9.-], no leading or trailing punctuation, no runs of '-', at most 32 characters.
std::string slug_of(std::string_view text) {
    constexpr std::size_t kMaxSlug = 32;
    std::string slug;
    for (const char c : text) {
        if (slug.size() >= kMaxSlug) {
            break;
        }
        const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        const bool plain = (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9');
        if (plain || (lower == '.' && !slug.empty() && slug.back() != '.')) {
            slug += lower;
        } else if (!slug.empty() && slug.back() != '-') {
            slug += '-';
        }
    }
    while (!slug.empty() && (slug.back() == '-' || slug.back() == '.')) {
        slug.pop_back();
    }
    while (!slug.empty() && (slug.front() == '-' || slug.front() == '.')) {
        slug.erase(slug.begin());
    }
    return slug.empty() ? std::string("app") : slug;
}

// The fingerprint the readable part of an ID comes from: the most telling kind (as scored),
// the process's own before its ancestors', then the canonical order.
const Fingerprint* slug_source(const Fingerprints& fingerprints) {
    const auto rank = [](const Fingerprint& fingerprint) {
        const int type = fingerprint.type == FingerprintType::Tag       ? 0
                         : fingerprint.type == FingerprintType::Cmdline ? 2
                         : fingerprint.type == FingerprintType::Env     ? 3
                                                                        : 1;
        return std::tuple(fingerprint.ancestor, type, fingerprint_type_name(fingerprint.type),
                          std::string_view(fingerprint.key), std::string_view(fingerprint.value));
    };
    const Fingerprint* best = nullptr;
    for (const Fingerprint& fingerprint : fingerprints) {
        if (best == nullptr || rank(fingerprint) < rank(*best)) {
            best = &fingerprint;
        }
    }
    return best;
}

// A fingerprint that JSON can hold: text that is not UTF-8 (a file name is bytes) becomes a
// regex that matches it exactly, each stray byte as '.'.
Fingerprint json_safe(Fingerprint fingerprint) {
    if (is_valid_utf8(fingerprint.value) &&
        (!fingerprint.container || is_valid_utf8(*fingerprint.container))) {
        return fingerprint;
    }
    if (fingerprint.container) {
        fingerprint.container = to_valid_utf8(*fingerprint.container);
    }
    constexpr std::string_view kSpecial = "\\^$.|?*+()[]{}";
    std::string pattern;
    std::string_view rest = fingerprint.value;
    while (!rest.empty()) {
        const std::size_t length = utf8_sequence_length(rest);
        if (length == 0) {
            pattern += '.';
            rest.remove_prefix(1);
            continue;
        }
        if (length == 1 && kSpecial.find(rest.front()) != std::string_view::npos) {
            pattern += '\\';
        }
        pattern.append(rest.substr(0, length));
        rest.remove_prefix(length);
    }
    if (fingerprint.operation == FingerprintOperation::Prefix) {
        pattern += "[\\s\\S]*"; // any character, newlines included
    }
    fingerprint.operation = FingerprintOperation::Regex;
    fingerprint.value = std::move(pattern);
    auto made = make_fingerprint(fingerprint);
    return made ? std::move(*made) : fingerprint;
}

} // namespace

std::string_view fingerprint_type_name(FingerprintType type) {
    switch (type) {
        case FingerprintType::Tag:
            return "tag";
        case FingerprintType::Cmdline:
            return "cmdline";
        case FingerprintType::Env:
            return "env";
        case FingerprintType::Path:
            return "path";
    }
    return "path";
}

std::string_view fingerprint_operation_name(FingerprintOperation operation) {
    switch (operation) {
        case FingerprintOperation::Equals:
            return "equals";
        case FingerprintOperation::Prefix:
            return "prefix";
        case FingerprintOperation::Regex:
            return "regex";
    }
    return "equals";
}

std::span<const std::string_view> fingerprint_tags() {
    return kTags;
}

Result<Fingerprint> make_fingerprint(Fingerprint fingerprint) {
    if (auto checked = check_key(fingerprint); !checked) {
        return std::unexpected(checked.error());
    }
    if (auto checked = check_text("value", fingerprint.value, kMaxFingerprintValue); !checked) {
        return std::unexpected(checked.error());
    }
    if (fingerprint.container) {
        if (is_container_tag(fingerprint)) {
            return std::unexpected(field_error(
                "container", "the container tags match in every container; remove \"container\""));
        }
        if (auto checked = check_text("container", *fingerprint.container, kMaxFingerprintValue);
            !checked) {
            return std::unexpected(checked.error());
        }
    }
    fingerprint.regex.reset();
    if (fingerprint.operation == FingerprintOperation::Regex) {
        auto regex = compile_regex(fingerprint.value);
        if (!regex) {
            return std::unexpected(regex.error());
        }
        fingerprint.regex = std::move(*regex);
    }
    return fingerprint;
}

Result<Fingerprints> parse_fingerprints(const nlohmann::json& array) {
    if (!array.is_array()) {
        return fail("fingerprints: must be a JSON array, not " + json_kind(array));
    }
    if (array.size() > kMaxFingerprints) {
        return fail("fingerprints: " + std::to_string(array.size()) + " entries; at most " +
                    std::to_string(kMaxFingerprints) + " are allowed");
    }
    Fingerprints fingerprints;
    fingerprints.reserve(array.size());
    for (std::size_t index = 0; index < array.size(); ++index) {
        auto fingerprint = parse_one(array[index]);
        if (!fingerprint) {
            return fail("fingerprints[" + std::to_string(index) + "]" +
                        (array[index].is_object() ? "." : ": ") + fingerprint.error().what);
        }
        fingerprints.push_back(std::move(*fingerprint));
    }
    return fingerprints;
}

Result<Fingerprints> parse_fingerprints_text(std::string_view json_text, std::string_view where) {
    nlohmann::json array;
    try {
        array = nlohmann::json::parse(json_text);
    } catch (const nlohmann::json::exception& error) {
        return fail(std::string(where) + ": not valid JSON: " + error.what());
    }
    auto fingerprints = parse_fingerprints(array);
    if (!fingerprints) {
        return fail(std::string(where) + ": " + fingerprints.error().what);
    }
    return fingerprints;
}

nlohmann::json to_json(const Fingerprint& fingerprint) {
    nlohmann::json object = {
        {"type", fingerprint_type_name(fingerprint.type)},
        {"operation", fingerprint_operation_name(fingerprint.operation)},
        {"value", fingerprint.value},
    };
    if (!fingerprint.key.empty()) {
        object["key"] = fingerprint.key;
    }
    if (fingerprint.ancestor) {
        object["ancestor"] = true;
    }
    if (fingerprint.container) {
        object["container"] = *fingerprint.container;
    }
    return object;
}

nlohmann::json to_json(const Fingerprints& fingerprints) {
    nlohmann::json array = nlohmann::json::array();
    for (const Fingerprint& fingerprint : fingerprints) {
        array.push_back(to_json(fingerprint));
    }
    return array;
}

std::optional<std::string_view> tag_value(std::string_view key, const ProcessInfo& process) {
    const auto text = [](const std::optional<std::string>& value) {
        return value ? std::optional<std::string_view>(*value) : std::nullopt;
    };
    if (key == kTagScript) {
        return process.tags.interpreter ? std::optional<std::string_view>(process.identity_path)
                                        : std::nullopt;
    }
    if (key == kTagFlatpak) {
        return text(process.tags.flatpak_id);
    }
    if (key == kTagSnap) {
        return text(process.tags.snap_name);
    }
    if (key == kTagAppImage) {
        return text(process.tags.appimage);
    }
    if (key == kTagSystemdUnit) {
        return text(process.systemd_unit);
    }
    if (key == kTagContainerId) {
        return text(process.container_id);
    }
    if (key == kTagContainerName) {
        return text(process.container_name);
    }
    if (key == kTagUser) {
        return process.user;
    }
    return std::nullopt;
}

std::string joined_command_line(const ProcessInfo& process) {
    std::string text;
    for (const std::string& argument : process.command_line) {
        if (!text.empty()) {
            text += ' ';
        }
        text += argument;
    }
    return text;
}

int score(const Fingerprint& fingerprint, const ProcessInfo& process, Ancestors ancestors) {
    if (!fingerprint.ancestor) {
        return own_score(fingerprint, process);
    }
    int best = 0;
    for (const auto& ancestor : ancestors) {
        if (ancestor != nullptr) {
            best = std::max(best, own_score(fingerprint, *ancestor));
        }
    }
    return best == 0 ? 0 : kScoreAncestor + best;
}

int score(const Fingerprints& fingerprints, const ProcessInfo& process, Ancestors ancestors) {
    int best = 0;
    for (const Fingerprint& fingerprint : fingerprints) {
        best = std::max(best, score(fingerprint, process, ancestors));
    }
    return best;
}

std::string profile_id_for(const Fingerprints& fingerprints) {
    return profile_id_for(fingerprints, 0);
}

std::string profile_id_for(const Fingerprints& fingerprints, unsigned attempt) {
    constexpr std::size_t kHexDigits = 20; // 80 bits: no second preimage for a crafted path
    std::string slug = "app";
    if (const Fingerprint* source = slug_source(fingerprints); source != nullptr) {
        const bool is_path = source->type == FingerprintType::Path ||
                             (source->type == FingerprintType::Tag &&
                              (source->key == kTagScript || source->key == kTagAppImage));
        slug = slug_of(is_path ? basename_of(source->value) : std::string_view(source->value));
    }
    return slug + "-" + sha256_hex(canonical_bytes(fingerprints, attempt), kHexDigits);
}

Fingerprints auto_fingerprints(const ProcessInfo& process) {
    if (process.kind != process::IdentityKind::Process) {
        return {};
    }
    Fingerprint fingerprint;
    fingerprint.operation = FingerprintOperation::Equals;
    const auto tagged = [&fingerprint](std::string_view key,
                                       const std::optional<std::string>& value) {
        if (!value || value->empty()) {
            return false;
        }
        fingerprint.type = FingerprintType::Tag;
        fingerprint.key = std::string(key);
        fingerprint.value = *value;
        return true;
    };
    const std::optional<std::string> script =
        process.tags.interpreter ? std::optional(process.identity_path) : std::nullopt;
    if (!tagged(kTagFlatpak, process.tags.flatpak_id) &&
        !tagged(kTagSnap, process.tags.snap_name) && !tagged(kTagAppImage, process.tags.appimage) &&
        !tagged(kTagScript, script)) {
        if (process.executable.empty()) {
            return {};
        }
        fingerprint.type = FingerprintType::Path;
        fingerprint.value = process.executable;
    }
    fingerprint.container = process.container_name;
    auto made = make_fingerprint(json_safe(std::move(fingerprint)));
    if (!made) {
        return {}; // a value longer than any path: nothing we could store
    }
    return {std::move(*made)};
}

} // namespace pw::profile
