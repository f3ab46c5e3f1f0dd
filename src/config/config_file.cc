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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/unique_fd.h"
#include "firewall/endpoint_rule.h"

namespace pw::config {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kDefaultAction = "filter/defaultAction";
constexpr std::string_view kEndpoints = "filter/endpoints";
constexpr std::string_view kPermanentVerdicts = "filter/permanentVerdicts";
constexpr std::string_view kOutboundBlockAction = "filter/outboundBlockAction";
constexpr std::string_view kPreventBypassing = "filter/preventBypassing";
constexpr std::string_view kNameservers = "dns/nameservers";
constexpr std::string_view kListenAddress = "dns/listenAddress";
constexpr std::array<std::string_view, 7> kKnownSettings = {
    kDefaultAction,    kEndpoints,   kPermanentVerdicts, kOutboundBlockAction,
    kPreventBypassing, kNameservers, kListenAddress};

// The nameserver's default port (RFC 1035) and the default `dns/listenAddress`.
constexpr std::uint16_t kDnsPort = 53;

// A config file is a few kilobytes; the cap only stops `--config /dev/zero` from eating memory.
constexpr std::size_t kMaxConfigFileSize = std::size_t{16} * 1024 * 1024;

// Long values are cut in error messages so that one bad line stays one readable line.
constexpr std::size_t kMaxQuotedLength = 80;

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

// How a bad value is quoted in an error: strings in single quotes, scalars as JSON, containers
// by kind only (dumping them would recurse over input-controlled depth).
std::string describe(const Json& value) {
    if (value.is_array()) {
        return "a list";
    }
    if (value.is_object()) {
        return "an object";
    }
    std::string text = value.is_string()
                           ? "'" + value.get_ref<const std::string&>() + "'"
                           : value.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (text.size() > kMaxQuotedLength) {
        text.resize(kMaxQuotedLength);
        text += "...";
    }
    return text;
}

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
    return std::ranges::find(kKnownSettings, path) != kKnownSettings.end();
}

