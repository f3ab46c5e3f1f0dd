#include "config/listen_address.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "common/unique_fd.h"

namespace pw::config {
namespace {

// What differs between the two listen addresses: the key, what "localhost" means, and the
// examples in error messages.
struct ListenAddressKind {
    std::string_view key;                 // "dns/listenAddress"
    std::array<std::uint8_t, 4> loopback; // the IPv4 address of "localhost"
    std::string_view loopback_text;       // "127.0.0.17"
    std::string_view port_text;           // "53"
    std::string_view off_means;           // "no nameserver"
};

constexpr ListenAddressKind kDnsListen = {.key = "dns/listenAddress",
                                          .loopback = {127, 0, 0, 17},
                                          .loopback_text = "127.0.0.17",
                                          .port_text = "53",
                                          .off_means = "no nameserver"};
constexpr std::array<std::uint8_t, 16> kLoopbackV6 = {0, 0, 0, 0, 0, 0, 0, 0,
                                                      0, 0, 0, 0, 0, 0, 0, 1};

constexpr ListenAddressKind kApiListen = {.key = "core/listenAddress",
                                          .loopback = {127, 0, 0, 1},
                                          .loopback_text = "127.0.0.1",
                                          .port_text = "817",
                                          .off_means = "no API"};

std::vector<firewall::IpEndpoint> localhost_endpoints(const ListenAddressKind& kind,
                                                      std::uint16_t port) {
    return {
        firewall::IpEndpoint{.address = IpAddress::from_v4_bytes(kind.loopback), .port = port},
        firewall::IpEndpoint{.address = IpAddress::from_v6_bytes(kLoopbackV6), .port = port},
    };
}

// Parses the PORT of a listen address: 1-65535, digits only. `quoted` starts each error.
Result<std::uint16_t> parse_listen_port(const ListenAddressKind& kind, std::string_view digits,
                                        const std::string& quoted) {
    const auto is_digit = [](char character) {
        return character >= '0' && character <= '9';
    };
    if (digits.empty()) {
        const std::string port(kind.port_text);
        return fail(quoted + " has no port (expected e.g. localhost:" + port + ", " +
                    std::string(kind.loopback_text) + ":" + port + " or [::1]:" + port + ")");
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

Result<std::vector<firewall::IpEndpoint>> parse(const ListenAddressKind& kind,
                                                std::string_view text) {
    const std::string key(kind.key);
    const std::string quoted = key + " '" + std::string(text) + "'";
    if (text.empty()) {
        return fail(key + " is empty (expected e.g. localhost:" + std::string(kind.port_text) +
                    ", or off for " + std::string(kind.off_means) + ")");
    }
    if (text == "off") {
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
            return fail(quoted + " has no port after ']' (expected e.g. [::1]:" +
                        std::string(kind.port_text) + ")");
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
            return fail(quoted + ": an IPv6 address goes in brackets, as in [::1]:" +
                        std::string(kind.port_text));
        } else {
            host = text.substr(0, colon);
            port = text.substr(colon + 1);
        }
    }
    const auto number = parse_listen_port(kind, port, quoted);
    if (!number) {
        return std::unexpected(number.error());
    }
    if (!text.starts_with('[') && equals_lower_case(host, "localhost")) {
        return localhost_endpoints(kind, *number);
    }
    const auto address = IpAddress::parse(host);
    if (!address) {
        return fail(quoted + ": " + address.error().what +
                    " (expected localhost, an IPv4 address or an IPv6 address in brackets)");
    }
    if (address->is_unspecified()) {
        return fail(quoted + ": " + address->to_string() +
                    " would listen on every address; give one address, such as " +
                    std::string(kind.loopback_text) + " or a LAN address, or localhost");
    }
    return std::vector<firewall::IpEndpoint>{
        firewall::IpEndpoint{.address = *address, .port = *number}};
}

} // namespace

std::vector<firewall::IpEndpoint> localhost_listen_endpoints(std::uint16_t port) {
    return localhost_endpoints(kDnsListen, port);
}

std::vector<firewall::IpEndpoint> localhost_api_endpoints(std::uint16_t port) {
    return localhost_endpoints(kApiListen, port);
}

Result<std::vector<firewall::IpEndpoint>> parse_listen_address(std::string_view text) {
    // "off": no nameserver. DNS is then ordinary traffic, neither redirected nor blocked as
    // astray, and connections carry no domain.
    return parse(kDnsListen, text);
}

Result<std::vector<firewall::IpEndpoint>> parse_api_listen_address(std::string_view text) {
    return parse(kApiListen, text);
}

Ipv6Loopback probe_ipv6_loopback() {
    const UniqueFd probe(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!probe.valid()) {
        // ipv6.disable=1: the kernel has no IPv6 sockets at all.
        return errno == EAFNOSUPPORT ? Ipv6Loopback::Missing : Ipv6Loopback::Available;
    }
    sockaddr_in6 loopback{};
    loopback.sin6_family = AF_INET6;
    loopback.sin6_addr = in6addr_loopback;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockaddr API.
    if (::bind(probe.get(), reinterpret_cast<const sockaddr*>(&loopback), sizeof(loopback)) != 0) {
        // disable_ipv6=1 on lo: the socket exists, ::1 does not.
        return errno == EADDRNOTAVAIL ? Ipv6Loopback::Missing : Ipv6Loopback::Available;
    }
    return Ipv6Loopback::Available;
}

HostListenEndpoints fit_listen_endpoints_to_host(std::span<const firewall::IpEndpoint> endpoints,
                                                 Ipv6Loopback ipv6_loopback) {
    HostListenEndpoints fitted{.bind = {endpoints.begin(), endpoints.end()}, .left_out = {}};
    if (ipv6_loopback == Ipv6Loopback::Available || endpoints.empty()) {
        return fitted;
    }
    // "localhost:PORT" is the only form that gives these two endpoints (any other names one).
    const std::uint16_t port = endpoints.front().port;
    const bool localhost = std::ranges::equal(endpoints, localhost_listen_endpoints(port)) ||
                           std::ranges::equal(endpoints, localhost_api_endpoints(port));
    if (!localhost) {
        return fitted;
    }
    const auto is_v6 = [](const firewall::IpEndpoint& endpoint) {
        return !endpoint.address.is_v4();
    };
    std::ranges::copy_if(fitted.bind, std::back_inserter(fitted.left_out), is_v6);
    std::erase_if(fitted.bind, is_v6);
    return fitted;
}

std::string listen_failure_hint(const std::error_code& reason, std::string_view key) {
    const std::string setting(key);
    if (reason == std::errc::address_in_use) {
        return "another server is listening there: stop it, or change " + setting;
    }
    if (reason == std::errc::address_not_available) {
        return "this host does not have that address (::1 is missing when IPv6 is disabled, "
               "disable_ipv6=1): change " +
               setting + ", for instance to localhost";
    }
    if (reason == std::errc::address_family_not_supported) {
        return "IPv6 is disabled on this host (ipv6.disable=1): change " + setting +
               " to localhost or an IPv4 address";
    }
    if (reason == std::errc::permission_denied || reason == std::errc::operation_not_permitted) {
        return "binding a port below 1024 needs root or CAP_NET_BIND_SERVICE";
    }
    return {};
}

} // namespace pw::config
