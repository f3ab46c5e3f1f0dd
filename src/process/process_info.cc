#include "process/process_info.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <string>
#include <system_error>

#include "common/utf8.h"
#include "process/proc_files.h"

namespace pw::process {
namespace {

std::shared_ptr<const ProcessInfo> special_identity(IdentityKind kind, std::string name) {
    auto info = std::make_shared<ProcessInfo>();
    info->kind = kind;
    info->user = "root";
    // Parenthesised so that no executable path (always absolute) can collide with it.
    info->identity_path = std::move(name);
    return info;
}

// Splits on single spaces, as the kernel writes stat.
std::vector<std::string_view> split_spaces(std::string_view text) {
    std::vector<std::string_view> fields;
    while (!text.empty()) {
        const std::size_t space = text.find(' ');
        fields.push_back(text.substr(0, space));
        if (space == std::string_view::npos) {
            break;
        }
        text.remove_prefix(space + 1);
    }
    return fields;
}

struct OptionSyntax {
    std::string_view inline_code; // short options after which there is no script (-c, -e, -m)
    std::string_view with_value;  // short options whose value may be the next argument
    std::vector<std::string_view> long_inline_code;
    std::vector<std::string_view> long_with_value;
};

const OptionSyntax& syntax_of(InterpreterFamily family) {
    static const OptionSyntax kPython{
        .inline_code = "cm", .with_value = "WXQ", .long_inline_code = {}, .long_with_value = {}};
    static const OptionSyntax kShell{
        .inline_code = "cs", .with_value = "oO", .long_inline_code = {}, .long_with_value = {}};
    static const OptionSyntax kPerl{
        .inline_code = "eE", .with_value = "", .long_inline_code = {}, .long_with_value = {}};
    static const OptionSyntax kRuby{
        .inline_code = "e", .with_value = "IrCE", .long_inline_code = {}, .long_with_value = {}};
    static const OptionSyntax kNode{
        .inline_code = "ep",
        .with_value = "r",
        .long_inline_code = {"--eval", "--print", "--interactive"},
        .long_with_value = {"--require", "--import", "--loader", "--experimental-loader", "--title",
                            "--conditions"}};
    switch (family) {
        case InterpreterFamily::Python:
            return kPython;
        case InterpreterFamily::Shell:
            return kShell;
        case InterpreterFamily::Perl:
            return kPerl;
        case InterpreterFamily::Ruby:
            return kRuby;
        case InterpreterFamily::Node:
            return kNode;
    }
    return kPython;
}

// What one option argument means for the search of the script.
enum class OptionEffect { NoScript, SkipNext, Continue };

OptionEffect classify_long_option(const OptionSyntax& syntax, std::string_view option) {
    const std::string_view name = option.substr(0, option.find('='));
    if (std::ranges::find(syntax.long_inline_code, name) != syntax.long_inline_code.end()) {
        return OptionEffect::NoScript;
    }
    const bool has_value = name.size() != option.size();
    if (!has_value &&
        std::ranges::find(syntax.long_with_value, name) != syntax.long_with_value.end()) {
        return OptionEffect::SkipNext;
    }
    return OptionEffect::Continue;
}

// A cluster of short options such as "-Bc" or "-W" "error": the first letter that starts inline
// code ends the search; a letter that takes a value takes the rest of the cluster, or the next
// argument when it is last.
OptionEffect classify_short_options(const OptionSyntax& syntax, std::string_view cluster) {
    for (std::size_t i = 1; i < cluster.size(); ++i) {
        const char letter = cluster[i];
        if (syntax.inline_code.find(letter) != std::string_view::npos) {
            return OptionEffect::NoScript;
        }
        if (syntax.with_value.find(letter) != std::string_view::npos) {
            return i + 1 == cluster.size() ? OptionEffect::SkipNext : OptionEffect::Continue;
        }
    }
    return OptionEffect::Continue;
}

std::string_view basename_of(std::string_view path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

} // namespace

std::vector<std::string_view> ProcessTags::names() const {
    std::vector<std::string_view> result;
    if (flatpak_id) {
        result.emplace_back("flatpak");
    }
    if (snap_name) {
        result.emplace_back("snap");
    }
    if (appimage) {
        result.emplace_back("appimage");
    }
    if (interpreter) {
        result.emplace_back("script");
    }
    return result;
}

std::shared_ptr<const ProcessInfo> kernel_identity() {
    static const auto kIdentity = special_identity(IdentityKind::Kernel, "(kernel)");
    return kIdentity;
}

std::shared_ptr<const ProcessInfo> unidentified_outbound_identity() {
    static const auto kIdentity =
        special_identity(IdentityKind::UnidentifiedOutbound, "(unidentified outbound)");
    return kIdentity;
}

std::shared_ptr<const ProcessInfo> unsolicited_inbound_identity() {
    static const auto kIdentity =
        special_identity(IdentityKind::UnsolicitedInbound, "(unsolicited inbound)");
    return kIdentity;
}

Result<StatFields> parse_stat(std::string_view stat) {
    // "<pid> (<comm>) <state> <ppid> ...": comm may contain ") (", so take the last ')'.
    const std::size_t open = stat.find(" (");
    const std::size_t close = stat.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2) {
        return fail("stat: no (comm)");
    }
    StatFields fields;
    const auto pid = parse_decimal<int>(stat.substr(0, open));
    if (!pid) {
        return fail("stat: bad pid");
    }
    fields.pid = *pid;
    fields.comm = std::string(stat.substr(open + 2, close - open - 2));
    std::string_view rest = stat.substr(close + 1);
    while (rest.starts_with(' ')) {
        rest.remove_prefix(1);
    }
    while (rest.ends_with('\n')) {
        rest.remove_suffix(1);
    }
    // rest[0] is field 3 (state), so field N is rest[N - 3].
    const std::vector<std::string_view> after = split_spaces(rest);
    constexpr std::size_t kParentPid = 4 - 3;
    constexpr std::size_t kFlags = 9 - 3;
    constexpr std::size_t kStartTime = 22 - 3;
    if (after.size() <= kStartTime || after[0].size() != 1) {
        return fail("stat: too few fields");
    }
    const auto parent_pid = parse_decimal<int>(after[kParentPid]);
    const auto flags = parse_decimal<std::uint32_t>(after[kFlags]);
    const auto start_time = parse_decimal<std::uint64_t>(after[kStartTime]);
    if (!parent_pid || !flags || !start_time) {
        return fail("stat: bad number");
    }
    fields.state = after[0][0];
    fields.parent_pid = *parent_pid;
    fields.flags = *flags;
    fields.start_time = *start_time;
    return fields;
}

std::optional<std::uint32_t> parse_status_uid(std::string_view status) {
    constexpr std::string_view kKey = "Uid:";
    std::size_t line = 0;
    while (line < status.size()) {
        std::size_t end = status.find('\n', line);
        if (end == std::string_view::npos) {
            end = status.size();
        }
        std::string_view text = status.substr(line, end - line);
        if (text.starts_with(kKey)) {
            text.remove_prefix(kKey.size());
            const std::size_t first = text.find_first_not_of(" \t");
            if (first == std::string_view::npos) {
                return std::nullopt;
            }
            text.remove_prefix(first);
            return parse_decimal<std::uint32_t>(text.substr(0, text.find_first_of(" \t")));
        }
        line = end + 1;
    }
    return std::nullopt;
}

std::vector<std::string> split_nul(std::string_view text) {
    std::vector<std::string> parts;
    while (!text.empty()) {
        const std::size_t nul = text.find('\0');
        parts.emplace_back(text.substr(0, nul));
        if (nul == std::string_view::npos) {
            break;
        }
        text.remove_prefix(nul + 1);
    }
    return parts;
}

std::optional<std::string> environment_value(std::string_view environ, std::string_view name) {
    while (!environ.empty()) {
        const std::size_t nul = environ.find('\0');
        const std::string_view entry = environ.substr(0, nul);
        if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=') {
            return std::string(entry.substr(name.size() + 1));
        }
        if (nul == std::string_view::npos) {
            break;
        }
        environ.remove_prefix(nul + 1);
    }
    return std::nullopt;
}