// "filter" is a section because settings live below it.
bool is_section(std::string_view path) {
    return std::ranges::any_of(kKnownSettings, [path](std::string_view setting) {
        return setting.size() > path.size() && setting.starts_with(path) &&
               setting[path.size()] == '/';
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
            error(line, path + " must be an object of settings, not " + describe(value));
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

// Parses the PORT of a listen address: 1-65535, digits only. `quoted` starts each error.
Result<std::uint16_t> parse_listen_port(std::string_view digits, const std::string& quoted) {
    const auto is_digit = [](char character) {
        return character >= '0' && character <= '9';
    };
    if (digits.empty()) {
        return fail(quoted +
                    " has no port (expected e.g. localhost:53, 127.0.0.17:53 or [::1]:53)");
    }
    // Five digits at most, so the sum below cannot overflow.
    if (digits.size() > 5 || !std::ranges::all_of(digits, is_digit)) {
        return fail(quoted + ": invalid port '" + std::string(digits) +
                    "' (expected a number 1-65535)");
    }
    unsigned long port = 0;
    for (const char digit : digits) {
        port = port * 10 + static_cast<unsigned long>(digit - '0');
    }
    if (port == 0 || port > 65535) {
        return fail(quoted + ": port " + std::string(digits) + " is out of range (1-65535)");
    }
    return static_cast<std::uint16_t>(port);
}

bool equals_lower_case(std::string_view text, std::string_view lower) {
    return std::ranges::equal(text, lower, [](char left, char right) {
        return (left >= 'A' && left <= 'Z' ? static_cast<char>(left - 'A' + 'a') : left) == right;
    });
}

// Checks the value of each setting and writes it into a FilterSettings.
class SettingReader {
public:
    explicit SettingReader(std::vector<LineError>& errors) : errors_(errors) {}

    void read_default_action(const FoundSetting& found, firewall::FilterSettings& filter) {
        const Json& value = found.value;
        if (value == "permit") {
            filter.default_action = firewall::DefaultAction::Permit;
        } else if (value == "block") {
            filter.default_action = firewall::DefaultAction::Block;
        } else if (value == "ask") {
            filter.default_action = firewall::DefaultAction::Ask;
        } else {
            error(found.line, std::string(kDefaultAction) + " must be permit, block or ask, not " +
                                  describe(value));
        }
    }

    void read_outbound_block_action(const FoundSetting& found, firewall::FilterSettings& filter) {
        const Json& value = found.value;
        if (value == "reject") {
            filter.outbound_block_action = firewall::OutboundBlockAction::Reject;
        } else if (value == "drop") {
            filter.outbound_block_action = firewall::OutboundBlockAction::Drop;
        } else {
            error(found.line, std::string(kOutboundBlockAction) + " must be reject or drop, not " +
                                  describe(value));
        }
    }

    void read_permanent_verdicts(const FoundSetting& found, firewall::FilterSettings& filter) {
        const Json& value = found.value;
        if (!value.is_boolean()) {
            error(found.line, std::string(kPermanentVerdicts) + " must be true or false, not " +
                                  describe(value));
            return;
        }
        filter.permanent_verdicts =
            value.get<bool>() ? firewall::PermanentVerdicts::On : firewall::PermanentVerdicts::Off;
    }

    void read_prevent_bypassing(const FoundSetting& found, firewall::FilterSettings& filter) {
        const Json& value = found.value;
        if (!value.is_boolean()) {
            error(found.line, std::string(kPreventBypassing) + " must be true or false, not " +
                                  describe(value));
            return;
        }
        filter.prevent_bypassing =
            value.get<bool>() ? firewall::PreventBypassing::On : firewall::PreventBypassing::Off;
    }

    void read_listen_address(const FoundSetting& found, firewall::FilterSettings& filter) {
        const Json& value = found.value;
        if (!value.is_string()) {
            error(found.line, std::string(kListenAddress) +
                                  " must be a string such as \"localhost:53\", not " +
                                  describe(value));
            return;
        }
        auto endpoints = parse_listen_address(value.get_ref<const std::string&>());
        if (!endpoints) {
            error(found.line, endpoints.error().what);
            return;
        }
        filter.dns.nameserver_endpoints = std::move(*endpoints);
    }

    void read_nameservers(const FoundSetting& found, DnsSettings& dns) {
        const Json& value = found.value;
        if (!value.is_array()) {
            error(found.line, std::string(kNameservers) +
                                  " must be a list of URL strings such as [\"dns://192.0.2.53\"], "
                                  "not " +
                                  describe(value));
            return;
        }
        if (value.empty()) {
            error(found.line, std::string(kNameservers) +
                                  " is an empty list (name at least one upstream, or leave the "
                                  "setting out)");
            return;
        }
        std::vector<dns::Upstream> upstreams;
        upstreams.reserve(value.size());
        const std::vector<std::size_t> lines = element_lines_of(found);
        for (std::size_t index = 0; index < value.size(); ++index) {
            const Json& element = value[index];
            const std::string name = std::string(kNameservers) + "[" + std::to_string(index) + "]";
            const std::size_t element_line = lines[index];
            if (!element.is_string()) {
                error(element_line, name + " must be a URL string, not " + describe(element));
                continue;
            }
            auto upstream = dns::parse_upstream_url(element.get_ref<const std::string&>());
            if (!upstream) {
                // The parser names the setting itself; the index says which entry.
                std::string_view message = upstream.error().what;
                if (message.starts_with(kNameservers) &&
                    message.substr(kNameservers.size()).starts_with(": ")) {
                    message.remove_prefix(kNameservers.size() + 2);
                }
                error(element_line, name + ": " + std::string(message));
                continue;
            }
            upstreams.push_back(std::move(*upstream));
        }
        dns.nameservers = std::move(upstreams);
    }

    void read_endpoints(const FoundSetting& found, firewall::FilterSettings& filter) {
        const Json& value = found.value;
        if (!value.is_array()) {
            error(found.line, std::string(kEndpoints) + " must be a list of rule strings, not " +
                                  describe(value));
            return;
        }
        std::vector<firewall::EndpointRule> rules;
        rules.reserve(value.size());
        const std::vector<std::size_t> lines = element_lines_of(found);
        for (std::size_t index = 0; index < value.size(); ++index) {
            const Json& element = value[index];
            const std::string name = std::string(kEndpoints) + "[" + std::to_string(index) + "]";
            const std::size_t element_line = lines[index];
            if (!element.is_string()) {
                error(element_line, name + " must be a rule string, not " + describe(element));
                continue;
            }
            auto rule = firewall::parse_endpoint_rule(element.get_ref<const std::string&>());
            if (!rule) {
                error(element_line, name + " " + describe(element) + ": " + rule.error().what);
                continue;
            }
            rules.push_back(std::move(*rule));
        }
        filter.endpoints.global = std::make_shared<const firewall::RuleList>(std::move(rules));
    }

private:
    void error(std::size_t line, std::string message) {
        errors_.push_back(LineError{.line = line, .message = std::move(message)});
    }

    // The line of each element of a list. Only strings have a recorded line (the k-th string
    // element has the k-th one); for anything else the key's line is close.
    static std::vector<std::size_t> element_lines_of(const FoundSetting& found) {
        std::vector<std::size_t> lines;
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

    std::vector<LineError>& errors_;
};

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

std::vector<firewall::IpEndpoint> localhost_listen_endpoints(std::uint16_t port) {
    static constexpr std::array<std::uint8_t, 4> kLoopback17 = {127, 0, 0, 17};
    static constexpr std::array<std::uint8_t, 16> kLoopbackV6 = {0, 0, 0, 0, 0, 0, 0, 0,
                                                                 0, 0, 0, 0, 0, 0, 0, 1};
    return {
        firewall::IpEndpoint{.address = IpAddress::from_v4_bytes(kLoopback17), .port = port},
        firewall::IpEndpoint{.address = IpAddress::from_v6_bytes(kLoopbackV6), .port = port},
    };
}

Result<std::vector<firewall::IpEndpoint>> parse_listen_address(std::string_view text) {
    const std::string quoted = std::string(kListenAddress) + " '" + std::string(text) + "'";
    if (text.empty()) {
        return fail(std::string(kListenAddress) +
                    " is empty (expected e.g. localhost:53, or off for no nameserver)");
    }
    if (text == "off") {
        // No nameserver: DNS is ordinary traffic, neither redirected nor blocked as astray, and
        // connections carry no domain.
        return std::vector<firewall::IpEndpoint>{};
    }
    std::string_view host;
    std::string_view port;
    if (text.starts_with('[')) {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return fail(quoted + ": missing ']' after the IPv6 address");
        }
        host = text.substr(1, close - 1);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.starts_with(':')) {
            return fail(quoted + " has no port after ']' (expected e.g. [::1]:53)");
        }
        port = rest.substr(1);
        if (host.find(':') == std::string_view::npos) {
            return fail(quoted + ": brackets are only for IPv6 addresses (write " +
                        std::string(host) + ":" + std::string(port) + ")");
        }
    } else {
        const std::size_t colon = text.find(':');
        if (colon == std::string_view::npos) {
            host = text;
        } else if (text.find(':', colon + 1) != std::string_view::npos) {
            return fail(quoted + ": an IPv6 address goes in brackets, as in [::1]:53");
        } else {
            host = text.substr(0, colon);
            port = text.substr(colon + 1);
        }
    }
    const auto number = parse_listen_port(port, quoted);
    if (!number) {
        return std::unexpected(number.error());
    }
    if (!text.starts_with('[') && equals_lower_case(host, "localhost")) {
        return localhost_listen_endpoints(*number);
    }
    const auto address = IpAddress::parse(host);
    if (!address) {
        return fail(quoted + ": " + address.error().what +
                    " (expected localhost, an IPv4 address or an IPv6 address in brackets)");
    }
    if (address->is_unspecified()) {
        return fail(quoted + ": " + address->to_string() +
                    " would listen on every address; give one address, such as 127.0.0.17 or a "
                    "LAN address, or localhost");
    }
    return std::vector<firewall::IpEndpoint>{
        firewall::IpEndpoint{.address = *address, .port = *number}};
}

firewall::FilterSettings default_filter_settings() {
    firewall::FilterSettings filter;
    filter.dns.nameserver_endpoints = localhost_listen_endpoints(kDnsPort);
    return filter;
}

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
    Config config;
    SettingReader reader(errors);
    for (const FoundSetting& found : handler.settings()) {
        if (found.path == kDefaultAction) {
            reader.read_default_action(found, config.filter);
        } else if (found.path == kEndpoints) {
            reader.read_endpoints(found, config.filter);
        } else if (found.path == kPermanentVerdicts) {
            reader.read_permanent_verdicts(found, config.filter);
        } else if (found.path == kOutboundBlockAction) {
            reader.read_outbound_block_action(found, config.filter);
        } else if (found.path == kPreventBypassing) {
            reader.read_prevent_bypassing(found, config.filter);
        } else if (found.path == kNameservers) {
            reader.read_nameservers(found, config.dns);
        } else if (found.path == kListenAddress) {
            reader.read_listen_address(found, config.filter);
        }
    }
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
