#include "cli/format.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace pw::cli {
namespace {

using nlohmann::json;

constexpr std::string_view kBold = "\033[1m";
constexpr std::string_view kReset = "\033[0m";

// A member of an object, or null: the daemon's JSON is read defensively, so that a field an older
// or newer daemon leaves out prints "-" instead of throwing.
const json& member(const json& object, std::string_view name) {
    static const json kNull;
    if (!object.is_object()) {
        return kNull;
    }
    const auto found = object.find(name);
    return found == object.end() ? kNull : *found;
}

std::string text(const json& object, std::string_view name) {
    return display_value(member(object, name));
}

// Flattens nested objects into dotted keys; arrays stay one compact value.
void flatten(const json& value, const std::string& prefix, Table& table) {
    if (value.is_object() && !value.empty()) {
        for (const auto& [key, inner] : value.items()) {
            std::string name = prefix;
            if (!name.empty()) {
                name += '.';
            }
            name += key;
            flatten(inner, name, table);
        }
        return;
    }
    table.rows.push_back({prefix, display_value(value)});
}

std::string section(std::string_view title, Colour colour) {
    if (colour == Colour::On) {
        return std::string(kBold) + std::string(title) + std::string(kReset) + "\n";
    }
    return std::string(title) + "\n";
}

// "  " before every line of `block` that is not empty.
std::string indent(const std::string& block) {
    std::string out;
    std::size_t start = 0;
    while (start < block.size()) {
        const std::size_t end = block.find('\n', start);
        const std::size_t stop = end == std::string::npos ? block.size() : end;
        const std::string line = block.substr(start, stop - start);
        out += (line.empty() ? "" : "  ") + line + "\n";
        start = stop + 1;
    }
    return out;
}

// The statistics entry of a rule, or null.
const json& statistics_for(const json& statistics, const std::string& list,
                           const std::string& rule) {
    static const json kNull;
    if (!statistics.is_array()) {
        return kNull;
    }
    for (const json& entry : statistics) {
        if (text(entry, "list") == list && text(entry, "rule") == rule) {
            return entry;
        }
    }
    return kNull;
}

std::string temporary_until(const json& rule) {
    std::string until = text(rule, "until");
    if (until == "time") {
        return "until " + display_time(member(rule, "expires"));
    }
    if (until == "exit") {
        return "until process " + text(rule, "pid") + " exits";
    }
    if (until == "restart") {
        return "until the daemon restarts";
    }
    return until;
}

} // namespace

std::string render_table(const Table& table, Colour colour) {
    std::vector<std::size_t> widths(table.header.size(), 0);
    const auto measure = [&widths](const std::vector<std::string>& row) {
        if (row.size() > widths.size()) {
            widths.resize(row.size(), 0);
        }
        for (std::size_t column = 0; column < row.size(); ++column) {
            widths[column] = std::max(widths[column], row[column].size());
        }
    };
    measure(table.header);
    for (const auto& row : table.rows) {
        measure(row);
    }
    const auto line = [&widths](const std::vector<std::string>& row) {
        std::string out;
        for (std::size_t column = 0; column < row.size(); ++column) {
            out += row[column];
            if (column + 1 < row.size()) {
                out += std::string(widths[column] - row[column].size() + 2, ' ');
            }
        }
        // A last cell that is empty would leave the padding of the one before it.
        while (!out.empty() && out.back() == ' ') {
            out.pop_back();
        }
        return out + "\n";
    };
    std::string out;
    if (!table.header.empty()) {
        const std::string header = line(table.header);
        if (colour == Colour::On) {
            out += std::string(kBold) + header.substr(0, header.size() - 1) + std::string(kReset) +
                   "\n";
        } else {
            out += header;
        }
    }
    for (const auto& row : table.rows) {
        out += line(row);
    }
    return out;
}

std::string display_value(const json& value) {
    if (value.is_null()) {
        return "-";
    }
    if (value.is_string()) {
        const auto& string = value.get_ref<const std::string&>();
        return string.empty() ? "-" : string;
    }
    return value.dump();
}

std::string display_time(const json& value) {
    if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
        return "-";
    }
    std::string time = value.get<std::string>();
    // ISO 8601 as the daemon writes it: the 'T' becomes a space, milliseconds and 'Z' go (the
    // time stays UTC, as the column says nothing else).
    if (time.size() >= 19 && time[10] == 'T') {
        time[10] = ' ';
        time.resize(19);
    }
    return time;
}

