#include "dns/upstream.h"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <string>
#include <utility>

namespace pw::dns {
namespace {

constexpr std::uint16_t kDnsOverTlsPort = 853; // RFC 7858 section 3.1
constexpr std::size_t kMaxNameLength = 253;
constexpr std::size_t kMaxLabelLength = 63;

// Every error names the setting and quotes the whole URL, so that the operator finds the entry.
std::unexpected<Error> url_error(std::string_view url, const std::string& problem,
                                 std::string_view hint = {}) {
    std::string what = "dns/nameservers: " + problem + " in '" + std::string(url) + "'";
    if (!hint.empty()) {
        what += " (" + std::string(hint) + ")";
    }
    return fail(std::move(what));
}

std::string quoted(std::string_view text) {
    return "'" + std::string(text) + "'";
}

bool equals_ignoring_case(std::string_view left, std::string_view right) {
    return std::ranges::equal(left, right, [](char a, char b) {
        const auto lower = [](char c) {
            return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
        };
        return lower(a) == lower(b);
    });
}

// The port as text, "1" to "65535": no sign, no spaces, no leading '+'.
std::optional<std::uint16_t> parse_port(std::string_view text) {
    if (text.empty() || !std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    unsigned value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

// A host name as certificates carry it: dot-separated labels of letters, digits, '-' and '_'.
bool is_host_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxNameLength) {
        return false;
    }
    std::size_t label_length = 0;
    for (const char c : name) {
        if (c == '.') {
            if (label_length == 0) {
                return false;
            }
            label_length = 0;
            continue;
        }
        const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!allowed || ++label_length > kMaxLabelLength) {
            return false;
        }
    }
    return label_length != 0;
}

// "host", "host:port", "[v6]" or "[v6]:port", taken apart. `host` keeps no brackets.
struct Authority {
    std::string_view host;
    std::optional<std::string_view> port;
    bool bracketed = false;
};

Result<Authority> split_authority(std::string_view url, std::string_view authority) {
    if (authority.empty()) {
        return url_error(url, "missing address");
    }
    if (authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            return url_error(url, "unclosed '['");
        }
        Authority result;
        result.host = authority.substr(1, close - 1);
        result.bracketed = true;
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                return url_error(url, "unexpected " + quoted(after) + " after ']'");
            }
            result.port = after.substr(1);
        }
        return result;
    }
    const std::size_t colon = authority.find(':');
    if (colon == std::string_view::npos) {
        Authority result;
        result.host = authority;
        return result;
    }
    if (authority.find(':', colon + 1) != std::string_view::npos) {
        return url_error(url, "IPv6 address " + quoted(authority) + " without brackets",
                         "write it as [ADDRESS] or [ADDRESS]:PORT");
    }
    Authority result;
    result.host = authority.substr(0, colon);
    result.port = authority.substr(colon + 1);
    return result;
}

Result<std::uint16_t> port_value(std::string_view url, std::string_view text) {
    const auto port = parse_port(text);
    if (!port) {
        return url_error(url, "port " + quoted(text) + " is not a number from 1 to 65535");
    }
    return *port;
}

// An IP literal; IPv6 may come in brackets (in ip=) or must (before a port).
Result<IpAddress> address_value(std::string_view url, std::string_view text) {
    std::string_view inner = text;
    if (inner.size() >= 2 && inner.front() == '[' && inner.back() == ']') {
        inner = inner.substr(1, inner.size() - 2);
    }
    const auto address = IpAddress::parse(inner);
    if (!address) {
        return url_error(url, quoted(text) + " is not an IP address",
                         "upstreams are given by address, so that no name needs resolving");
    }
    return *address;
}

// dns://IP[:PORT] and tcp://IP[:PORT].
Result<Upstream> parse_plain(std::string_view url, UpstreamProtocol protocol,
                             std::string_view rest) {
    if (rest.find('?') != std::string_view::npos) {
        return url_error(url, "unexpected parameters",
                         "only dot:// takes parameters: dot://NAME?ip=IP");
    }
    const auto split = split_authority(url, rest);
    if (!split) {
        return std::unexpected(split.error());
    }
    const Authority& authority = *split;
    const auto address = address_value(url, authority.host);
    if (!address) {
        return std::unexpected(address.error());
    }
    Upstream upstream;
    upstream.protocol = protocol;
    upstream.address = *address;
    upstream.url = std::string(url);
    if (authority.port) {
        const auto port = port_value(url, *authority.port);
        if (!port) {
            return std::unexpected(port.error());
        }
        upstream.port = *port;
    }
    return upstream;
}

