#include "firewall/endpoint_rule.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <string>
#include <utility>
#include <variant>

#include "firewall/service_names.h"
#include "packet/packet_info.h"

namespace pw::firewall {
namespace {

// Tokens are separated by any run of ASCII whitespace. \r and \n are included so that a rule
// copied from a CRLF file or a multi-line JSON string still splits where the user sees a gap.
constexpr std::string_view kWhitespace = " \t\r\n\v\f";

// Every name spelled in lower case; lookup folds the token to lower case first.
struct ProtocolName {
    std::string_view name;
    std::uint8_t number;
};
constexpr std::array<ProtocolName, 8> kProtocolNames = {{
    {.name = "tcp", .number = packet::protocol::kTcp},
    {.name = "udp", .number = packet::protocol::kUdp},
    {.name = "icmp", .number = packet::protocol::kIcmp},
    {.name = "icmpv6", .number = packet::protocol::kIcmpV6},
    {.name = "icmp6", .number = packet::protocol::kIcmpV6},
    {.name = "udplite", .number = packet::protocol::kUdpLite},
    {.name = "sctp", .number = packet::protocol::kSctp},
    {.name = "igmp", .number = packet::protocol::kIgmp},
}};

// The longest protocol name is 7 characters; anything longer cannot be a name.
constexpr std::size_t kMaxProtocolNameLength = 7;

std::vector<std::string_view> split_tokens(std::string_view text) {
    std::vector<std::string_view> tokens;
    std::size_t position = 0;
    while (true) {
        const std::size_t start = text.find_first_not_of(kWhitespace, position);
        if (start == std::string_view::npos) {
            break;
        }
        const std::size_t end = text.find_first_of(kWhitespace, start);
        tokens.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
        if (end == std::string_view::npos) {
            break;
        }
        position = end;
    }
    return tokens;
}

std::string_view trim(std::string_view text) {
    const std::size_t start = text.find_first_not_of(kWhitespace);
    if (start == std::string_view::npos) {
        return {};
    }
    const std::size_t end = text.find_last_not_of(kWhitespace);
    return text.substr(start, end - start + 1);
}

// Parses a decimal number without sign or leading '+'; nullopt on anything else or overflow.
template <typename Number>
std::optional<Number> parse_decimal(std::string_view digits) {
    if (digits.empty()) {
        return std::nullopt;
    }
    Number value{};
    const char* end = digits.data() + digits.size();
    // from_chars takes a [begin, end) range: no NUL terminator is needed.
    const auto [ptr, error] = std::from_chars(
        digits.data(), end, value); // NOLINT(bugprone-suspicious-stringview-data-usage)
    if (error != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

bool protocol_has_ports(std::uint8_t protocol) {
    return protocol == packet::protocol::kTcp || protocol == packet::protocol::kUdp ||
           protocol == packet::protocol::kUdpLite || protocol == packet::protocol::kSctp;
}

// A token that only an IP address or CIDR could be meant as: it has a colon (IPv6) or consists
// of digits and dots, with at least one digit (IPv4). Such tokens get the address parser's precise
// error; everything else
// ("example.com") is a domain. All-numeric names cannot be domains here, but no top-level domain
// is all digits.
bool looks_like_address(std::string_view token) {
    const std::string_view address = token.substr(0, token.find('/'));
    if (address.find(':') != std::string_view::npos) {
        return true;
    }
    return std::ranges::any_of(
               address, [](char character) { return character >= '0' && character <= '9'; }) &&
           std::ranges::all_of(address, [](char character) {
               return (character >= '0' && character <= '9') || character == '.';
           });
}

char to_lower(char character) {
    return (character >= 'A' && character <= 'Z') ? static_cast<char>(character - 'A' + 'a')
                                                  : character;
}

std::string lower_case(std::string_view text) {
    std::string lower(text);
    std::ranges::transform(lower, lower.begin(), to_lower);
    return lower;
}

// RFC 1035 section 2.3.4: labels of 63 octets, names of 255 octets on the wire, which is 253
// characters of text without the trailing dot.
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::size_t kMaxNameLength = 253;

// The scope keywords of Portmaster-style rules ("- LAN"), in lower case. A domain of that name
// is written with its trailing dot ("lan.").
struct ScopeKeyword {
    std::string_view name;
    NetworkScope scope;
};
constexpr std::array<ScopeKeyword, 3> kScopeKeywords = {{
    {.name = "localhost", .scope = NetworkScope::Localhost},
    {.name = "lan", .scope = NetworkScope::Lan},
    {.name = "internet", .scope = NetworkScope::Internet},
}};

// The scope a token names (compared case-insensitively), or nullopt.
std::optional<NetworkScope> scope_keyword(std::string_view token) {
    constexpr std::size_t kLongestKeyword = 9; // "localhost"
    if (token.size() > kLongestKeyword) {
        return std::nullopt;
    }
    const std::string lower = lower_case(token);
    for (const auto& [name, scope] : kScopeKeywords) {
        if (lower == name) {
            return scope;
        }
    }
    return std::nullopt;
}

// Whether `token` is meant as an IP range: FIRST-LAST where FIRST looks like an address and is
// more than a bare number ("123-reg.co.uk" is a domain, "10.0.0.5-10.0.0.9" a range).
bool looks_like_range(std::string_view token) {
    const std::size_t dash = token.find('-');
    if (dash == std::string_view::npos) {
        return false;
    }
    const std::string_view first = token.substr(0, dash);
    return first.find_first_of(".:") != std::string_view::npos && looks_like_address(first);
}

bool is_domain_character(char character) {
    return (character >= 'a' && character <= 'z') || (character >= '0' && character <= '9') ||
           character == '-' || character == '_';
}

// Checks the labels of `name` (lower case, no leading or trailing dot). `token` is quoted.
Status check_labels(std::string_view name, std::string_view token, DomainMatch match) {
    if (name.size() > kMaxNameLength) {
        return fail("domain '" + std::string(token) + "' is longer than 253 characters");
    }
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = name.find('.', start);
        const std::string_view label =
            name.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (label.empty()) {
            return fail("empty label in domain '" + std::string(token) +
                        "' (two dots in a row, or a dot where a name should start)");
        }
        if (label.size() > kMaxLabelLength) {
            return fail("label '" + std::string(label) + "' of domain '" + std::string(token) +
                        "' is longer than 63 characters");
        }
        for (const char character : label) {
            if (character == '*' && match == DomainMatch::Glob) {
                continue;
            }
            if (!is_domain_character(character)) {
                return fail("invalid character '" + std::string(1, character) + "' in domain '" +
                            std::string(token) +
                            "' (expected letters, digits, '-', '_', dots, and '*' in a glob)");
            }
        }
        if (dot == std::string_view::npos) {
            return {};
        }
        start = dot + 1;
    }
}

// True when `name` is `zone` or a name below it, compared case-insensitively (`zone` is lower
// case already). "notexample.com" is not below "example.com": the match ends at a dot.
bool ends_with_label_sequence(std::string_view name, std::string_view zone) {
    if (name.size() < zone.size()) {
        return false;
    }
    const std::string_view tail = name.substr(name.size() - zone.size());
    if (!std::ranges::equal(tail, zone,
                            [](char left, char right) { return to_lower(left) == right; })) {
        return false;
    }
    return name.size() == zone.size() || name[name.size() - zone.size() - 1] == '.';
}

// '*' matches any run of characters, dots included. Greedy with a single backtrack point, the
// classic wildcard algorithm: at most pattern x name steps, no recursion (names are <= 253
// characters, but a name from a DNS answer is untrusted and must not blow up the stack).
bool glob_matches(std::string_view pattern, std::string_view name) {
    std::size_t pattern_index = 0;
    std::size_t name_index = 0;
    std::size_t star = std::string_view::npos;
    std::size_t star_name_index = 0;
    while (name_index < name.size()) {
        if (pattern_index < pattern.size() && pattern[pattern_index] == '*') {
            star = pattern_index++;
            star_name_index = name_index;
        } else if (pattern_index < pattern.size() &&
                   pattern[pattern_index] == to_lower(name[name_index])) {
            ++pattern_index;
            ++name_index;
        } else if (star != std::string_view::npos) {
            pattern_index = star + 1;
            name_index = ++star_name_index;
        } else {
            return false;
        }
    }
    while (pattern_index < pattern.size() && pattern[pattern_index] == '*') {
        ++pattern_index;
    }
    return pattern_index == pattern.size();
}

Result<Entity> parse_entity(std::string_view token) {
    if (token == "*") {
        return AnyEntity{};
    }
    if (const auto scope = scope_keyword(token)) {
        return ScopeEntity{.scope = *scope};
    }
    if (looks_like_range(token)) {
        auto range = IpRange::parse(token);
        if (!range) {
            return std::unexpected(range.error());
        }
        return *range;
    }
    if (!looks_like_address(token)) {
        auto domain = parse_domain_pattern(token);
        if (!domain) {
            return std::unexpected(domain.error());
        }
        return *domain;
    }
    auto cidr = Cidr::parse(token);
    if (!cidr) {
        return std::unexpected(cidr.error());
    }
    return *cidr;
}

// nullopt in the result means "any protocol" (the token "*").
Result<std::optional<std::uint8_t>> parse_protocol(std::string_view token) {
    if (token == "*") {
        return std::optional<std::uint8_t>{};
    }
    if (!token.empty() && std::ranges::all_of(token, [](char character) {
            return character >= '0' && character <= '9';
        })) {
        const auto number = parse_decimal<unsigned>(token);
        if (!number || *number > 255) {
            return fail("protocol number " + std::string(token) + " is out of range (0-255)");
        }
        return std::optional<std::uint8_t>(static_cast<std::uint8_t>(*number));
    }
    if (token.size() <= kMaxProtocolNameLength) {
        const std::string lower = lower_case(token);
        for (const auto& [name, number] : kProtocolNames) {
            if (lower == name) {
                return std::optional<std::uint8_t>(number);
            }
        }
    }
    return fail("unknown protocol '" + std::string(token) +
                "' (expected tcp, udp, icmp, icmpv6, udplite, sctp, igmp, * or 0-255)");
}

bool is_digits(std::string_view text) {
    return std::ranges::all_of(text,
                               [](char character) { return character >= '0' && character <= '9'; });
}

// `service` is the whole PROTO/PORT token, quoted in errors so the user sees where it went wrong.
Result<std::uint16_t> parse_port(std::string_view token, std::string_view service) {
    if (token.empty()) {
        return fail("missing port in '" + std::string(service) + "'");
    }
    if (!is_digits(token)) {
        if (const auto port = service_port(token)) {
            return *port;
        }
        return fail("invalid port '" + std::string(token) +
                    "' (expected a number 0-65535 or a service name such as http, https, ssh, "
                    "domain, ntp; see docs/rules.md for the list)");
    }
    const auto number = parse_decimal<unsigned long>(token);
    if (!number || *number > 65535) {
        return fail("port " + std::string(token) + " is out of range (0-65535)");
    }
    return static_cast<std::uint16_t>(*number);
}

struct PortRange {
    std::uint16_t low = 0;
    std::uint16_t high = 65535;
};

Result<PortRange> parse_port_range(std::string_view text, std::string_view service) {
    // Some service names have a dash of their own ("ftp-data"): the whole text first.
    if (const auto port = service_port(text)) {
        return PortRange{.low = *port, .high = *port};
    }
    const std::size_t dash = text.find('-');
    const auto low = parse_port(text.substr(0, dash), service);
    if (!low) {
        return std::unexpected(low.error());
    }
    if (dash == std::string_view::npos) {
        return PortRange{.low = *low, .high = *low};
    }
    const auto high = parse_port(text.substr(dash + 1), service);
    if (!high) {
        return std::unexpected(high.error());
    }
    if (*low > *high) {
        return fail("port range " + std::string(text) + " is reversed (" + std::to_string(*low) +
                    " is above " + std::to_string(*high) + ")");
    }
    return PortRange{.low = *low, .high = *high};
}

Status parse_service(std::string_view token, EndpointRule& rule) {
    const std::size_t slash = token.find('/');
    const std::string_view protocol_text = token.substr(0, slash);
    const auto protocol = parse_protocol(protocol_text);
    if (!protocol) {
        return std::unexpected(protocol.error());
    }
    rule.protocol = *protocol;
    if (slash == std::string_view::npos) {
        return {};
    }
    if (!rule.protocol || !protocol_has_ports(*rule.protocol)) {
        return fail("ports need tcp, udp, udplite or sctp, not '" + std::string(protocol_text) +
                    "'");
    }
    const auto range = parse_port_range(token.substr(slash + 1), token);
    if (!range) {
        return std::unexpected(range.error());
    }
    rule.port_low = range->low;
    rule.port_high = range->high;
    return {};
}

} // namespace

Result<DomainPattern> parse_domain_pattern(std::string_view token) {
    std::string name = lower_case(token);
    if (name.size() > 1 && name.back() == '.') {
        name.pop_back();
    }
    if (scope_keyword(name) && token.back() != '.') {
        return fail("'" + std::string(token) +
                    "' is a scope (Localhost, LAN, Internet), not a domain; for the domain of "
                    "that name write '" +
                    name + ".'");
    }
    DomainPattern domain;
    if (name.starts_with('.')) {
        domain.match = DomainMatch::Zone;
        name.erase(0, 1);
        if (name.find('*') != std::string::npos) {
            return fail("zone '" + std::string(token) +
                        "' cannot contain '*' (a zone already covers every name below it; for "
                        "a glob leave out the leading dot)");
        }
    } else if (name.find('*') != std::string::npos) {
        domain.match = DomainMatch::Glob;
    }
    if (name.empty() || name == ".") {
        return fail("'" + std::string(token) +
                    "' is not a domain (expected a name such as "
                    "example.com, .example.com for the zone, or a glob such as *.example.com)");
    }
    if (const auto labels = check_labels(name, token, domain.match); !labels) {
        return std::unexpected(labels.error());
    }
    domain.pattern = std::move(name);
    return domain;
}

bool DomainPattern::matches(std::string_view name) const {
    if (name.ends_with('.')) {
        name.remove_suffix(1);
    }
    if (name.empty()) {
        return false;
    }
    switch (match) {
        case DomainMatch::Exact:
            return name.size() == pattern.size() && ends_with_label_sequence(name, pattern);
        case DomainMatch::Zone:
            return ends_with_label_sequence(name, pattern);
        case DomainMatch::Glob:
            return glob_matches(pattern, name);
    }
    return false;
}

bool DomainPattern::matches(const DomainFacts& domain, IncludeCnames cnames) const {
    if (matches(domain.domain)) {
        return true;
    }
    return cnames == IncludeCnames::Yes &&
           std::ranges::any_of(domain.cname_chain,
                               [this](const std::string& name) { return matches(name); });
}

Result<IpRange> IpRange::parse(std::string_view text) {
    const std::size_t dash = text.find('-');
    if (dash == std::string_view::npos) {
        return fail("IP range '" + std::string(text) +
                    "' needs two addresses joined by '-' (such as 10.0.0.5-10.0.0.9)");
    }
    const std::string_view first_text = text.substr(0, dash);
    const std::string_view last_text = text.substr(dash + 1);
    if (text.find('/') != std::string_view::npos) {
        return fail("IP range '" + std::string(text) +
                    "' takes two addresses, not networks (write a CIDR such as 10.0.0.0/24 on "
                    "its own)");
    }
    const auto first = IpAddress::parse(first_text);
    const auto last = IpAddress::parse(last_text);
    for (const auto& [parsed, part] :
         {std::pair{&first, first_text}, std::pair{&last, last_text}}) {
        if (!*parsed) {
            return fail("IP range '" + std::string(text) + "': '" + std::string(part) +
                        "' is not an IP address");
        }
    }
    if (first->family() != last->family()) {
        return fail("IP range '" + std::string(text) + "' mixes IPv4 and IPv6");
    }
    if (*last < *first) {
        return fail("IP range '" + std::string(text) + "' is reversed (" + std::string(first_text) +
                    " is above " + std::string(last_text) + ")");
    }
    return IpRange{.first = *first, .last = *last};
}

bool IpRange::contains(const IpAddress& address) const {
    // IpAddress orders by family first, then bytes in network order: numerically within one
    // family, and an address of the other family is outside the range.
    return address.family() == first.family() && first <= address && address <= last;
}

bool EndpointRule::is_name_only() const {
    return std::holds_alternative<DomainPattern>(entity) && !protocol && port_low == 0 &&
           port_high == 65535;
}

Result<EndpointRule> parse_endpoint_rule(std::string_view line) {
    const std::string_view text = trim(line);
    const std::vector<std::string_view> tokens = split_tokens(text);
    if (tokens.empty()) {
        return fail("empty rule (expected '+|- ENTITY [PROTO[/PORT[-PORT]]]')");
    }

    EndpointRule rule;
    if (tokens[0] == "+") {
        rule.action = RuleAction::Permit;
    } else if (tokens[0] == "-") {
        rule.action = RuleAction::Block;
    } else {
        return fail("a rule starts with '+' (permit) or '-' (block) and a space, not '" +
                    std::string(tokens[0]) + "'");
    }

    if (tokens.size() < 2) {
        return fail("missing entity after '" + std::string(tokens[0]) +
                    "' (expected *, Localhost, LAN, Internet, an IP address, a CIDR, an IP "
                    "range or a domain)");
    }
    auto entity = parse_entity(tokens[1]);
    if (!entity) {
        return std::unexpected(entity.error());
    }
    rule.entity = *entity;

    if (tokens.size() >= 3) {
        const auto service = parse_service(tokens[2], rule);
        if (!service) {
            return std::unexpected(service.error());
        }
    }
    if (tokens.size() > 3) {
        return fail("unexpected '" + std::string(tokens[3]) +
                    "' after the protocol (expected '+|- ENTITY [PROTO[/PORT[-PORT]]]')");
    }

    rule.text = std::string(text);
    return rule;
}

bool entity_matches(const Entity& entity, const EndpointQuery& query) {
    if (const auto* cidr = std::get_if<Cidr>(&entity)) {
        return cidr->contains(query.remote_address);
    }
    if (const auto* domain = std::get_if<DomainPattern>(&entity)) {
        return query.domain != nullptr && domain->matches(*query.domain, query.cnames);
    }
    if (const auto* scope = std::get_if<ScopeEntity>(&entity)) {
        return network_scope(ip_scope(query.remote_address)) == scope->scope;
    }
    if (const auto* range = std::get_if<IpRange>(&entity)) {
        return range->contains(query.remote_address);
    }
    return true; // AnyEntity
}

bool matches(const EndpointRule& rule, const EndpointQuery& query) {
    if (!entity_matches(rule.entity, query)) {
        return false;
    }
    if (rule.protocol && *rule.protocol != query.protocol) {
        return false;
    }
    const bool any_port = rule.port_low == 0 && rule.port_high == 65535;
    if (any_port) {
        return true;
    }
    // A port range can only hold for protocols that carry ports; the parser guarantees that
    // for the rule's protocol, this also guards hand-built rules without one.
    return protocol_has_ports(query.protocol) && query.service_port >= rule.port_low &&
           query.service_port <= rule.port_high;
}

const EndpointRule* first_match(const std::vector<EndpointRule>& rules,
                                const EndpointQuery& query) {
    const auto found = std::ranges::find_if(
        rules, [&query](const EndpointRule& rule) { return matches(rule, query); });
    return found == rules.end() ? nullptr : &*found;
}

} // namespace pw::firewall