Environment parse_environ(std::string_view environ) {
    Environment environment;
    while (!environ.empty()) {
        const std::size_t nul = environ.find('\0');
        const std::string_view entry = environ.substr(0, nul);
        const std::size_t equals = entry.find('=');
        if (equals != std::string_view::npos && equals > 0) {
            const std::string_view name = entry.substr(0, equals);
            if (find_environment(environment, name) == nullptr) {
                environment.emplace_back(name, entry.substr(equals + 1));
            }
        }
        if (nul == std::string_view::npos) {
            break;
        }
        environ.remove_prefix(nul + 1);
    }
    return environment;
}

const std::string* find_environment(const Environment& environment, std::string_view name) {
    const auto found = std::ranges::find(
        environment, name, [](const auto& entry) { return std::string_view(entry.first); });
    return found == environment.end() ? nullptr : &found->second;
}

namespace {

bool is_container_id(std::string_view text) {
    constexpr std::size_t kIdLength = 64;
    return text.size() == kIdLength && std::ranges::all_of(text, [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// The container that one element of a cgroup path names, given the element before it.
std::optional<CgroupFacts> container_of(std::string_view element, std::string_view previous) {
    constexpr std::size_t kShortIdLength = 12; // what `docker ps` and `podman ps` show
    auto by_id = [](std::string_view id) -> std::optional<CgroupFacts> {
        if (!is_container_id(id)) {
            return std::nullopt;
        }
        return CgroupFacts{.systemd_unit = std::nullopt,
                           .container_id = std::string(id),
                           .container_name = std::string(id.substr(0, kShortIdLength))};
    };
    auto by_name = [](std::string_view name) -> std::optional<CgroupFacts> {
        if (name.empty()) {
            return std::nullopt;
        }
        // Names end up in profiles, which are JSON: Unicode text only.
        std::string text = to_valid_utf8(name);
        return CgroupFacts{
            .systemd_unit = std::nullopt, .container_id = text, .container_name = text};
    };
    std::string_view scope = element;
    if (scope.ends_with(".scope")) {
        scope.remove_suffix(std::string_view(".scope").size());
    }
    if (element.starts_with("docker-") && element.ends_with(".scope")) {
        return by_id(scope.substr(std::string_view("docker-").size())); // systemd cgroup driver
    }
    if (element.starts_with("libpod-")) {
        // "libpod-conmon-<id>.scope" is podman's monitor on the host side: not 64 hex, skipped.
        return by_id(scope.substr(std::string_view("libpod-").size()));
    }
    if (previous == "docker") {
        return by_id(element); // cgroupfs driver: /docker/<id>
    }
    if (element.starts_with("lxc.payload.")) {
        return by_name(element.substr(std::string_view("lxc.payload.").size())); // LXC 4+
    }
    if (previous == "lxc") {
        return by_name(element); // older LXC: /lxc/<name>
    }
    return std::nullopt;
}

// The path of the hierarchy that says the most: v2, else v1's systemd one, else the first.
std::optional<std::string_view> cgroup_path(std::string_view text) {
    std::optional<std::string_view> systemd_v1;
    std::optional<std::string_view> first;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        // "hierarchy-ID:controller-list:cgroup-path"; the path itself may contain ':'.
        const std::size_t colon = line.find(':');
        const std::size_t second =
            colon == std::string_view::npos ? std::string_view::npos : line.find(':', colon + 1);
        if (second != std::string_view::npos) {
            const std::string_view hierarchy = line.substr(0, colon);
            const std::string_view controllers = line.substr(colon + 1, second - colon - 1);
            const std::string_view path = line.substr(second + 1);
            if (hierarchy == "0" && controllers.empty()) {
                return path;
            }
            if (controllers == "name=systemd" && !systemd_v1) {
                systemd_v1 = path;
            }
            if (!first) {
                first = path;
            }
        }
        if (end == std::string_view::npos) {
            break;
        }
        text.remove_prefix(end + 1);
    }
    return systemd_v1 ? systemd_v1 : first;
}

bool is_unit_name(std::string_view element) {
    for (const std::string_view suffix :
         {std::string_view(".service"), std::string_view(".scope")}) {
        if (element.size() > suffix.size() && element.ends_with(suffix)) {
            return true;
        }
    }
    return false;
}

} // namespace

CgroupFacts parse_cgroup(std::string_view text) {
    const auto path = cgroup_path(text);
    if (!path) {
        return {};
    }
    std::vector<std::string_view> elements;
    for (std::string_view rest = *path; !rest.empty();) {
        const std::size_t slash = rest.find('/');
        if (slash != 0) {
            elements.push_back(rest.substr(0, slash));
        }
        if (slash == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(slash + 1);
    }
    CgroupFacts facts;
    std::size_t units_from = 0; // the units of the innermost container, or of the host
    for (std::size_t i = 0; i < elements.size(); ++i) {
        const std::string_view previous = i == 0 ? std::string_view() : elements[i - 1];
        if (auto container = container_of(elements[i], previous)) {
            facts = std::move(*container);
            units_from = i + 1;
        }
    }
    for (std::size_t i = elements.size(); i > units_from; --i) {
        if (is_unit_name(elements[i - 1])) {
            facts.systemd_unit = std::string(elements[i - 1]);
            break;
        }
    }
    return facts;
}

std::optional<InterpreterFamily> interpreter_family(std::string_view executable) {
    std::string_view name = basename_of(executable);
    // Version suffixes: python3, python3.11, perl5.36.0, ruby3.1.
    while (!name.empty() &&
           (std::isdigit(static_cast<unsigned char>(name.back())) != 0 || name.back() == '.')) {
        name.remove_suffix(1);
    }
    if (name == "python") {
        return InterpreterFamily::Python;
    }
    if (name == "sh" || name == "bash" || name == "dash") {
        return InterpreterFamily::Shell;
    }
    if (name == "perl") {
        return InterpreterFamily::Perl;
    }
    if (name == "ruby") {
        return InterpreterFamily::Ruby;
    }
    if (name == "node" || name == "nodejs") {
        return InterpreterFamily::Node;
    }
    return std::nullopt;
}

std::optional<std::string> script_argument(InterpreterFamily family,
                                           const std::vector<std::string>& command_line) {
    const OptionSyntax& syntax = syntax_of(family);
    for (std::size_t i = 1; i < command_line.size(); ++i) {
        const std::string_view argument = command_line[i];
        if (argument == "--") {
            const bool has_next = i + 1 < command_line.size() && command_line[i + 1] != "-";
            return has_next ? std::optional(command_line[i + 1]) : std::nullopt;
        }
        if (argument == "-" || argument.empty()) {
            return std::nullopt; // the program comes from stdin
        }
        const bool shell_plus = family == InterpreterFamily::Shell && argument.starts_with('+');
        if (!argument.starts_with('-') && !shell_plus) {
            return std::string(argument);
        }
        const OptionEffect effect = argument.starts_with("--")
                                        ? classify_long_option(syntax, argument)
                                        : classify_short_options(syntax, argument);
        if (effect == OptionEffect::NoScript) {
            return std::nullopt;
        }
        if (effect == OptionEffect::SkipNext) {
            ++i;
        }
    }
    return std::nullopt;
}

std::optional<std::string> flatpak_info_name(std::string_view flatpak_info) {
    bool in_application = false;
    while (!flatpak_info.empty()) {
        const std::size_t end = flatpak_info.find('\n');
        const std::string_view line = flatpak_info.substr(0, end);
        if (line.starts_with('[')) {
            in_application = line == "[Application]";
        } else if (in_application && line.starts_with("name=")) {
            return std::string(line.substr(5));
        }
        if (end == std::string_view::npos) {
            break;
        }
        flatpak_info.remove_prefix(end + 1);
    }
    return std::nullopt;
}

} // namespace pw::process
