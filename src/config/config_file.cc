#include "config/config_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ip_address.h"
#include "common/unique_fd.h"
#include "config/settings_schema.h"
#include "dns/nameserver.h"

namespace pw::config {
namespace {

using Json = nlohmann::json;

// A config file is a few kilobytes; the cap only stops `--config /dev/zero` from eating memory.
constexpr std::size_t kMaxConfigFileSize = std::size_t{16} * 1024 * 1024;

struct LineError {
    std::size_t line = 0; // 0: no line known
    std::string message;
};

// Counts lines up to byte offsets that only ever grow, so the whole file is scanned once.
class LineCounter {
public:
    explicit LineCounter(std::string_view text) : text_(text) {}

    std::size_t line_at(std::size_t offset) {
        offset = std::min(offset, text_.size());
        if (offset < counted_up_to_) {
            // Not expected (offsets grow), but stay correct rather than assume.
            return 1 +
                   static_cast<std::size_t>(std::count(
                       text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
        }
        line_ += static_cast<std::size_t>(
            std::count(text_.begin() + static_cast<std::ptrdiff_t>(counted_up_to_),
                       text_.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
        counted_up_to_ = offset;
        return line_;
    }

private:
    std::string_view text_;
    std::size_t counted_up_to_ = 0;
    std::size_t line_ = 1;
};

// "a list", "a string", "null": for errors about the shape of the document.
std::string kind_of(const Json& value) {
    if (value.is_array()) {
        return "a list";
    }
    if (value.is_null()) {
        return "null";
    }
    const std::string name = value.type_name();
    return (value.is_object() ? "an " : "a ") + name;
}

bool is_known_setting(std::string_view path) {
    return find_setting(path) != nullptr;
}

// "filter" is a section because settings live below it.
bool is_section(std::string_view path) {
    return std::ranges::any_of(all_settings(), [path](const SettingInfo& setting) {
        return setting.key.size() > path.size() && setting.key.starts_with(path) &&
               setting.key[path.size()] == '/';
    });
}

// One setting as found in the file, before its value is checked.
struct FoundSetting {
    std::string path;
    std::size_t line = 0; // of its key
    Json value;
    std::vector<std::size_t> element_lines; // for a list: the line of each element
};

// Reads the JSON text as a stream of SAX events and maps nested objects and slash keys, two
// spellings of one path, to settings. Known settings keep their JSON value; unknown keys become
// errors and their contents are skipped. Working on the stream rather than a finished document
// gives three things a json object loses: document order, keys given twice, and the line of
// every key and list element. Memory stays linear in the input however deep it nests, and
// syntax errors arrive through parse_error() as values instead of exceptions.
class SettingsHandler final : public nlohmann::json_sax<Json> {
public:
    SettingsHandler(std::string_view text, std::vector<LineError>& errors)
        : text_(text), lines_(text), errors_(errors) {}

    // nlohmann::json_sax
    bool null() override { return scalar(Json(nullptr)); }
    bool boolean(bool value) override { return scalar(Json(value)); }
    bool number_integer(number_integer_t value) override { return scalar(Json(value)); }
    bool number_unsigned(number_unsigned_t value) override { return scalar(Json(value)); }
    bool number_float(number_float_t value, const string_t& /*text*/) override {
        return scalar(Json(value));
    }
    bool string(string_t& value) override {
        // Every string moves the cursor, including those that are skipped.
        const std::size_t line = next_string_line();
        if (skip_depth_ == 0 && value_stack_.size() == 1 && value_stack_.back()->is_array()) {
            current_.element_lines.push_back(line);
        }
        return scalar(Json(std::move(value)));
    }
    bool binary(binary_t& /*value*/) override { return false; } // JSON text has no binary
    bool start_object(std::size_t /*elements*/) override { return open(Json::object()); }
    bool start_array(std::size_t /*elements*/) override { return open(Json::array()); }
    bool key(string_t& name) override {
        const std::size_t line = next_string_line();
        if (skip_depth_ > 0) {
            return true;
        }
        if (!value_stack_.empty()) {
            value_key_ = std::move(name);
            return true;
        }
        sections_.back().key = std::move(name);
        sections_.back().key_line = line;
        return true;
    }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t position, const std::string& /*last_token*/,
                     const nlohmann::detail::exception& error) override {
        // `position` counts the characters read, the offending one included.
        syntax_error_ = LineError{.line = lines_.line_at(position == 0 ? 0 : position - 1),
                                  .message = "JSON syntax error: " + strip_prefix(error.what())};
        return false;
    }

    [[nodiscard]] const std::optional<LineError>& syntax_error() const { return syntax_error_; }
    // In the order of the file.
    [[nodiscard]] const std::vector<FoundSetting>& settings() const { return settings_; }

private:
    struct Section {
        std::string path; // "" for the top level
        std::string key;  // the member being read
        std::size_t key_line = 0;
    };

    // Where a value that just started belongs.
    enum class Slot { TopLevel, Setting, Section, Unknown };

    bool open(Json empty) {
        if (skip_depth_ > 0) {
            ++skip_depth_;
            return true;
        }
        if (!value_stack_.empty()) {
            // Pointers into the parent stay valid: it gains no member while a child is open.
            value_stack_.push_back(insert(std::move(empty)));
            return true;
        }
        switch (classify(empty)) {
            case Slot::TopLevel:
                sections_.push_back(Section{});
                return true;
            case Slot::Section:
                sections_.push_back(Section{.path = child_path(), .key = {}, .key_line = 0});
                return true;
            case Slot::Setting:
                begin_setting();
                value_stack_.push_back(insert(std::move(empty)));
                return true;
            case Slot::Unknown:
                skip_depth_ = 1;
                return true;
        }
        return true;
    }

    bool close() {
        if (skip_depth_ > 0) {
            --skip_depth_;
        } else if (!value_stack_.empty()) {
            value_stack_.pop_back();
            if (value_stack_.empty()) {
                end_setting();
            }
        } else if (!sections_.empty()) {
            sections_.pop_back();
        }
        return true;
    }

    bool scalar(Json value) {
        if (skip_depth_ > 0) {
            return true;
        }
        if (!value_stack_.empty()) {
            insert(std::move(value));
            return true;
        }
        if (classify(value) == Slot::Setting) {
            begin_setting();
            current_.value = std::move(value);
            end_setting();
        }
        return true;
    }

    // Decides where a value read outside any setting goes, reporting what cannot be used.
    Slot classify(const Json& value) {
        if (sections_.empty()) {
            if (value.is_object()) {
                return Slot::TopLevel;
            }
            error(first_line(),
                  "the top level must be a JSON object of settings, not " + kind_of(value));
            return Slot::Unknown;
        }
        const std::string path = child_path();
        const std::size_t line = sections_.back().key_line;
        if (is_known_setting(path)) {
            return Slot::Setting;
        }
        if (is_section(path)) {
            if (value.is_object()) {
                return Slot::Section;
            }
            error(line, path + " must be an object of settings, not " + describe_value(value));
            return Slot::Unknown;
        }
        error(line, "unknown setting '" + path + "'");
        return Slot::Unknown;
    }

    [[nodiscard]] std::string child_path() const {
        const Section& section = sections_.back();
        return section.path.empty() ? section.key : section.path + "/" + section.key;
    }

    void begin_setting() {
        current_ = FoundSetting{.path = child_path(),
                                .line = sections_.back().key_line,
                                .value = {},
                                .element_lines = {}};
    }

    void end_setting() {
        const auto first = std::ranges::find(settings_, current_.path, &FoundSetting::path);
        if (first != settings_.end()) {
            error(current_.line, "'" + current_.path + "' is given twice (first on line " +
                                     std::to_string(first->line) + ")");
            return;
        }
        settings_.push_back(std::move(current_));
    }

    Json* insert(Json value) {
        if (value_stack_.empty()) {
            current_.value = std::move(value);
            return &current_.value;
        }
        Json& parent = *value_stack_.back();
        if (parent.is_array()) {
            parent.push_back(std::move(value));
            return &parent.back();
        }
        Json& member = parent[value_key_];
        member = std::move(value);
        return &member;
    }

    void error(std::size_t line, std::string message) {
        errors_.push_back(LineError{.line = line, .message = std::move(message)});
    }

    std::size_t first_line() {
        const std::size_t first = text_.find_first_not_of(" \t\r\n");
        return lines_.line_at(first == std::string_view::npos ? 0 : first);
    }

    // SAX events come in text order, and between two strings there are only numbers, literals
    // and punctuation, none of which contains a quote. So the next string token starts at the
    // next quote after the previous one ended: an exact position, whatever escapes it holds.
    std::size_t next_string_line() {
        const std::size_t quote = text_.find('"', cursor_);
        if (quote == std::string_view::npos) {
            return lines_.line_at(text_.size()); // cannot happen for text the lexer accepted
        }
        std::size_t index = quote + 1;
        while (index < text_.size() && text_[index] != '"') {
            index += text_[index] == '\\' ? 2 : 1;
        }
        cursor_ = std::min(index + 1, text_.size());
        return lines_.line_at(quote);
    }

    // "[json.exception.parse_error.101] parse error at line 1, column 9: syntax error while
    // parsing value - ..." -> "while parsing value - ...": our own prefix has the line.
    static std::string strip_prefix(std::string_view message) {
        if (message.starts_with("[json.exception.")) {
            const std::size_t bracket = message.find("] ");
            if (bracket != std::string_view::npos) {
                message.remove_prefix(bracket + 2);
            }
        }
        if (message.starts_with("parse error")) {
            const std::size_t colon = message.find(": ");
            if (colon != std::string_view::npos) {
                message.remove_prefix(colon + 2);
            }
        }
        if (message.starts_with("syntax error ")) {
            message.remove_prefix(std::string_view("syntax error ").size());
        }
        return std::string(message);
    }

    std::string_view text_;
    LineCounter lines_;
    std::vector<LineError>& errors_;
    std::size_t cursor_ = 0;
    std::vector<Section> sections_;
    std::size_t skip_depth_ = 0;     // > 0 inside a value that is being ignored
    std::vector<Json*> value_stack_; // open containers of the setting being read
    std::string value_key_;          // the member being read in value_stack_.back()
    FoundSetting current_;
    std::vector<FoundSetting> settings_;
    std::optional<LineError> syntax_error_;
};

// The line of each element of a list. Only strings have a recorded line (the k-th string
// element has the k-th one); for anything else the key's line is close.
std::vector<std::size_t> element_lines_of(const FoundSetting& found) {
    std::vector<std::size_t> lines;
    if (!found.value.is_array()) {
        return lines;
    }
    lines.reserve(found.value.size());
    std::size_t strings = 0;
    for (const Json& element : found.value) {
        if (element.is_string() && strings < found.element_lines.size()) {
            lines.push_back(found.element_lines[strings++]);
        } else {
            lines.push_back(found.line);
        }
    }
    return lines;
}

// Checks one setting with the catalogue's parse function and, when it is valid, adds it to the
// file's layer. A problem with one list element gets that element's line.
void read_setting(const FoundSetting& found, CompiledSettings& layer,
                  std::vector<LineError>& errors) {
    const SettingInfo* info = find_setting(found.path);
    if (info == nullptr) {
        return; // reported as unknown while reading the file
    }
    std::vector<ValueProblem> problems = info->parse_into(found.value, layer);
    if (problems.empty()) {
        layer.values.emplace(found.path, found.value);
        return;
    }
    const std::vector<std::size_t> lines = element_lines_of(found);
    for (ValueProblem& problem : problems) {
        const std::size_t line = problem.element && *problem.element < lines.size()
                                     ? lines[*problem.element]
                                     : found.line;
        errors.push_back(LineError{.line = line, .message = std::move(problem.message)});
    }
}

// ::ffff:a.b.c.d as a.b.c.d: a dns:// upstream written as an IPv4-mapped address reaches the
// IPv4 listener all the same.
IpAddress unmapped(const IpAddress& address) {
    static constexpr std::array<std::uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0,    0,
                                                                   0, 0, 0, 0, 0xff, 0xff};
    const std::span<const std::uint8_t> bytes = address.bytes();
    if (address.is_v4() || bytes.size() != 16 ||
        !std::ranges::equal(bytes.first(kMappedPrefix.size()), kMappedPrefix)) {
        return address;
    }
    std::array<std::uint8_t, 4> v4{};
    std::ranges::copy(bytes.last(4), v4.begin());
    return IpAddress::from_v4_bytes(v4);
}

// dns/nameservers naming our own nameserver (dns/listenAddress) would send every query back to
// us, and each would end in SERVFAIL after the upstream timeout (issue 10). The resolv.conf
// path leaves such addresses out; a configured one is an error, on the line of its entry.
void check_own_nameserver(const Config& config, const std::vector<FoundSetting>& settings,
                          std::vector<LineError>& errors) {
    const auto found = std::ranges::find(settings, "dns/nameservers", &FoundSetting::path);
    const std::vector<std::size_t> lines =
        found == settings.end() ? std::vector<std::size_t>{} : element_lines_of(*found);
    const auto& own = config.filter.dns.nameserver_endpoints;
    for (std::size_t index = 0; index < config.dns.nameservers.size(); ++index) {
        const dns::Upstream& upstream = config.dns.nameservers[index];
        const auto same = [&upstream](const firewall::IpEndpoint& endpoint) {
            return unmapped(endpoint.address) == unmapped(upstream.address) &&
                   endpoint.port == upstream.port;
        };
        const auto ours = std::ranges::find_if(own, same);
        if (ours == own.end()) {
            continue;
        }
        // As dns::to_string(ListenEndpoint) writes it; spelled out here so that config/ does not
        // link the nameserver.
        const std::string where =
            ours->address.is_v4()
                ? ours->address.to_string() + ":" + std::to_string(ours->port)
                : "[" + ours->address.to_string() + "]:" + std::to_string(ours->port);
        errors.push_back(LineError{
            .line =
                index < lines.size() ? lines[index] : (found == settings.end() ? 0 : found->line),
            .message = "dns/nameservers[" + std::to_string(index) + "] '" + upstream.url +
                       "' is portwarden's own nameserver (dns/listenAddress " + where +
                       "): every query would come back to it and fail; name the server "
                       "portwarden should ask, such as your router or your provider's resolver"});
    }
}

// All problems at once, in file order, so that one edit round fixes them all.
std::string join_errors(std::vector<LineError> errors, std::string_view source_name) {
    // A multimap keeps equal lines in insertion order. (Not std::stable_sort: libstdc++ 12's
    // uses get_temporary_buffer, which clang flags as deprecated in C++23.)
    std::multimap<std::size_t, std::string> by_line;
    for (LineError& error : errors) {
        by_line.emplace(error.line, std::move(error.message));
    }
    std::string joined;
    for (const auto& [line, message] : by_line) {
        if (!joined.empty()) {
            joined += '\n';
        }
        joined += source_name;
        if (line != 0) {
            joined += ":" + std::to_string(line);
        }
        joined += ": " + message;
    }
    return joined;
}

} // namespace

Result<Config> parse_config(std::string_view text, std::string_view source_name) {
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        return fail(std::string(source_name) +
                    ": the config file is empty (expected a JSON object such as "
                    "{\"filter\": {\"defaultAction\": \"permit\"}})");
    }