std::string display_uptime(std::int64_t seconds) {
    constexpr std::int64_t kMinute = 60;
    constexpr std::int64_t kHour = 60 * kMinute;
    constexpr std::int64_t kDay = 24 * kHour;
    if (seconds < kMinute) {
        return std::to_string(seconds) + "s";
    }
    if (seconds < kHour) {
        return std::to_string(seconds / kMinute) + "m " + std::to_string(seconds % kMinute) + "s";
    }
    if (seconds < kDay) {
        return std::to_string(seconds / kHour) + "h " + std::to_string(seconds % kHour / kMinute) +
               "m";
    }
    return std::to_string(seconds / kDay) + "d " + std::to_string(seconds % kDay / kHour) + "h";
}

std::string fingerprints_summary(const json& fingerprints) {
    if (!fingerprints.is_array() || fingerprints.empty()) {
        return "-";
    }
    std::string out;
    for (const json& fingerprint : fingerprints) {
        std::string one;
        const std::string type = text(fingerprint, "type");
        const std::string operation = text(fingerprint, "operation");
        if (type == "path" && operation == "equals") {
            one = text(fingerprint, "value");
        } else {
            one = type;
            if (const json& key = member(fingerprint, "key"); key.is_string()) {
                one += "[" + key.get<std::string>() + "]";
            }
            one += " " + operation + " " + text(fingerprint, "value");
        }
        out += (out.empty() ? "" : ", ") + one;
    }
    return out;
}

std::string format_status(const json& status, Colour colour) {
    Table table;
    table.rows.push_back({"version", text(status, "version")});
    const json& uptime = member(status, "uptimeSeconds");
    table.rows.push_back(
        {"uptime", uptime.is_number_integer() ? display_uptime(uptime.get<std::int64_t>()) : "-"});
    const json& paused = member(status, "paused");
    table.rows.push_back({"paused", paused.is_boolean() ? (paused.get<bool>() ? "yes" : "no")
                                                        : display_value(paused)});
    Table rest;
    if (status.is_object()) {
        for (const auto& [key, value] : status.items()) {
            if (key != "version" && key != "uptimeSeconds" && key != "paused") {
                flatten(value, key, rest);
            }
        }
    }
    table.rows.insert(table.rows.end(), rest.rows.begin(), rest.rows.end());
    (void)colour; // a key/value list has no header to embolden
    return render_table(table);
}

std::string format_profiles(const json& profiles, Colour colour) {
    Table table{.header = {"ID", "NAME", "SOURCE", "EXECUTABLE", "FIRST SEEN", "LAST SEEN"},
                .rows = {}};
    if (profiles.is_array()) {
        for (const json& profile : profiles) {
            table.rows.push_back({text(profile, "id"), text(profile, "name"),
                                  text(profile, "source"),
                                  fingerprints_summary(member(profile, "fingerprints")),
                                  display_time(member(profile, "firstSeen")),
                                  display_time(member(profile, "lastSeen"))});
        }
    }
    return render_table(table, colour);
}

std::string format_profile(const json& profile, Colour colour) {
    Table about;
    about.rows.push_back({"id", text(profile, "id")});
    about.rows.push_back({"name", text(profile, "name")});
    about.rows.push_back({"source", text(profile, "source")});
    const json& fingerprints = member(profile, "fingerprints");
    if (fingerprints.is_array() && !fingerprints.empty()) {
        for (const json& fingerprint : fingerprints) {
            about.rows.push_back({"fingerprint", fingerprints_summary(json::array({fingerprint}))});
        }
    } else {
        about.rows.push_back({"fingerprint", "-"});
    }
    about.rows.push_back({"created", display_time(member(profile, "created"))});
    about.rows.push_back({"first seen", display_time(member(profile, "firstSeen"))});
    about.rows.push_back({"last seen", display_time(member(profile, "lastSeen"))});
    std::string out = render_table(about);

    Table settings{.header = {"KEY", "VALUE"}, .rows = {}};
    if (const json& values = member(profile, "settings"); values.is_object()) {
        for (const auto& [key, value] : values.items()) {
            settings.rows.push_back({key, display_value(value)});
        }
    }
    out += "\n" + section("Settings", colour);
    out += settings.rows.empty() ? "  (none: the global settings apply)\n"
                                 : indent(render_table(settings, colour));

    json rules = {
        {"profile", {{"id", member(profile, "id")}, {"name", member(profile, "name")}}},
        {"endpoints", member(member(profile, "settings"), "filter/endpoints")},
        {"serviceEndpoints", member(member(profile, "settings"), "filter/serviceEndpoints")},
        {"temporaryRules", member(profile, "temporaryRules")},
        {"ruleStatistics", member(profile, "ruleStatistics")}};
    out += "\n" + section("Rules", colour) + indent(format_rules(rules, colour));
    return out;
}

