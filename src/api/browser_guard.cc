#include "api/browser_guard.h"

#include <charconv>
#include <cstddef>
#include <system_error>

namespace pw::api {
namespace {

// A quoted header value is cut to this length: refusals stay one readable line.
constexpr std::size_t kMaxQuote = 100;

std::string quote(std::string_view text) {
    if (text.size() <= kMaxQuote) {
        return "'" + std::string(text) + "'";
    }
    return "'" + std::string(text.substr(0, kMaxQuote)) + "...'";
}

bool equals_ignoring_case(std::string_view text, std::string_view lower) {
    if (text.size() != lower.size()) {
        return false;
    }
    for (std::size_t index = 0; index < text.size(); ++index) {
        char letter = text[index];
        if (letter >= 'A' && letter <= 'Z') {
            letter = static_cast<char>(letter - 'A' + 'a');
        }
        if (letter != lower[index]) {
            return false;
        }
    }
    return true;
}

// The names a request may use for this server, for the refusal messages.
std::string accepted_hosts(const ServerAddress& server, std::string_view scheme) {
    const std::string port = std::to_string(server.port);
    std::string text = std::string(scheme) + "localhost:" + port + ", " + std::string(scheme) +
                       "127.0.0.1:" + port + " or " + std::string(scheme) + "[::1]:" + port;
    if (!server.address.is_loopback()) {
        const std::string literal = server.address.is_v4() ? server.address.to_string()
                                                           : "[" + server.address.to_string() + "]";
        text = std::string(scheme) + literal + ":" + port + ", " + text;
    }
    return text;
}

// Whether `host` ("name:port") names this server. Ports are written in decimal without sign or
// leading '+'; the name is localhost or an address literal (IPv6 in brackets).
bool names_server(std::string_view host, const ServerAddress& server) {
    std::string_view name;
    std::string_view port;
    if (host.starts_with('[')) {
        const std::size_t close = host.find(']');
        if (close == std::string_view::npos || host.substr(close + 1, 1) != ":") {
            return false;
        }
        name = host.substr(1, close - 1);
        port = host.substr(close + 2);
        const auto address = IpAddress::parse(name);
        if (!address || name.find(':') == std::string_view::npos) {
            return false; // "[127.0.0.1]" is not a valid Host (RFC 3986 3.2.2)
        }
    } else {
        const std::size_t colon = host.rfind(':');
        if (colon == std::string_view::npos) {
            return false;
        }
        name = host.substr(0, colon);
        port = host.substr(colon + 1);
        if (name.find(':') != std::string_view::npos) {
            return false; // an IPv6 literal without brackets
        }
    }
    std::uint16_t number = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || error != std::errc() || end != port.data() + port.size() ||
        number != server.port) {
        return false;
    }
    if (equals_ignoring_case(name, "localhost")) {
        return true;
    }
    const auto address = IpAddress::parse(name);
    return address && (address->is_loopback() || *address == server.address);
}

} // namespace

std::optional<std::string> host_refusal(std::string_view host, const ServerAddress& server) {
    if (names_server(host, server)) {
        return std::nullopt;
    }
    return "Host " + quote(host) + " does not name this API: requests must be addressed to " +
           accepted_hosts(server, "") +
           " (other names are refused, so that a web page cannot reach the API by pointing its "
           "own name at this machine)";
}

std::optional<std::string> origin_refusal(std::string_view origin, const ServerAddress& server) {
    constexpr std::string_view kScheme = "http://";
    if (origin.starts_with(kScheme) && names_server(origin.substr(kScheme.size()), server)) {
        return std::nullopt;
    }
    return "cross-origin request from " + quote(origin) +
           " refused: the API answers browsers only on its own origin, " +
           accepted_hosts(server, kScheme);
}

} // namespace pw::api