    std::vector<LineError> errors;
    SettingsHandler handler(text, errors);
    Json::sax_parse(text.begin(), text.end(), &handler);
    if (const auto& syntax_error = handler.syntax_error()) {
        // What was read before the syntax error is incomplete; report only the error itself.
        return fail(join_errors({*syntax_error}, source_name));
    }

    // Settings are read into a copy, and the copy is only returned if every setting was valid.
    CompiledSettings layer;
    for (const FoundSetting& found : handler.settings()) {
        read_setting(found, layer, errors);
    }
    if (!errors.empty()) {
        return fail(join_errors(std::move(errors), source_name));
    }
    Config config;
    config.filter = resolve_filter_settings(layer, nullptr, firewall::ProfileLabel{});
    config.dns = resolve_dns_settings(layer);
    config.core = resolve_core_settings(layer);
    config.events = resolve_event_settings(layer);
    config.file_layer = std::move(layer);
    check_own_nameserver(config, handler.settings(), errors);
    if (!errors.empty()) {
        return fail(join_errors(std::move(errors), source_name));
    }
    return config;
}

Result<Config> load_config_file(const std::filesystem::path& path) {
    const std::string name = path.string();
    const UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file.valid()) {
        return fail_errno("cannot read config file " + name, errno);
    }
    std::string text;
    std::array<char, 65536> buffer{};
    while (true) {
        const ssize_t count = ::read(file.get(), buffer.data(), buffer.size());
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail_errno("cannot read config file " + name, errno);
        }
        if (count == 0) {
            break;
        }
        text.append(buffer.data(), static_cast<std::size_t>(count));
        if (text.size() > kMaxConfigFileSize) {
            return fail("cannot read config file " + name + ": larger than 16 MiB");
        }
    }
    return parse_config(text, name);
}

} // namespace pw::config