std::string format_rules(const json& rules, Colour colour) {
    const json& statistics = member(rules, "ruleStatistics");
    const bool with_statistics = !member(rules, "profile").is_null();
    Table table;
    table.header = {"LIST", "#", "RULE"};
    if (with_statistics) {
        table.header.insert(table.header.end(), {"MATCHES", "LAST MATCH"});
    }
    for (const char* list : {"endpoints", "serviceEndpoints"}) {
        const json& entries = member(rules, list);
        if (!entries.is_array()) {
            continue;
        }
        for (std::size_t index = 0; index < entries.size(); ++index) {
            const std::string rule = display_value(entries[index]);
            std::vector<std::string> row = {list, std::to_string(index), rule};
            if (with_statistics) {
                const json& stat = statistics_for(statistics, list, rule);
                row.push_back(stat.is_null() ? "0" : text(stat, "matches"));
                row.push_back(display_time(member(stat, "lastMatch")));
            }
            table.rows.push_back(std::move(row));
        }
    }
    std::string out =
        table.rows.empty() ? std::string("(no rules)\n") : render_table(table, colour);
    const json& temporary = member(rules, "temporaryRules");
    if (temporary.is_array() && !temporary.empty()) {
        Table until{.header = {"LIST", "TEMPORARY RULE", "UNTIL"}, .rows = {}};
        for (const json& rule : temporary) {
            until.rows.push_back({text(rule, "list"), text(rule, "rule"), temporary_until(rule)});
        }
        out += "\n" + render_table(until, colour);
    }
    return out;
}

std::string format_settings(const json& settings, Colour colour) {
    Table table{.header = {"KEY", "VALUE", "LAYER", "SCOPE"}, .rows = {}};
    const auto add = [&table](const json& setting) {
        table.rows.push_back({text(setting, "key"), display_value(member(setting, "value")),
                              text(setting, "layer"), text(setting, "scope")});
    };
    if (settings.is_array()) {
        for (const json& setting : settings) {
            add(setting);
        }
    } else {
        add(settings);
    }
    return render_table(table, colour);
}

std::string prompt_port(const json& prompt) {
    if (text(prompt, "direction") == "inbound") {
        return text(prompt, "localPort");
    }
    return text(member(prompt, "remote"), "port");
}

std::string format_prompts(const json& prompts, Colour colour) {
    Table table{
        .header = {"ID", "APPLICATION", "DIRECTION", "PROTOCOL", "DOMAIN", "IP", "PORT", "OPENED"},
        .rows = {}};
    if (prompts.is_array()) {
        for (const json& prompt : prompts) {
            table.rows.push_back({text(prompt, "id"), text(member(prompt, "profile"), "name"),
                                  text(prompt, "direction"), text(prompt, "protocol"),
                                  text(prompt, "domain"), text(member(prompt, "remote"), "ip"),
                                  prompt_port(prompt), display_time(member(prompt, "opened"))});
        }
    }
    if (table.rows.empty()) {
        return "(no open prompts)\n";
    }
    return render_table(table, colour);
}

std::string format_prompt(const json& prompt) {
    Table table;
    table.rows.push_back({"prompt", text(prompt, "id")});
    table.rows.push_back({"application", text(member(prompt, "profile"), "name") + " (" +
                                             text(prompt, "executable") + ", pid " +
                                             text(prompt, "pid") + ")"});
    table.rows.push_back({"direction", text(prompt, "direction")});
    table.rows.push_back({"protocol", text(prompt, "protocol")});
    table.rows.push_back({"domain", text(prompt, "domain")});
    table.rows.push_back({"ip", text(member(prompt, "remote"), "ip")});
    table.rows.push_back({"port", prompt_port(prompt)});
    return render_table(table);
}

std::string format_prompt_answer(const json& answer) {
    const json& connections = member(answer, "connections");
    std::string out =
        "prompt " + text(answer, "id") + ": " + text(answer, "verdict") + " " + text(answer, "for");
    if (connections.is_number_integer()) {
        const auto count = connections.get<std::int64_t>();
        out += " (" + std::to_string(count) + (count == 1 ? " connection" : " connections") +
               " decided)";
    }
    return out + "\n";
}

} // namespace pw::cli