struct TlsParameters {
    std::optional<std::string_view> ip;
    std::optional<std::string_view> port;
    std::optional<std::string_view> verify;
};

// "ip=IP&port=PORT&verify=FILE", each at most once, none empty. No percent-decoding: a CA
// file path with '&' in it cannot be written (nor needs to be).
Result<TlsParameters> parse_tls_parameters(std::string_view url, std::string_view query) {
    TlsParameters parameters;
    while (true) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const std::size_t equals = pair.find('=');
        const std::string_view key = pair.substr(0, equals);
        const std::string_view value =
            equals == std::string_view::npos ? std::string_view{} : pair.substr(equals + 1);
        std::optional<std::string_view>* slot = nullptr;
        if (key == "ip") {
            slot = &parameters.ip;
        } else if (key == "port") {
            slot = &parameters.port;
        } else if (key == "verify") {
            slot = &parameters.verify;
        } else {
            return url_error(url, "unknown parameter " + quoted(key), "expected ip, port, verify");
        }
        if (value.empty()) {
            return url_error(url, "empty value for parameter " + quoted(key));
        }
        if (slot->has_value()) {
            return url_error(url, "parameter " + quoted(key) + " given twice");
        }
        *slot = value;
        if (amp == std::string_view::npos) {
            return parameters;
        }
        query = query.substr(amp + 1);
    }
}

// dot://NAME[:PORT]?ip=IP[&port=PORT][&verify=CAFILE]
Result<Upstream> parse_tls(std::string_view url, std::string_view rest) {
    const std::size_t question_mark = rest.find('?');
    const auto split = split_authority(url, rest.substr(0, question_mark));
    if (!split) {
        return std::unexpected(split.error());
    }
    const Authority& authority = *split;
    // The name may be an IP literal for resolvers whose certificates name their addresses.
    const bool name_is_address = IpAddress::parse(authority.host).has_value();
    if (authority.bracketed ? !name_is_address
                            : !(name_is_address || is_host_name(authority.host))) {
        return url_error(url, quoted(authority.host) + " is not a host name");
    }
    if (question_mark == std::string_view::npos) {
        return url_error(url, "missing ip=",
                         "dot://NAME?ip=IP: NAME is checked against the "
                         "certificate, IP is where to connect");
    }
    const auto parsed = parse_tls_parameters(url, rest.substr(question_mark + 1));
    if (!parsed) {
        return std::unexpected(parsed.error());
    }
    const TlsParameters& parameters = *parsed;
    if (!parameters.ip) {
        return url_error(url, "missing ip=",
                         "dot://NAME?ip=IP: NAME is checked against the "
                         "certificate, IP is where to connect");
    }
    if (authority.port && parameters.port) {
        return url_error(url, "port given twice (after the name and as port=)");
    }
    const auto address = address_value(url, *parameters.ip);
    if (!address) {
        return std::unexpected(address.error());
    }
    Upstream upstream;
    upstream.protocol = UpstreamProtocol::Tls;
    upstream.address = *address;
    upstream.port = kDnsOverTlsPort;
    upstream.tls_name = std::string(authority.host);
    upstream.url = std::string(url);
    if (const auto port_text = authority.port ? authority.port : parameters.port) {
        const auto port = port_value(url, *port_text);
        if (!port) {
            return std::unexpected(port.error());
        }
        upstream.port = *port;
    }
    if (parameters.verify) {
        upstream.ca_file = std::filesystem::path(std::string(*parameters.verify));
    }
    return upstream;
}

} // namespace

Result<Upstream> parse_upstream_url(std::string_view url) {
    constexpr std::string_view kExpected = "expected dns://IP, tcp://IP or dot://NAME?ip=IP";
    const std::size_t separator = url.find("://");
    if (separator == std::string_view::npos) {
        return url_error(url, "not an upstream URL", kExpected);
    }
    const std::string_view scheme = url.substr(0, separator);
    const std::string_view rest = url.substr(separator + 3);
    if (equals_ignoring_case(scheme, "dns")) {
        return parse_plain(url, UpstreamProtocol::Udp, rest);
    }
    if (equals_ignoring_case(scheme, "tcp")) {
        return parse_plain(url, UpstreamProtocol::Tcp, rest);
    }
    if (equals_ignoring_case(scheme, "dot")) {
        return parse_tls(url, rest);
    }
    return url_error(url, "unknown scheme " + quoted(scheme), kExpected);
}

} // namespace pw::dns
